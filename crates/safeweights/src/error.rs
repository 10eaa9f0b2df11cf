//! Typed errors. Every error names where the bytes came from (the file, or
//! `<memory>`), and where there is one, the tensor and the offsets.
//!
//! A variant with a `#[source]` does not repeat that source in its own
//! message: show [`Diagnostic::message`], which joins the chain.

use std::io;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use crate::diagnostic::{Diagnostic, ErrorClass};
use crate::Dtype;

/// A broken rule of the safetensors header, found while parsing or validating.
///
/// Offsets in `data_offsets` are relative to the start of the data buffer,
/// as in the header itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// The file is shorter than the 8-byte header-length prefix.
    #[error("file is {len} bytes long, shorter than the 8-byte header length prefix: not a safetensors file")]
    HeaderTooSmall {
        /// Length of the file.
        len: u64,
    },
    /// The declared header length is over the limit.
    #[error("header length {len} exceeds the limit of {limit} bytes")]
    HeaderTooLarge {
        /// Declared header length.
        len: u64,
        /// The limit in force.
        limit: u64,
    },
    /// The declared header runs past the end of the file.
    #[error("header length {len} runs past the end of the file ({file_len} bytes): the file is truncated or not safetensors")]
    HeaderPastEnd {
        /// Declared header length.
        len: u64,
        /// Length of the file.
        file_len: u64,
    },
    /// The header is not UTF-8.
    #[error("header is not valid UTF-8 (bad byte at file offset {offset})")]
    InvalidUtf8 {
        /// File offset of the first invalid byte.
        offset: u64,
    },
    /// The header is not JSON.
    #[error("header is not valid JSON: {message} (at line {line}, column {column})")]
    InvalidJson {
        /// The parser's message.
        message: String,
        /// 1-based line in the header.
        line: usize,
        /// 1-based column in the header.
        column: usize,
    },
    /// The header is JSON but not an object.
    #[error("header is a JSON {found}, not an object")]
    NotAnObject {
        /// What it is instead.
        found: &'static str,
    },
    /// A key appears twice in the same JSON object.
    #[error("duplicate key {key:?} in {scope}: the reference keeps the last one silently; use lenient mode to read it as the reference does")]
    DuplicateKey {
        /// The repeated key.
        key: String,
        /// Which object: `header`, `__metadata__` or `tensor "name"`.
        scope: String,
    },
    /// An entry of the header is not a tensor description object.
    #[error("tensor {tensor:?}: entry is a JSON {found}, not an object with dtype, shape and data_offsets")]
    TensorNotAnObject {
        /// The tensor name.
        tensor: String,
        /// What it is instead.
        found: &'static str,
    },
    /// A tensor's dtype is not one of the safetensors dtypes.
    #[error("tensor {tensor:?}: unknown dtype {dtype:?}")]
    UnknownDtype {
        /// The tensor name.
        tensor: String,
        /// The dtype as written.
        dtype: String,
    },
    /// A tensor lacks a required field.
    #[error("tensor {tensor:?}: missing field {field:?}")]
    MissingField {
        /// The tensor name.
        tensor: String,
        /// The missing field.
        field: &'static str,
    },
    /// A tensor field has the wrong JSON type or form.
    #[error("tensor {tensor:?}: field {field:?} is malformed: expected {expected}")]
    MalformedField {
        /// The tensor name.
        tensor: String,
        /// The field.
        field: &'static str,
        /// What was expected.
        expected: &'static str,
    },
    /// `data_offsets` end before they begin.
    #[error("tensor {tensor:?}: data_offsets [{start}, {end}] end before they begin")]
    InvertedOffsets {
        /// The tensor name.
        tensor: String,
        /// Start offset.
        start: u64,
        /// End offset.
        end: u64,
    },
    /// A tensor starts after the previous one ends: unreferenced bytes.
    #[error("tensor {tensor:?}: starts at data offset {start} but the previous tensor ends at {expected}: a hole of {} bytes (tensors must cover the buffer contiguously from offset 0)", start - expected)]
    Gap {
        /// The tensor name.
        tensor: String,
        /// Where it starts.
        start: u64,
        /// Where it should start.
        expected: u64,
    },
    /// A tensor starts before the previous one ends.
    #[error("tensor {tensor:?}: starts at data offset {start} but the previous tensor ends at {expected}: the tensors overlap")]
    Overlap {
        /// The tensor name.
        tensor: String,
        /// Where it starts.
        start: u64,
        /// Where it should start.
        expected: u64,
    },
    /// The shape's element count or byte size overflows.
    #[error(
        "tensor {tensor:?}: shape {shape:?} of {dtype} overflows when computing its byte size"
    )]
    Overflow {
        /// The tensor name.
        tensor: String,
        /// Its dtype.
        dtype: Dtype,
        /// Its shape.
        shape: Vec<u64>,
    },
    /// A sub-byte tensor does not fill whole bytes.
    #[error("tensor {tensor:?}: {elements} elements of {dtype} ({} bits each) are not a whole number of bytes", dtype.bits())]
    NotByteAligned {
        /// The tensor name.
        tensor: String,
        /// Its dtype.
        dtype: Dtype,
        /// Its element count.
        elements: u64,
    },
    /// The offsets do not span shape × dtype bytes.
    #[error("tensor {tensor:?}: {dtype} {shape:?} needs {expected} bytes but data_offsets [{start}, {end}] span {}", end - start)]
    SizeMismatch {
        /// The tensor name.
        tensor: String,
        /// Its dtype.
        dtype: Dtype,
        /// Its shape.
        shape: Vec<u64>,
        /// Bytes needed.
        expected: u64,
        /// Start offset.
        start: u64,
        /// End offset.
        end: u64,
    },
    /// Bytes follow the last tensor's end.
    #[error("data buffer is {actual} bytes but the tensors end at {expected}: {} trailing bytes after the last tensor", actual - expected)]
    TrailingBytes {
        /// Where the tensors end.
        expected: u64,
        /// Size of the data buffer.
        actual: u64,
    },
    /// The tensors end past the end of the file.
    #[error("tensors end at data offset {expected} but the data buffer is only {actual} bytes: the file is truncated")]
    Truncated {
        /// Where the tensors end.
        expected: u64,
        /// Size of the data buffer.
        actual: u64,
    },
    /// `__metadata__` is not a string→string map.
    #[error("__metadata__ must map strings to strings: {reason}")]
    InvalidMetadata {
        /// What is wrong.
        reason: String,
    },
    /// A tensor uses the reserved name `__metadata__`.
    #[error("a tensor may not be named \"__metadata__\"")]
    ReservedName,
    /// A tensor name holds a control character.
    #[error("tensor name {tensor:?} contains the control character U+{code:04X}")]
    ControlCharacter {
        /// The tensor name.
        tensor: String,
        /// The character's code point.
        code: u32,
    },
    /// A `__metadata__` key or value holds a control character other than
    /// tab and line feed (strict mode only; an escape sequence there would
    /// act on the terminal of whoever prints it).
    #[error("__metadata__ entry {key:?} contains the control character U+{code:04X}")]
    MetadataControlCharacter {
        /// The metadata key.
        key: String,
        /// The character's code point.
        code: u32,
    },
}

