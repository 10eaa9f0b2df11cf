//! Classifying errors: exit status, a hint of what to do, and a JSON shape.

use std::io;

use safeweights::{Error, HeaderError, ShardError};
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::Status;

/// The library error in `err`'s chain, if any.
pub fn library_error(err: &anyhow::Error) -> Option<&Error> {
    err.chain().find_map(|e| e.downcast_ref::<Error>())
}

/// The error and its causes in one line, without repeating a cause that its
/// parent's message already includes (library errors embed their source).
pub fn message(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if out.is_empty() {
            out = text;
        } else if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out
}

/// Whether stdout was closed under us (`| head`): we end quietly.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// Whether a library error means "the input breaks the format" (as opposed
/// to "could not read or write").
pub fn is_format_error(err: &Error) -> bool {
    match err {
        // A folder without checkpoint, or with several indexes: the user
        // pointed at the wrong thing, nothing is invalid.
        Error::Shard {
            source: ShardError::Empty | ShardError::AmbiguousIndex(_),
            ..
        } => false,
        Error::Header { .. }
        | Error::Shard { .. }
        | Error::TensorNotFound { .. }
        | Error::Slice { .. } => true,
        _ => false,
    }
}

/// The exit status of a command that failed with `err`: 1 when the input is
/// not valid safetensors, 2 for everything else (I/O, usage, writing).
pub fn status_of(err: &anyhow::Error) -> Status {
    match library_error(err) {
        Some(e) if is_format_error(e) => Status::Failure,
        _ => Status::Error,
    }
}

/// What the user can do about `err`, when we know.
pub fn hint(err: &anyhow::Error) -> Option<String> {
    let lib = library_error(err)?;
    let hint = match lib {
        Error::Io { source, .. } => match source.kind() {
            io::ErrorKind::NotFound => "check the path: give a .safetensors file, a folder of shards, or a *.safetensors.index.json",
            io::ErrorKind::PermissionDenied => "check the permissions of the file and its folder",
            _ => return None,
        },
        Error::Header { source, .. } => match source {
            HeaderError::DuplicateKey { .. }
            | HeaderError::ReservedName
            | HeaderError::ControlCharacter { .. }
            | HeaderError::MetadataControlCharacter { .. } => {
                "this is a strict-mode rule; pass --lenient to read the file as the reference implementation does"
            }
            _ => "the file is damaged or not safetensors; `safeweights validate FILE` names the rule it breaks",
        },
        Error::Shard { source, .. } => match source {
            ShardError::NotInIndex { .. } => {
                "pass --lenient to ignore shard tensors the index does not list (as the reference does)"
            }
            ShardError::AmbiguousIndex(_) => "pass the index file you mean instead of the folder",
            ShardError::Empty => "the folder holds no .safetensors file; check the path",
            ShardError::UnsafeShardPath { .. } => {
                "the index names a shard path outside the checkpoint folder (absolute, `..`, or through a symlink); do not load it: a checkpoint names its shards by plain file names beside the index"
            }
            _ => "the index and the shards disagree; regenerate the index or re-download the checkpoint",
        },
        _ => return None,
    };
    Some(hint.to_owned())
}

/// An error as JSON: `kind` (the rule, snake_case), `category`, `message`,
/// and the fields of the rule (`file`, `tensor`, offsets, ...).
#[derive(Debug, Clone, Serialize)]
pub struct ErrorInfo {
    /// The specific rule or failure, e.g. `overlap`, `trailing_bytes`, `io`.
    pub kind: String,
    /// `format` (a header rule), `checkpoint` (index/shards disagree),
    /// `io`, `usage` (a folder with no checkpoint or several indexes), or
    /// `other`.
    pub category: &'static str,
    /// The full message, as printed by the human output.
    pub message: String,
    /// The fields of the rule broken.
    #[serde(flatten)]
    pub details: Map<String, Value>,
}

