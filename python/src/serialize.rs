//! `serialize`, `serialize_file` and `deserialize`: the core's writer and
//! parser behind the reference's functions.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyList, PyTuple};
use safeweights::{write_file, Layout, SafeTensors, TensorRef, TensorSpec as CoreSpec};

use crate::errors::{plain, to_py, Context};
use crate::spec::TensorSpec;

/// Borrowed views of the specs' memory.
///
/// SAFETY: the caller of `serialize`/`serialize_file` guarantees, as with the
/// reference, that each `data_ptr` points to `data_len` readable bytes that
/// stay alive and unchanged during the call.
fn views(specs: &[(String, TensorSpec)]) -> PyResult<Vec<TensorRef<'_>>> {
    specs
        .iter()
        .map(|(name, spec)| {
            let data: &[u8] = if spec.data_len == 0 {
                &[]
            } else if spec.data_ptr == 0 {
                return Err(plain(format!(
                    "Error while serializing: tensor {name:?} has a null data pointer"
                )));
            } else {
                // SAFETY: see the function's contract above.
                unsafe { std::slice::from_raw_parts(spec.data_ptr as *const u8, spec.data_len) }
            };
            Ok(TensorRef {
                name,
                dtype: spec.dtype,
                shape: &spec.shape,
                data,
            })
        })
        .collect()
}

fn collect(tensor_dict: HashMap<String, TensorSpec>) -> Vec<(String, TensorSpec)> {
    tensor_dict.into_iter().collect()
}

/// Serializes raw data.
///
/// `tensor_dict` maps names to `TensorSpec`s; `metadata` is optional free
/// text. Returns the file's bytes. The memory behind every `data_ptr` must
/// stay alive during the call.
#[pyfunction]
#[pyo3(signature = (tensor_dict, metadata = None))]
pub fn serialize<'py>(
    py: Python<'py>,
    tensor_dict: HashMap<String, TensorSpec>,
    metadata: Option<BTreeMap<String, String>>,
) -> PyResult<Bound<'py, PyBytes>> {
    let specs = collect(tensor_dict);
    let refs = views(&specs)?;
    let layout = Layout::new(
        refs.iter()
            .map(|t| CoreSpec::new(t.name, t.dtype, t.shape))
            .collect(),
        metadata.as_ref(),
    )
    .map_err(|reason| plain(format!("Error while serializing: {reason}")))?;
    for t in &refs {
        let entry = layout
            .get(t.name)
            .map(|e| e.data_offsets.1 - e.data_offsets.0);
        if entry != Some(t.data.len()) {
            return Err(plain(format!(
                "Error while serializing: invalid shape, data type, or offset for tensor {:?}: {} {:?} needs {} bytes but data_len is {}",
                t.name,
                t.dtype,
                t.shape,
                entry.unwrap_or(0),
                t.data.len()
            )));
        }
    }
    let by_name: HashMap<&str, &[u8]> = refs.iter().map(|t| (t.name, t.data)).collect();
    let total = usize::try_from(layout.file_len())
        .map_err(|_| plain("Error while serializing: file too large for memory"))?;
    // Fill the bytes object in place, without the GIL: one copy of the data.
    PyBytes::new_with(py, total, |buf: &mut [u8]| {
        py.allow_threads(|| {
            let header = layout.header_bytes();
            buf[..header.len()].copy_from_slice(header);
            let mut at = header.len();
            for entry in layout.entries() {
                let src = by_name
                    .get(entry.spec.name.as_str())
                    .copied()
                    .unwrap_or_default();
                buf[at..at + src.len()].copy_from_slice(src);
                at += src.len();
            }
        });
        Ok(())
    })
}

/// Serializes raw data into a file, atomically (temporary file, sync, rename).
///
/// The memory behind every `data_ptr` must stay alive during the call.
#[pyfunction]
#[pyo3(signature = (tensor_dict, filename, metadata = None))]
pub fn serialize_file(
    py: Python<'_>,
    tensor_dict: HashMap<String, TensorSpec>,
    filename: PathBuf,
    metadata: Option<BTreeMap<String, String>>,
) -> PyResult<()> {
    let specs = collect(tensor_dict);
    let refs = views(&specs)?;
    py.allow_threads(|| write_file(&filename, &refs, metadata.as_ref()))
        .map_err(|e| to_py(py, e, Context::Serialize))
}

/// Bytes of a `bytes` or `bytearray`, borrowed (bytes) or copied (bytearray).
pub enum Buffer<'py> {
    Bytes(Bound<'py, PyBytes>),
    Owned(Vec<u8>),
}

impl Buffer<'_> {
    pub fn as_slice(&self) -> &[u8] {
        match self {
            Buffer::Bytes(b) => b.as_bytes(),
            Buffer::Owned(v) => v,
        }
    }
}

/// Accepts `bytes` without copying, and `bytearray` by copying it.
pub fn buffer<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Buffer<'py>> {
    if let Ok(b) = obj.downcast::<PyBytes>() {
        return Ok(Buffer::Bytes(b.clone()));
    }
    if let Ok(b) = obj.downcast::<PyByteArray>() {
        return Ok(Buffer::Owned(b.to_vec()));
    }
    Err(pyo3::exceptions::PyTypeError::new_err(format!(
        "argument 'bytes': '{}' object is not an instance of 'bytes'",
        obj.get_type().name()?
    )))
}

/// Parses a safetensors image and returns its tensors, in file order, as
/// `[(name, {"shape": [...], "dtype": "F32", "data": bytearray}), ...]`.
#[pyfunction]
#[pyo3(signature = (bytes))]
pub fn deserialize<'py>(
    py: Python<'py>,
    bytes: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyList>> {
    let buf = buffer(bytes)?;
    let data = buf.as_slice();
    let parsed = SafeTensors::deserialize(data).map_err(|e| to_py(py, e, Context::Deserialize))?;
    let mut views: Vec<_> = parsed.tensors().collect();
    views.sort_by_key(|v| v.info().data_offsets);
    let out = PyList::empty(py);
    for view in views {
        let dict = PyDict::new(py);
        dict.set_item("shape", view.shape().to_vec())?;
        dict.set_item("dtype", view.dtype().name())?;
        dict.set_item("data", PyByteArray::new(py, view.data()))?;
        out.append(PyTuple::new(
            py,
            [view.name().into_pyobject(py)?.into_any(), dict.into_any()],
        )?)?;
    }
    Ok(out)
}
