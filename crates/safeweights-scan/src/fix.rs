//! The `safeweights convert` command suggested for a pickle weights file.
//!
//! A file that belongs to a Hugging Face folder (`pytorch_model.bin`, its
//! shards, `diffusion_pytorch_model.bin`, `adapter_model.bin`, or any `.bin`
//! beside a `*.bin.index.json`, `config.json` or `model_index.json`) is
//! converted with its folder, so the other files and the names the
//! libraries load come along: `safeweights convert DIR DIR-safetensors`,
//! from a pipeline's root when the folder is one of its components. Any
//! other file gets its own target with the extension replaced
//! (`ck.pt` → `ck.safetensors`), never `ck.pt.safetensors`.

use std::path::{Path, PathBuf};

/// Weight file stems of the Hugging Face libraries.
const HF_STEMS: &[&str] = &["pytorch_model", "diffusion_pytorch_model", "adapter_model"];

fn is_hf_weight_name(name: &str) -> bool {
    HF_STEMS.iter().any(|stem| {
        name.strip_prefix(stem).is_some_and(|rest| {
            rest.ends_with(".bin") && (rest.starts_with('.') || rest.starts_with('-'))
        })
    })
}

/// Whether `dir` looks like a Hugging Face model (or component) folder.
fn is_hf_folder(dir: &Path) -> bool {
    if dir.join("config.json").is_file() || dir.join("model_index.json").is_file() {
        return true;
    }
    fs_err::read_dir(dir).is_ok_and(|entries| {
        entries.filter_map(|e| e.ok()).any(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.ends_with(".bin.index.json") || name.contains(".bin.index.")
        })
    })
}

/// The folder to convert for `file`, when it belongs to one.
fn hf_folder_of(file: &Path) -> Option<PathBuf> {
    let name = file.file_name()?.to_str()?;
    let dir = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !(is_hf_weight_name(name) || (name.ends_with(".bin") && is_hf_folder(&dir))) {
        return None;
    }
    // a component of a pipeline: the pipeline
    if let Some(up) = dir.parent() {
        if !up.as_os_str().is_empty() && up.join("model_index.json").is_file() {
            return Some(up.to_path_buf());
        }
    }
    Some(dir)
}

/// The command that converts `file` (as the report names it).
pub(crate) fn convert_command(file: &str) -> String {
    let path = Path::new(file);
    if let Some(dir) = hf_folder_of(path) {
        let shown = dir.display().to_string();
        let target = if shown == "." {
            let name = dir
                .canonicalize()
                .ok()
                .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_else(|| "converted".into());
            format!("../{name}-safetensors")
        } else {
            format!("{}-safetensors", shown.trim_end_matches('/'))
        };
        return format!("safeweights convert {shown} {target}");
    }
    let target = path.with_extension("safetensors");
    format!("safeweights convert {file} {}", target.display())
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests build fixtures with std::fs.
mod tests {
    use super::*;

    #[test]
    fn folder_or_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("gpt2")).unwrap();
        std::fs::create_dir_all(d.join("pipe/unet")).unwrap();
        std::fs::write(d.join("pipe/model_index.json"), b"{}").unwrap();
        std::fs::create_dir_all(d.join("loose")).unwrap();
        std::fs::write(d.join("gpt2/config.json"), b"{}").unwrap();
        let s = |p: &str| d.join(p).display().to_string();
        assert_eq!(
            convert_command(&s("gpt2/pytorch_model-00001-of-00002.bin")),
            format!("safeweights convert {0} {0}-safetensors", s("gpt2"))
        );
        assert_eq!(
            convert_command(&s("gpt2/training.bin")),
            format!("safeweights convert {0} {0}-safetensors", s("gpt2"))
        );
        assert_eq!(
            convert_command(&s("pipe/unet/diffusion_pytorch_model.fp16.bin")),
            format!("safeweights convert {0} {0}-safetensors", s("pipe"))
        );
        assert_eq!(
            convert_command(&s("loose/ck.pt")),
            format!(
                "safeweights convert {} {}",
                s("loose/ck.pt"),
                s("loose/ck.safetensors")
            )
        );
        assert_eq!(
            convert_command(&s("loose/weights.bin")),
            format!(
                "safeweights convert {} {}",
                s("loose/weights.bin"),
                s("loose/weights.safetensors")
            )
        );
    }
}
