//! What a model folder holds: its safetensors checkpoints, told apart.
//!
//! A Hugging Face folder often holds more than one checkpoint side by side:
//! weight variants (`model.safetensors` beside `model.fp16.safetensors`), a
//! model and an adapter (`model.safetensors`, `adapter_model.safetensors`),
//! a single file beside a sharded set. Each is a checkpoint of its own, not a
//! shard of one: an index with its shards, a numbered set
//! (`PREFIX-0000i-of-0000n.safetensors`), or a single file.
//! [`Checkpoint::open`](crate::Checkpoint::open) of a folder opens the one
//! checkpoint there is, or the default one ([`DEFAULT_NAMES`]), and
//! otherwise says which there are.
//!
//! A diffusers pipeline folder (`model_index.json`) keeps its checkpoints in
//! component folders (`unet/`, `vae/`, `text_encoder/`):
//! [`pipeline_components`] lists them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The checkpoints opened by default, in order of preference, when a folder
/// holds several: the names transformers and diffusers load.
pub const DEFAULT_NAMES: &[&str] = &[
    "model.safetensors.index.json",
    "model.safetensors",
    "diffusion_pytorch_model.safetensors.index.json",
    "diffusion_pytorch_model.safetensors",
];

/// One checkpoint of a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderCheckpoint {
    /// What it is called: the index's name, the single file's name, or
    /// the numbered set's pattern (`model-*-of-00003.safetensors`).
    pub name: String,
    /// Its index, when it has one.
    pub index: Option<PathBuf>,
    /// Its files (without an index), sorted.
    pub files: Vec<PathBuf>,
}

/// `PREFIX.safetensors.index.json` or `PREFIX.safetensors.index.V.json`
/// (a variant's index) → the prefix of its shards (`PREFIX`, `PREFIX.V`).
fn index_prefix(name: &str) -> Option<String> {
    let (prefix, rest) = name.split_once(".safetensors.index.")?;
    if rest == "json" {
        return Some(prefix.to_owned());
    }
    let variant = rest.strip_suffix(".json")?;
    let ok = !variant.is_empty()
        && variant
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    ok.then(|| format!("{prefix}.{variant}"))
}

/// `PREFIX-00002-of-00008.safetensors` → (`PREFIX`, `"00008"`).
pub(crate) fn numbered_set(name: &str) -> Option<(&str, &str)> {
    let stem = name.strip_suffix(".safetensors")?;
    let (rest, count) = stem.rsplit_once("-of-")?;
    let (prefix, index) = rest.rsplit_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (digits(index) && digits(count)).then_some((prefix, count))
}

/// The checkpoints of `dir`, in name order: every index (claiming the
/// numbered shards named after it), every other numbered set, every other
/// single file. Hidden files are left out.
pub fn checkpoints(dir: &Path) -> Result<Vec<FolderCheckpoint>> {
    let mut indexes = Vec::new();
    let mut files = Vec::new();
    for entry in fs_err::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if let Some(prefix) = index_prefix(&name) {
            indexes.push((name, prefix));
        } else if name.ends_with(".safetensors") {
            files.push(name);
        }
    }
    indexes.sort();
    files.sort();
    let mut found = Vec::new();
    for (name, _) in &indexes {
        found.push(FolderCheckpoint {
            name: name.clone(),
            index: Some(dir.join(name)),
            files: Vec::new(),
        });
    }
    let claimed = |set: &str| indexes.iter().any(|(_, p)| p == set);
    let mut sets: BTreeMap<(String, String), Vec<PathBuf>> = BTreeMap::new();
    for name in &files {
        match numbered_set(name) {
            Some((prefix, _)) if claimed(prefix) => {}
            Some((prefix, count)) => sets
                .entry((prefix.to_owned(), count.to_owned()))
                .or_default()
                .push(dir.join(name)),
            None => found.push(FolderCheckpoint {
                name: name.clone(),
                index: None,
                files: vec![dir.join(name)],
            }),
        }
    }
    for ((prefix, count), files) in sets {
        found.push(FolderCheckpoint {
            name: format!("{prefix}-*-of-{count}.safetensors"),
            index: None,
            files,
        });
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

/// Which of several checkpoints a folder opens as: the only one, the first
/// of [`DEFAULT_NAMES`] there is, or the only index; `None` when the choice
/// is the user's.
pub fn default_checkpoint(found: &[FolderCheckpoint]) -> Option<&FolderCheckpoint> {
    if let [only] = found {
        return Some(only);
    }
    for name in DEFAULT_NAMES {
        if let Some(c) = found.iter().find(|c| c.name == *name) {
            return Some(c);
        }
    }
    let mut indexes = found.iter().filter(|c| c.index.is_some());
    match (indexes.next(), indexes.next()) {
        (Some(only), None) => Some(only),
        _ => None,
    }
}

/// Pickle weight files (`*.bin`, `*.pt`, `*.pth`, `*.ckpt`) of a folder, by
/// name, for saying what a folder without safetensors holds.
pub fn pickle_weights(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs_err::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            let lower = n.to_ascii_lowercase();
            !n.starts_with('.')
                && [".bin", ".pt", ".pth", ".ckpt"]
                    .iter()
                    .any(|e| lower.ends_with(e))
        })
        .collect();
    names.sort();
    names
}

