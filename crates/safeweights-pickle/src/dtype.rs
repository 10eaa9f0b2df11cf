//! PyTorch dtypes as they appear in checkpoints.

/// A `torch.dtype`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TorchDtype {
    /// `torch.bool`
    Bool,
    /// `torch.uint8`
    UInt8,
    /// `torch.int8`
    Int8,
    /// `torch.int16`
    Int16,
    /// `torch.uint16`
    UInt16,
    /// `torch.int32`
    Int32,
    /// `torch.uint32`
    UInt32,
    /// `torch.int64`
    Int64,
    /// `torch.uint64`
    UInt64,
    /// `torch.float16`
    Float16,
    /// `torch.bfloat16`
    BFloat16,
    /// `torch.float32`
    Float32,
    /// `torch.float64`
    Float64,
    /// `torch.complex32`
    Complex32,
    /// `torch.complex64`
    Complex64,
    /// `torch.complex128`
    Complex128,
    /// `torch.float8_e4m3fn`
    Float8E4M3Fn,
    /// `torch.float8_e5m2`
    Float8E5M2,
    /// `torch.float8_e4m3fnuz`
    Float8E4M3Fnuz,
    /// `torch.float8_e5m2fnuz`
    Float8E5M2Fnuz,
    /// `torch.float8_e8m0fnu`
    Float8E8M0Fnu,
    /// `torch.float4_e2m1fn_x2` (two 4-bit values per byte; torch shapes count bytes)
    Float4E2M1FnX2,
    /// `torch.qint8`
    QInt8,
    /// `torch.quint8`
    QUInt8,
    /// `torch.qint32`
    QInt32,
    /// `torch.quint4x2`
    QUInt4x2,
    /// `torch.quint2x4`
    QUInt2x4,
}

