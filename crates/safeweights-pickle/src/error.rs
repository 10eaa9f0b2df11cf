//! Error types.
//!
//! Every pickle error carries the byte offset (from the start of the pickle
//! stream) of the opcode that broke a rule; the higher-level [`Error`] adds the
//! file (and archive member) where it is known, and wraps the container
//! errors of `safeweights-archive` with the file name.
//!
//! Every error implements [`Diagnostic`]; container errors delegate to the
//! archive error they wrap.

use std::path::{Path, PathBuf};

use safeweights::{Diagnostic, ErrorClass};
use safeweights_archive::{TarError, TarErrorKind, ZipError, ZipErrorKind};

/// What rule a pickle stream broke.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PickleErrorKind {
    /// The stream ended in the middle of an opcode or its argument.
    #[error("unexpected end of data while reading {what}")]
    UnexpectedEof {
        /// What was being read.
        what: &'static str,
    },
    /// The stream ended before a STOP opcode.
    #[error("pickle ended without a STOP opcode")]
    MissingStop,
    /// A byte that is not a pickle opcode.
    #[error("unknown opcode byte 0x{0:02x}")]
    UnknownOpcode(u8),
    /// PROTO announced a protocol newer than 5.
    #[error("unsupported pickle protocol {0} (highest known is 5)")]
    UnsupportedProtocol(u8),
    /// An opcode argument is malformed.
    #[error("invalid argument for {opcode}: {reason}")]
    InvalidArgument {
        /// Opcode name.
        opcode: &'static str,
        /// Why it is invalid.
        reason: String,
    },
    /// An opcode needed more stack items than present (above the last MARK).
    #[error("{opcode}: stack underflow")]
    StackUnderflow {
        /// Opcode name.
        opcode: &'static str,
    },
    /// An opcode needed a MARK and none was on the stack.
    #[error("{opcode}: no MARK on the stack")]
    MissingMark {
        /// Opcode name.
        opcode: &'static str,
    },
    /// A memo GET referred to an index never PUT.
    #[error("memo key {0} not found")]
    MemoKeyMissing(u64),
    /// A GLOBAL / STACK_GLOBAL / INST named a callable or object outside the allow-list.
    #[error("forbidden global {module}.{name}: only torch tensor/storage rebuild functions, torch dtypes, collections.OrderedDict, torch.Size and numpy array reconstruction are allowed")]
    ForbiddenGlobal {
        /// Module part.
        module: String,
        /// Name part.
        name: String,
    },
    /// An allowed callable was invoked with arguments that are not data-only or not as torch/numpy write them.
    #[error("call to {callable} rejected: {reason}")]
    BadCall {
        /// The callable (module.name).
        callable: String,
        /// Why the call was rejected.
        reason: String,
    },
    /// An opcode got an operand of the wrong type.
    #[error("{opcode}: expected {expected}, found {found}")]
    TypeMismatch {
        /// Opcode name.
        opcode: &'static str,
        /// Expected type.
        expected: &'static str,
        /// Type found.
        found: String,
    },
    /// A dict key or set element is unhashable (list, dict, set).
    #[error("{opcode}: unhashable {found} used as a dict key or set element")]
    Unhashable {
        /// Opcode name.
        opcode: &'static str,
        /// Type found.
        found: String,
    },
    /// A configured resource limit was exceeded.
    #[error("limit exceeded: {limit} (maximum {max})")]
    LimitExceeded {
        /// Which limit.
        limit: &'static str,
        /// The configured maximum.
        max: u64,
    },
    /// An opcode that is never valid in a data-only checkpoint (extension registry, out-of-band buffers, ...).
    #[error("{opcode} is not supported: {reason}")]
    Unsupported {
        /// Opcode name.
        opcode: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// A persistent id was not of a recognised form.
    #[error("invalid persistent id: {0}")]
    BadPersistentId(String),
}

/// An error decoding or evaluating a pickle, with the byte offset of the
/// opcode at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("pickle error at byte {offset}: {kind}")]
#[non_exhaustive]
pub struct PickleError {
    /// Offset of the failing opcode from the start of the pickle stream
    /// (for archives: from the start of the pickle member or file).
    pub offset: u64,
    /// What went wrong.
    pub kind: PickleErrorKind,
}

impl PickleError {
    /// Build an error.
    pub fn new(offset: u64, kind: PickleErrorKind) -> Self {
        Self { offset, kind }
    }
}

