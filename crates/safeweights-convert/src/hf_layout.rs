//! Where the weights of a Hugging Face folder are, and the names the
//! libraries that load it expect for the safetensors written in their place.
//!
//! | library | pickle weights | safetensors written |
//! |---|---|---|
//! | transformers | `pytorch_model.bin`, `pytorch_model-0000i-of-0000n.bin` + `pytorch_model.bin.index.json` | `model.safetensors`, `model-0000i-of-0000n.safetensors` + `model.safetensors.index.json` |
//! | diffusers | `diffusion_pytorch_model.bin` (+ shards and `.bin.index.json`) | `diffusion_pytorch_model.safetensors` (+ shards and `.safetensors.index.json`) |
//! | peft | `adapter_model.bin` | `adapter_model.safetensors` |
//! | sentence-transformers modules | `pytorch_model.bin`, `NAME.pt` | `model.safetensors`, `NAME.safetensors` |
//!
//! Weight variants keep their variant: `pytorch_model.fp16.bin` →
//! `model.fp16.safetensors`, and a sharded variant's index
//! `pytorch_model.bin.index.fp16.json` → `model.safetensors.index.fp16.json`
//! (as transformers and diffusers name them).
//!
//! Besides the folder itself, the component folders of a diffusers pipeline
//! (`model_index.json`: `unet/`, `vae/`, `text_encoder/`, ...) and the
//! module folders of a sentence-transformers model (`modules.json`:
//! `1_Pooling/`, `2_Dense/`, ...) are searched, one level deep.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use safeweights::sharded::ShardIndex;

use crate::error::{io_err, ConvertError, Result};

/// Pickle weight file stems and the safetensors stem written for each.
const STEMS: &[(&str, &str)] = &[
    ("pytorch_model", "model"),
    ("diffusion_pytorch_model", "diffusion_pytorch_model"),
    ("adapter_model", "adapter_model"),
];

/// One checkpoint of a folder: its pickle files and what to write.
#[derive(Debug, Clone)]
pub(crate) struct FolderCheckpoint {
    /// The folder holding it, relative to the root (empty for the root).
    pub dir: PathBuf,
    /// Its weight files (plain names in `dir`), in order.
    pub files: Vec<String>,
    /// The index file name and its contents, when sharded.
    pub index: Option<(String, ShardIndex)>,
    /// The prefix of the files written: `model`, `model.fp16`,
    /// `diffusion_pytorch_model`, `adapter_model`, ...
    pub prefix: String,
    /// The index written when there are several shards:
    /// `model.safetensors.index.json`, `model.safetensors.index.fp16.json`.
    pub out_index: String,
}

impl FolderCheckpoint {
    /// The source files (weights and index) relative to the root.
    pub fn sources(&self) -> impl Iterator<Item = PathBuf> + '_ {
        self.files
            .iter()
            .chain(self.index.as_ref().map(|(n, _)| n))
            .map(|f| self.dir.join(f))
    }

    /// Whether `name` (a plain name in `dir`) is a name this checkpoint's
    /// output could have: such a file in the source is replaced, not copied.
    pub fn is_output_name(&self, name: &str) -> bool {
        let Some(rest) = name.strip_prefix(self.prefix.as_str()) else {
            return false;
        };
        name == self.out_index
            || rest == ".safetensors"
            || (rest.starts_with('-') && rest.ends_with(".safetensors"))
    }
}

fn folder_err(folder: &Path, reason: impl Into<String>) -> ConvertError {
    ConvertError::Folder {
        folder: folder.to_path_buf(),
        reason: reason.into(),
    }
}

/// Whether `name` is one plain path component.
pub(crate) fn plain_name(name: &str) -> bool {
    let mut c = Path::new(name).components();
    matches!((c.next(), c.next()), (Some(Component::Normal(_)), None))
}

