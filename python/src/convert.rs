//! `convert`: `safeweights_convert::convert` with the summary as a dict and
//! failures as `ConversionError`.

use std::path::PathBuf;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use safeweights_convert::{convert as convert_files, ConvertOptions};

use crate::errors;

/// A size in bytes: an `int`, or a string like `"5GB"`, `"500MB"`, `"1.5GiB"`.
pub fn parse_size(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<u64> {
    if let Ok(s) = obj.extract::<String>() {
        return safeweights::sharded::parse_size(&s).ok_or_else(|| {
            PyValueError::new_err(format!(
                "{what}: invalid size {s:?} (expected bytes as an int, or a size like \"5GB\", \"500MB\", \"1.5GiB\")"
            ))
        });
    }
    if obj.is_instance_of::<pyo3::types::PyBool>() {
        return Err(PyTypeError::new_err(format!(
            "{what}: expected an int or a str, got bool"
        )));
    }
    match obj.extract::<i128>() {
        Ok(n) if n >= 1 && n <= u64::MAX as i128 => Ok(n as u64),
        Ok(n) => Err(PyValueError::new_err(format!(
            "{what}: {n} is not a positive number of bytes"
        ))),
        Err(_) => Err(PyTypeError::new_err(format!(
            "{what}: expected an int or a str, got {}",
            obj.get_type().name()?
        ))),
    }
}

/// Converts a checkpoint without executing any of its code, and verifies
/// the output bit for bit.
///
/// `src` is a PyTorch checkpoint (`.bin/.pt/.pth/.ckpt`, zip or legacy),
/// `.npy`, `.npz`, safetensors, or a Hugging Face model folder; its kind is
/// read from its bytes. `dst`'s extension picks the target: `.safetensors`,
/// `.bin/.pt/.pth/.ckpt` (PyTorch zip), `.npz`; for a folder, `dst` is the
/// output folder. Returns the summary as a dict. Raises `ConversionError`
/// (with `.kind`, `.file`, `.tensor`, `.member`, `.offset`) and leaves
/// nothing at `dst` on failure.
#[pyfunction]
#[pyo3(signature = (src, dst, *, keep_shared = false, metadata_leaves = false, max_shard_size = None, overwrite = false))]
pub fn convert(
    py: Python<'_>,
    src: PathBuf,
    dst: PathBuf,
    keep_shared: bool,
    metadata_leaves: bool,
    max_shard_size: Option<&Bound<'_, PyAny>>,
    overwrite: bool,
) -> PyResult<PyObject> {
    let max_shard_size = max_shard_size
        .filter(|o| !o.is_none())
        .map(|o| parse_size(o, "max_shard_size"))
        .transpose()?;
    let options = ConvertOptions::new()
        .keep_shared(keep_shared)
        .metadata_leaves(metadata_leaves)
        .max_shard_size(max_shard_size)
        .overwrite(overwrite);
    let summary = py
        .allow_threads(|| convert_files(&src, &dst, &options))
        .map_err(|e| errors::convert_to_py(py, e))?;
    crate::pyjson::serialize_to_py(py, &summary)
}
