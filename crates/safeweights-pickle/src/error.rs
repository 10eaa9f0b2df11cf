//! Error types.
//!
//! Every pickle error carries the byte offset (from the start of the pickle
//! stream) of the opcode that broke a rule; the higher-level [`Error`] adds the
//! file (and archive member) where it is known.

use std::path::PathBuf;

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

/// A problem with a zip container.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ZipErrorKind {
    /// No end-of-central-directory record.
    #[error("no end of central directory record found")]
    NoEndOfCentralDirectory,
    /// A structure is truncated or lies outside the file.
    #[error("truncated or out-of-bounds {what}")]
    Truncated {
        /// Which structure.
        what: &'static str,
    },
    /// A signature did not match.
    #[error("bad signature for {what}")]
    BadSignature {
        /// Which structure.
        what: &'static str,
    },
    /// A field holds an impossible value.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// Which field.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// Entry uses an unsupported compression method or encryption.
    #[error("entry {name:?}: unsupported {what}")]
    Unsupported {
        /// Entry name.
        name: String,
        /// What is unsupported.
        what: String,
    },
    /// CRC-32 of the entry data does not match the directory.
    #[error("entry {name:?}: CRC-32 mismatch (expected {expected:08x}, computed {computed:08x})")]
    CrcMismatch {
        /// Entry name.
        name: String,
        /// CRC from the central directory.
        expected: u32,
        /// CRC computed over the data.
        computed: u32,
    },
    /// Decompression failed or produced the wrong size.
    #[error("entry {name:?}: decompression failed: {reason}")]
    Inflate {
        /// Entry name.
        name: String,
        /// Why.
        reason: String,
    },
    /// Entry not found.
    #[error("entry {0:?} not found")]
    NotFound(String),
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
        kind: crate::tar::TarErrorKind,
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