/// A variant tag (`fp16`, `ema`, `non_ema`): letters, digits, `_`.
fn is_variant(v: &str) -> bool {
    !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `PREFIX.bin.index.json` → (stem, None); `PREFIX.bin.index.V.json` →
/// (stem, Some(V)), for a known stem.
fn index_name(name: &str) -> Option<(&'static str, &'static str, Option<&str>)> {
    STEMS.iter().find_map(|&(stem, out)| {
        let rest = name.strip_prefix(stem)?.strip_prefix(".bin.index.")?;
        if rest == "json" {
            return Some((stem, out, None));
        }
        let v = rest.strip_suffix(".json")?;
        is_variant(v).then_some((stem, out, Some(v)))
    })
}

/// `STEM.bin` → (stem, None); `STEM.V.bin` → (stem, Some(V)).
fn single_name(name: &str) -> Option<(&'static str, &'static str, Option<&str>)> {
    STEMS.iter().find_map(|&(stem, out)| {
        let rest = name.strip_prefix(stem)?;
        if rest == ".bin" {
            return Some((stem, out, None));
        }
        let v = rest.strip_prefix('.')?.strip_suffix(".bin")?;
        is_variant(v).then_some((stem, out, Some(v)))
    })
}

fn with_variant(stem: &str, variant: Option<&str>) -> String {
    match variant {
        Some(v) => format!("{stem}.{v}"),
        None => stem.to_owned(),
    }
}

fn out_index_name(out: &str, variant: Option<&str>) -> String {
    match variant {
        Some(v) => format!("{out}.safetensors.index.{v}.json"),
        None => format!("{out}.safetensors.index.json"),
    }
}

/// The plain file names of a folder, sorted (hidden ones left out).
fn file_names(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs_err::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') && entry.path().is_file() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// The checkpoints of one folder (`rel` below `root`). `module` marks a
/// sentence-transformers module folder, where `NAME.pt` files are weights.
fn checkpoints_in(root: &Path, rel: &Path, module: bool) -> Result<Vec<FolderCheckpoint>> {
    let dir = root.join(rel);
    let names = file_names(&dir)?;
    let mut found = Vec::new();
    let mut taken: BTreeSet<String> = BTreeSet::new();
    // sharded checkpoints first: their shards are not singles
    for name in &names {
        let Some((_, out, variant)) = index_name(name) else {
            continue;
        };
        let path = dir.join(name);
        let text = fs_err::read_to_string(&path).map_err(io_err(&path))?;
        let index =
            ShardIndex::parse(&text).map_err(|e| folder_err(&dir, format!("{name}: {e}")))?;
        let files: BTreeSet<String> = index.weight_map.values().cloned().collect();
        if files.is_empty() {
            return Err(folder_err(&dir, format!("{name} lists no weights")));
        }
        for f in &files {
            if !plain_name(f) {
                return Err(folder_err(
                    &dir,
                    format!("{name} names shard {f:?}, which is not a plain file name"),
                ));
            }
            if !dir.join(f).is_file() {
                return Err(folder_err(
                    &dir,
                    format!("shard {f:?} named by {name} is missing"),
                ));
            }
        }
        taken.extend(files.iter().cloned());
        taken.insert(name.clone());
        found.push(FolderCheckpoint {
            dir: rel.to_path_buf(),
            files: files.into_iter().collect(),
            index: Some((name.clone(), index)),
            prefix: with_variant(out, variant),
            out_index: out_index_name(out, variant),
        });
    }
    for name in &names {
        if taken.contains(name) {
            continue;
        }
        let (out, variant) = match single_name(name) {
            Some((_, out, variant)) => (out.to_owned(), variant.map(str::to_owned)),
            None if module && name.ends_with(".pt") => {
                (name.trim_end_matches(".pt").to_owned(), None)
            }
            None => continue,
        };
        found.push(FolderCheckpoint {
            dir: rel.to_path_buf(),
            files: vec![name.clone()],
            index: None,
            prefix: with_variant(&out, variant.as_deref()),
            out_index: out_index_name(&out, variant.as_deref()),
        });
    }
    // two checkpoints writing the same names (a single file beside shards)
    let mut prefixes = BTreeSet::new();
    for c in &found {
        if !prefixes.insert(c.prefix.clone()) {
            return Err(folder_err(
                &dir,
                format!(
                    "two checkpoints would both be written as {}.safetensors: remove the one you do not mean",
                    c.prefix
                ),
            ));
        }
    }
    Ok(found)
}

/// The component folders named by a diffusers `model_index.json` or a
/// sentence-transformers `modules.json`, as (folder, is a module folder).
fn component_folders(root: &Path) -> Result<Vec<(PathBuf, bool)>> {
    let mut out = Vec::new();
    let read_json = |name: &str| -> Result<Option<serde_json::Value>> {
        let path = root.join(name);
        if !path.is_file() {
            return Ok(None);
        }
        let text = fs_err::read_to_string(&path).map_err(io_err(&path))?;
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| folder_err(root, format!("{name}: {e}")))
    };
    if let Some(serde_json::Value::Object(map)) = read_json("model_index.json")? {
        for (key, value) in &map {
            // a component is `"unet": ["diffusers", "UNet2DConditionModel"]`
            let listed =
                matches!(value, serde_json::Value::Array(a) if a.len() == 2 && !a[0].is_null());
            if listed && !key.starts_with('_') && plain_name(key) && root.join(key).is_dir() {
                out.push((PathBuf::from(key), false));
            }
        }
    }
    if let Some(serde_json::Value::Array(modules)) = read_json("modules.json")? {
        for m in &modules {
            let Some(path) = m.get("path").and_then(|p| p.as_str()) else {
                continue;
            };
            if !path.is_empty() && plain_name(path) && root.join(path).is_dir() {
                out.push((PathBuf::from(path), true));
            }
        }
    }
    out.sort();
    out.dedup_by(|a, b| a.0 == b.0);
    Ok(out)
}

/// Every checkpoint of a Hugging Face folder: the folder's own, then its
/// components', by folder name. An error when there is none.
pub(crate) fn discover(root: &Path) -> Result<Vec<FolderCheckpoint>> {
    let mut found = checkpoints_in(root, Path::new(""), false)?;
    for (rel, module) in component_folders(root)? {
        found.extend(checkpoints_in(root, &rel, module)?);
    }
    if found.is_empty() {
        return Err(folder_err(
            root,
            "no pytorch_model.bin, diffusion_pytorch_model.bin or adapter_model.bin \
             (or their shards and .bin.index.json), here or in the component folders of \
             model_index.json or modules.json: not a PyTorch Hugging Face folder",
        ));
    }
    Ok(found)
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests build fixtures with std::fs.
mod tests {
    use super::*;

    fn touch(root: &Path, files: &[&str]) {
        for f in files {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"x").unwrap();
        }
    }

    fn summary(found: &[FolderCheckpoint]) -> Vec<(String, Vec<String>, String)> {
        found
            .iter()
            .map(|c| {
                (
                    c.dir.to_string_lossy().into_owned(),
                    c.files.clone(),
                    c.prefix.clone(),
                )
            })
            .collect()
    }

    #[test]
    fn names_of_each_library() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        touch(
            root,
            &[
                "pytorch_model.bin",
                "pytorch_model.fp16.bin",
                "adapter_model.bin",
                "training_args.bin",
                "unet/diffusion_pytorch_model.bin",
                "unet/diffusion_pytorch_model.fp16.bin",
                "vae/diffusion_pytorch_model-00001-of-00002.bin",
                "vae/diffusion_pytorch_model-00002-of-00002.bin",
                "text_encoder/pytorch_model.bin",
                "scheduler/scheduler_config.json",
                "2_Dense/pytorch_model.bin",
                "2_Dense/extra.pt",
                "stray/pytorch_model.bin",
            ],
        );
        std::fs::write(
            root.join("vae/diffusion_pytorch_model.bin.index.json"),
            r#"{"metadata": {}, "weight_map": {"a": "diffusion_pytorch_model-00001-of-00002.bin", "b": "diffusion_pytorch_model-00002-of-00002.bin"}}"#,
        )
        .unwrap();
        std::fs::write(
            root.join("model_index.json"),
            r#"{"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"], "text_encoder": ["transformers", "CLIPTextModel"], "scheduler": ["diffusers", "PNDMScheduler"], "safety_checker": [null, null]}"#,
        )
        .unwrap();
        std::fs::write(
            root.join("modules.json"),
            r#"[{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}, {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}]"#,
        )
        .unwrap();
        let found = discover(root).unwrap();
        let s = |a: &str, f: &[&str], p: &str| {
            (
                a.to_owned(),
                f.iter().map(|x| x.to_string()).collect::<Vec<_>>(),
                p.to_owned(),
            )
        };
        assert_eq!(
            summary(&found),
            [
                s("", &["adapter_model.bin"], "adapter_model"),
                s("", &["pytorch_model.bin"], "model"),
                s("", &["pytorch_model.fp16.bin"], "model.fp16"),
                s("2_Dense", &["extra.pt"], "extra"),
                s("2_Dense", &["pytorch_model.bin"], "model"),
                s("text_encoder", &["pytorch_model.bin"], "model"),
                s(
                    "unet",
                    &["diffusion_pytorch_model.bin"],
                    "diffusion_pytorch_model"
                ),
                s(
                    "unet",
                    &["diffusion_pytorch_model.fp16.bin"],
                    "diffusion_pytorch_model.fp16"
                ),
                s(
                    "vae",
                    &[
                        "diffusion_pytorch_model-00001-of-00002.bin",
                        "diffusion_pytorch_model-00002-of-00002.bin"
                    ],
                    "diffusion_pytorch_model"
                ),
            ]
        );
        let vae = &found[8];
        assert_eq!(
            vae.out_index,
            "diffusion_pytorch_model.safetensors.index.json"
        );
        assert!(vae.is_output_name("diffusion_pytorch_model-00001-of-00002.safetensors"));
        assert!(vae.is_output_name("diffusion_pytorch_model.safetensors"));
        assert!(!found[1].is_output_name("model.fp16.safetensors"));
        assert_eq!(found[2].out_index, "model.safetensors.index.fp16.json");
    }

    #[test]
    fn sharded_variant_index() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        touch(root, &["pytorch_model.fp16-00001-of-00001.bin"]);
        std::fs::write(
            root.join("pytorch_model.bin.index.fp16.json"),
            r#"{"weight_map": {"a": "pytorch_model.fp16-00001-of-00001.bin"}}"#,
        )
        .unwrap();
        let found = discover(root).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].prefix, "model.fp16");
        assert_eq!(found[0].out_index, "model.safetensors.index.fp16.json");
        let empty = tempfile::tempdir().unwrap();
        let err = discover(empty.path()).unwrap_err().to_string();
        assert!(err.contains("not a PyTorch Hugging Face folder"), "{err}");
    }
}
