//! Hugging Face model folders: `pytorch_model.bin` or
//! `pytorch_model-0000X-of-0000N.bin` + `pytorch_model.bin.index.json` →
//! `model.safetensors` or shards + `model.safetensors.index.json` (and the
//! other libraries' names, component folders and variants found by
//! [`crate::hf_layout`]), other files copied. The output is built in a temporary sibling folder and
//! renamed into place, so a failure leaves nothing behind; the source is
//! only read.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

#[cfg(test)]
use safeweights::sharded::ShardIndex;
use safeweights::sharded::{plan_shards, shard_file_name};
use safeweights::Metadata;

use crate::convert::{
    check_destination, verify_safetensors, write_index, write_safetensors, LEAVES_METADATA_KEY,
};
use crate::error::{io_err, ConvertError, Result};
use crate::hf_layout::{discover, FolderCheckpoint};
use crate::options::{ConvertOptions, ConvertSummary, Phase, SkippedFile};
use crate::source::{MultiSource, TensorSource};
use crate::ties::TieRule;
use crate::torch_source::TorchSource;

#[cfg(test)]
const BIN_INDEX: &str = "pytorch_model.bin.index.json";
const MAX_DEPTH: usize = 16;

fn folder_err(folder: &Path, reason: impl Into<String>) -> ConvertError {
    ConvertError::Folder {
        folder: folder.to_path_buf(),
        reason: reason.into(),
    }
}

/// What becomes of `rel` (a file relative to the root) through the
/// conversion of `checkpoints`: converted (its source), replaced (a file
/// with an output's name), or neither.
fn converted_or_replaced(checkpoints: &[FolderCheckpoint], rel: &Path) -> Option<bool> {
    let name = rel.file_name()?.to_str()?;
    let dir = rel.parent().unwrap_or(Path::new(""));
    checkpoints.iter().find_map(|c| {
        if c.dir != dir {
            None
        } else if c.sources().any(|s| s == rel) {
            Some(true)
        } else if c.is_output_name(name) {
            Some(false)
        } else {
            None
        }
    })
}

fn is_pickle_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib"]
        .iter()
        .any(|e| lower.ends_with(e))
}

/// Lists the files to copy (relative paths) and those skipped: the folder is
/// walked depth first in name order, symlinks followed, `.git` not entered,
/// at most [`MAX_DEPTH`] folders deep.
fn other_files(
    src: &Path,
    checkpoints: &[FolderCheckpoint],
    copy: &mut Vec<PathBuf>,
    skipped: &mut Vec<SkippedFile>,
) -> Result<()> {
    let mut walk = walkdir::WalkDir::new(src)
        .min_depth(1)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter();
    while let Some(item) = walk.next() {
        let item = match item {
            Ok(item) => item,
            Err(e) => {
                let path = e.path().unwrap_or(src).to_path_buf();
                if e.loop_ancestor().is_some() {
                    // a symlink loop: as deep as one goes
                    return Err(folder_err(
                        src,
                        format!("{} is nested too deeply", path.display()),
                    ));
                }
                let io = e
                    .into_io_error()
                    .unwrap_or_else(|| std::io::Error::other("cannot walk the folder"));
                return Err(io_err(path)(io));
            }
        };
        let name = item.file_name().to_string_lossy().into_owned();
        let path = item.path().to_path_buf();
        let Ok(r) = path.strip_prefix(src).map(Path::to_path_buf) else {
            continue; // every entry lies under src
        };
        let kind = item.file_type();
        if kind.is_dir() {
            if name == ".git" {
                walk.skip_current_dir();
                skipped.push(SkippedFile {
                    path,
                    reason: "version control folder".into(),
                });
            } else if item.depth() > MAX_DEPTH {
                return Err(folder_err(
                    src,
                    format!("{} is nested too deeply", path.display()),
                ));
            }
        } else if let Some(converted) = converted_or_replaced(checkpoints, &r) {
            if !converted {
                skipped.push(SkippedFile {
                    path,
                    reason: "replaced by the converted weights".into(),
                });
            }
        } else if is_pickle_name(&name) {
            skipped.push(SkippedFile {
                path,
                reason: "pickle file (may hold code): not copied; convert it on its own".into(),
            });
        } else if kind.is_file() {
            copy.push(r);
        } else {
            skipped.push(SkippedFile {
                path,
                reason: "not a regular file".into(),
            });
        }
    }
    Ok(())
}