/// A slicing request that does not fit the tensor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SliceError {
    /// More indices than dimensions.
    #[error("too many indices: {given} given for a tensor of {ndim} dimensions")]
    TooManyIndices {
        /// Indices given.
        given: usize,
        /// Dimensions of the tensor.
        ndim: usize,
    },
    /// An integer index outside the dimension.
    #[error("index {index} is out of range for dimension {dim} of size {size}")]
    IndexOutOfRange {
        /// The index as given.
        index: i64,
        /// The dimension.
        dim: usize,
        /// Its size.
        size: usize,
    },
    /// A step of zero.
    #[error("slice step cannot be zero (dimension {dim})")]
    ZeroStep {
        /// The dimension.
        dim: usize,
    },
    /// A slice of a sub-byte dtype that does not start and end on byte boundaries.
    #[error("slice of {dtype} does not start and end on byte boundaries; slice whole bytes (e.g. an even number of F4 elements)")]
    NotByteAligned {
        /// The dtype.
        dtype: Dtype,
    },
    /// Size arithmetic overflowed.
    #[error("slice size overflows")]
    Overflow,
}

/// A problem with a sharded checkpoint as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShardError {
    /// The index file is not the expected JSON.
    #[error("invalid index: {reason}")]
    InvalidIndex {
        /// What is wrong.
        reason: String,
    },
    /// A shard path would leave the checkpoint folder.
    #[error("shard path {shard:?} for tensor {tensor:?} leaves the checkpoint folder")]
    UnsafeShardPath {
        /// The tensor.
        tensor: String,
        /// The shard path.
        shard: String,
    },
    /// The index lists a tensor its shard does not hold.
    #[error("tensor {tensor:?} is listed in the index under {shard:?} but that shard does not contain it")]
    MissingFromShard {
        /// The tensor.
        tensor: String,
        /// The shard.
        shard: String,
    },
    /// The same tensor is stored in two shards.
    #[error("tensor {tensor:?} is present in both {first:?} and {second:?}")]
    DuplicateTensor {
        /// The tensor.
        tensor: String,
        /// One shard.
        first: String,
        /// The other.
        second: String,
    },
    /// A shard holds a tensor that the index does not list.
    #[error("tensor {tensor:?} in shard {shard:?} is not listed in the index")]
    NotInIndex {
        /// The tensor.
        tensor: String,
        /// The shard.
        shard: String,
    },
    /// A folder holds no safetensors file.
    #[error("no .safetensors file or index found")]
    Empty,
    /// A folder without an index holds some shards of a numbered set
    /// (`-00002-of-00008`) but not this one.
    #[error("shard {shard:?} of the set of {count} is missing")]
    MissingShard {
        /// The missing shard's file name.
        shard: String,
        /// How many shards the set's names announce.
        count: usize,
    },
    /// A shard is there but is not a regular file (a folder, a FIFO, a
    /// dangling link).
    #[error("shard {shard:?} is not a regular file")]
    NotAFile {
        /// The shard's file name.
        shard: String,
    },
    /// The index file is larger than any real index.
    #[error("index is {len} bytes, over the limit of {limit} bytes")]
    IndexTooLarge {
        /// Its size.
        len: u64,
        /// The limit.
        limit: u64,
    },
    /// A folder holds several index files.
    #[error("several index files found ({0}); open one of them explicitly")]
    AmbiguousIndex(String),
    /// A folder holds several checkpoints (weight variants, a model and an
    /// adapter, ...) and none is the default `model.safetensors`.
    #[error(
        "several checkpoints found ({0}) and none is model.safetensors; open the one you mean"
    )]
    SeveralCheckpoints(String),
    /// A folder holds no safetensors file, only pickle weights
    /// (`pytorch_model.bin`, ...).
    #[error("no .safetensors file, only PyTorch pickle weights ({0}): convert them to safetensors first")]
    PickleWeights(String),
}