/// The component folders of a diffusers pipeline folder (one with a
/// `model_index.json` naming them, e.g. `"unet": ["diffusers",
/// "UNet2DConditionModel"]`) that exist, in name order; empty for any other
/// folder or an unreadable `model_index.json`.
pub fn pipeline_components(dir: &Path) -> Vec<PathBuf> {
    let Ok(text) = fs_err::read_to_string(dir.join("model_index.json")) else {
        return Vec::new();
    };
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str(&text) else {
        return Vec::new();
    };
    map.iter()
        .filter(|(key, value)| {
            let listed =
                matches!(value, serde_json::Value::Array(a) if a.len() == 2 && !a[0].is_null());
            let plain =
                !key.is_empty() && !key.starts_with(['_', '.']) && !key.contains(['/', '\\']);
            listed && plain && dir.join(key).is_dir()
        })
        .map(|(key, _)| dir.join(key))
        .collect()
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests build fixtures with std::fs.
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        checkpoints(dir)
            .unwrap()
            .into_iter()
            .map(|c| c.name)
            .collect()
    }

    #[test]
    fn checkpoints_side_by_side() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for f in [
            "model.safetensors",
            "model.fp16.safetensors",
            "adapter_model.safetensors",
            "model.fp16-00001-of-00002.safetensors",
            "model.fp16-00002-of-00002.safetensors",
            "model.safetensors.index.fp16.json",
            "other-00001-of-00002.safetensors",
            "other-00002-of-00002.safetensors",
            ".hidden.safetensors",
            "pytorch_model.bin",
        ] {
            std::fs::write(d.join(f), b"").unwrap();
        }
        assert_eq!(
            names(d),
            [
                "adapter_model.safetensors",
                "model.fp16.safetensors",
                "model.safetensors",
                "model.safetensors.index.fp16.json",
                "other-*-of-00002.safetensors",
            ]
        );
        let found = checkpoints(d).unwrap();
        assert_eq!(
            default_checkpoint(&found).unwrap().name,
            "model.safetensors"
        );
        let no_default: Vec<FolderCheckpoint> = found
            .into_iter()
            .filter(|c| c.name != "model.safetensors")
            .collect();
        // one index left: it is the default
        assert_eq!(
            default_checkpoint(&no_default).unwrap().name,
            "model.safetensors.index.fp16.json"
        );
        assert_eq!(pickle_weights(d), ["pytorch_model.bin"]);
    }

    #[test]
    fn pipeline_folders() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for c in ["unet", "vae", "scheduler", "safety_checker"] {
            std::fs::create_dir(d.join(c)).unwrap();
        }
        std::fs::write(
            d.join("model_index.json"),
            r#"{"_class_name": "X", "unet": ["diffusers", "U"], "vae": ["diffusers", "V"],
                "scheduler": ["diffusers", "S"], "safety_checker": [null, null], "../up": ["a", "b"]}"#,
        )
        .unwrap();
        assert_eq!(
            pipeline_components(d),
            [d.join("scheduler"), d.join("unet"), d.join("vae")]
        );
        assert!(pipeline_components(&d.join("unet")).is_empty());
    }
}
