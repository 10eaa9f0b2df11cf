//! Exceptions: the core's typed errors as Python exception classes, with
//! messages that begin as the reference package's do and then say exactly
//! what is wrong.
//!
//! Every exception raised for a library error carries its facts as typed
//! attributes, set on the instance from [`Diagnostic`]: `kind` (the stable
//! id listed in `docs/errors.md`), `file`, `tensor` and `offset`. The
//! classes declare them too (as `None`), so an exception built by hand has
//! them.

use pyo3::create_exception;
use pyo3::exceptions::{
    PyException, PyFileNotFoundError, PyIndexError, PyIsADirectoryError, PyPermissionError,
    PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::PyType;
use safeweights::{Diagnostic, Error, SliceError};
use safeweights_convert::ConvertError;
use safeweights_load::LoadError;

create_exception!(
    _safeweights,
    SafetensorError,
    PyException,
    "Custom Python Exception for Safetensor errors."
);
create_exception!(
    _safeweights,
    SafetensorHeaderError,
    SafetensorError,
    "The header of a safetensors file or buffer breaks a rule of the format."
);
create_exception!(
    _safeweights,
    TensorNotFoundError,
    SafetensorError,
    "The file has no tensor of the name asked for."
);
create_exception!(
    _safeweights,
    SafetensorIOError,
    SafetensorError,
    "Reading or writing the bytes failed."
);

create_exception!(
    _safeweights,
    ConversionError,
    SafetensorError,
    "A conversion failed or was refused; nothing was left at the destination."
);

/// The attributes every exception of this package has.
const FIELDS: [&str; 4] = ["kind", "file", "tensor", "offset"];

/// Declares the attributes on the base class (`None` until an error sets
/// them) and `member` on [`ConversionError`]. Called once at import.
pub fn declare_fields(py: Python<'_>) -> PyResult<()> {
    let base: Bound<'_, PyType> = py.get_type::<SafetensorError>();
    for name in FIELDS {
        base.setattr(name, py.None())?;
    }
    py.get_type::<ConversionError>()
        .setattr("member", py.None())?;
    Ok(())
}

/// What was being done when the error happened: it picks the message prefix
/// the reference uses.
#[derive(Clone, Copy)]
pub enum Context {
    /// Opening a file (`safe_open`).
    Open,
    /// Parsing an in-memory buffer (`deserialize`, `load`).
    Deserialize,
    /// Writing (`serialize`, `serialize_file`).
    Serialize,
    /// Reading a tensor or slice of an open file.
    Read,
}

/// Sets `kind`, `file`, `tensor` and `offset` on a fresh exception from the
/// error's accessors.
pub fn with_diagnostic(py: Python<'_>, err: PyErr, d: &dyn Diagnostic) -> PyErr {
    let value = err.value(py);
    // Setting attributes on a fresh exception instance cannot fail in practice;
    // if it does, the error is still raised, only without its fields.
    let _ = value.setattr("kind", d.kind());
    let _ = value.setattr("file", d.file().map(|f| f.display().to_string()));
    let _ = value.setattr("tensor", d.tensor());
    let _ = value.setattr("offset", d.offset());
    err
}

/// Converts a core error into the Python exception to raise.
pub fn to_py(py: Python<'_>, err: Error, ctx: Context) -> PyErr {
    let prefix = match ctx {
        Context::Open => "Error while deserializing header",
        Context::Deserialize | Context::Read => "Error while deserializing",
        Context::Serialize => "Error while serializing",
    };
    let message = err.message();
    let e = match &err {
        Error::Header { source, .. } => SafetensorHeaderError::new_err(format!(
            "{prefix}: {}: {message}",
            source.reference_kind()
        )),
        Error::TensorNotFound { tensor, .. } => {
            TensorNotFoundError::new_err(format!("File does not contain tensor {tensor}"))
        }
        Error::Slice { source, .. } => match source {
            SliceError::TooManyIndices { ndim, .. } => {
                PyIndexError::new_err(format!("too many indices for tensor of dimension {ndim}"))
            }
            SliceError::IndexOutOfRange { index, dim, size } => PyIndexError::new_err(format!(
                "index {index} is out of bounds for dimension {dim} with size {size}"
            )),
            SliceError::ZeroStep { .. } => PyValueError::new_err("slice step cannot be zero"),
            _ => SafetensorError::new_err(format!("{prefix}: {message}")),
        },
        Error::Io { file, source } => match (ctx, source.kind()) {
            (Context::Open, std::io::ErrorKind::NotFound) => {
                PyFileNotFoundError::new_err(format!("No such file or directory: {file}"))
            }
            (Context::Open, std::io::ErrorKind::PermissionDenied) => {
                PyPermissionError::new_err(format!("Permission denied: {file}"))
            }
            // The reference raises an OSError here too (callers catch it).
            (Context::Open, std::io::ErrorKind::IsADirectory) => {
                PyIsADirectoryError::new_err(format!("Is a directory: {file}"))
            }
            _ => SafetensorIOError::new_err(format!("{prefix}: I/O error: {message}")),
        },
        _ => SafetensorError::new_err(format!("{prefix}: {message}")),
    };
    with_diagnostic(py, e, &err)
}

/// A `SafetensorError` with a plain message.
pub fn plain(msg: impl Into<String>) -> PyErr {
    SafetensorError::new_err(msg.into())
}

/// Converts a loader error into the Python exception to raise.
pub fn load_to_py(py: Python<'_>, err: LoadError) -> PyErr {
    let err = match err {
        LoadError::Format(e) => return to_py(py, e, Context::Open),
        other => other,
    };
    let message = err.message();
    let e = match &err {
        LoadError::Open { file, source } => match source.kind() {
            std::io::ErrorKind::NotFound => {
                PyFileNotFoundError::new_err(format!("No such file or directory: {file}"))
            }
            std::io::ErrorKind::PermissionDenied => {
                PyPermissionError::new_err(format!("Permission denied: {file}"))
            }
            _ => SafetensorIOError::new_err(format!("Error while loading: {message}")),
        },
        LoadError::Read { .. } | LoadError::Cuda { .. } => {
            SafetensorIOError::new_err(format!("Error while loading: {message}"))
        }
        _ => SafetensorError::new_err(format!("Error while loading: {message}")),
    };
    with_diagnostic(py, e, &err)
}

/// Converts a conversion error into the `ConversionError` to raise, with
/// `member` (the archive or `.npz` member) besides the common attributes.
pub fn convert_to_py(py: Python<'_>, err: ConvertError) -> PyErr {
    let e = ConversionError::new_err(format!("Error while converting: {}", err.message()));
    let _ = e.value(py).setattr("member", err.member());
    with_diagnostic(py, e, &err)
}
