//! # safeweights-scan
//!
//! Finds model files that can run code, by content, and gates CI on a
//! safetensors-only policy.
//!
//! Every file is identified by its bytes, never its extension: pickles (any
//! protocol, also headerless protocol 0), PyTorch zip/legacy/TorchScript,
//! NumPy `.npy`/`.npz`, joblib, Keras `.keras`/HDF5, safetensors, GGUF, ONNX,
//! TensorFlow graphs, zip/tar/gzip containers and zlib/bzip2/xz/`.lzma`
//! streams (as joblib compresses), opened recursively within [`Limits`],
//! also where they hide: a zip after another file's bytes, at the end of a
//! safetensors file, or inside a tensor. A name that claims a format the
//! bytes are not is itself a finding.
//! Keras configs are parsed as JSON and TensorFlow graphs as protobuf, and
//! Jinja chat templates (GGUF metadata, `tokenizer_config.json`, `.jinja`)
//! are tokenized and judged for sandbox escapes; none is run or rendered.
//! Pickles are walked opcode by opcode to the end of the data by a symbolic
//! stack machine that resolves what each global *is* and what each call
//! calls; nothing is ever unpickled or executed. Tensor payloads are never
//! read: files are memory-mapped and only headers, directories and pickles
//! are touched, so a 20 GB checkpoint costs kilobytes of I/O.
//!
//! ```
//! use safeweights_scan::{scan_bytes, exit_code, ScanOptions, Severity};
//!
//! // protocol 0: os.system("echo pwned")
//! let evil = b"cos\nsystem\n(S'echo pwned'\ntR.";
//! let report = scan_bytes("evil.bin", evil, &ScanOptions::new());
//! assert_eq!(report.findings[0].rule, "pickle.global.critical");
//! assert_eq!(exit_code(&report, Severity::Medium), 1);
//! ```
//!
//! Renderers ([`render_human`], [`render_json`], [`render_sarif`]) return
//! strings or write to a `&mut dyn Write`; the library never prints.
#![deny(missing_docs)]
#![deny(unsafe_code)]

mod compat;
mod compressed;
#[cfg(test)]
mod error_kinds;
mod fix;
mod formats;
mod gguf;
mod globals;
mod keras;
mod options;
mod paths;
mod pickle;
mod protobuf;
mod render;
mod report;
mod rules;
mod savedmodel;
mod scanner;
mod severity;
mod template;
mod torch_checks;

use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub use options::{
    read_allowed_globals, AllowedGlobals, InvalidGlobal, Limits, Policy, ScanOptions, UnknownPolicy,
};
pub use render::{
    render_human, render_json, render_sarif, sarif_value, uri_of, write_human, write_json,
    write_report, write_sarif, HumanOptions, OutputFormat, UnknownOutputFormat,
};
pub use report::{
    exit_code, Counts, Finding, Format, Report, ScanError, ScannedFile, Summary, SCHEMA_VERSION,
};
pub use rules::{rule, Rule, RuleId, UnknownRuleId, RULES};
pub use scanner::zip_rule;
pub use severity::{Severity, UnknownSeverity};

/// Scans bytes held in memory; `name` stands for the file in the report.
pub fn scan_bytes(name: &str, data: &[u8], opts: &ScanOptions) -> Report {
    let mut s = scanner::Scanner::new(opts, name.to_string(), None);
    s.report.summary.files = 1;
    s.blob(data, &mut Vec::new(), 0, false);
    s.report.finish();
    s.report
}

/// Scans one file on disk (memory-mapped; only what must be read is read).
pub fn scan_file(path: impl AsRef<Path>, opts: &ScanOptions) -> Report {
    scanner::scan_file(path.as_ref(), opts)
}

/// Scans files and directories (walked recursively in name order, `.git`
/// not entered). Symlinks are followed, to files and to folders, inside the
/// scanned folder or out of it, since a loader opens what they point at: a
/// loop is not entered twice, a folder leading outside the scanned folder is
/// noted (`path.symlink`, info), and the walk stops at [`MAX_WALK_DEPTH`]
/// folders and at [`Limits::max_members`] files per path, with a finding.
/// Unreadable paths land in [`Report::errors`]; broken symlinks, which no
/// loader can open either, are left out.
pub fn scan_paths<P: AsRef<Path>>(paths: &[P], opts: &ScanOptions) -> Report {
    let mut report = Report::new();
    for p in paths {
        let mut files = Vec::new();
        collect(p.as_ref(), opts, &mut files, &mut report);
        for f in files {
            report.merge(scan_file(&f, opts));
        }
    }
    report.finish();
    report
}

