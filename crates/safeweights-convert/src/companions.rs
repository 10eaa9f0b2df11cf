//! The other files of a model folder (`config.json`, tokenizer files,
//! `generation_config.json` ...): which are copied beside converted or
//! rewritten weights, and how safely.
//!
//! The output of a conversion is meant to be shared, so nothing may leave
//! the source folder through it and nothing in it may run code:
//! - **Symlinks** are followed only when their target resolves inside the
//!   source folder, or inside the `blobs/` folder of the Hugging Face cache
//!   repository the folder is a snapshot of (`snapshots/REV/x ->
//!   ../../blobs/HASH`). A link that leaves, a directory link back to one of
//!   its ancestors (a loop) and a link the OS cannot resolve for looping are
//!   skipped and listed with the reason; a broken link is an error naming it.
//! - **Content** is judged by the scanner (`safeweights-scan`) before
//!   copying: pickles of every kind (also inside zips, whatever the file's
//!   name), NumPy object arrays, and anything the scanner reports at medium
//!   or above are refused and listed; the finished output is scanned again
//!   ([`judge_output`]) before success is reported.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use safeweights_scan::{Format, RuleId, ScanOptions, Severity};

use crate::error::{io_err, ConvertError, Result};
use crate::options::SkippedFile;

/// Deepest folder nesting walked below the source folder.
pub(crate) const MAX_DEPTH: usize = 16;

/// Whether and why a file the walk meets is not a companion.
pub(crate) enum Exclude {
    /// Left out without a word (the weights being converted).
    Silently,
    /// Left out and listed with this reason.
    Because(String),
}

/// A file to copy: where it goes (relative to the output) and the resolved
/// path it is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Companion {
    /// Relative path in the source folder (and in the output).
    pub rel: PathBuf,
    /// The file read: the path itself, or a symlink's resolved target.
    pub from: PathBuf,
}

/// Where symlinks may point: the source folder itself and, for a snapshot
/// of a Hugging Face cache repository, that repository's `blobs/` folder.
fn allowed_roots(root: &Path) -> Vec<PathBuf> {
    let mut roots = vec![root.to_path_buf()];
    for a in root.ancestors().skip(1) {
        if a.file_name().is_some_and(|n| n == "snapshots") {
            if let Some(repo) = a.parent() {
                let blobs = repo.join("blobs");
                if blobs.is_dir() {
                    roots.push(blobs);
                }
            }
            break;
        }
    }
    roots
}

/// Where `path` (a file in `src`) resolves, when that stays within the
/// places symlinks of `src` may point to (see [`allowed_roots`]); `None`
/// when it leaves them or cannot be resolved.
pub(crate) fn resolve_inside(src: &Path, path: &Path) -> Option<PathBuf> {
    let root = src.canonicalize().ok()?;
    let target = path.canonicalize().ok()?;
    allowed_roots(&root)
        .iter()
        .any(|r| target.starts_with(r))
        .then_some(target)
}

struct Walk<'a> {
    src: &'a Path,
    roots: Vec<PathBuf>,
    exclude: &'a dyn Fn(&Path, bool) -> Option<Exclude>,
    copy: Vec<Companion>,
    skipped: Vec<SkippedFile>,
}

