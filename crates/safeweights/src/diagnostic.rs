//! Stable, machine-readable facts about an error.
//!
//! Every library error of the workspace implements [`Diagnostic`]. The
//! command line's JSON output and the Python exception attributes are derived
//! from these accessors, so a new error variant cannot silently become
//! "other": it must name its own [`Diagnostic::kind`].

use std::path::Path;

/// What kind of failure an error is, for exit statuses and exception classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorClass {
    /// The input breaks a rule of its format (exit status 1 in the CLI).
    InvalidInput,
    /// Reading or writing failed (the OS said no, a file vanished).
    Io,
    /// The request itself is wrong: a missing tensor, a bad slice, an option
    /// that does not apply, a refusal to overwrite.
    Usage,
    /// The input is valid but uses something this tool does not support.
    Unsupported,
    /// A resource limit of this tool was reached (sizes, counts, depth).
    Limit,
}

impl ErrorClass {
    /// The class's `snake_case` name, as `docs/errors.md` lists it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::InvalidInput => "invalid_input",
            ErrorClass::Io => "io",
            ErrorClass::Usage => "usage",
            ErrorClass::Unsupported => "unsupported",
            ErrorClass::Limit => "limit",
        }
    }
}

/// Stable accessors shared by every library error.
pub trait Diagnostic: std::error::Error {
    /// A stable `snake_case` identifier of what went wrong, documented in
    /// `docs/errors.md` and used as `kind` in JSON output and on Python
    /// exceptions.
    fn kind(&self) -> &'static str;

    /// What class of failure this is.
    fn class(&self) -> ErrorClass;

    /// The file (or folder) the error is about, when there is one.
    fn file(&self) -> Option<&Path> {
        None
    }

    /// The tensor the error is about, when there is one.
    fn tensor(&self) -> Option<&str> {
        None
    }

    /// The byte offset in the file where the problem is, when known.
    fn offset(&self) -> Option<u64> {
        None
    }

    /// The facts of the broken rule beyond [`Diagnostic::file`],
    /// [`Diagnostic::tensor`] and [`Diagnostic::offset`] (lengths, limits,
    /// offsets in the data buffer, ...), as named JSON values. The command
    /// line's JSON error output adds them to its error object.
    fn details(&self) -> serde_json::Map<String, serde_json::Value> {
        serde_json::Map::new()
    }

    /// The whole message: this error's own text, then each of its causes,
    /// joined with `": "`. A variant with a `#[source]` does not repeat that
    /// source in its own text; this is the text to show a user.
    fn message(&self) -> String {
        let mut out = self.to_string();
        let mut next = self.source();
        while let Some(cause) = next {
            push_cause(&mut out, &cause.to_string());
            next = cause.source();
        }
        out
    }
}

/// The message of any error and its causes, joined with `": "`, as
/// [`Diagnostic::message`] does: what to show a user for an error that may
/// not implement [`Diagnostic`] (an I/O error wrapping one, a boxed error).
pub fn chain_message(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(cause) = next {
        push_cause(&mut out, &cause.to_string());
        next = cause.source();
    }
    out
}

/// Appends a cause, unless the text so far already says it (an error from
/// outside the workspace may still embed its source in its own message).
fn push_cause(out: &mut String, cause: &str) {
    if cause.is_empty() || out.contains(cause) {
        return;
    }
    if !out.is_empty() {
        out.push_str(": ");
    }
    out.push_str(cause);
}

/// Support for the error tests of the workspace's crates (not part of the
/// API): each checks its kinds against `docs/errors.md` and snapshots its
/// messages the same way.
#[doc(hidden)]
pub mod testing {
    use super::Diagnostic;

    /// The rows of `doc` (the text of `docs/errors.md`) under the heading
    /// ``## `section` ``, up to the next heading: `(kind, class)`.
    pub fn documented_kinds(doc: &str, section: &str) -> Vec<(String, String)> {
        let heading = format!("## `{section}`");
        let mut rows = Vec::new();
        let mut inside = false;
        for line in doc.lines() {
            if line.starts_with('#') {
                inside = line.trim() == heading;
                continue;
            }
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            if inside && cells.len() > 3 && cells[1].starts_with('`') {
                rows.push((cells[1].trim_matches('`').to_owned(), cells[2].to_owned()));
            }
        }
        rows
    }

    /// An error as its snapshot shows it: `[kind class file= tensor= offset=
    /// {details}]`, then its joined message.
    pub fn facts_and_message(e: &dyn Diagnostic) -> String {
        let mut facts = vec![e.kind().to_owned(), e.class().as_str().to_owned()];
        if let Some(f) = e.file() {
            facts.push(format!("file={}", f.display()));
        }
        if let Some(t) = e.tensor() {
            facts.push(format!("tensor={t:?}"));
        }
        if let Some(o) = e.offset() {
            facts.push(format!("offset={o}"));
        }
        let details = e.details();
        if !details.is_empty() {
            facts.push(serde_json::Value::Object(details).to_string());
        }
        format!("[{}]\n{}\n", facts.join(" "), e.message())
    }
}