/// Errors from reading checkpoints and archives.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// I/O failure.
    #[error("{file}: I/O error: {source}")]
    Io {
        /// File path (empty when reading from memory).
        file: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A pickle broke a rule.
    #[error("{file}{}: {source}", member.as_ref().map(|m| format!(" (member {m})")).unwrap_or_default())]
    Pickle {
        /// File path.
        file: PathBuf,
        /// Archive member or legacy section holding the pickle.
        member: Option<String>,
        /// The pickle error (with its byte offset).
        #[source]
        source: PickleError,
    },
    /// The zip container is malformed.
    #[error("{file}: zip error at byte {offset}: {kind}")]
    Zip {
        /// File path.
        file: PathBuf,
        /// Byte offset in the file where the problem was found.
        offset: u64,
        /// What went wrong.
        kind: ZipErrorKind,
    },
    /// The file is a TorchScript archive, which holds programs.
    #[error("{file}: TorchScript archive (has {evidence}): it contains code (programs), not just weights; refusing to load it")]
    TorchScript {
        /// File path.
        file: PathBuf,
        /// The member that gave it away.
        evidence: String,
    },
    /// Legacy tar checkpoints (PyTorch < 0.4) were once refused with this
    /// error; they are read now, and this variant is no longer produced
    /// (kept so matches on it keep compiling).
    #[error("{file}: unsupported legacy tar checkpoint (PyTorch < 0.4 tar format)")]
    LegacyTar {
        /// File path.
        file: PathBuf,
    },
    /// The tar container of a legacy tar checkpoint is malformed.
    #[error("{file}: tar error at byte {offset}: {kind}")]
    Tar {
        /// File path.
        file: PathBuf,
        /// Byte offset in the file of the header at fault.
        offset: u64,
        /// What went wrong.
        kind: TarErrorKind,
    },
    /// A member of a legacy tar checkpoint holds inconsistent data (a storage
    /// shorter than declared, a bad record, a duplicate key, ...).
    #[error("{file}: tar member {member:?} at byte {offset}: {reason}")]
    TarMember {
        /// File path.
        file: PathBuf,
        /// Member name (`storages`, `tensors`, `pickle`, `sys_info`).
        member: String,
        /// Byte offset in the file where the problem was found.
        offset: u64,
        /// Why.
        reason: String,
    },
    /// Not a recognised PyTorch checkpoint.
    #[error("{file}: not a PyTorch checkpoint: {reason}")]
    NotACheckpoint {
        /// File path.
        file: PathBuf,
        /// Why.
        reason: String,
    },
    /// The checkpoint structure is inconsistent (missing storage, bad byteorder, ...).
    #[error("{file}: invalid checkpoint: {reason}")]
    Invalid {
        /// File path.
        file: PathBuf,
        /// Why.
        reason: String,
    },
    /// A tensor's view does not fit inside its storage.
    #[error("{file}: tensor {tensor:?} does not fit in storage {storage:?}: {reason}")]
    TensorOutOfBounds {
        /// File path.
        file: PathBuf,
        /// Dotted tensor name.
        tensor: String,
        /// Storage key.
        storage: String,
        /// Details.
        reason: String,
    },
    /// A configured limit was exceeded outside the pickle machine.
    #[error("{file}: limit exceeded: {limit} (maximum {max})")]
    LimitExceeded {
        /// File path.
        file: PathBuf,
        /// Which limit.
        limit: &'static str,
        /// The configured maximum.
        max: u64,
    },
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A zip error of the archive `file`.
    pub fn zip(file: impl Into<PathBuf>, e: ZipError) -> Self {
        Error::Zip {
            file: file.into(),
            offset: e.offset,
            kind: e.kind,
        }
    }

    /// A tar error of the archive `file`.
    pub fn tar(file: impl Into<PathBuf>, e: TarError) -> Self {
        Error::Tar {
            file: file.into(),
            offset: e.offset,
            kind: e.kind,
        }
    }
}

impl Diagnostic for PickleErrorKind {
    fn kind(&self) -> &'static str {
        match self {
            PickleErrorKind::UnexpectedEof { .. } => "pickle_unexpected_eof",
            PickleErrorKind::MissingStop => "pickle_missing_stop",
            PickleErrorKind::UnknownOpcode(_) => "pickle_unknown_opcode",
            PickleErrorKind::UnsupportedProtocol(_) => "pickle_unsupported_protocol",
            PickleErrorKind::InvalidArgument { .. } => "pickle_invalid_argument",
            PickleErrorKind::StackUnderflow { .. } => "pickle_stack_underflow",
            PickleErrorKind::MissingMark { .. } => "pickle_missing_mark",
            PickleErrorKind::MemoKeyMissing(_) => "pickle_memo_key_missing",
            PickleErrorKind::ForbiddenGlobal { .. } => "pickle_forbidden_global",
            PickleErrorKind::BadCall { .. } => "pickle_bad_call",
            PickleErrorKind::TypeMismatch { .. } => "pickle_type_mismatch",
            PickleErrorKind::Unhashable { .. } => "pickle_unhashable",
            PickleErrorKind::LimitExceeded { .. } => "pickle_limit_exceeded",
            PickleErrorKind::Unsupported { .. } => "pickle_unsupported_opcode",
            PickleErrorKind::BadPersistentId(_) => "pickle_bad_persistent_id",
        }
    }

    fn class(&self) -> ErrorClass {
        match self {
            PickleErrorKind::UnsupportedProtocol(_) | PickleErrorKind::Unsupported { .. } => {
                ErrorClass::Unsupported
            }
            PickleErrorKind::LimitExceeded { .. } => ErrorClass::Limit,
            _ => ErrorClass::InvalidInput,
        }
    }
}