impl Walk<'_> {
    fn skip(&mut self, path: PathBuf, reason: impl Into<String>) {
        self.skipped.push(SkippedFile {
            path,
            reason: reason.into(),
        });
    }

    /// Walks `dir` (the folder at `path`, resolved to `real`) in name order.
    fn dir(&mut self, path: &Path, rel: &Path, ancestors: &mut Vec<PathBuf>) -> Result<()> {
        let mut entries: Vec<fs_err::DirEntry> = fs_err::read_dir(path)
            .map_err(io_err(path))?
            .collect::<std::io::Result<_>>()
            .map_err(io_err(path))?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name_os = entry.file_name();
            let name = name_os.to_string_lossy().into_owned();
            let path = entry.path();
            let rel = rel.join(&name_os);
            let top = ancestors.len() == 1;
            let kind = entry.file_type().map_err(io_err(&path))?;
            let (real, is_dir, is_file) = if kind.is_symlink() {
                let target = match path.canonicalize() {
                    Ok(t) => t,
                    // a broken link: an error naming it
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(io_err(&path)(e))
                    }
                    // a loop of links (ELOOP) or an unreadable folder
                    Err(e) => {
                        self.skip(
                            path,
                            format!("symlink cannot be resolved ({e}): not followed"),
                        );
                        continue;
                    }
                };
                if !self.roots.iter().any(|r| target.starts_with(r)) {
                    self.skip(
                        path,
                        format!(
                            "symlink to {} leaves the source folder: not copied",
                            target.display()
                        ),
                    );
                    continue;
                }
                let meta = fs_err::metadata(&target).map_err(io_err(&path))?;
                (target, meta.is_dir(), meta.is_file())
            } else {
                (path.clone(), kind.is_dir(), kind.is_file())
            };
            if is_dir {
                if name == ".git" {
                    self.skip(path, "version control folder");
                    continue;
                }
                if ancestors.len() > MAX_DEPTH {
                    return Err(ConvertError::Folder {
                        folder: self.src.to_path_buf(),
                        reason: format!("{} is nested too deeply", path.display()),
                    });
                }
                let real = real.canonicalize().map_err(io_err(&path))?;
                if ancestors.contains(&real) {
                    self.skip(
                        path,
                        format!(
                            "symlink loop: {} is a folder above it; not followed",
                            real.display()
                        ),
                    );
                    continue;
                }
                ancestors.push(real);
                let walked = self.dir(&path, &rel, ancestors);
                ancestors.pop();
                walked?;
            } else if let Some(why) = (self.exclude)(&rel, top) {
                if let Exclude::Because(reason) = why {
                    self.skip(path, reason);
                }
            } else if is_file {
                self.copy.push(Companion { rel, from: real });
            } else {
                self.skip(path, "not a regular file");
            }
        }
        Ok(())
    }
}

/// Lists the files of `src` to copy and those left out, depth first in
/// name order, `.git` not entered, at most [`MAX_DEPTH`] folders deep, with
/// the symlink rules of the module documentation. `exclude(rel, top)`
/// decides about weight files (`rel`: the path under `src`; `top`: directly
/// in `src`).
pub(crate) fn list(
    src: &Path,
    exclude: &dyn Fn(&Path, bool) -> Option<Exclude>,
) -> Result<(Vec<Companion>, Vec<SkippedFile>)> {
    let root = src.canonicalize().map_err(io_err(src))?;
    let mut walk = Walk {
        src,
        roots: allowed_roots(&root),
        exclude,
        copy: Vec::new(),
        skipped: Vec::new(),
    };
    walk.dir(src, Path::new(""), &mut vec![root])?;
    Ok((walk.copy, walk.skipped))
}

/// Formats that are pickles underneath: loading them runs code.
fn runs_code(format: Format) -> bool {
    matches!(
        format,
        Format::Pickle
            | Format::PytorchZip
            | Format::PytorchLegacy
            | Format::Torchscript
            | Format::Joblib
    )
}

/// Why the scanner's verdict on `path` keeps it out of a "safe" output, or
/// `None` when it may be copied: unreadable, a pickle of any kind anywhere
/// in it, a NumPy object array, or any finding at medium or above.
pub fn judge(path: &Path) -> Option<String> {
    let report = safeweights_scan::scan_file(path, &ScanOptions::new());
    if let Some(e) = report.errors.first() {
        return Some(format!("could not be scanned: {}", e.message));
    }
    if let Some(f) = report.files.iter().find(|f| runs_code(f.format)) {
        let at = f
            .member
            .as_ref()
            .map(|m| format!(" (member {m})"))
            .unwrap_or_default();
        return Some(format!(
            "holds a {} pickle{at}, which runs code when loaded: not copied; convert it on its own",
            f.format
        ));
    }
    if let Some(f) = report
        .findings
        .iter()
        .find(|f| f.rule == RuleId::NpyObjectArray)
    {
        return Some(format!(
            "{}: a NumPy object array is a pickle (runs code with allow_pickle=True): not copied",
            f.location()
        ));
    }
    if let Some(f) = report.at_or_above(Severity::Medium).next() {
        return Some(format!(
            "the scanner reports {} {}: {}: not copied",
            f.severity.as_str(),
            f.rule,
            f.what
        ));
    }
    None
}

/// Scans every file under `dir` (a finished output) with [`judge`]; the
/// first refusal is an error.
pub(crate) fn judge_output(dir: &Path) -> Result<()> {
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(dir).to_path_buf();
            io_err(path)(
                e.into_io_error()
                    .unwrap_or_else(|| std::io::Error::other("cannot walk the folder")),
            )
        })?;
        if entry.file_type().is_dir() {
            continue;
        }
        if let Some(reason) = judge(entry.path()) {
            return Err(ConvertError::UnsafeOutput {
                file: entry.path().to_path_buf(),
                reason,
            });
        }
    }
    Ok(())
}

