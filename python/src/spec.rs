//! `TensorSpec`: a tensor to write, described by a raw pointer, as the
//! reference's framework modules build it.

use pyo3::prelude::*;
use safeweights::Dtype;

use crate::errors::plain;

/// Framework dtype names (torch's, which numpy's match) and their format code.
const FRAMEWORK_DTYPES: [(&str, Dtype); 20] = [
    ("bool", Dtype::BOOL),
    ("int8", Dtype::I8),
    ("uint8", Dtype::U8),
    ("int16", Dtype::I16),
    ("uint16", Dtype::U16),
    ("int32", Dtype::I32),
    ("uint32", Dtype::U32),
    ("int64", Dtype::I64),
    ("uint64", Dtype::U64),
    ("float16", Dtype::F16),
    ("float32", Dtype::F32),
    ("float64", Dtype::F64),
    ("bfloat16", Dtype::BF16),
    ("float8_e4m3fn", Dtype::F8_E4M3),
    ("float8_e4m3fnuz", Dtype::F8_E4M3FNUZ),
    ("float8_e5m2", Dtype::F8_E5M2),
    ("float8_e5m2fnuz", Dtype::F8_E5M2FNUZ),
    ("float8_e8m0fnu", Dtype::F8_E8M0),
    ("float4_e2m1fn_x2", Dtype::F4),
    ("complex64", Dtype::C64),
];

/// The format dtype of a framework dtype name.
pub fn dtype_from_framework(name: &str) -> PyResult<Dtype> {
    FRAMEWORK_DTYPES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, d)| *d)
        .ok_or_else(|| {
            let names: Vec<&str> = FRAMEWORK_DTYPES.iter().map(|(n, _)| *n).collect();
            plain(format!(
                "Unknown dtype \"{name}\". Supported dtypes: {}",
                names.join(", ")
            ))
        })
}

/// Describes a single tensor passed to `serialize` / `serialize_file`.
///
/// `TensorSpec(*, dtype, shape, data_ptr, data_len)`: `dtype` is a framework
/// dtype name (`"float32"`, `"bfloat16"`, `"float8_e4m3fn"`, ...), `shape`
/// the framework shape. For `float4_e2m1fn_x2` (two F4 values per byte) the
/// last dimension is doubled so that `shape` is the logical element shape.
/// The caller keeps the memory at `data_ptr` alive and unchanged while it is
/// serialized.
#[pyclass(frozen, module = "safeweights._safeweights")]
#[derive(Clone)]
pub struct TensorSpec {
    pub(crate) dtype: Dtype,
    pub(crate) shape: Vec<usize>,
    pub(crate) data_ptr: usize,
    pub(crate) data_len: usize,
}

#[pymethods]
impl TensorSpec {
    #[new]
    #[pyo3(signature = (*, dtype, shape, data_ptr, data_len))]
    fn new(dtype: &str, shape: Vec<usize>, data_ptr: usize, data_len: usize) -> PyResult<Self> {
        let dtype = dtype_from_framework(dtype)?;
        let mut shape = shape;
        if dtype == Dtype::F4 {
            match shape.last_mut() {
                Some(last) => *last *= 2,
                None => {
                    return Err(plain(
                        "a float4_e2m1fn_x2 tensor needs at least one dimension",
                    ))
                }
            }
        }
        Ok(TensorSpec {
            dtype,
            shape,
            data_ptr,
            data_len,
        })
    }

    /// The tensor's dtype as its safetensors format code (`"F32"`, `"BF16"`, ...).
    #[getter]
    fn dtype(&self) -> &'static str {
        self.dtype.name()
    }

    /// The logical (header) shape.
    #[getter]
    fn shape(&self) -> Vec<usize> {
        self.shape.clone()
    }

    /// The raw memory address of the tensor's contiguous buffer.
    #[getter]
    fn data_ptr(&self) -> usize {
        self.data_ptr
    }

    /// The length of the tensor's buffer in bytes.
    #[getter]
    fn data_len(&self) -> usize {
        self.data_len
    }

    fn __repr__(&self) -> String {
        format!(
            "TensorSpec(dtype='{}', shape={:?}, data_ptr={}, data_len={})",
            self.dtype, self.shape, self.data_ptr, self.data_len
        )
    }
}