impl Diagnostic for PickleError {
    fn kind(&self) -> &'static str {
        self.kind.kind()
    }
    fn class(&self) -> ErrorClass {
        self.kind.class()
    }
    /// The offset in the pickle stream (for archives: in the member).
    fn offset(&self) -> Option<u64> {
        Some(self.offset)
    }
}

impl Diagnostic for Error {
    fn kind(&self) -> &'static str {
        match self {
            Error::Io { .. } => "io",
            Error::Pickle { source, .. } => source.kind.kind(),
            Error::Zip { kind, .. } => <ZipErrorKind as Diagnostic>::kind(kind),
            Error::TorchScript { .. } => "torchscript",
            Error::LegacyTar { .. } => "legacy_tar_unsupported",
            Error::Tar { kind, .. } => <TarErrorKind as Diagnostic>::kind(kind),
            Error::TarMember { .. } => "tar_member_invalid",
            Error::NotACheckpoint { .. } => "not_a_checkpoint",
            Error::Invalid { .. } => "invalid_checkpoint",
            Error::TensorOutOfBounds { .. } => "tensor_out_of_bounds",
            Error::LimitExceeded { .. } => "limit_exceeded",
        }
    }

    fn class(&self) -> ErrorClass {
        match self {
            Error::Io { .. } => ErrorClass::Io,
            Error::Pickle { source, .. } => source.kind.class(),
            Error::Zip { kind, .. } => kind.class(),
            Error::Tar { kind, .. } => kind.class(),
            Error::TorchScript { .. } | Error::LegacyTar { .. } | Error::NotACheckpoint { .. } => {
                ErrorClass::Unsupported
            }
            Error::LimitExceeded { .. } => ErrorClass::Limit,
            Error::TarMember { .. } | Error::Invalid { .. } | Error::TensorOutOfBounds { .. } => {
                ErrorClass::InvalidInput
            }
        }
    }

    fn file(&self) -> Option<&Path> {
        match self {
            Error::Io { file, .. }
            | Error::Pickle { file, .. }
            | Error::Zip { file, .. }
            | Error::TorchScript { file, .. }
            | Error::LegacyTar { file }
            | Error::Tar { file, .. }
            | Error::TarMember { file, .. }
            | Error::NotACheckpoint { file, .. }
            | Error::Invalid { file, .. }
            | Error::TensorOutOfBounds { file, .. }
            | Error::LimitExceeded { file, .. } => Some(file.as_path()),
        }
        .filter(|f| !f.as_os_str().is_empty())
    }

    fn tensor(&self) -> Option<&str> {
        match self {
            Error::TensorOutOfBounds { tensor, .. } => Some(tensor),
            _ => None,
        }
    }

    /// For pickle errors, the offset in the pickle stream (the member of an
    /// archive); otherwise in the file.
    fn offset(&self) -> Option<u64> {
        match self {
            Error::Pickle { source, .. } => Some(source.offset),
            Error::Zip { offset, .. }
            | Error::Tar { offset, .. }
            | Error::TarMember { offset, .. } => Some(*offset),
            _ => None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests build fixtures with std::fs.
mod tests {
    use super::*;

    #[test]
    fn diagnostics_delegate_to_the_archive_error() {
        let e = Error::zip(
            "m.pt",
            ZipError::new(
                12,
                ZipErrorKind::CrcMismatch {
                    name: "a/data.pkl".into(),
                    expected: 1,
                    computed: 2,
                },
            ),
        );
        assert_eq!(e.kind(), "zip_crc_mismatch");
        assert_eq!(e.class(), ErrorClass::InvalidInput);
        assert_eq!(e.offset(), Some(12));
        assert_eq!(e.file(), Some(Path::new("m.pt")));
        assert!(e.to_string().starts_with("m.pt: zip error at byte 12: "));
        let t = Error::tar("old.pt", TarError::new(512, TarErrorKind::BadChecksum));
        assert_eq!(t.kind(), "tar_bad_checksum");
        assert_eq!(
            t.to_string(),
            "old.pt: tar error at byte 512: header checksum mismatch"
        );
        let p = Error::Pickle {
            file: "x.pkl".into(),
            member: None,
            source: PickleError::new(
                3,
                PickleErrorKind::ForbiddenGlobal {
                    module: "os".into(),
                    name: "system".into(),
                },
            ),
        };
        assert_eq!(p.kind(), "pickle_forbidden_global");
        assert_eq!(p.offset(), Some(3));
    }
}
