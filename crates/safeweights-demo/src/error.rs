//! The crate's error type.

use std::io;
use std::path::{Path, PathBuf};

use safeweights::{Diagnostic, ErrorClass};

/// What can go wrong while building the tour's files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// Reading or writing a file (or creating a folder) failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The safetensors core refused or failed.
    #[error(transparent)]
    Format(#[from] safeweights::Error),
    /// Converting the sample to a PyTorch checkpoint failed.
    #[error(transparent)]
    Convert(#[from] safeweights_convert::ConvertError),
    /// A corruption was asked to rewrite bytes that are not a safetensors
    /// file with at least two tensors.
    #[error("cannot corrupt the sample: {reason}; give the bytes of a safetensors file with at least two tensors")]
    NotASample {
        /// What is missing.
        reason: &'static str,
    },
}

impl DemoError {
    /// An I/O error about `path`.
    pub fn io(path: impl AsRef<Path>, source: io::Error) -> Self {
        DemoError::Io {
            path: path.as_ref().to_owned(),
            source,
        }
    }
}

impl Diagnostic for DemoError {
    fn kind(&self) -> &'static str {
        match self {
            DemoError::Io { .. } => "io",
            DemoError::Format(_) => "format",
            DemoError::Convert(_) => "convert",
            DemoError::NotASample { .. } => "not_a_sample",
        }
    }

    fn class(&self) -> ErrorClass {
        match self {
            DemoError::Io { .. } => ErrorClass::Io,
            DemoError::Format(_) | DemoError::Convert(_) | DemoError::NotASample { .. } => {
                ErrorClass::InvalidInput
            }
        }
    }

    fn file(&self) -> Option<&Path> {
        match self {
            DemoError::Io { path, .. } => Some(path),
            _ => None,
        }
    }
}

/// `Result` with [`DemoError`].
pub type Result<T, E = DemoError> = std::result::Result<T, E>;