/// Everything that can go wrong reading or writing safetensors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The header breaks a rule.
    #[error("{file}")]
    Header {
        /// The file (or `<memory>`).
        file: String,
        /// The rule broken.
        #[source]
        source: HeaderError,
    },
    /// An I/O error.
    #[error("{file}")]
    Io {
        /// The file or folder.
        file: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A tensor is not in the file.
    #[error("{file}: no tensor named {tensor:?}")]
    TensorNotFound {
        /// The file.
        file: String,
        /// The tensor asked for.
        tensor: String,
    },
    /// A slice does not fit a tensor.
    #[error("{file}: tensor {tensor:?}")]
    Slice {
        /// The file.
        file: String,
        /// The tensor.
        tensor: String,
        /// The problem.
        #[source]
        source: SliceError,
    },
    /// A sharded checkpoint is inconsistent.
    #[error("{file}")]
    Shard {
        /// The index file or folder.
        file: String,
        /// The problem.
        #[source]
        source: ShardError,
    },
    /// What was asked to be written is not a valid safetensors file.
    #[error("{file}: cannot write: {reason}")]
    InvalidWrite {
        /// The target.
        file: String,
        /// What is wrong.
        reason: String,
    },
}

impl Error {
    /// Wraps an I/O error with its path.
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            file: path.into().display().to_string(),
            source,
        }
    }

    /// The header rule broken, if that is what this error is.
    pub fn header_error(&self) -> Option<&HeaderError> {
        match self {
            Error::Header { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl HeaderError {
    /// The reference implementation's short name for this problem
    /// (`invalid offset`, `header too large`, ...): the words its messages
    /// start with, which Python callers match on.
    pub fn reference_kind(&self) -> &'static str {
        use HeaderError as H;
        match self {
            H::HeaderTooSmall { .. } => "header too small",
            H::HeaderTooLarge { .. } => "header too large",
            H::HeaderPastEnd { .. } => "invalid header length",
            H::InvalidUtf8 { .. } => "invalid UTF-8 in header",
            H::InvalidJson { .. }
            | H::NotAnObject { .. }
            | H::DuplicateKey { .. }
            | H::TensorNotAnObject { .. }
            | H::UnknownDtype { .. }
            | H::MissingField { .. }
            | H::MalformedField { .. }
            | H::InvalidMetadata { .. }
            | H::ReservedName
            | H::ControlCharacter { .. }
            | H::MetadataControlCharacter { .. } => "invalid JSON in header",
            H::InvertedOffsets { .. } | H::Gap { .. } | H::Overlap { .. } => "invalid offset",
            H::Overflow { .. } => "overflow computing buffer size from shape and/or element type",
            H::NotByteAligned { .. } | H::SizeMismatch { .. } => {
                "invalid shape, data type, or offset for tensor"
            }
            H::TrailingBytes { .. } | H::Truncated { .. } => {
                "incomplete metadata, file not fully covered"
            }
        }
    }
}

impl Diagnostic for HeaderError {
    fn kind(&self) -> &'static str {
        use HeaderError as H;
        match self {
            H::HeaderTooSmall { .. } => "header_too_small",
            H::HeaderTooLarge { .. } => "header_too_large",
            H::HeaderPastEnd { .. } => "header_past_end",
            H::InvalidUtf8 { .. } => "invalid_utf8",
            H::InvalidJson { .. } => "invalid_json",
            H::NotAnObject { .. } => "not_an_object",
            H::DuplicateKey { .. } => "duplicate_key",
            H::TensorNotAnObject { .. } => "tensor_not_an_object",
            H::UnknownDtype { .. } => "unknown_dtype",
            H::MissingField { .. } => "missing_field",
            H::MalformedField { .. } => "malformed_field",
            H::InvertedOffsets { .. } => "inverted_offsets",
            H::Gap { .. } => "gap",
            H::Overlap { .. } => "overlap",
            H::Overflow { .. } => "overflow",
            H::NotByteAligned { .. } => "not_byte_aligned",
            H::SizeMismatch { .. } => "size_mismatch",
            H::TrailingBytes { .. } => "trailing_bytes",
            H::Truncated { .. } => "truncated",
            H::InvalidMetadata { .. } => "invalid_metadata",
            H::ReservedName => "reserved_name",
            H::ControlCharacter { .. } => "control_character",
            H::MetadataControlCharacter { .. } => "metadata_control_character",
        }
    }

    /// Every header rule is a rule of the format, the size limit too (a
    /// header over it is refused as the reference refuses it).
    fn class(&self) -> ErrorClass {
        ErrorClass::InvalidInput
    }

    fn tensor(&self) -> Option<&str> {
        use HeaderError as H;
        match self {
            H::TensorNotAnObject { tensor, .. }
            | H::UnknownDtype { tensor, .. }
            | H::MissingField { tensor, .. }
            | H::MalformedField { tensor, .. }
            | H::InvertedOffsets { tensor, .. }
            | H::Gap { tensor, .. }
            | H::Overlap { tensor, .. }
            | H::Overflow { tensor, .. }
            | H::NotByteAligned { tensor, .. }
            | H::SizeMismatch { tensor, .. }
            | H::ControlCharacter { tensor, .. } => Some(tensor),
            H::HeaderTooSmall { .. }
            | H::HeaderTooLarge { .. }
            | H::HeaderPastEnd { .. }
            | H::InvalidUtf8 { .. }
            | H::InvalidJson { .. }
            | H::NotAnObject { .. }
            | H::DuplicateKey { .. }
            | H::TrailingBytes { .. }
            | H::Truncated { .. }
            | H::InvalidMetadata { .. }
            | H::MetadataControlCharacter { .. }
            | H::ReservedName => None,
        }
    }

    /// A file offset; the offsets of tensors (`start`, `expected`, ...) are
    /// relative to the data buffer and are among the details instead.
    fn offset(&self) -> Option<u64> {
        match self {
            HeaderError::InvalidUtf8 { offset } => Some(*offset),
            _ => None,
        }
    }

    fn details(&self) -> Map<String, Value> {
        use HeaderError as H;
        let value = match self {
            H::HeaderTooSmall { len } => json!({ "file_len": len }),
            H::HeaderTooLarge { len, limit } => json!({ "header_len": len, "limit": limit }),
            H::HeaderPastEnd { len, file_len } => {
                json!({ "header_len": len, "file_len": file_len })
            }
            H::InvalidJson { line, column, .. } => json!({ "line": line, "column": column }),
            H::NotAnObject { found } | H::TensorNotAnObject { found, .. } => {
                json!({ "found": found })
            }
            H::DuplicateKey { key, scope } => json!({ "key": key, "scope": scope }),
            H::UnknownDtype { dtype, .. } => json!({ "dtype": dtype }),
            H::MissingField { field, .. } | H::MalformedField { field, .. } => {
                json!({ "field": field })
            }
            H::InvertedOffsets { start, end, .. } => json!({ "start": start, "end": end }),
            H::Gap {
                start, expected, ..
            }
            | H::Overlap {
                start, expected, ..
            } => json!({ "start": start, "expected": expected }),
            H::Overflow { dtype, shape, .. } => json!({ "dtype": dtype.name(), "shape": shape }),
            H::NotByteAligned {
                dtype, elements, ..
            } => json!({ "dtype": dtype.name(), "elements": elements }),
            H::SizeMismatch {
                dtype,
                shape,
                expected,
                start,
                end,
                ..
            } => json!({
                "dtype": dtype.name(),
                "shape": shape,
                "expected": expected,
                "start": start,
                "end": end,
            }),
            H::TrailingBytes { expected, actual } | H::Truncated { expected, actual } => {
                json!({ "expected": expected, "actual": actual })
            }
            H::ControlCharacter { code, .. } => json!({ "code": code }),
            H::MetadataControlCharacter { key, code } => json!({ "key": key, "code": code }),
            H::InvalidUtf8 { .. } | H::InvalidMetadata { .. } | H::ReservedName => json!({}),
        };
        object(value)
    }
}

impl Diagnostic for SliceError {
    fn kind(&self) -> &'static str {
        match self {
            SliceError::TooManyIndices { .. } => "too_many_indices",
            SliceError::IndexOutOfRange { .. } => "index_out_of_range",
            SliceError::ZeroStep { .. } => "zero_step",
            SliceError::NotByteAligned { .. } => "slice_not_byte_aligned",
            SliceError::Overflow => "slice_overflow",
        }
    }

    fn class(&self) -> ErrorClass {
        match self {
            SliceError::Overflow => ErrorClass::Limit,
            SliceError::TooManyIndices { .. }
            | SliceError::IndexOutOfRange { .. }
            | SliceError::ZeroStep { .. }
            | SliceError::NotByteAligned { .. } => ErrorClass::Usage,
        }
    }
}

