//! Errors. Every variant names the file (and the tensor where there is one).
//!
//! A variant with a `#[source]` does not repeat it in its own message; show
//! [`Diagnostic::message`], which joins the chain.

use std::path::{Path, PathBuf};

use safeweights::{Diagnostic, ErrorClass};

/// Why a conversion failed. When this is returned, nothing was left at the
/// destination: partial outputs are removed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConvertError {
    /// Reading a pickle checkpoint failed or was refused (forbidden global,
    /// TorchScript, out-of-bounds view, limits, malformed zip ...).
    #[error(transparent)]
    Pickle(#[from] safeweights_pickle::Error),
    /// Reading or writing safetensors failed.
    #[error(transparent)]
    Format(#[from] safeweights::Error),
    /// An I/O error on a named file.
    #[error("{file}: I/O error")]
    Io {
        /// The file.
        file: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The checkpoint holds a kind of tensor that has no safetensors (or
    /// target format) equivalent: complex128, quantized, sparse, ...
    #[error("{file}: tensor {tensor:?}: {reason}")]
    UnsupportedTensor {
        /// The file.
        file: PathBuf,
        /// The tensor's dotted name.
        tensor: String,
        /// Why.
        reason: String,
    },
    /// The input is of a kind this crate does not convert, or the pair of
    /// formats is not supported.
    #[error("{file}: {reason}")]
    Unsupported {
        /// The file.
        file: PathBuf,
        /// Why.
        reason: String,
    },
    /// A `.npy` / `.npz` file is malformed or holds what cannot be converted
    /// (object arrays, structured dtypes, ...).
    #[error("{file}: invalid NumPy data{}: {reason}", member.as_ref().map(|m| format!(" (member {m})")).unwrap_or_default())]
    Npy {
        /// The file.
        file: PathBuf,
        /// The `.npz` member, if any.
        member: Option<String>,
        /// Why.
        reason: String,
    },
    /// Two tensors flatten to the same name.
    #[error("{file}: two tensors are both named {name:?}")]
    DuplicateName {
        /// The file.
        file: PathBuf,
        /// The name.
        name: String,
    },
    /// The destination exists and overwriting was not asked for.
    #[error("{path}: already exists (use the overwrite option to replace it)")]
    DestinationExists {
        /// The destination.
        path: PathBuf,
    },
    /// An existing destination folder holds files a conversion does not
    /// write; overwriting would delete them, so it is refused.
    #[error("{path}: holds files this conversion did not write ({files}); refusing to replace it: choose another destination or remove them")]
    DestinationNotOurs {
        /// The destination.
        path: PathBuf,
        /// The foreign files (relative paths, the first few).
        files: String,
    },
    /// The finished output holds something the scanner refuses (a pickle, a
    /// NumPy object array, a finding at medium or above). Nothing was left
    /// at the destination.
    #[error("{file}: {reason}; the output was deleted")]
    UnsafeOutput {
        /// The file in the (temporary) output.
        file: PathBuf,
        /// The scanner's verdict.
        reason: String,
    },
    /// A tensor name that would become an unsafe archive member path
    /// (absolute, a drive letter, or climbing out with `..`).
    #[error("{file}: tensor {tensor:?} cannot be written: {reason}")]
    UnsafeTensorName {
        /// The source file.
        file: PathBuf,
        /// The tensor name.
        tensor: String,
        /// Why.
        reason: String,
    },
    /// The source archive has anomalies the scanner reports at medium or
    /// above (duplicate or case-twin members, overlapping members ...):
    /// readers may disagree on its content, so it is not converted.
    #[error("{file}: {what}{}; the scanner distrusts this archive, so it is not converted (pass allow_zip_anomalies / --allow-zip-anomalies to convert it anyway)", member.as_ref().map(|m| format!(" (member {m})")).unwrap_or_default())]
    ZipAnomaly {
        /// The source file.
        file: PathBuf,
        /// The member concerned, if any.
        member: Option<String>,
        /// The scanner's rule id, e.g. `zip.duplicate-name`.
        rule: String,
        /// What the scanner found.
        what: String,
    },
    /// A Hugging Face model folder is inconsistent.
    #[error("{folder}: {reason}")]
    Folder {
        /// The folder.
        folder: PathBuf,
        /// Why.
        reason: String,
    },
    /// Reading the written output back did not give the source's tensors bit
    /// for bit. The output was deleted.
    #[error("{file}: verification failed for tensor {tensor:?}: {reason}; the output was deleted")]
    Verification {
        /// The written file.
        file: PathBuf,
        /// The tensor.
        tensor: String,
        /// What differed.
        reason: String,
    },
}

impl Diagnostic for ConvertError {
    /// The core's kind for [`ConvertError::Format`], the pickle reader's for
    /// [`ConvertError::Pickle`], the converter's own otherwise.
    fn kind(&self) -> &'static str {
        match self {
            ConvertError::Pickle(e) => e.kind(),
            ConvertError::Format(e) => e.kind(),
            ConvertError::Io { .. } => "io",
            ConvertError::UnsupportedTensor { .. } => "unsupported_tensor",
            ConvertError::Unsupported { .. } => "unsupported",
            ConvertError::Npy { .. } => "npy",
            ConvertError::DuplicateName { .. } => "duplicate_name",
            ConvertError::DestinationExists { .. } => "destination_exists",
            ConvertError::Folder { .. } => "folder",
            ConvertError::Verification { .. } => "verification",
            ConvertError::DestinationNotOurs { .. } => "destination_not_ours",
            ConvertError::UnsafeOutput { .. } => "unsafe_output",
            ConvertError::UnsafeTensorName { .. } => "unsafe_tensor_name",
            ConvertError::ZipAnomaly { .. } => "zip_anomaly",
        }
    }

    fn class(&self) -> ErrorClass {
        match self {
            ConvertError::Pickle(e) => e.class(),
            ConvertError::Format(e) => e.class(),
            ConvertError::Io { .. } | ConvertError::Verification { .. } => ErrorClass::Io,
            ConvertError::UnsupportedTensor { .. } | ConvertError::Unsupported { .. } => {
                ErrorClass::Unsupported
            }
            ConvertError::Npy { .. }
            | ConvertError::DuplicateName { .. }
            | ConvertError::Folder { .. } => ErrorClass::InvalidInput,
            ConvertError::DestinationExists { .. } | ConvertError::DestinationNotOurs { .. } => {
                ErrorClass::Usage
            }
            ConvertError::UnsafeOutput { .. }
            | ConvertError::UnsafeTensorName { .. }
            | ConvertError::ZipAnomaly { .. } => ErrorClass::InvalidInput,
        }
    }

    fn file(&self) -> Option<&Path> {
        match self {
            ConvertError::Pickle(e) => e.file(),
            ConvertError::Format(e) => e.file(),
            ConvertError::Io { file, .. }
            | ConvertError::UnsupportedTensor { file, .. }
            | ConvertError::Unsupported { file, .. }
            | ConvertError::Npy { file, .. }
            | ConvertError::DuplicateName { file, .. }
            | ConvertError::Verification { file, .. }
            | ConvertError::UnsafeOutput { file, .. }
            | ConvertError::UnsafeTensorName { file, .. }
            | ConvertError::ZipAnomaly { file, .. } => Some(file),
            ConvertError::DestinationExists { path }
            | ConvertError::DestinationNotOurs { path, .. } => Some(path),
            ConvertError::Folder { folder, .. } => Some(folder),
        }
    }

    fn tensor(&self) -> Option<&str> {
        match self {
            ConvertError::Pickle(e) => e.tensor(),
            ConvertError::Format(e) => e.tensor(),
            ConvertError::UnsupportedTensor { tensor, .. }
            | ConvertError::Verification { tensor, .. }
            | ConvertError::UnsafeTensorName { tensor, .. } => Some(tensor),
            ConvertError::DuplicateName { name, .. } => Some(name),
            ConvertError::Io { .. }
            | ConvertError::Unsupported { .. }
            | ConvertError::Npy { .. }
            | ConvertError::DestinationExists { .. }
            | ConvertError::DestinationNotOurs { .. }
            | ConvertError::UnsafeOutput { .. }
            | ConvertError::ZipAnomaly { .. }
            | ConvertError::Folder { .. } => None,
        }
    }

    fn offset(&self) -> Option<u64> {
        match self {
            ConvertError::Pickle(e) => e.offset(),
            ConvertError::Format(e) => e.offset(),
            ConvertError::Io { .. }
            | ConvertError::UnsupportedTensor { .. }
            | ConvertError::Unsupported { .. }
            | ConvertError::Npy { .. }
            | ConvertError::DuplicateName { .. }
            | ConvertError::DestinationExists { .. }
            | ConvertError::Folder { .. }
            | ConvertError::Verification { .. }
            | ConvertError::DestinationNotOurs { .. }
            | ConvertError::UnsafeOutput { .. }
            | ConvertError::UnsafeTensorName { .. }
            | ConvertError::ZipAnomaly { .. } => None,
        }
    }

    fn details(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut map = serde_json::Map::new();
        match self {
            ConvertError::Format(e) => return e.details(),
            ConvertError::Pickle(e) => map = e.details(),
            ConvertError::Io { source, .. } => {
                map.insert("io_kind".into(), format!("{:?}", source.kind()).into());
            }
            ConvertError::UnsupportedTensor { .. }
            | ConvertError::Npy { .. }
            | ConvertError::Unsupported { .. }
            | ConvertError::DuplicateName { .. }
            | ConvertError::DestinationExists { .. }
            | ConvertError::Folder { .. }
            | ConvertError::Verification { .. }
            | ConvertError::UnsafeOutput { .. }
            | ConvertError::UnsafeTensorName { .. } => {}
            ConvertError::DestinationNotOurs { files, .. } => {
                map.insert("foreign_files".into(), files.clone().into());
            }
            ConvertError::ZipAnomaly { rule, .. } => {
                map.insert("rule".into(), rule.clone().into());
            }
        }
        if let Some(m) = self.member() {
            map.insert("member".into(), m.into());
        }
        map
    }
}

impl ConvertError {
    /// The archive member (`archive/data.pkl`) or `.npz` member the error is
    /// about, when there is one.
    pub fn member(&self) -> Option<&str> {
        match self {
            ConvertError::Pickle(safeweights_pickle::Error::Pickle { member, .. })
            | ConvertError::Npy { member, .. }
            | ConvertError::ZipAnomaly { member, .. } => member.as_deref(),
            _ => None,
        }
    }
}

/// Result alias.
pub type Result<T, E = ConvertError> = std::result::Result<T, E>;

pub(crate) fn io_err(file: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ConvertError {
    let file = file.into();
    move |source| ConvertError::Io { file, source }
}

#[cfg(test)]
mod tests;