/// Converts one checkpoint of the folder into `work` (under its folder),
/// verifies what was written, and adds to the summary.
fn write_checkpoint(
    src: &Path,
    work: &Path,
    checkpoint: &FolderCheckpoint,
    opts: &ConvertOptions,
    summary: &mut ConvertSummary,
    all_written: &mut Vec<PathBuf>,
) -> Result<()> {
    let dir = src.join(&checkpoint.dir);
    let files = &checkpoint.files;
    let mut parts = Vec::new();
    let mut aliases = Vec::new();
    let mut leaves = Vec::new();
    for f in files {
        let t = TorchSource::open_with(&dir.join(f), opts.keep_shared, TieRule::Transformers)?;
        aliases.extend(t.aliases.iter().cloned());
        summary
            .shared_copies
            .extend(t.shared_copies.iter().cloned());
        for l in &t.leaves {
            let mut l = l.clone();
            l.name = format!("{}:{}", checkpoint.dir.join(f).display(), l.name);
            leaves.push(l);
        }
        parts.push(t);
    }
    // the index must agree with the shards
    if let Some((index_name, index)) = &checkpoint.index {
        for (p, f) in files.iter().enumerate() {
            let t = &parts[p];
            let names: BTreeSet<&str> = t
                .entries()
                .iter()
                .map(|e| e.name.as_str())
                .chain(t.aliases.iter().map(|a| a.name.as_str()))
                .collect();
            for (tensor, shard) in &index.weight_map {
                if shard == f && !names.contains(tensor.as_str()) {
                    return Err(folder_err(
                        &dir,
                        format!("{index_name} puts {tensor:?} in {f}, which does not hold it"),
                    ));
                }
            }
        }
    }
    let multi = MultiSource::new(parts, &dir)?;
    let entries = multi.entries();
    let bytes: u64 = entries.iter().map(|e| e.bytes).sum();
    summary.tensors += entries.len();
    summary.bytes += bytes;
    let groups: Vec<Vec<usize>> = match opts.max_shard_size {
        Some(max) => {
            let sizes: Vec<u64> = entries.iter().map(|e| e.bytes).collect();
            plan_shards(&sizes, max)
        }
        None => (0..files.len())
            .map(|p| multi.part_range(p))
            .filter(|g| !g.is_empty())
            .collect(),
    };
    let groups = if groups.is_empty() {
        vec![Vec::new()]
    } else {
        groups
    };
    let count = groups.len();
    let names: Vec<String> = (0..count)
        .map(|g| shard_file_name(&checkpoint.prefix, g, count))
        .collect();
    // metadata: format, aliases in the shard holding the kept tensor, leaves
    let shard_of: HashMap<&str, usize> = groups
        .iter()
        .enumerate()
        .flat_map(|(g, m)| m.iter().map(move |&i| (entries[i].name.as_str(), g)))
        .collect();
    let mut metas = vec![Metadata::new(); count];
    for m in &mut metas {
        m.insert("format".into(), "pt".into());
    }
    for a in &aliases {
        if let Some(&g) = shard_of.get(a.kept.as_str()) {
            metas[g]
                .entry(a.name.clone())
                .or_insert_with(|| a.kept.clone());
        }
    }
    if opts.metadata_leaves && !leaves.is_empty() {
        let obj: serde_json::Map<String, serde_json::Value> = leaves
            .iter()
            .map(|l| (l.name.clone(), l.value.clone()))
            .collect();
        let text = serde_json::Value::Object(obj).to_string();
        for m in &mut metas {
            m.insert(LEAVES_METADATA_KEY.into(), text.clone());
        }
        summary.leaves_in_metadata = true;
    }
    let out_dir = work.join(&checkpoint.dir);
    fs_err::create_dir_all(&out_dir).map_err(io_err(&out_dir))?;
    let mut written = Vec::new();
    write_safetensors(
        &multi,
        &out_dir,
        &names,
        &groups,
        &metas,
        opts,
        &mut written,
    )?;
    if count > 1 {
        let mut map = BTreeMap::new();
        for (n, g) in names.iter().zip(&groups) {
            for &i in g {
                map.insert(entries[i].name.clone(), n.clone());
            }
        }
        let p = out_dir.join(&checkpoint.out_index);
        write_index(&p, map, bytes)?;
        written.push(p);
    }
    // verify what was written against the source
    verify_safetensors(&multi, &written, opts)?;
    summary.dropped_aliases.extend(aliases);
    summary.non_tensor_leaves.extend(leaves);
    all_written.extend(written);
    Ok(())
}

