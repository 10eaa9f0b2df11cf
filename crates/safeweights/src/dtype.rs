//! The element types of the safetensors format, driven by one table.

use std::fmt;
use std::str::FromStr;

/// An element type of a safetensors tensor.
///
/// The declaration order is the reference implementation's order; the writer
/// lays tensors out by this order, descending, so that wide types come first
/// and stay aligned.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Dtype {
    /// Boolean, one byte per element.
    BOOL,
    /// 4-bit float (E2M1), two elements per byte.
    F4,
    /// 6-bit float E2M3.
    F6_E2M3,
    /// 6-bit float E3M2.
    F6_E3M2,
    /// Unsigned 8-bit integer.
    U8,
    /// Signed 8-bit integer.
    I8,
    /// 8-bit float E5M2.
    F8_E5M2,
    /// 8-bit float E4M3 (the "fn" variant: no infinities).
    F8_E4M3,
    /// 8-bit exponent-only scale format E8M0.
    F8_E8M0,
    /// 8-bit float E4M3, finite, unsigned zero.
    F8_E4M3FNUZ,
    /// 8-bit float E5M2, finite, unsigned zero.
    F8_E5M2FNUZ,
    /// Signed 16-bit integer.
    I16,
    /// Unsigned 16-bit integer.
    U16,
    /// IEEE half precision.
    F16,
    /// Brain float 16.
    BF16,
    /// Signed 32-bit integer.
    I32,
    /// Unsigned 32-bit integer.
    U32,
    /// IEEE single precision.
    F32,
    /// Complex of two F32.
    C64,
    /// IEEE double precision.
    F64,
    /// Signed 64-bit integer.
    I64,
    /// Unsigned 64-bit integer.
    U64,
}

/// What kind of number a dtype holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DtypeKind {
    /// Booleans.
    Bool,
    /// Signed integers.
    SignedInt,
    /// Unsigned integers.
    UnsignedInt,
    /// Floating point (including sub-byte and scale formats).
    Float,
    /// Complex numbers.
    Complex,
}

/// One row of the dtype table.
#[derive(Debug, Clone, Copy)]
pub struct DtypeInfo {
    /// The dtype.
    pub dtype: Dtype,
    /// Its name in a safetensors header.
    pub name: &'static str,
    /// Bits per element.
    pub bits: usize,
    /// What it holds.
    pub kind: DtypeKind,
}

const fn row(dtype: Dtype, name: &'static str, bits: usize, kind: DtypeKind) -> DtypeInfo {
    DtypeInfo {
        dtype,
        name,
        bits,
        kind,
    }
}

/// Every dtype of safetensors 0.8, in declaration order.
pub const DTYPES: [DtypeInfo; 22] = {
    use Dtype::*;
    use DtypeKind::*;
    [
        row(BOOL, "BOOL", 8, Bool),
        row(F4, "F4", 4, Float),
        row(F6_E2M3, "F6_E2M3", 6, Float),
        row(F6_E3M2, "F6_E3M2", 6, Float),
        row(U8, "U8", 8, UnsignedInt),
        row(I8, "I8", 8, SignedInt),
        row(F8_E5M2, "F8_E5M2", 8, Float),
        row(F8_E4M3, "F8_E4M3", 8, Float),
        row(F8_E8M0, "F8_E8M0", 8, Float),
        row(F8_E4M3FNUZ, "F8_E4M3FNUZ", 8, Float),
        row(F8_E5M2FNUZ, "F8_E5M2FNUZ", 8, Float),
        row(I16, "I16", 16, SignedInt),
        row(U16, "U16", 16, UnsignedInt),
        row(F16, "F16", 16, Float),
        row(BF16, "BF16", 16, Float),
        row(I32, "I32", 32, SignedInt),
        row(U32, "U32", 32, UnsignedInt),
        row(F32, "F32", 32, Float),
        row(C64, "C64", 64, Complex),
        row(F64, "F64", 64, Float),
        row(I64, "I64", 64, SignedInt),
        row(U64, "U64", 64, UnsignedInt),
    ]
};

impl Dtype {
    /// This dtype's row of [`DTYPES`].
    pub fn info(self) -> &'static DtypeInfo {
        // The table is in declaration order, so the discriminant indexes it.
        &DTYPES[self as usize]
    }

    /// The name used in safetensors headers (`"F32"`, `"BF16"`, ...).
    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// Bits per element.
    pub fn bits(self) -> usize {
        self.info().bits
    }

    /// What kind of number it holds.
    pub fn kind(self) -> DtypeKind {
        self.info().kind
    }

    /// Bytes per element when the element is a whole number of bytes.
    pub fn size_bytes(self) -> Option<usize> {
        let bits = self.bits();
        (bits % 8 == 0).then_some(bits / 8)
    }

    /// Whether elements are narrower than a byte or do not fill whole bytes.
    pub fn is_sub_byte(self) -> bool {
        self.bits() % 8 != 0
    }

    /// Looks a dtype up by its header name; `None` if unknown.
    pub fn from_name(name: &str) -> Option<Dtype> {
        DTYPES
            .iter()
            .find(|row| row.name == name)
            .map(|row| row.dtype)
    }

    /// The byte size of `elements` elements, or `None` on overflow or when
    /// the bits do not fill whole bytes.
    pub fn byte_size(self, elements: usize) -> Option<usize> {
        let bits = elements.checked_mul(self.bits())?;
        (bits % 8 == 0).then_some(bits / 8)
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error for a dtype name that safetensors does not define.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown dtype {0:?}")]
pub struct UnknownDtype(pub String);

impl crate::Diagnostic for UnknownDtype {
    fn kind(&self) -> &'static str {
        "unknown_dtype_name"
    }

    fn class(&self) -> crate::ErrorClass {
        crate::ErrorClass::Usage
    }
}

impl FromStr for Dtype {
    type Err = UnknownDtype;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Dtype::from_name(s).ok_or_else(|| UnknownDtype(s.to_owned()))
    }
}

/// Number of elements of a shape, or `None` on overflow.
pub fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests build fixtures with std::fs.
mod tests {
    use super::*;

    #[test]
    fn table_is_in_declaration_order() {
        for (i, row) in DTYPES.iter().enumerate() {
            assert_eq!(row.dtype as usize, i, "{}", row.name);
            assert_eq!(Dtype::from_name(row.name), Some(row.dtype));
        }
    }

    #[test]
    fn sub_byte_sizes() {
        assert_eq!(Dtype::F4.byte_size(2), Some(1));
        assert_eq!(Dtype::F4.byte_size(3), None);
        assert_eq!(Dtype::F6_E2M3.byte_size(4), Some(3));
        assert_eq!(Dtype::F6_E3M2.byte_size(2), None);
        assert_eq!(Dtype::C64.byte_size(3), Some(24));
        assert_eq!(Dtype::U64.byte_size(usize::MAX), None);
    }

    #[test]
    fn unknown_names() {
        assert!("f32".parse::<Dtype>().is_err());
        assert!("".parse::<Dtype>().is_err());
        assert_eq!("F8_E8M0".parse::<Dtype>().unwrap(), Dtype::F8_E8M0);
    }
}
