//! Hugging Face model folders: `pytorch_model.bin` or
//! `pytorch_model-0000X-of-0000N.bin` + `pytorch_model.bin.index.json` →
//! `model.safetensors` or shards + `model.safetensors.index.json`, other
//! files copied. The output is built in a temporary sibling folder and
//! renamed into place, so a failure leaves nothing behind; the source is
//! only read.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Component, Path, PathBuf};

use safeweights::sharded::{plan_shards, shard_file_name, ShardIndex};
use safeweights::Metadata;

use crate::companions::{self, is_pickle_name, Companion, Exclude};
use crate::convert::{
    check_destination, check_zip_anomalies, verify_safetensors, write_index, write_safetensors,
    LEAVES_METADATA_KEY,
};
use crate::error::{io_err, ConvertError, Result};
use crate::options::{ConvertOptions, ConvertSummary, Phase, SkippedFile};
use crate::source::{MultiSource, TensorSource};
use crate::torch_source::TorchSource;

const BIN_INDEX: &str = "pytorch_model.bin.index.json";
const BIN_SINGLE: &str = "pytorch_model.bin";

fn folder_err(folder: &Path, reason: impl Into<String>) -> ConvertError {
    ConvertError::Folder {
        folder: folder.to_path_buf(),
        reason: reason.into(),
    }
}

fn plain_name(name: &str) -> bool {
    let p = Path::new(name);
    let mut c = p.components();
    matches!((c.next(), c.next()), (Some(Component::Normal(_)), None))
}

/// The weight files of a folder, in order, and the index (if sharded).
/// Each must resolve inside the folder (or its Hugging Face cache
/// repository's blobs), as the files copied beside them must.
fn weight_files(src: &Path) -> Result<(Vec<String>, Option<ShardIndex>)> {
    let (files, index) = weight_files_unchecked(src)?;
    for f in &files {
        if companions::resolve_inside(src, &src.join(f)).is_none() {
            return Err(folder_err(
                src,
                format!("weights file {f:?} resolves outside the source folder (a symlink that leaves it)"),
            ));
        }
    }
    Ok((files, index))
}

fn weight_files_unchecked(src: &Path) -> Result<(Vec<String>, Option<ShardIndex>)> {
    let index_path = src.join(BIN_INDEX);
    if index_path.is_file() {
        let text = std::fs::read_to_string(&index_path).map_err(io_err(&index_path))?;
        let index =
            ShardIndex::parse(&text).map_err(|e| folder_err(src, format!("{BIN_INDEX}: {e}")))?;
        let files: BTreeSet<&String> = index.weight_map.values().collect();
        if files.is_empty() {
            return Err(folder_err(src, format!("{BIN_INDEX} lists no weights")));
        }
        for f in &files {
            if !plain_name(f) {
                return Err(folder_err(
                    src,
                    format!("{BIN_INDEX} names shard {f:?}, which is not a plain file name"),
                ));
            }
            if !src.join(f).is_file() {
                return Err(folder_err(
                    src,
                    format!("shard {f:?} named by {BIN_INDEX} is missing"),
                ));
            }
        }
        let files = files.into_iter().cloned().collect();
        return Ok((files, Some(index)));
    }
    if src.join(BIN_SINGLE).is_file() {
        return Ok((vec![BIN_SINGLE.into()], None));
    }
    Err(folder_err(
        src,
        format!("no {BIN_SINGLE} or {BIN_INDEX}: not a PyTorch Hugging Face model folder"),
    ))
}

fn is_output_name(name: &str) -> bool {
    name == "model.safetensors"
        || name == "model.safetensors.index.json"
        || (name.starts_with("model-") && name.ends_with(".safetensors"))
}

