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

use crate::companions::{self, is_pickle_name, Companion, Exclude};
use crate::convert::{
    check_destination, check_zip_anomalies, verify_safetensors, write_index, write_safetensors,
    LEAVES_METADATA_KEY,
};
use crate::error::{io_err, ConvertError, Result};
use crate::hf_layout::{discover, FolderCheckpoint};
use crate::options::{ConvertOptions, ConvertSummary, Phase, SkippedFile};
use crate::source::{MultiSource, TensorSource};
use crate::ties::TieRule;
use crate::torch_source::TorchSource;

#[cfg(test)]
const BIN_INDEX: &str = "pytorch_model.bin.index.json";

/// Suffix of the folder a conversion is built in, beside its destination.
const STAGE_SUFFIX: &str = ".sw-stage";

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

/// Lists the files to copy and those skipped (see [`crate::companions`] for
/// the symlink and depth rules): the weights being converted are left out
/// silently, files an output replaces and pickles with a reason.
fn other_files(
    src: &Path,
    checkpoints: &[FolderCheckpoint],
    copy: &mut Vec<Companion>,
    skipped: &mut Vec<SkippedFile>,
) -> Result<()> {
    let exclude = |rel: &Path, _top: bool| -> Option<Exclude> {
        match converted_or_replaced(checkpoints, rel) {
            Some(true) => Some(Exclude::Silently),
            Some(false) => Some(Exclude::Because("replaced by the converted weights".into())),
            None if rel
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(is_pickle_name) =>
            {
                Some(Exclude::Because(
                    "pickle file (may hold code): not copied; convert it on its own".into(),
                ))
            }
            None => None,
        }
    };
    let (c, s) = companions::list(src, &exclude)?;
    copy.extend(c);
    skipped.extend(s);
    Ok(())
}

/// Where a converted folder may go: not onto the source, not inside it, not
/// onto a folder that holds it; an existing folder only with `overwrite`.
fn check_folder_destination(src: &Path, dst: &Path, opts: &ConvertOptions) -> Result<()> {
    check_destination(src, dst, opts)?;
    let Ok(s) = src.canonicalize() else {
        return Ok(());
    };
    if let Ok(d) = dst.canonicalize() {
        if s.starts_with(&d) {
            return Err(folder_err(
                dst,
                format!(
                    "the destination holds the source folder {}: replacing it would delete the source",
                    src.display()
                ),
            ));
        }
    }
    if let Some(parent) = dst.parent() {
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
    Ok(())
}

/// The files of the existing destination `dst` that replacing it removes,
/// when every one is something a conversion writes (`ours`: what this one
/// writes, paths under the destination; or converted weights of the
/// folder's checkpoints under another shard count): `dst` is then
/// recognisably an earlier output. Any other file is an error naming it.
fn replaceable(
    dst: &Path,
    ours: &BTreeSet<PathBuf>,
    checkpoints: &[FolderCheckpoint],
) -> Result<Vec<PathBuf>> {
    let present = companions::files_under(dst)?;
    let earlier_output = |r: &Path| {
        let dir = r.parent().unwrap_or(Path::new(""));
        let name = r.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        checkpoints
            .iter()
            .any(|c| c.dir == dir && c.is_output_name(name))
    };
    let foreign: Vec<&PathBuf> = present
        .iter()
        .filter(|r| !ours.contains(*r) && !earlier_output(r))
        .collect();
    if !foreign.is_empty() {
        let shown: Vec<String> = foreign
            .iter()
            .take(5)
            .map(|r| r.display().to_string())
            .collect();
        let more = if foreign.len() > 5 {
            format!(" and {} more", foreign.len() - 5)
        } else {
            String::new()
        };
        return Err(ConvertError::DestinationNotOurs {
            path: dst.to_path_buf(),
            files: shown.join(", ") + &more,
        });
    }
    Ok(present.into_iter().collect())
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
        let path = dir.join(f);
        // weights are read only where the files copied beside them may be
        if companions::resolve_inside(src, &path).is_none() {
            return Err(folder_err(
                src,
                format!(
                    "weights file {:?} resolves outside the source folder (a symlink that leaves it)",
                    checkpoint.dir.join(f)
                ),
            ));
        }
        check_zip_anomalies(&path, opts)?;
        let t = TorchSource::open_with(&path, opts.keep_shared, TieRule::Transformers)?;
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
    check_folder_destination(src, dst, opts)?;
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
    // Named so that a later conversion to the same place removes it if this
    // one is killed before it cleans up.
    safeweights::remove_stale_siblings(dst, STAGE_SUFFIX);
    let tmp = tempfile::Builder::new()
        .prefix(&safeweights::temp_sibling_prefix(dst))
        .suffix(STAGE_SUFFIX)
        .tempdir_in(&parent)
        .map_err(io_err(&parent))?;
    let work = tmp.path().to_path_buf();
    let mut written = Vec::new();
    for checkpoint in &checkpoints {
        write_checkpoint(src, &work, checkpoint, opts, &mut summary, &mut written)?;
    }
    // the other files, each judged by the scanner before it is copied
    let mut copy = Vec::new();
    other_files(src, &checkpoints, &mut copy, &mut summary.files_skipped)?;
    let copy_total = copy.len() as u64;
    let copied =
        companions::copy_judged(src, &work, &copy, &mut summary.files_skipped, |rel, k| {
            opts.report(Phase::Copying, &rel.to_string_lossy(), k as u64, copy_total);
        })?;
    // nothing in the finished output may run code
    companions::judge_output(&work)?;
    // an existing destination is replaced only when it holds nothing but
    // what this conversion writes
    if dst.exists() {
        let ours: BTreeSet<PathBuf> = written
            .iter()
            .filter_map(|p| p.strip_prefix(&work).ok().map(Path::to_path_buf))
            .chain(copied.iter().cloned())
            .collect();
        summary.files_removed = replaceable(dst, &ours, &checkpoints)?
            .into_iter()
            .map(|r| dst.join(r))
            .collect();
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
    summary.files_copied = copied.iter().map(|r| dst.join(r)).collect();
    summary.verified = true;
    Ok(summary)
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests build fixtures with std::fs.
mod tests {
    use super::*;
    use crate::companions::MAX_DEPTH;

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
        let copy = copy.into_iter().map(|c| c.rel).collect();
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
        // issue 21: a symlink loop is skipped and reported, not fatal
        let (copy, skipped) = list(src, &[]).unwrap();
        assert!(copy.is_empty());
        assert_eq!(skipped.len(), 1);
        assert_eq!(skipped[0].0, Path::new("a/loop"));
        assert!(skipped[0].1.starts_with("symlink loop"), "{skipped:?}");
        // a broken link is an I/O error that names it
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(dir.path().join("missing"), dir.path().join("broken")).unwrap();
        let err = list(dir.path(), &[]).unwrap_err().to_string();
        assert!(err.contains("broken"), "{err}");
    }
}
