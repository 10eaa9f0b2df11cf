//! Classifying errors: exit status, a hint of what to do, and a JSON shape.

use std::io;

use safeweights::{Error, HeaderError, ShardError};
use safeweights_convert::ConvertError;
use safeweights_load::LoadError;
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::Status;

/// A file given as a checkpoint that is another format we recognise (a
/// pickle, a torch zip, NumPy): said as such, with the core's error as its
/// source (so it still counts as invalid input).
#[derive(Debug)]
pub struct NotSafetensors {
    /// The path given.
    pub path: std::path::PathBuf,
    /// What it is.
    pub format: safeweights::sniff::ForeignFormat,
    /// The core's error reading it as safetensors.
    pub source: Error,
}

impl std::fmt::Display for NotSafetensors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: not a safetensors file: this is {}",
            self.path.display(),
            self.format.describe()
        )
    }
}

impl std::error::Error for NotSafetensors {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// An error of the command line itself, with what to do about it (printed
/// on its own `hint:` line).
#[derive(Debug)]
pub struct Hinted {
    /// What went wrong.
    pub message: String,
    /// What to do.
    pub hint: String,
}

impl std::fmt::Display for Hinted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Hinted {}

/// An error with a hint.
pub fn hinted(message: impl Into<String>, hint: impl Into<String>) -> anyhow::Error {
    Hinted {
        message: message.into(),
        hint: hint.into(),
    }
    .into()
}

/// The library error in `err`'s chain, if any: the core's own, or the one a
/// converter or loader error wraps (those wrap it transparently, so it is
/// not in the chain itself).
pub fn library_error(err: &anyhow::Error) -> Option<&Error> {
    err.chain().find_map(|e| {
        if let Some(e) = e.downcast_ref::<Error>() {
            return Some(e);
        }
        match e.downcast_ref::<ConvertError>() {
            Some(ConvertError::Format(e)) => return Some(e),
            Some(_) => return None,
            None => {}
        }
        match e.downcast_ref::<LoadError>() {
            Some(LoadError::Format(e)) => Some(e),
            _ => None,
        }
    })
}

/// The error and its causes in one line, without repeating a cause that its
/// parent's message already includes (library errors embed their source).
pub fn message(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        if !out.is_empty()
            && cause.downcast_ref::<Error>().is_some()
            && out.contains("not a safetensors file")
        {
            break; // what the header would have been is noise for a pickle
        }
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
            source:
                ShardError::Empty
                | ShardError::AmbiguousIndex(_)
                | ShardError::SeveralCheckpoints(_)
                | ShardError::PickleWeights(_),
            ..
        } => false,
        Error::Header { .. }
        | Error::Shard { .. }
        | Error::TensorNotFound { .. }
        | Error::Slice { .. } => true,
        _ => false,
    }
}

/// The exit status of a command that failed with `err`: `invalid_input`
/// when the input is not valid safetensors (1 for most commands; 2 for
/// `diff`, where 1 means "different", and `load`, where it means "verify
/// found a difference"), 2 for everything else (I/O, usage, writing).
pub fn status_of(err: &anyhow::Error, invalid_input: Status) -> Status {
    match library_error(err) {
        Some(e) if is_format_error(e) => invalid_input,
        _ => Status::Error,
    }
}