/// Describes an error for JSON output.
pub fn describe(err: &anyhow::Error) -> ErrorInfo {
    let message = message(err);
    let Some(lib) = library_error(err) else {
        return ErrorInfo {
            kind: "other".into(),
            category: "other",
            message,
            details: Map::new(),
        };
    };
    let (kind, category, details) = match lib {
        Error::Header { file, source } => {
            let (kind, mut details) = header_details(source);
            details.insert("file".into(), json!(file));
            (kind, "format", details)
        }
        Error::Shard { file, source } => {
            let (kind, mut details) = shard_details(source);
            details.insert("file".into(), json!(file));
            let category = if is_format_error(lib) {
                "checkpoint"
            } else {
                "usage"
            };
            (kind, category, details)
        }
        Error::Io { file, source } => (
            "io",
            "io",
            object(json!({ "file": file, "io_kind": format!("{:?}", source.kind()) })),
        ),
        Error::TensorNotFound { file, tensor } => (
            "tensor_not_found",
            "format",
            object(json!({ "file": file, "tensor": tensor })),
        ),
        Error::Slice { file, tensor, .. } => (
            "slice",
            "other",
            object(json!({ "file": file, "tensor": tensor })),
        ),
        Error::InvalidWrite { file, .. } => {
            ("invalid_write", "other", object(json!({ "file": file })))
        }
        _ => ("other", "other", Map::new()),
    };
    ErrorInfo {
        kind: kind.to_owned(),
        category,
        message,
        details,
    }
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// The rule name and its fields.
pub fn header_details(err: &HeaderError) -> (&'static str, Map<String, Value>) {
    use HeaderError as H;
    let (kind, value) = match err {
        H::HeaderTooSmall { len } => ("header_too_small", json!({ "file_len": len })),
        H::HeaderTooLarge { len, limit } => (
            "header_too_large",
            json!({ "header_len": len, "limit": limit }),
        ),
        H::HeaderPastEnd { len, file_len } => (
            "header_past_end",
            json!({ "header_len": len, "file_len": file_len }),
        ),
        H::InvalidUtf8 { offset } => ("invalid_utf8", json!({ "offset": offset })),
        H::InvalidJson { line, column, .. } => {
            ("invalid_json", json!({ "line": line, "column": column }))
        }
        H::NotAnObject { found } => ("not_an_object", json!({ "found": found })),
        H::DuplicateKey { key, scope } => ("duplicate_key", json!({ "key": key, "scope": scope })),
        H::TensorNotAnObject { tensor, found } => (
            "tensor_not_an_object",
            json!({ "tensor": tensor, "found": found }),
        ),
        H::UnknownDtype { tensor, dtype } => {
            ("unknown_dtype", json!({ "tensor": tensor, "dtype": dtype }))
        }
        H::MissingField { tensor, field } => {
            ("missing_field", json!({ "tensor": tensor, "field": field }))
        }
        H::MalformedField { tensor, field, .. } => (
            "malformed_field",
            json!({ "tensor": tensor, "field": field }),
        ),
        H::InvertedOffsets { tensor, start, end } => (
            "inverted_offsets",
            json!({ "tensor": tensor, "start": start, "end": end }),
        ),
        H::Gap {
            tensor,
            start,
            expected,
        } => (
            "gap",
            json!({ "tensor": tensor, "start": start, "expected": expected }),
        ),
        H::Overlap {
            tensor,
            start,
            expected,
        } => (
            "overlap",
            json!({ "tensor": tensor, "start": start, "expected": expected }),
        ),
        H::Overflow {
            tensor,
            dtype,
            shape,
        } => (
            "overflow",
            json!({ "tensor": tensor, "dtype": dtype.name(), "shape": shape }),
        ),
        H::NotByteAligned {
            tensor,
            dtype,
            elements,
        } => (
            "not_byte_aligned",
            json!({ "tensor": tensor, "dtype": dtype.name(), "elements": elements }),
        ),
        H::SizeMismatch {
            tensor,
            dtype,
            shape,
            expected,
            start,
            end,
        } => (
            "size_mismatch",
            json!({ "tensor": tensor, "dtype": dtype.name(), "shape": shape, "expected": expected, "start": start, "end": end }),
        ),
        H::TrailingBytes { expected, actual } => (
            "trailing_bytes",
            json!({ "expected": expected, "actual": actual }),
        ),
        H::Truncated { expected, actual } => (
            "truncated",
            json!({ "expected": expected, "actual": actual }),
        ),
        H::InvalidMetadata { .. } => ("invalid_metadata", json!({})),
        H::ReservedName => ("reserved_name", json!({})),
        H::ControlCharacter { tensor, code } => (
            "control_character",
            json!({ "tensor": tensor, "code": code }),
        ),
        H::MetadataControlCharacter { key, code } => (
            "metadata_control_character",
            json!({ "key": key, "code": code }),
        ),
        _ => ("other", json!({})),
    };
    (kind, object(value))
}

fn shard_details(err: &ShardError) -> (&'static str, Map<String, Value>) {
    use ShardError as S;
    let (kind, value) = match err {
        S::InvalidIndex { .. } => ("invalid_index", json!({})),
        S::UnsafeShardPath { tensor, shard } => (
            "unsafe_shard_path",
            json!({ "tensor": tensor, "shard": shard }),
        ),
        S::MissingFromShard { tensor, shard } => (
            "missing_from_shard",
            json!({ "tensor": tensor, "shard": shard }),
        ),
        S::DuplicateTensor {
            tensor,
            first,
            second,
        } => (
            "duplicate_tensor",
            json!({ "tensor": tensor, "first": first, "second": second }),
        ),
        S::NotInIndex { tensor, shard } => {
            ("not_in_index", json!({ "tensor": tensor, "shard": shard }))
        }
        S::Empty => ("empty", json!({})),
        S::AmbiguousIndex(_) => ("ambiguous_index", json!({})),
        _ => ("other", json!({})),
    };
    (kind, object(value))
}