/// Lists the files to copy and those skipped (see [`crate::companions`] for
/// the symlink and depth rules): the weights being converted are left out
/// silently, an existing safetensors output and pickles with a reason.
fn other_files(
    src: &Path,
    weights: &BTreeSet<String>,
    copy: &mut Vec<Companion>,
    skipped: &mut Vec<SkippedFile>,
) -> Result<()> {
    let exclude = |name: &str, top: bool| -> Option<Exclude> {
        if top && (weights.contains(name) || name == BIN_INDEX) {
            Some(Exclude::Silently) // converted
        } else if top && is_output_name(name) {
            Some(Exclude::Because("replaced by the converted weights".into()))
        } else if is_pickle_name(name) {
            Some(Exclude::Because(
                "pickle file (may hold code): not copied; convert it on its own".into(),
            ))
        } else {
            None
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
/// when every one is something a conversion writes (converted weights,
/// their index, or a file this run copies to the same place): `dst` is then
/// recognisably an earlier output. Any other file is an error naming it.
fn replaceable(dst: &Path, ours: &BTreeSet<PathBuf>) -> Result<Vec<PathBuf>> {
    let present = companions::files_under(dst)?;
    let foreign: Vec<&PathBuf> = present
        .iter()
        .filter(|r| {
            let name = r.to_string_lossy();
            !(ours.contains(*r) || (r.components().count() == 1 && is_output_name(&name)))
        })
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

pub(crate) fn convert_folder(
    src: &Path,
    dst: &Path,
    opts: &ConvertOptions,
) -> Result<ConvertSummary> {
    check_folder_destination(src, dst, opts)?;
    let (files, index) = weight_files(src)?;
    let mut summary = ConvertSummary {
        source: src.to_path_buf(),
        destination: dst.to_path_buf(),
        source_format: "hf-folder".into(),
        target_format: "hf-folder".into(),
        ..Default::default()
    };
    let mut parts = Vec::new();
    for f in &files {
        check_zip_anomalies(&src.join(f), opts)?;
        let t = TorchSource::open(&src.join(f), opts.keep_shared)?;
        summary.dropped_aliases.extend(t.aliases.iter().cloned());
        summary
            .shared_copies
            .extend(t.shared_copies.iter().cloned());
        for l in &t.leaves {
            let mut l = l.clone();
            l.name = format!("{f}:{}", l.name);
            summary.non_tensor_leaves.push(l);
        }
        parts.push(t);
    }
    // the index must agree with the shards
    if let Some(index) = &index {
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
                        src,
                        format!("{BIN_INDEX} puts {tensor:?} in {f}, which does not hold it"),
                    ));
                }
            }
        }
    }
    let multi = MultiSource::new(parts, src)?;
    let entries = multi.entries();
    summary.tensors = entries.len();
    summary.bytes = entries.iter().map(|e| e.bytes).sum();
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
        .map(|g| shard_file_name("model", g, count))
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
    for a in &summary.dropped_aliases {
        if let Some(&g) = shard_of.get(a.kept.as_str()) {
            metas[g]
                .entry(a.name.clone())
                .or_insert_with(|| a.kept.clone());
        }
    }
    if opts.metadata_leaves && !summary.non_tensor_leaves.is_empty() {
        let obj: serde_json::Map<String, serde_json::Value> = summary
            .non_tensor_leaves
            .iter()
            .map(|l| (l.name.clone(), l.value.clone()))
            .collect();
        let text = serde_json::Value::Object(obj).to_string();
        for m in &mut metas {
            m.insert(LEAVES_METADATA_KEY.into(), text.clone());
        }
        summary.leaves_in_metadata = true;
    }
    // the other files to copy; an existing destination is replaced only
    // when it holds nothing but what this conversion writes
    let weights: BTreeSet<String> = files.iter().cloned().collect();
    let mut copy = Vec::new();
    other_files(src, &weights, &mut copy, &mut summary.files_skipped)?;
    if dst.exists() {
        let ours: BTreeSet<PathBuf> = names
            .iter()
            .map(PathBuf::from)
            .chain(copy.iter().map(|c| c.rel.clone()))
            .collect();
        summary.files_removed = replaceable(dst, &ours)?
            .into_iter()
            .map(|r| dst.join(r))
            .collect();
    }
    // build in a temporary sibling folder
    let parent = match dst.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(io_err(&parent))?;
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
    write_safetensors(&multi, &work, &names, &groups, &metas, opts, &mut written)?;
    if count > 1 {
        let mut map = BTreeMap::new();
        for (n, g) in names.iter().zip(&groups) {
            for &i in g {
                map.insert(entries[i].name.clone(), n.clone());
            }
        }
        let p = work.join("model.safetensors.index.json");
        write_index(&p, map, summary.bytes)?;
        written.push(p);
    }
    // copy the other files, each judged by the scanner first
    let copy_total = copy.len() as u64;
    let copied =
        companions::copy_judged(src, &work, &copy, &mut summary.files_skipped, |rel, k| {
            opts.report(Phase::Copying, &rel.to_string_lossy(), k as u64, copy_total);
        })?;
    // verify everything written against the source
    verify_safetensors(&multi, &written, opts)?;
    // nothing in the finished output may run code
    companions::judge_output(&work)?;
    // move into place
    let mut backup = None;
    if dst.exists() {
        let b = tempfile::Builder::new()
            .prefix(&format!(".{dst_name}.old."))
            .tempdir_in(&parent)
            .map_err(io_err(&parent))?;
        let b = b.keep();
        std::fs::remove_dir(&b).map_err(io_err(&b))?;
        std::fs::rename(dst, &b).map_err(io_err(dst))?;
        backup = Some(b);
    }
    let work = tmp.keep();
    if let Err(e) = std::fs::rename(&work, dst) {
        if let Some(b) = &backup {
            let _ = std::fs::rename(b, dst);
        }
        let _ = std::fs::remove_dir_all(&work);
        return Err(io_err(dst)(e));
    }
    if let Some(b) = backup {
        let _ = std::fs::remove_dir_all(b);
    }
    summary.files_written = written
        .iter()
        .filter_map(|p| p.file_name().map(|n| dst.join(n)))
        .collect();
    summary.files_copied = copied.iter().map(|r| dst.join(r)).collect();
    summary.verified = true;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::companions::MAX_DEPTH;

    /// Files to copy, and skipped files with their reasons.
    type Listing = (Vec<PathBuf>, Vec<(PathBuf, String)>);

    fn list(src: &Path, weights: &[&str]) -> Result<Listing> {
        let weights = weights.iter().map(|w| w.to_string()).collect();
        let (mut copy, mut skipped) = (Vec::new(), Vec::new());
        other_files(src, &weights, &mut copy, &mut skipped)?;
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
