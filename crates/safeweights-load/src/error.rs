//! Errors of the loader: each names the file and, where one is involved, the tensor.

use std::io;

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
    #[error("{file}: {source}")]
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
    #[error("{file}: reading tensor {tensor:?} at offset {offset}: {source}")]
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

fn context(file: &str, tensor: &str) -> String {
    match (file.is_empty(), tensor.is_empty()) {
        (true, true) => String::new(),
        (false, true) => format!("{file}: "),
        (true, false) => format!("tensor {tensor:?}: "),
        (false, false) => format!("{file}: tensor {tensor:?}: "),
    }
}