/// Deepest folder nesting [`scan_paths`] walks below a path it is given.
pub const MAX_WALK_DEPTH: usize = 64;

fn walk_finding(rule: RuleId, file: &Path, what: String, why: &str) -> Finding {
    Finding {
        severity: rule.rule().severity,
        rule,
        file: file.display().to_string(),
        member: None,
        what,
        why: why.to_owned(),
        offset: None,
        fix: None,
    }
}

/// The files under `p`, depth first in name order (see [`scan_paths`]);
/// `p` itself, whatever it is, is listed unless a folder.
fn collect(p: &Path, opts: &ScanOptions, out: &mut Vec<PathBuf>, report: &mut Report) {
    let root = p.canonicalize().ok();
    let mut walk = walkdir::WalkDir::new(p)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || e.file_name() != ".git");
    let max_files = opts.limits.max_members;
    while let Some(entry) = walk.next() {
        match entry {
            Ok(e) if e.file_type().is_dir() => {
                if e.depth() > 0 && e.path_is_symlink() {
                    if let (Some(root), Ok(target)) = (&root, e.path().canonicalize()) {
                        if !target.starts_with(root) {
                            report.findings.push(walk_finding(
                                RuleId::PathSymlink,
                                e.path(),
                                format!(
                                    "symlinked folder leads outside the scanned folder, to {}: scanned",
                                    target.display()
                                ),
                                "loaders follow the link; its files are judged as part of this folder",
                            ));
                        }
                    }
                }
                if e.depth() >= MAX_WALK_DEPTH {
                    walk.skip_current_dir();
                    report.findings.push(walk_finding(
                        RuleId::LimitDepth,
                        e.path(),
                        format!("folder nesting deeper than {MAX_WALK_DEPTH}: not scanned"),
                        "files below it were not looked at",
                    ));
                }
            }
            Ok(e) => {
                if out.len() >= max_files {
                    report.findings.push(walk_finding(
                        RuleId::LimitMembers,
                        p,
                        format!("more than {max_files} files: the rest were not scanned"),
                        "files past the limit were not looked at",
                    ));
                    return;
                }
                out.push(e.into_path());
            }
            Err(e) if e.loop_ancestor().is_some() => {
                let path = e.path().unwrap_or(p);
                report.findings.push(walk_finding(
                    RuleId::PathSymlink,
                    path,
                    format!(
                        "symlink loop back to {}: not entered twice",
                        e.loop_ancestor().unwrap_or(path).display()
                    ),
                    "every file it reaches is scanned once on the way in",
                ));
            }
            // a broken symlink: no loader can open it either
            Err(e)
                if e.depth() > 0
                    && e.io_error()
                        .is_some_and(|io| io.kind() == io::ErrorKind::NotFound)
                    && e.path().is_some_and(|p| p.symlink_metadata().is_ok()) => {}
            Err(e) => report.errors.push(ScanError {
                file: e.path().unwrap_or(p).display().to_string(),
                message: match e.io_error() {
                    Some(io) => io.to_string(),
                    None => e.to_string(),
                },
            }),
        }
    }
}

/// Everything the `safeweights scan` command needs, parsed.
#[derive(Debug, Clone, Default)]
pub struct ScanCommand {
    /// Files and directories to scan.
    pub paths: Vec<PathBuf>,
    /// Scan options (threshold, policy, limits).
    pub options: ScanOptions,
    /// Output format.
    pub format: OutputFormat,
    /// Human renderer options.
    pub human: HumanOptions,
}

/// Runs a scan command: scans, renders to `out`, and returns the exit code
/// ([`exit_code`] with the options' threshold).
pub fn run(cmd: &ScanCommand, out: &mut dyn Write) -> io::Result<i32> {
    let report = scan_paths(&cmd.paths, &cmd.options);
    write_report(&report, cmd.format, &cmd.human, out)?;
    Ok(cmd.options.exit_code(&report))
}