impl Diagnostic for ShardError {
    fn kind(&self) -> &'static str {
        match self {
            ShardError::InvalidIndex { .. } => "invalid_index",
            ShardError::UnsafeShardPath { .. } => "unsafe_shard_path",
            ShardError::MissingFromShard { .. } => "missing_from_shard",
            ShardError::DuplicateTensor { .. } => "duplicate_tensor",
            ShardError::NotInIndex { .. } => "not_in_index",
            ShardError::Empty => "empty",
            ShardError::AmbiguousIndex(_) => "ambiguous_index",
            ShardError::MissingShard { .. } => "missing_shard",
            ShardError::NotAFile { .. } => "shard_not_a_file",
            ShardError::IndexTooLarge { .. } => "index_too_large",
            ShardError::SeveralCheckpoints(_) => "several_checkpoints",
            ShardError::PickleWeights(_) => "pickle_weights",
        }
    }

    /// A folder without a checkpoint, or with several indexes, is the wrong
    /// thing pointed at: nothing is invalid.
    fn class(&self) -> ErrorClass {
        match self {
            ShardError::Empty
            | ShardError::AmbiguousIndex(_)
            | ShardError::SeveralCheckpoints(_)
            | ShardError::PickleWeights(_) => ErrorClass::Usage,
            ShardError::InvalidIndex { .. }
            | ShardError::UnsafeShardPath { .. }
            | ShardError::MissingFromShard { .. }
            | ShardError::DuplicateTensor { .. }
            | ShardError::NotInIndex { .. }
            | ShardError::MissingShard { .. }
            | ShardError::NotAFile { .. } => ErrorClass::InvalidInput,
            ShardError::IndexTooLarge { .. } => ErrorClass::Limit,
        }
    }

    fn tensor(&self) -> Option<&str> {
        match self {
            ShardError::UnsafeShardPath { tensor, .. }
            | ShardError::MissingFromShard { tensor, .. }
            | ShardError::DuplicateTensor { tensor, .. }
            | ShardError::NotInIndex { tensor, .. } => Some(tensor),
            ShardError::InvalidIndex { .. }
            | ShardError::Empty
            | ShardError::AmbiguousIndex(_)
            | ShardError::MissingShard { .. }
            | ShardError::NotAFile { .. }
            | ShardError::IndexTooLarge { .. }
            | ShardError::SeveralCheckpoints(_)
            | ShardError::PickleWeights(_) => None,
        }
    }

    fn details(&self) -> Map<String, Value> {
        let value = match self {
            ShardError::UnsafeShardPath { shard, .. }
            | ShardError::MissingFromShard { shard, .. }
            | ShardError::NotInIndex { shard, .. } => json!({ "shard": shard }),
            ShardError::DuplicateTensor { first, second, .. } => {
                json!({ "first": first, "second": second })
            }
            ShardError::MissingShard { shard, count } => json!({ "shard": shard, "count": count }),
            ShardError::NotAFile { shard } => json!({ "shard": shard }),
            ShardError::IndexTooLarge { len, limit } => json!({ "len": len, "limit": limit }),
            ShardError::SeveralCheckpoints(names) => json!({ "checkpoints": names }),
            ShardError::PickleWeights(names) => json!({ "pickle_files": names }),
            ShardError::InvalidIndex { .. } | ShardError::Empty | ShardError::AmbiguousIndex(_) => {
                json!({})
            }
        };
        object(value)
    }
}

