//! Exceptions: the core's typed errors as Python exception classes, with
//! messages that begin as the reference package's do and then say exactly
//! what is wrong.

use pyo3::create_exception;
use pyo3::exceptions::{
    PyException, PyFileNotFoundError, PyIndexError, PyPermissionError, PyValueError,
};
use pyo3::prelude::*;
use safeweights::{Error, HeaderError, SliceError};

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

/// The reference's short name for a header problem.
fn header_kind(e: &HeaderError) -> &'static str {
    match e {
        HeaderError::HeaderTooSmall { .. } => "header too small",
        HeaderError::HeaderTooLarge { .. } => "header too large",
        HeaderError::HeaderPastEnd { .. } => "invalid header length",
        HeaderError::InvalidUtf8 { .. } => "invalid UTF-8 in header",
        HeaderError::InvalidJson { .. }
        | HeaderError::NotAnObject { .. }
        | HeaderError::DuplicateKey { .. }
        | HeaderError::TensorNotAnObject { .. }
        | HeaderError::UnknownDtype { .. }
        | HeaderError::MissingField { .. }
        | HeaderError::MalformedField { .. }
        | HeaderError::InvalidMetadata { .. }
        | HeaderError::ReservedName
        | HeaderError::ControlCharacter { .. }
        | HeaderError::MetadataControlCharacter { .. } => "invalid JSON in header",
        HeaderError::InvertedOffsets { .. } | HeaderError::Gap { .. } => "invalid offset",
        HeaderError::Overlap { .. } => "invalid offset",
        HeaderError::Overflow { .. } => {
            "overflow computing buffer size from shape and/or element type"
        }
        HeaderError::NotByteAligned { .. } | HeaderError::SizeMismatch { .. } => {
            "invalid shape, data type, or offset for tensor"
        }
        HeaderError::TrailingBytes { .. } | HeaderError::Truncated { .. } => {
            "incomplete metadata, file not fully covered"
        }
        _ => "invalid header",
    }
}

/// The tensor a header problem is about, if any.
fn header_tensor(e: &HeaderError) -> Option<&str> {
    match e {
        HeaderError::TensorNotAnObject { tensor, .. }
        | HeaderError::UnknownDtype { tensor, .. }
        | HeaderError::MissingField { tensor, .. }
        | HeaderError::MalformedField { tensor, .. }
        | HeaderError::InvertedOffsets { tensor, .. }
        | HeaderError::Gap { tensor, .. }
        | HeaderError::Overlap { tensor, .. }
        | HeaderError::Overflow { tensor, .. }
        | HeaderError::NotByteAligned { tensor, .. }
        | HeaderError::SizeMismatch { tensor, .. }
        | HeaderError::ControlCharacter { tensor, .. } => Some(tensor),
        _ => None,
    }
}

/// Sets `.file` and `.tensor` on a fresh exception.
pub fn with_fields(py: Python<'_>, err: PyErr, file: Option<&str>, tensor: Option<&str>) -> PyErr {
    let value = err.value(py);
    // Setting attributes on a fresh exception instance cannot fail in practice;
    // if it does, the error is still raised, only without its fields.
    let _ = value.setattr("file", file);
    let _ = value.setattr("tensor", tensor);
    err
}

/// Converts a core error into the Python exception to raise.
pub fn to_py(py: Python<'_>, err: Error, ctx: Context) -> PyErr {
    let prefix = match ctx {
        Context::Open => "Error while deserializing header",
        Context::Deserialize | Context::Read => "Error while deserializing",
        Context::Serialize => "Error while serializing",
    };
    match &err {
        Error::Header { file, source } => {
            let msg = format!("{prefix}: {}: {err}", header_kind(source));
            let e = SafetensorHeaderError::new_err(msg);
            with_fields(py, e, Some(file), header_tensor(source))
        }
        Error::TensorNotFound { file, tensor } => {
            let e = TensorNotFoundError::new_err(format!("File does not contain tensor {tensor}"));
            with_fields(py, e, Some(file), Some(tensor))
        }
        Error::Slice {
            file,
            tensor,
            source,
        } => {
            let e = match source {
                SliceError::TooManyIndices { ndim, .. } => PyIndexError::new_err(format!(
                    "too many indices for tensor of dimension {ndim}"
                )),
                SliceError::IndexOutOfRange { index, dim, size } => PyIndexError::new_err(format!(
                    "index {index} is out of bounds for dimension {dim} with size {size}"
                )),
                SliceError::ZeroStep { .. } => PyValueError::new_err("slice step cannot be zero"),
                _ => SafetensorError::new_err(format!("{prefix}: {err}")),
            };
            with_fields(py, e, Some(file), Some(tensor))
        }
        Error::Io { file, source } => {
            let e = match (ctx, source.kind()) {
                (Context::Open, std::io::ErrorKind::NotFound) => {
                    PyFileNotFoundError::new_err(format!("No such file or directory: {file}"))
                }
                (Context::Open, std::io::ErrorKind::PermissionDenied) => {
                    PyPermissionError::new_err(format!("Permission denied: {file}"))
                }
                _ => SafetensorIOError::new_err(format!("{prefix}: I/O error: {err}")),
            };
            with_fields(py, e, Some(file), None)
        }
        Error::InvalidWrite { file, .. } => {
            let e = SafetensorError::new_err(format!("{prefix}: {err}"));
            with_fields(py, e, Some(file), None)
        }
        _ => SafetensorError::new_err(format!("{prefix}: {err}")),
    }
}

/// A `SafetensorError` with a plain message.
pub fn plain(msg: impl Into<String>) -> PyErr {
    SafetensorError::new_err(msg.into())
}

/// Converts a loader error into the Python exception to raise.
pub fn load_to_py(py: Python<'_>, err: safeweights_load::LoadError) -> PyErr {
    use safeweights_load::LoadError as L;
    match err {
        L::Format(e) => to_py(py, e, Context::Open),
        L::Open { file, source } => {
            let e = match source.kind() {
                std::io::ErrorKind::NotFound => {
                    PyFileNotFoundError::new_err(format!("No such file or directory: {file}"))
                }
                std::io::ErrorKind::PermissionDenied => {
                    PyPermissionError::new_err(format!("Permission denied: {file}"))
                }
                _ => SafetensorIOError::new_err(format!("Error while loading: {file}: {source}")),
            };
            with_fields(py, e, Some(&file), None)
        }
        ref e @ L::Read {
            ref file,
            ref tensor,
            ..
        } => {
            let msg = format!("Error while loading: {e}");
            with_fields(
                py,
                SafetensorIOError::new_err(msg),
                Some(file),
                Some(tensor),
            )
        }
        ref e @ L::Plan {
            ref file,
            ref tensor,
            ..
        } => {
            let msg = format!("Error while loading: {e}");
            with_fields(py, SafetensorError::new_err(msg), Some(file), Some(tensor))
        }
        ref e @ L::Destination { ref tensor, .. } => {
            let msg = format!("Error while loading: {e}");
            let tensor = (!tensor.is_empty()).then_some(tensor.as_str());
            with_fields(py, SafetensorError::new_err(msg), None, tensor)
        }
        ref e @ L::Cuda {
            ref file,
            ref tensor,
            ..
        } => {
            let msg = format!("Error while loading: {e}");
            let file = (!file.is_empty()).then_some(file.as_str());
            let tensor = (!tensor.is_empty()).then_some(tensor.as_str());
            with_fields(py, SafetensorIOError::new_err(msg), file, tensor)
        }
        e => SafetensorError::new_err(format!("Error while loading: {e}")),
    }
}
