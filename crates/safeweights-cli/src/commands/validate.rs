//! `safeweights validate PATH...`.

use std::path::Path;

use serde::Serialize;

use super::{expand_pipeline, open_checkpoint};
use crate::cli::ValidateArgs;
use crate::errors::{self, ErrorInfo};
use crate::printer::{esc, Printer};
use crate::Status;

/// The result for one path (an element of the `validate --json` array).
#[derive(Debug, Serialize)]
pub struct Outcome {
    /// The path as given.
    pub path: String,
    /// Whether every rule holds. False for I/O errors too.
    pub valid: bool,
    /// Files checked (the shards of a sharded checkpoint), when it could be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<usize>,
    /// Tensors, when valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tensors: Option<usize>,
    /// What is wrong, or null.
    pub error: Option<ErrorInfo>,
}

impl Outcome {
    /// Whether the file could not even be read (rather than being invalid).
    pub fn is_io_error(&self) -> bool {
        self.error.as_ref().is_some_and(|e| !e.is_invalid_input())
    }
}

/// Checks one file, folder of shards or index against every rule.
pub fn validate_path(path: &Path, lenient: bool) -> Outcome {
    let display = path.display().to_string();
    match open_checkpoint(path, lenient) {
        Ok(ckpt) => Outcome {
            path: display,
            valid: true,
            files: Some(ckpt.files().len()),
            tensors: Some(ckpt.len()),
            error: None,
        },
        Err(err) => Outcome {
            path: display,
            valid: false,
            files: None,
            tensors: None,
            error: Some(errors::describe(&err)),
        },
    }
}

/// The one-line human form of an outcome.
pub fn human_line(outcome: &Outcome) -> String {
    match &outcome.error {
        None => {
            let files = outcome.files.unwrap_or(1);
            let where_ = if files == 1 {
                String::new()
            } else {
                format!(" in {files} files")
            };
            format!(
                "OK       {}: {} tensors{where_}",
                esc(&outcome.path),
                outcome.tensors.unwrap_or(0)
            )
        }
        Some(e) if outcome.is_io_error() => format!("ERROR    {}", esc(&e.message)),
        Some(e) => format!("INVALID  {} [{}]", esc(&e.message), e.kind),
    }
}

/// `safeweights validate`.
pub fn run(args: &ValidateArgs, printer: &mut Printer) -> anyhow::Result<Status> {
    let mut outcomes = Vec::with_capacity(args.paths.len());
    // a pipeline folder is checked component by component
    for path in args.paths.iter().flat_map(|p| expand_pipeline(p)) {
        let outcome = validate_path(&path, args.read.lenient);
        printer.line(human_line(&outcome))?;
        outcomes.push(outcome);
    }
    printer.json(&outcomes)?;
    let status = if outcomes.iter().any(Outcome::is_io_error) {
        Status::Error
    } else if outcomes.iter().any(|o| !o.valid) {
        Status::Failure
    } else {
        Status::Success
    };
    if printer.is_human() && outcomes.len() > 1 {
        let bad = outcomes.iter().filter(|o| !o.valid).count();
        printer.line(format_args!(
            "{} of {} valid",
            outcomes.len() - bad,
            outcomes.len()
        ))?;
    }
    Ok(status)
}
