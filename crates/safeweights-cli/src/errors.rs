//! Classifying errors: exit status, a hint of what to do, and a JSON shape,
//! all derived from the libraries' [`Diagnostic`] accessors.

use std::io;

use safeweights::decode::DecodeError;
use safeweights::{
    Diagnostic, Error, ErrorClass, HeaderError, ShardError, SliceError, UnknownDtype,
};
use safeweights_convert::ConvertError;
use safeweights_load::LoadError;
use safeweights_scan::{ScanError, UnknownOutputFormat, UnknownPolicy, UnknownSeverity};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::Status;

/// The core library error in `err`'s chain, if any.
pub fn library_error(err: &anyhow::Error) -> Option<&Error> {
    err.chain().find_map(|e| e.downcast_ref::<Error>())
}

/// The first library error in `err`'s chain (the outermost one that says
/// what went wrong), as its [`Diagnostic`].
pub fn diagnostic(err: &anyhow::Error) -> Option<&dyn Diagnostic> {
    err.chain().find_map(as_diagnostic)
}

/// `e` as a [`Diagnostic`], when it is one of the libraries' error types.
fn as_diagnostic<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a dyn Diagnostic> {
    macro_rules! first_of {
        ($($ty:ty),* $(,)?) => {
            None$(.or_else(|| e.downcast_ref::<$ty>().map(|d| d as &dyn Diagnostic)))*
        };
    }
    first_of!(
        Error,
        HeaderError,
        ShardError,
        SliceError,
        DecodeError,
        UnknownDtype,
        LoadError,
        ConvertError,
        ScanError,
        UnknownPolicy,
        UnknownSeverity,
        UnknownOutputFormat,
    )
}

/// The error and its causes in one line, without repeating a cause that its
/// parent's message already includes (a context that embeds its error).
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

/// The exit status of a command that failed with `err`: 1 when reading a
/// checkpoint found input that is not valid safetensors
/// ([`ErrorClass::InvalidInput`]), 2 for everything else (I/O, usage,
/// writing). Only the core's errors are judged by class: `convert` and
/// `load` report each of their failures as 2, as they always have.
pub fn status_of(err: &anyhow::Error) -> Status {
    match library_error(err).map(Diagnostic::class) {
        Some(ErrorClass::InvalidInput) => Status::Failure,
        _ => Status::Error,
    }
}

/// What the user can do about `err`, when we know: from the core error's
/// kind and class.
pub fn hint(err: &anyhow::Error) -> Option<String> {
    let lib = library_error(err)?;
    let hint = match lib.kind() {
        "io" => match io_kind(err)? {
            io::ErrorKind::NotFound => "check the path: give a .safetensors file, a folder of shards, or a *.safetensors.index.json",
            io::ErrorKind::PermissionDenied => "check the permissions of the file and its folder",
            _ => return None,
        },
        "duplicate_key" | "reserved_name" | "control_character" => {
            "this is a strict-mode rule; pass --lenient to read the file as the reference implementation does"
        }
        "not_in_index" => {
            "pass --lenient to ignore shard tensors the index does not list (as the reference does)"
        }
        "ambiguous_index" => "pass the index file you mean instead of the folder",
        "empty" => "the folder holds no .safetensors file; check the path",
        _ if lib.class() != ErrorClass::InvalidInput => return None,
        _ if is_checkpoint_error(err) => {
            "the index and the shards disagree; regenerate the index or re-download the checkpoint"
        }
        _ => "the file is damaged or not safetensors; `safeweights validate FILE` names the rule it breaks",
    };
    Some(hint.to_owned())
}

/// The OS error's kind, for an I/O error.
fn io_kind(err: &anyhow::Error) -> Option<io::ErrorKind> {
    err.chain()
        .find_map(|e| e.downcast_ref::<io::Error>())
        .map(io::Error::kind)
}

/// Whether the problem is the checkpoint as a whole (index and shards), not
/// one file.
fn is_checkpoint_error(err: &anyhow::Error) -> bool {
    err.chain().any(|e| e.is::<ShardError>())
}

/// An error as JSON: `kind` (the rule, snake_case), `category`, `message`,
/// and the fields of the rule (`file`, `tensor`, offsets, ...).
#[derive(Debug, Clone, Serialize)]
pub struct ErrorInfo {
    /// The specific rule or failure, e.g. `overlap`, `trailing_bytes`, `io`:
    /// [`Diagnostic::kind`], listed in `docs/errors.md`.
    pub kind: String,
    /// `format` (a rule of the format), `checkpoint` (index/shards
    /// disagree), `io`, `usage` (e.g. a folder with no checkpoint or several
    /// indexes), `unsupported`, `limit`, or `other` (not a library error).
    pub category: &'static str,
    /// The full message, as printed by the human output.
    pub message: String,
    /// The error's class; `None` when it is not a library error.
    #[serde(skip)]
    pub class: Option<ErrorClass>,
    /// The fields of the rule broken.
    #[serde(flatten)]
    pub details: Map<String, Value>,
}

impl ErrorInfo {
    /// Whether the input broke a rule (rather than could not be read, or
    /// was the wrong thing to ask for).
    pub fn is_invalid_input(&self) -> bool {
        self.class == Some(ErrorClass::InvalidInput)
    }
}

/// The category of a library error.
fn category(class: ErrorClass, err: &anyhow::Error) -> &'static str {
    match class {
        ErrorClass::InvalidInput if is_checkpoint_error(err) => "checkpoint",
        ErrorClass::InvalidInput => "format",
        ErrorClass::Io => "io",
        ErrorClass::Usage => "usage",
        ErrorClass::Unsupported => "unsupported",
        ErrorClass::Limit => "limit",
        // A class added to the core later: still a library error.
        _ => "usage",
    }
}

/// Describes an error for JSON output.
pub fn describe(err: &anyhow::Error) -> ErrorInfo {
    let message = message(err);
    let Some(lib) = diagnostic(err) else {
        return ErrorInfo {
            kind: "other".into(),
            category: "other",
            message,
            class: None,
            details: Map::new(),
        };
    };
    let mut details = Map::new();
    if let Some(file) = lib.file() {
        details.insert("file".into(), file.display().to_string().into());
    }
    if let Some(tensor) = lib.tensor() {
        details.insert("tensor".into(), tensor.into());
    }
    if let Some(offset) = lib.offset() {
        details.insert("offset".into(), offset.into());
    }
    details.extend(lib.details());
    ErrorInfo {
        kind: lib.kind().to_owned(),
        category: category(lib.class(), err),
        message,
        class: Some(lib.class()),
        details,
    }
}