/// What the user can do about `err`, when we know.
pub fn hint(err: &anyhow::Error) -> Option<String> {
    if let Some(e) = err.chain().find_map(|e| e.downcast_ref::<Hinted>()) {
        return Some(e.hint.clone());
    }
    if let Some(hint) = err.chain().find_map(|e| {
        e.downcast_ref::<ConvertError>()
            .and_then(convert_hint)
            .or_else(|| e.downcast_ref::<LoadError>().and_then(load_hint))
    }) {
        return Some(hint.to_owned());
    }
    if let Some(e) = err.chain().find_map(|e| e.downcast_ref::<NotSafetensors>()) {
        let path = e.path.display();
        return Some(if e.format.converts() {
            let out = e.path.with_extension("safetensors");
            format!(
                "convert it to safetensors (no code from it is run): `safeweights convert {path} {}`; `safeweights scan {path}` says what it holds",
                out.display()
            )
        } else {
            "safeweights reads safetensors only; give a .safetensors file, a folder of them or an index".to_owned()
        });
    }
    let lib = library_error(err)?;
    if let Error::Shard {
        file,
        source: ShardError::PickleWeights(_),
    } = lib
    {
        return Some(format!(
            "convert the folder to safetensors (other files are copied; no code is run): `safeweights convert {file} {}-safetensors`",
            file.trim_end_matches('/')
        ));
    }
    let hint = match lib {
        Error::Io { source, .. } => match source.kind() {
            io::ErrorKind::NotFound => "check the path: give a .safetensors file, a folder of shards, or a *.safetensors.index.json",
            io::ErrorKind::PermissionDenied => "check the permissions of the file and its folder",
            _ => return None,
        },
        Error::Header { source, .. } => match source {
            HeaderError::DuplicateKey { .. }
            | HeaderError::ReservedName
            | HeaderError::ControlCharacter { .. } => {
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
            ShardError::SeveralCheckpoints(_) => {
                "pass the file (or index) of the checkpoint you mean instead of the folder"
            }
            _ => "the index and the shards disagree; regenerate the index or re-download the checkpoint",
        },
        _ => return None,
    };
    Some(hint.to_owned())
}

/// Hints for the converter's own errors (its wrapped core errors get the
/// core's hints).
fn convert_hint(err: &ConvertError) -> Option<&'static str> {
    use safeweights_pickle::Error as P;
    Some(match err {
        ConvertError::DestinationExists { .. } => {
            "pass --force (or --overwrite) to replace it, or choose another destination"
        }
        ConvertError::Pickle(P::Pickle { .. }) => {
            "`safeweights scan FILE` says what the pickle imports or runs; only plain tensors and allow-listed globals convert"
        }
        ConvertError::Pickle(P::TorchScript { .. }) => {
            "TorchScript archives hold programs; export the state_dict with torch and convert that"
        }
        ConvertError::Pickle(_) => {
            "the checkpoint is damaged or not a PyTorch file; `safeweights scan FILE` says what it is"
        }
        ConvertError::UnsupportedTensor { .. } => {
            "convert the tensor to a supported dtype (or a dense tensor) with torch first, or leave it out"
        }
        ConvertError::Unsupported { .. } => {
            "see `safeweights convert --help` for the formats and folder layouts converted"
        }
        ConvertError::Npy { .. } => "only plain numeric NumPy arrays convert; object and structured arrays do not",
        ConvertError::Folder { .. } => {
            "check the folder's index against its weight files, or convert a weight file on its own"
        }
        _ => return None,
    })
}

/// Hints for the loader's own errors.
fn load_hint(err: &LoadError) -> Option<&'static str> {
    Some(match err {
        LoadError::CudaUnavailable(_) => {
            "load with --device cpu, or point SAFEWEIGHTS_CUDART at a libcudart"
        }
        LoadError::Alloc { .. } => "lower --memory-budget or --chunk-size",
        _ => return None,
    })
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
    if let Some(e) = err.chain().find_map(|e| e.downcast_ref::<NotSafetensors>()) {
        return ErrorInfo {
            kind: "not_safetensors".into(),
            category: "format",
            message,
            details: object(json!({
                "file": e.path.display().to_string(),
                "format": format!("{:?}", e.format).to_lowercase(),
            })),
        };
    }
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
        S::SeveralCheckpoints(names) => ("several_checkpoints", json!({ "checkpoints": names })),
        S::PickleWeights(names) => ("pickle_weights", json!({ "pickle_files": names })),
        _ => ("other", json!({})),
    };
    (kind, object(value))
}
