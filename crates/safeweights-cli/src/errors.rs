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

/// The core library error in `err`'s chain, if any: the core's own, or the
/// one a converter or loader error wraps (those wrap it transparently, so it
/// is not in the chain itself).
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

/// The exit status of a command that failed with `err`: `invalid_input`
/// when reading a checkpoint found input that is not valid safetensors
/// ([`ErrorClass::InvalidInput`] of the core's error, also when a converter
/// or loader error wraps it): 1 for most commands; 2 for `diff`, where 1
/// means "different", and `load`, where it means "verify found a
/// difference". 2 for everything else (I/O, usage, writing).
pub fn status_of(err: &anyhow::Error, invalid_input: Status) -> Status {
    match library_error(err).map(Diagnostic::class) {
        Some(ErrorClass::InvalidInput) => invalid_input,
        _ => Status::Error,
    }
}

/// What the user can do about `err`, when we know: from the core error's
/// kind and class.
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
    let hint = match lib.kind() {
        "io" => match io_kind(err)? {
            io::ErrorKind::NotFound => "check the path: give a .safetensors file, a folder of shards, or a *.safetensors.index.json",
            io::ErrorKind::PermissionDenied => "check the permissions of the file and its folder",
            _ => return None,
        },
        "duplicate_key" | "reserved_name" | "control_character" | "metadata_control_character" => {
            "this is a strict-mode rule; pass --lenient to read the file as the reference implementation does"
        }
        "not_in_index" => {
            "pass --lenient to ignore shard tensors the index does not list (as the reference does)"
        }
        "ambiguous_index" => "pass the index file you mean instead of the folder",
        "empty" => "the folder holds no .safetensors file; check the path",
        "unsafe_shard_path" => {
            "the index names a shard path outside the checkpoint folder (absolute, `..`, or through a symlink); do not load it: a checkpoint names its shards by plain file names beside the index"
        }
        "several_checkpoints" => {
            "pass the file (or index) of the checkpoint you mean instead of the folder"
        }
        _ if lib.class() != ErrorClass::InvalidInput => return None,
        _ if is_checkpoint_error(err) => {
            "the index and the shards disagree; regenerate the index or re-download the checkpoint"
        }
        _ => "the file is damaged or not safetensors; `safeweights validate FILE` names the rule it breaks",
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
    if let Some(e) = err.chain().find_map(|e| e.downcast_ref::<NotSafetensors>()) {
        let mut details = Map::new();
        details.insert("file".into(), e.path.display().to_string().into());
        details.insert(
            "format".into(),
            format!("{:?}", e.format).to_lowercase().into(),
        );
        return ErrorInfo {
            kind: "not_safetensors".into(),
            category: "format",
            message,
            class: Some(ErrorClass::InvalidInput),
            details,
        };
    }
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
