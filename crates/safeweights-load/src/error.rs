//! Errors of the loader: each names the file and, where one is involved, the tensor.
//!
//! A variant with a `#[source]` does not repeat it in its own message; show
//! [`Diagnostic::message`], which joins the chain.

use std::io;
use std::path::Path;

use safeweights::{Diagnostic, ErrorClass};

/// Everything that can go wrong planning or running a load.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The format core refused something (unknown tensor, bad slice, bad header).
    #[error(transparent)]
    Format(#[from] safeweights::Error),
    /// A plan entry is invalid.
    #[error("{file}: tensor {tensor:?}: {reason}")]
    Plan {
        /// The file.
        file: String,
        /// The tensor.
        tensor: String,
        /// What is wrong.
        reason: String,
    },
    /// A file could not be opened or inspected.
    #[error("{file}")]
    Open {
        /// The file.
        file: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A read failed. The tensor is the one holding the first byte not read;
    /// it and every tensor not reported complete before the error hold
    /// unspecified bytes.
    #[error("{file}: reading tensor {tensor:?} at offset {offset}")]
    Read {
        /// The file.
        file: String,
        /// The tensor.
        tensor: String,
        /// Absolute file offset of the failed read.
        offset: u64,
        /// The OS error (`UnexpectedEof` for a file shorter than planned).
        #[source]
        source: io::Error,
    },
    /// A destination does not fit the plan.
    #[error("destination for tensor {tensor:?}: {reason}")]
    Destination {
        /// The tensor.
        tensor: String,
        /// What is wrong.
        reason: String,
    },
    /// Memory could not be allocated.
    #[error("cannot allocate {bytes} bytes of {what}")]
    Alloc {
        /// How much.
        bytes: u64,
        /// What for.
        what: &'static str,
    },
    /// The CUDA backend cannot be used on this machine.
    #[error("CUDA is unavailable: {0}")]
    CudaUnavailable(String),
    /// A CUDA call failed.
    #[error("{}{call} failed: {message} (cudaError {code})", context(file, tensor))]
    Cuda {
        /// The file being loaded ("" outside a load).
        file: String,
        /// The tensor being copied ("" when none).
        tensor: String,
        /// The CUDA function.
        call: &'static str,
        /// The `cudaError_t`.
        code: i32,
        /// `cudaGetErrorString`.
        message: String,
    },
    /// A loaded tensor differs from the file's bytes read again (a check
    /// after the load, e.g. `safeweights load --verify`).
    #[error("{file}: tensor {tensor:?}: loaded bytes differ from the file's, first at byte {offset} of the tensor")]
    Mismatch {
        /// The file.
        file: String,
        /// The tensor.
        tensor: String,
        /// The first differing byte, counted from the tensor's start.
        offset: u64,
    },
    /// A worker thread panicked.
    #[error("a loader thread panicked: {0}")]
    Panic(String),
}

impl Diagnostic for LoadError {
    /// The core's kind for [`LoadError::Format`]; the loader's own otherwise.
    fn kind(&self) -> &'static str {
        match self {
            LoadError::Format(e) => e.kind(),
            LoadError::Plan { .. } => "plan",
            LoadError::Open { .. } => "open",
            LoadError::Read { .. } => "read",
            LoadError::Destination { .. } => "destination",
            LoadError::Alloc { .. } => "alloc",
            LoadError::CudaUnavailable(_) => "cuda_unavailable",
            LoadError::Cuda { .. } => "cuda",
            LoadError::Mismatch { .. } => "mismatch",
            LoadError::Panic(_) => "panic",
        }
    }

    fn class(&self) -> ErrorClass {
        match self {
            LoadError::Format(e) => e.class(),
            LoadError::Plan { .. } | LoadError::Destination { .. } => ErrorClass::Usage,
            LoadError::Open { .. }
            | LoadError::Read { .. }
            | LoadError::Cuda { .. }
            | LoadError::Mismatch { .. }
            | LoadError::Panic(_) => ErrorClass::Io,
            LoadError::Alloc { .. } => ErrorClass::Limit,
            LoadError::CudaUnavailable(_) => ErrorClass::Unsupported,
        }
    }

    fn file(&self) -> Option<&Path> {
        match self {
            LoadError::Format(e) => e.file(),
            LoadError::Plan { file, .. }
            | LoadError::Open { file, .. }
            | LoadError::Read { file, .. }
            | LoadError::Mismatch { file, .. } => Some(Path::new(file)),
            LoadError::Cuda { file, .. } => (!file.is_empty()).then(|| Path::new(file)),
            LoadError::Destination { .. }
            | LoadError::Alloc { .. }
            | LoadError::CudaUnavailable(_)
            | LoadError::Panic(_) => None,
        }
    }

    fn tensor(&self) -> Option<&str> {
        match self {
            LoadError::Format(e) => e.tensor(),
            LoadError::Plan { tensor, .. }
            | LoadError::Read { tensor, .. }
            | LoadError::Mismatch { tensor, .. } => Some(tensor),
            LoadError::Destination { tensor, .. } | LoadError::Cuda { tensor, .. } => {
                (!tensor.is_empty()).then_some(tensor.as_str())
            }
            LoadError::Open { .. }
            | LoadError::Alloc { .. }
            | LoadError::CudaUnavailable(_)
            | LoadError::Panic(_) => None,
        }
    }

    /// The file offset of a failed read. For a mismatch the offset counts
    /// from the tensor's start and is among the details instead.
    fn offset(&self) -> Option<u64> {
        match self {
            LoadError::Format(e) => e.offset(),
            LoadError::Read { offset, .. } => Some(*offset),
            LoadError::Plan { .. }
            | LoadError::Open { .. }
            | LoadError::Destination { .. }
            | LoadError::Alloc { .. }
            | LoadError::CudaUnavailable(_)
            | LoadError::Cuda { .. }
            | LoadError::Mismatch { .. }
            | LoadError::Panic(_) => None,
        }
    }

    fn details(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut map = serde_json::Map::new();
        match self {
            LoadError::Format(e) => return e.details(),
            LoadError::Open { source, .. } | LoadError::Read { source, .. } => {
                map.insert("io_kind".into(), format!("{:?}", source.kind()).into());
            }
            LoadError::Alloc { bytes, what } => {
                map.insert("bytes".into(), (*bytes).into());
                map.insert("what".into(), (*what).into());
            }
            LoadError::Cuda { call, code, .. } => {
                map.insert("call".into(), (*call).into());
                map.insert("code".into(), (*code).into());
            }
            LoadError::Mismatch { offset, .. } => {
                map.insert("tensor_offset".into(), (*offset).into());
            }
            LoadError::Plan { .. }
            | LoadError::Destination { .. }
            | LoadError::CudaUnavailable(_)
            | LoadError::Panic(_) => {}
        }
        map
    }
}

fn context(file: &str, tensor: &str) -> String {
    match (file.is_empty(), tensor.is_empty()) {
        (true, true) => String::new(),
        (false, true) => format!("{file}: "),
        (true, false) => format!("tensor {tensor:?}: "),
        (false, false) => format!("{file}: tensor {tensor:?}: "),
    }
}

#[cfg(test)]
mod tests;