impl Diagnostic for Error {
    /// The rule broken for header and checkpoint problems (`overlap`,
    /// `missing_from_shard`, ...), the slicing problem for slices.
    fn kind(&self) -> &'static str {
        match self {
            Error::Header { source, .. } => source.kind(),
            Error::Shard { source, .. } => source.kind(),
            Error::Slice { source, .. } => source.kind(),
            Error::Io { .. } => "io",
            Error::TensorNotFound { .. } => "tensor_not_found",
            Error::InvalidWrite { .. } => "invalid_write",
        }
    }

    fn class(&self) -> ErrorClass {
        match self {
            Error::Header { source, .. } => source.class(),
            Error::Shard { source, .. } => source.class(),
            Error::Slice { source, .. } => source.class(),
            Error::Io { .. } => ErrorClass::Io,
            Error::TensorNotFound { .. } | Error::InvalidWrite { .. } => ErrorClass::Usage,
        }
    }

    fn file(&self) -> Option<&Path> {
        match self {
            Error::Header { file, .. }
            | Error::Io { file, .. }
            | Error::TensorNotFound { file, .. }
            | Error::Slice { file, .. }
            | Error::Shard { file, .. }
            | Error::InvalidWrite { file, .. } => Some(Path::new(file)),
        }
    }

    fn tensor(&self) -> Option<&str> {
        match self {
            Error::Header { source, .. } => source.tensor(),
            Error::Shard { source, .. } => source.tensor(),
            Error::TensorNotFound { tensor, .. } | Error::Slice { tensor, .. } => Some(tensor),
            Error::Io { .. } | Error::InvalidWrite { .. } => None,
        }
    }

    fn offset(&self) -> Option<u64> {
        match self {
            Error::Header { source, .. } => source.offset(),
            Error::Shard { .. }
            | Error::Slice { .. }
            | Error::Io { .. }
            | Error::TensorNotFound { .. }
            | Error::InvalidWrite { .. } => None,
        }
    }

    /// For I/O errors, `io_kind`: the OS error's kind (`NotFound`, ...).
    fn details(&self) -> Map<String, Value> {
        match self {
            Error::Header { source, .. } => source.details(),
            Error::Shard { source, .. } => source.details(),
            Error::Slice { source, .. } => source.details(),
            Error::Io { source, .. } => {
                object(json!({ "io_kind": format!("{:?}", source.kind()) }))
            }
            Error::TensorNotFound { .. } | Error::InvalidWrite { .. } => Map::new(),
        }
    }
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests;