/// Copies `files` into `dst` (folders created), judging each first: the
/// relative paths copied, and the refused ones added to `skipped`.
pub(crate) fn copy_judged(
    src: &Path,
    dst: &Path,
    files: &[Companion],
    skipped: &mut Vec<SkippedFile>,
    mut progress: impl FnMut(&Path, usize),
) -> Result<Vec<PathBuf>> {
    let mut copied = Vec::new();
    for (k, c) in files.iter().enumerate() {
        progress(&c.rel, k);
        if let Some(reason) = judge(&c.from) {
            skipped.push(SkippedFile {
                path: src.join(&c.rel),
                reason,
            });
            continue;
        }
        let to = dst.join(&c.rel);
        if let Some(p) = to.parent() {
            fs_err::create_dir_all(p).map_err(io_err(p))?;
        }
        fs_err::copy(&c.from, &to).map_err(io_err(&c.from))?;
        copied.push(c.rel.clone());
    }
    Ok(copied)
}

/// What [`copy_companion_files`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Companions {
    /// Files copied, as paths in the destination folder.
    pub copied: Vec<PathBuf>,
    /// Files of the source folder left out, with the reason.
    pub skipped: Vec<SkippedFile>,
}

/// Whether `name` (directly in the folder) is a safetensors weights file or
/// index, which a reshard or merge writes itself.
fn is_safetensors_weights(name: &str) -> bool {
    name.ends_with(".safetensors") || name.ends_with(".safetensors.index.json")
}

/// Copies the other files of the model folder `src` (configuration,
/// tokenizer, generation config ...) into `dst`, for commands that rewrite
/// a folder's safetensors weights (`reshard`, `merge`), with the rules of
/// folder conversion: symlinks only within the folder (or its Hugging Face
/// cache repository), every file judged by the scanner, pickles never
/// copied. The safetensors weights and indexes directly in `src` are left
/// out (the command writes its own). A file already in `dst` is replaced
/// only when `replace` is set, else left alone and listed. Nothing is
/// copied when `src` and `dst` are the same folder.
///
/// # Errors
/// An I/O error naming the file, a broken symlink, a folder nested deeper
/// than 16.
pub fn copy_companion_files(src: &Path, dst: &Path, replace: bool) -> Result<Companions> {
    if let (Ok(a), Ok(b)) = (src.canonicalize(), dst.canonicalize()) {
        if a == b {
            return Ok(Companions::default());
        }
    }
    let exclude = |rel: &Path, top: bool| -> Option<Exclude> {
        let name = rel.file_name()?.to_str()?;
        if top && is_safetensors_weights(name) {
            Some(Exclude::Silently)
        } else if is_pickle_name(name) {
            Some(Exclude::Because(
                "pickle file (may hold code): not copied; convert it on its own".into(),
            ))
        } else {
            None
        }
    };
    let (files, mut skipped) = list(src, &exclude)?;
    let mut todo = Vec::new();
    for c in files {
        let to = dst.join(&c.rel);
        if !replace && fs_err::symlink_metadata(&to).is_ok() {
            skipped.push(SkippedFile {
                path: src.join(&c.rel),
                reason: format!("{} already exists: not replaced", to.display()),
            });
        } else {
            todo.push(c);
        }
    }
    let copied = copy_judged(src, dst, &todo, &mut skipped, |_, _| {})?;
    Ok(Companions {
        copied: copied.iter().map(|r| dst.join(r)).collect(),
        skipped,
    })
}

/// File names of pickle formats, never copied whatever their content.
pub(crate) fn is_pickle_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib"]
        .iter()
        .any(|e| lower.ends_with(e))
}

/// The relative paths of every file under `dir` (regular or not).
pub(crate) fn files_under(dir: &Path) -> Result<BTreeSet<PathBuf>> {
    let mut out = BTreeSet::new();
    for entry in walkdir::WalkDir::new(dir).min_depth(1).sort_by_file_name() {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(dir).to_path_buf();
            io_err(path)(
                e.into_io_error()
                    .unwrap_or_else(|| std::io::Error::other("cannot walk the folder")),
            )
        })?;
        if entry.file_type().is_dir() {
            continue;
        }
        if let Ok(r) = entry.path().strip_prefix(dir) {
            out.insert(r.to_path_buf());
        }
    }
    Ok(out)
}