pub(crate) fn convert_folder(
    src: &Path,
    dst: &Path,
    opts: &ConvertOptions,
) -> Result<ConvertSummary> {
    check_destination(src, dst, opts)?;
    if let (Ok(s), Some(parent)) = (src.canonicalize(), dst.parent()) {
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        if parent.canonicalize().is_ok_and(|p| p.starts_with(&s)) {
            return Err(folder_err(
                src,
                "the destination lies inside the source folder",
            ));
        }
    }
    if dst.exists() && !dst.is_dir() {
        return Err(ConvertError::Unsupported {
            file: dst.to_path_buf(),
            reason: "destination exists and is not a folder".into(),
        });
    }
    let checkpoints = discover(src)?;
    let mut summary = ConvertSummary {
        source: src.to_path_buf(),
        destination: dst.to_path_buf(),
        source_format: "hf-folder".into(),
        target_format: "hf-folder".into(),
        ..Default::default()
    };
    // build in a temporary sibling folder
    let parent = match dst.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs_err::create_dir_all(&parent).map_err(io_err(&parent))?;
    let dst_name = dst
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{dst_name}."))
        .suffix(".tmp")
        .tempdir_in(&parent)
        .map_err(io_err(&parent))?;
    let work = tmp.path().to_path_buf();
    let mut written = Vec::new();
    for checkpoint in &checkpoints {
        write_checkpoint(src, &work, checkpoint, opts, &mut summary, &mut written)?;
    }
    // copy the other files
    let mut copy = Vec::new();
    other_files(src, &checkpoints, &mut copy, &mut summary.files_skipped)?;
    let copy_total = copy.len() as u64;
    for (k, rel) in copy.iter().enumerate() {
        let from = src.join(rel);
        let to = work.join(rel);
        opts.report(Phase::Copying, &rel.to_string_lossy(), k as u64, copy_total);
        if let Some(p) = to.parent() {
            fs_err::create_dir_all(p).map_err(io_err(p))?;
        }
        fs_err::copy(&from, &to).map_err(io_err(&from))?;
    }
    // move into place
    let mut backup = None;
    if dst.exists() {
        let b = tempfile::Builder::new()
            .prefix(&format!(".{dst_name}.old."))
            .tempdir_in(&parent)
            .map_err(io_err(&parent))?;
        let b = b.keep();
        fs_err::remove_dir(&b).map_err(io_err(&b))?;
        fs_err::rename(dst, &b).map_err(io_err(dst))?;
        backup = Some(b);
    }
    let work = tmp.keep();
    if let Err(e) = fs_err::rename(&work, dst) {
        if let Some(b) = &backup {
            let _ = fs_err::rename(b, dst);
        }
        let _ = fs_err::remove_dir_all(&work);
        return Err(io_err(dst)(e));
    }
    if let Some(b) = backup {
        let _ = fs_err::remove_dir_all(b);
    }
    summary.files_written = written
        .iter()
        .filter_map(|p| p.strip_prefix(&work).ok().map(|r| dst.join(r)))
        .collect();
    summary.files_copied = copy.iter().map(|r| dst.join(r)).collect();
    summary.verified = true;
    Ok(summary)
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests build fixtures with std::fs.
mod tests {
    use super::*;

    /// Files to copy, and skipped files with their reasons.
    type Listing = (Vec<PathBuf>, Vec<(PathBuf, String)>);

    fn list(src: &Path, weights: &[&str]) -> Result<Listing> {
        // the folder's checkpoint: these weights and the index
        let checkpoints = [FolderCheckpoint {
            dir: PathBuf::new(),
            files: weights.iter().map(|w| w.to_string()).collect(),
            index: Some((BIN_INDEX.into(), ShardIndex::default())),
            prefix: "model".into(),
            out_index: "model.safetensors.index.json".into(),
        }];
        let (mut copy, mut skipped) = (Vec::new(), Vec::new());
        other_files(src, &checkpoints, &mut copy, &mut skipped)?;
        let skipped = skipped
            .into_iter()
            .map(|s| (s.path.strip_prefix(src).unwrap().to_path_buf(), s.reason))
            .collect();
        Ok((copy, skipped))
    }

    #[test]
    fn other_files_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path();
        for d in ["sub", "sub/deep", ".git", "Z"] {
            std::fs::create_dir(src.join(d)).unwrap();
        }
        for f in [
            "pytorch_model.bin",
            BIN_INDEX,
            "model.safetensors",
            "config.json",
            "sub/model.safetensors",
            "sub/deep/x.txt",
            "sub/extra.pt",
            ".git/HEAD",
            "Z/a",
            ".gitattributes",
        ] {
            std::fs::write(src.join(f), b"x").unwrap();
        }
        std::os::unix::fs::symlink(src.join("sub"), src.join("linked")).unwrap();
        let (copy, skipped) = list(src, &["pytorch_model.bin"]).unwrap();
        let copy: Vec<&str> = copy.iter().map(|p| p.to_str().unwrap()).collect();
        assert_eq!(
            copy,
            [
                ".gitattributes",
                "Z/a",
                "config.json",
                "linked/deep/x.txt",
                "linked/model.safetensors",
                "sub/deep/x.txt",
                "sub/model.safetensors"
            ]
        );
        let skipped: Vec<(&str, &str)> = skipped
            .iter()
            .map(|(p, r)| (p.to_str().unwrap(), &r[..10]))
            .collect();
        assert_eq!(
            skipped,
            [
                (".git", "version co"),
                ("linked/extra.pt", "pickle fil"),
                ("model.safetensors", "replaced b"),
                ("sub/extra.pt", "pickle fil"),
            ]
        );
    }

    #[test]
    fn other_files_refuse_deep_folders_and_loops() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path();
        let deep: PathBuf = (0..MAX_DEPTH).map(|i| format!("d{i}")).collect();
        std::fs::create_dir_all(src.join(&deep)).unwrap();
        std::fs::write(src.join(&deep).join("f"), b"x").unwrap();
        let (copy, _) = list(src, &[]).unwrap();
        assert_eq!(copy, [deep.join("f")]);
        std::fs::create_dir(src.join(&deep).join("one-more")).unwrap();
        let err = list(src, &[]).unwrap_err().to_string();
        assert!(err.contains("one-more is nested too deeply"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let src = dir.path();
        std::fs::create_dir(src.join("a")).unwrap();
        std::os::unix::fs::symlink(src.join("a"), src.join("a/loop")).unwrap();
        let err = list(src, &[]).unwrap_err().to_string();
        assert!(err.contains("is nested too deeply"), "{err}");
        // a broken link is an I/O error that names it
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(dir.path().join("missing"), dir.path().join("broken")).unwrap();
        let err = list(dir.path(), &[]).unwrap_err().to_string();
        assert!(err.contains("broken"), "{err}");
    }
}
