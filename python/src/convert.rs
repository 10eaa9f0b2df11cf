//! `convert`: `safeweights_convert::convert` with the summary as a dict and
//! failures as `ConversionError`.

use std::path::PathBuf;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use safeweights_convert::{convert as convert_files, ConvertError, ConvertOptions};

use crate::errors::{self, ConversionError};

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

/// `(kind, file, tensor, member, offset)` of a conversion error.
fn fields(
    e: &ConvertError,
) -> (
    &'static str,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<u64>,
) {
    use safeweights_pickle::Error as P;
    let path = |p: &std::path::Path| Some(p.display().to_string());
    match e {
        ConvertError::Pickle(p) => match p {
            P::Io { file, .. } => ("io", path(file), None, None, None),
            P::Pickle {
                file,
                member,
                source,
            } => {
                let kind = match source.kind {
                    safeweights_pickle::PickleErrorKind::ForbiddenGlobal { .. }
                    | safeweights_pickle::PickleErrorKind::BadCall { .. } => "unsafe",
                    _ => "pickle",
                };
                (kind, path(file), None, member.clone(), Some(source.offset))
            }
            P::Zip { file, offset, .. } => ("zip", path(file), None, None, Some(*offset)),
            P::TorchScript { file, .. } => ("unsafe", path(file), None, None, None),
            P::TensorOutOfBounds { file, tensor, .. } => {
                ("invalid", path(file), Some(tensor.clone()), None, None)
            }
            P::LegacyTar { file } => ("unsupported", path(file), None, None, None),
            P::NotACheckpoint { file, .. } => ("unsupported", path(file), None, None, None),
            P::Invalid { file, .. } => ("invalid", path(file), None, None, None),
            P::LimitExceeded { file, .. } => ("limit", path(file), None, None, None),
            _ => ("pickle", None, None, None, None),
        },
        ConvertError::Format(f) => {
            let file = match f {
                safeweights::Error::Header { file, .. }
                | safeweights::Error::Io { file, .. }
                | safeweights::Error::TensorNotFound { file, .. }
                | safeweights::Error::InvalidWrite { file, .. } => Some(file.clone()),
                _ => None,
            };
            ("format", file, None, None, None)
        }
        ConvertError::Io { file, .. } => ("io", path(file), None, None, None),
        ConvertError::UnsupportedTensor { file, tensor, .. } => (
            "unsupported-tensor",
            path(file),
            Some(tensor.clone()),
            None,
            None,
        ),
        ConvertError::Unsupported { file, .. } => ("unsupported", path(file), None, None, None),
        ConvertError::Npy { file, member, .. } => ("npy", path(file), None, member.clone(), None),
        ConvertError::DuplicateName { file, name } => {
            ("duplicate-name", path(file), Some(name.clone()), None, None)
        }
        ConvertError::DestinationExists { path: p } => {
            ("destination-exists", path(p), None, None, None)
        }
        ConvertError::Folder { folder, .. } => ("folder", path(folder), None, None, None),
        ConvertError::Verification { file, tensor, .. } => {
            ("verification", path(file), Some(tensor.clone()), None, None)
        }
        ConvertError::DestinationNotOurs { path: p, .. } => {
            ("destination-not-ours", path(p), None, None, None)
        }
        ConvertError::UnsafeOutput { file, .. } => ("unsafe-output", path(file), None, None, None),
        ConvertError::UnsafeTensorName { file, tensor, .. } => (
            "unsafe-tensor-name",
            path(file),
            Some(tensor.clone()),
            None,
            None,
        ),
        ConvertError::ZipAnomaly { file, member, .. } => {
            ("zip-anomaly", path(file), None, member.clone(), None)
        }
        _ => ("other", None, None, None, None),
    }
}

fn to_py(py: Python<'_>, e: ConvertError) -> PyErr {
    let (kind, file, tensor, member, offset) = fields(&e);
    let err = ConversionError::new_err(format!("Error while converting: {e}"));
    let value = err.value(py);
    let _ = value.setattr("kind", kind);
    let _ = value.setattr("member", member);
    let _ = value.setattr("offset", offset);
    errors::with_fields(py, err, file.as_deref(), tensor.as_deref())
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
        .map_err(|e| to_py(py, e))?;
    crate::pyjson::serialize_to_py(py, &summary)
}