impl TorchDtype {
    /// Every dtype.
    pub const ALL: &'static [TorchDtype] = &[
        Self::Bool,
        Self::UInt8,
        Self::Int8,
        Self::Int16,
        Self::UInt16,
        Self::Int32,
        Self::UInt32,
        Self::Int64,
        Self::UInt64,
        Self::Float16,
        Self::BFloat16,
        Self::Float32,
        Self::Float64,
        Self::Complex32,
        Self::Complex64,
        Self::Complex128,
        Self::Float8E4M3Fn,
        Self::Float8E5M2,
        Self::Float8E4M3Fnuz,
        Self::Float8E5M2Fnuz,
        Self::Float8E8M0Fnu,
        Self::Float4E2M1FnX2,
        Self::QInt8,
        Self::QUInt8,
        Self::QInt32,
        Self::QUInt4x2,
        Self::QUInt2x4,
    ];

    /// Size of one element in bytes.
    pub fn element_size(self) -> u64 {
        use TorchDtype::*;
        match self {
            Bool | UInt8 | Int8 | Float8E4M3Fn | Float8E5M2 | Float8E4M3Fnuz | Float8E5M2Fnuz
            | Float8E8M0Fnu | Float4E2M1FnX2 | QInt8 | QUInt8 | QUInt4x2 | QUInt2x4 => 1,
            Int16 | UInt16 | Float16 | BFloat16 => 2,
            Int32 | UInt32 | Float32 | Complex32 | QInt32 => 4,
            Int64 | UInt64 | Float64 | Complex64 => 8,
            Complex128 => 16,
        }
    }

    /// Size of the scalar unit to byteswap for big-endian archives
    /// (complex numbers swap each component).
    pub fn swap_unit(self) -> u64 {
        use TorchDtype::*;
        match self {
            Complex32 => 2,
            Complex64 => 4,
            Complex128 => 8,
            other => other.element_size(),
        }
    }

    /// The canonical `torch.<name>` attribute.
    pub fn torch_name(self) -> &'static str {
        use TorchDtype::*;
        match self {
            Bool => "bool",
            UInt8 => "uint8",
            Int8 => "int8",
            Int16 => "int16",
            UInt16 => "uint16",
            Int32 => "int32",
            UInt32 => "uint32",
            Int64 => "int64",
            UInt64 => "uint64",
            Float16 => "float16",
            BFloat16 => "bfloat16",
            Float32 => "float32",
            Float64 => "float64",
            Complex32 => "complex32",
            Complex64 => "complex64",
            Complex128 => "complex128",
            Float8E4M3Fn => "float8_e4m3fn",
            Float8E5M2 => "float8_e5m2",
            Float8E4M3Fnuz => "float8_e4m3fnuz",
            Float8E5M2Fnuz => "float8_e5m2fnuz",
            Float8E8M0Fnu => "float8_e8m0fnu",
            Float4E2M1FnX2 => "float4_e2m1fn_x2",
            QInt8 => "qint8",
            QUInt8 => "quint8",
            QInt32 => "qint32",
            QUInt4x2 => "quint4x2",
            QUInt2x4 => "quint2x4",
        }
    }

    /// Parse a `torch.<name>` attribute, including aliases (`float`, `half`, `long`, `cfloat`, ...).
    pub fn from_torch_name(name: &str) -> Option<Self> {
        use TorchDtype::*;
        Some(match name {
            "float" => Float32,
            "double" => Float64,
            "half" => Float16,
            "long" => Int64,
            "int" => Int32,
            "short" => Int16,
            "chalf" => Complex32,
            "cfloat" => Complex64,
            "cdouble" => Complex128,
            other => return Self::ALL.iter().copied().find(|d| d.torch_name() == other),
        })
    }

    /// The dtype of a legacy typed storage class (`FloatStorage`, ...).
    pub fn from_storage_class(name: &str) -> Option<Self> {
        use TorchDtype::*;
        Some(match name {
            "DoubleStorage" => Float64,
            "FloatStorage" => Float32,
            "HalfStorage" => Float16,
            "BFloat16Storage" => BFloat16,
            "LongStorage" => Int64,
            "IntStorage" => Int32,
            "ShortStorage" => Int16,
            "CharStorage" => Int8,
            "ByteStorage" => UInt8,
            "BoolStorage" => Bool,
            "ComplexDoubleStorage" => Complex128,
            "ComplexFloatStorage" => Complex64,
            "QUInt8Storage" => QUInt8,
            "QInt8Storage" => QInt8,
            "QInt32Storage" => QInt32,
            "QUInt4x2Storage" => QUInt4x2,
            "QUInt2x4Storage" => QUInt2x4,
            _ => return None,
        })
    }

    /// safetensors (0.8) dtype code, or `None` where safetensors has no equivalent
    /// (complex32/complex128, fnuz float8 variants, quantized types).
    ///
    /// `Float4E2M1FnX2` maps to `"F4"`: note torch counts packed bytes in its
    /// shape, while safetensors `F4` shapes count 4-bit elements.
    pub fn safetensors_code(self) -> Option<&'static str> {
        use TorchDtype::*;
        Some(match self {
            Bool => "BOOL",
            UInt8 => "U8",
            Int8 => "I8",
            Int16 => "I16",
            UInt16 => "U16",
            Int32 => "I32",
            UInt32 => "U32",
            Int64 => "I64",
            UInt64 => "U64",
            Float16 => "F16",
            BFloat16 => "BF16",
            Float32 => "F32",
            Float64 => "F64",
            Complex64 => "C64",
            Float8E4M3Fn => "F8_E4M3",
            Float8E5M2 => "F8_E5M2",
            Float8E8M0Fnu => "F8_E8M0",
            Float4E2M1FnX2 => "F4",
            Complex32 | Complex128 | Float8E4M3Fnuz | Float8E5M2Fnuz | QInt8 | QUInt8 | QInt32
            | QUInt4x2 | QUInt2x4 => return None,
        })
    }
}

impl std::fmt::Display for TorchDtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "torch.{}", self.torch_name())
    }
}
