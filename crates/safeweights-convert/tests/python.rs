//! Cross-checks against PyTorch, the reference safetensors and NumPy.
//!
//! Fixtures are made at test time by real `torch.save` (zip and legacy),
//! `numpy.save(z)` and a Hugging Face style sharded folder; every output is
//! checked by `tests/helper.py` with `torch.load(weights_only=True)`,
//! `safetensors.torch.load_file` and `numpy.load(allow_pickle=False)`.
//!
//! Python is `$SAFEWEIGHTS_PYTHON`, else the workspace `.venv/bin/python`,
//! else `python3`. Without torch the tests are skipped with a message,
//! unless `SAFEWEIGHTS_REQUIRE_PYTHON=1`, in which case they fail.
#![allow(clippy::disallowed_methods)] // Tests, examples and benches use std::fs directly; the rule is for library code.
#![allow(clippy::print_stderr)]

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use safeweights_convert::{convert, ConvertError, ConvertOptions, LEAVES_METADATA_KEY};

fn python() -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Ok(p) = std::env::var("SAFEWEIGHTS_PYTHON") {
        candidates.push(PathBuf::from(p));
    }
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python"));
    candidates.push(PathBuf::from("python3"));
    for c in candidates {
        let ok = Command::new(&c)
            .args(["-c", "import torch, numpy, safetensors, transformers"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Some(c);
        }
    }
    None
}

struct Env {
    python: PathBuf,
    fixtures: PathBuf,
}

fn env() -> Option<&'static Env> {
    static ENV: OnceLock<Option<Env>> = OnceLock::new();
    ENV.get_or_init(|| {
        let Some(python) = python() else {
            if std::env::var("SAFEWEIGHTS_REQUIRE_PYTHON").as_deref() == Ok("1") {
                panic!("SAFEWEIGHTS_REQUIRE_PYTHON=1 but no Python with torch, numpy, safetensors and transformers was found");
            }
            eprintln!("skipping: no Python with torch, numpy, safetensors and transformers (set SAFEWEIGHTS_PYTHON)");
            return None;
        };
        let fixtures = tempfile::tempdir().unwrap().keep();
        run(&python, &["make", fixtures.to_str().unwrap()]);
        Some(Env { python, fixtures })
    })
    .as_ref()
}

fn helper_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/helper.py")
}

fn run(python: &Path, args: &[&str]) {
    let out = Command::new(python)
        .arg(helper_path())
        .args(args)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "helper {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn check(env: &Env, args: &[&Path]) {
    let args: Vec<&str> = args.iter().map(|p| p.to_str().unwrap()).collect();
    run(&env.python, &args);
}

fn s(p: &Path) -> &Path {
    p
}

#[test]
fn torch_checkpoints_to_safetensors_and_back() {
    let Some(env) = env() else { return };
    let out = tempfile::tempdir().unwrap();
    for name in [
        "dtypes",
        "dtypes_legacy",
        "views",
        "views_legacy",
        "nested",
        "nested_legacy",
        "root_param",
        "big",
    ] {
        let src = env.fixtures.join(format!("{name}.pt"));
        let st = out.path().join(format!("{name}.safetensors"));
        let summary = convert(&src, &st, &ConvertOptions::new()).unwrap();
        assert!(summary.verified);
        assert_eq!(summary.files_written, vec![st.clone()]);
        check(env, &[s(Path::new("check-st")), &src, &st]);
        // back to a torch zip checkpoint that torch.load(weights_only=True) reads
        let bin = out.path().join(format!("{name}.bin"));
        let back = convert(&st, &bin, &ConvertOptions::new()).unwrap();
        assert_eq!(back.target_format, "torch-zip");
        check(env, &[Path::new("check-bin"), &st, &bin]);
        // and the original straight to .bin (ties kept as shared storages)
        let bin2 = out.path().join(format!("{name}.direct.bin"));
        convert(&src, &bin2, &ConvertOptions::new()).unwrap();
        check(env, &[Path::new("check-bin"), &st, &bin2]);
    }
}

#[test]
fn views_ties_and_keep_shared() {
    let Some(env) = env() else { return };
    let out = tempfile::tempdir().unwrap();
    let src = env.fixtures.join("views.pt");
    let st = out.path().join("v.safetensors");
    let summary = convert(&src, &st, &ConvertOptions::new()).unwrap();
    let dropped: Vec<(&str, &str)> = summary
        .dropped_aliases
        .iter()
        .map(|a| (a.name.as_str(), a.kept.as_str()))
        .collect();
    assert_eq!(
        dropped,
        [
            ("tail_alias", "tail"),
            ("tied_a", "base"),
            ("tied_b", "base")
        ]
    );
    // transposed/slice/strided/row overlap `base` but are other views: copied
    for v in ["base", "row", "slice", "strided", "transposed"] {
        assert!(summary.shared_copies.iter().any(|c| c == v), "{v}");
    }
    let f = safeweights::SafeTensorsFile::open(&st).unwrap();
    let meta = f.header().metadata().unwrap();
    assert_eq!(meta.get("format").map(String::as_str), Some("pt"));
    assert_eq!(meta.get("tied_a").map(String::as_str), Some("base"));
    assert_eq!(f.header().len(), 8);
    // keep_shared writes every name
    let st2 = out.path().join("v2.safetensors");
    let summary = convert(&src, &st2, &ConvertOptions::new().keep_shared(true)).unwrap();
    assert!(summary.dropped_aliases.is_empty());
    assert_eq!(summary.tensors, 11);
    check(env, &[Path::new("check-st"), &src, &st2]);
}

#[test]
fn nested_leaves_reported_and_kept_in_metadata() {
    let Some(env) = env() else { return };
    let out = tempfile::tempdir().unwrap();
    let src = env.fixtures.join("nested.pt");
    let st = out.path().join("n.safetensors");
    let summary = convert(&src, &st, &ConvertOptions::new().metadata_leaves(true)).unwrap();
    let leaves: BTreeMap<&str, &serde_json::Value> = summary
        .non_tensor_leaves
        .iter()
        .map(|l| (l.name.as_str(), &l.value))
        .collect();
    assert_eq!(leaves["epoch"], &serde_json::json!(3));
    assert_eq!(leaves["step"], &serde_json::json!(1000));
    assert_eq!(leaves["config.name"], &serde_json::json!("tiny"));
    assert!(summary.leaves_in_metadata);
    assert!(summary
        .dropped_aliases
        .iter()
        .any(|a| a.name == "state_dict.lm_head.weight" && a.kept == "state_dict.embed.weight"));
    let f = safeweights::SafeTensorsFile::open(&st).unwrap();
    let kept: serde_json::Value =
        serde_json::from_str(&f.header().metadata().unwrap()[LEAVES_METADATA_KEY]).unwrap();
    assert_eq!(kept["epoch"], 3);
    assert!(f.header().get("state_dict.layers.1.w").is_some());
    check(env, &[Path::new("check-st"), &src, &st]);
    // without the option: reported, not stored
    let st2 = out.path().join("n2.safetensors");
    let summary = convert(&src, &st2, &ConvertOptions::new()).unwrap();
    assert!(!summary.leaves_in_metadata && !summary.non_tensor_leaves.is_empty());
    let f = safeweights::SafeTensorsFile::open(&st2).unwrap();
    assert!(!f
        .header()
        .metadata()
        .unwrap()
        .contains_key(LEAVES_METADATA_KEY));
    // the summary serializes for --json
    let json = serde_json::to_value(&summary).unwrap();
    assert_eq!(json["source_format"], "torch-zip");
}

#[test]
fn numpy_files() {
    let Some(env) = env() else { return };
    let out = tempfile::tempdir().unwrap();
    for name in ["single.npy", "fortran.npy", "arrays.npz", "compressed.npz"] {
        let src = env.fixtures.join(name);
        let st = out.path().join(format!("{name}.safetensors"));
        let summary = convert(&src, &st, &ConvertOptions::new()).unwrap();
        assert!(summary.verified);
        check(env, &[Path::new("check-st"), &src, &st]);
        let npz = out.path().join(format!("{name}.npz"));
        convert(&st, &npz, &ConvertOptions::new()).unwrap();
        check(env, &[Path::new("check-npz"), &st, &npz]);
        let bin = out.path().join(format!("{name}.bin"));
        convert(&src, &bin, &ConvertOptions::new()).unwrap();
        check(env, &[Path::new("check-bin"), &src, &bin]);
    }
    // bf16 has no numpy dtype
    let st = out.path().join("d.safetensors");
    convert(env.fixtures.join("dtypes.pt"), &st, &ConvertOptions::new()).unwrap();
    let npz = out.path().join("d.npz");
    let err = convert(&st, &npz, &ConvertOptions::new()).unwrap_err();
    assert!(
        matches!(err, ConvertError::UnsupportedTensor { .. }),
        "{err}"
    );
    assert!(!npz.exists());
}

fn assert_nothing_written(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn refused_tensor_kinds() {
    let Some(env) = env() else { return };
    let out = tempfile::tempdir().unwrap();
    for (name, want) in [
        ("complex128.pt", "complex128"),
        ("quantized.pt", "quantized"),
        ("sparse.pt", "sparse"),
        ("object.npy", "object arrays"),
    ] {
        let dst = out.path().join("x.safetensors");
        let err = convert(env.fixtures.join(name), &dst, &ConvertOptions::new()).unwrap_err();
        assert!(err.to_string().contains(want), "{name}: {err}");
        assert!(
            err.to_string().contains(name),
            "error names the file: {err}"
        );
        assert_nothing_written(out.path());
    }
}

fn hash_tree(dir: &Path) -> u64 {
    let mut h = DefaultHasher::new();
    let walk = walkdir::WalkDir::new(dir)
        .min_depth(1)
        .follow_links(true)
        .sort_by_file_name();
    for e in walk {
        let e = e.unwrap();
        e.path().strip_prefix(dir).unwrap().hash(&mut h);
        if !e.file_type().is_dir() {
            std::fs::read(e.path()).unwrap().hash(&mut h);
            e.metadata().unwrap().modified().unwrap().hash(&mut h);
        }
    }
    h.finish()
}

#[test]
fn hugging_face_folder() {
    let Some(env) = env() else { return };
    let out = tempfile::tempdir().unwrap();
    let src = env.fixtures.join("hf_model");
    let before = hash_tree(&src);
    let dst = out.path().join("converted");
    let summary = convert(&src, &dst, &ConvertOptions::new()).unwrap();
    assert_eq!(hash_tree(&src), before, "source folder modified");
    let names: Vec<String> = summary
        .files_written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "model-00001-of-00003.safetensors",
            "model-00002-of-00003.safetensors",
            "model-00003-of-00003.safetensors",
            "model.safetensors.index.json"
        ]
    );
    assert!(dst.join("config.json").is_file());
    assert!(dst.join("tokenizer.json").is_file());
    assert!(dst.join("extra/notes.txt").is_file());
    assert!(!dst.join("training_args.bin").exists());
    assert!(summary
        .files_skipped
        .iter()
        .any(|f| f.path.ends_with("training_args.bin")));
    // only the destination was created next to it
    let siblings: Vec<_> = std::fs::read_dir(out.path()).unwrap().collect();
    assert_eq!(siblings.len(), 1);
    check(env, &[Path::new("check-folder"), &src, &dst]);
    // same grouping as the source: each output shard holds one source shard's tensors
    let index = std::fs::read_to_string(src.join("pytorch_model.bin.index.json")).unwrap();
    let src_index = safeweights::ShardIndex::parse(&index).unwrap();
    let out_index = safeweights::ShardIndex::parse(
        &std::fs::read_to_string(dst.join("model.safetensors.index.json")).unwrap(),
    )
    .unwrap();
    for (tensor, shard) in &src_index.weight_map {
        let n = &shard["pytorch_model-".len().."pytorch_model-".len() + 5];
        assert!(out_index.weight_map[tensor].starts_with(&format!("model-{n}")));
    }
    // existing destination without overwrite: refused, untouched
    let err = convert(&src, &dst, &ConvertOptions::new()).unwrap_err();
    assert!(matches!(err, ConvertError::DestinationExists { .. }));
    // regroup by size, with overwrite
    let summary = convert(
        &src,
        &dst,
        &ConvertOptions::new()
            .overwrite(true)
            .max_shard_size(Some(20_000)),
    )
    .unwrap();
    assert!(summary.files_written.len() > 4);
    check(env, &[Path::new("check-folder"), &src, &dst]);
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 1);
    assert_eq!(hash_tree(&src), before, "source folder modified");
    // single-file folder: one model.safetensors, tied lm_head deduplicated
    let src1 = env.fixtures.join("hf_single");
    let dst1 = out.path().join("single");
    let summary = convert(&src1, &dst1, &ConvertOptions::new()).unwrap();
    assert!(dst1.join("model.safetensors").is_file());
    assert_eq!(summary.dropped_aliases.len(), 1);
    check(env, &[Path::new("check-folder"), &src1, &dst1]);
}

#[test]
fn single_file_sharded_by_size() {
    let Some(env) = env() else { return };
    let out = tempfile::tempdir().unwrap();
    let src = env.fixtures.join("big.pt");
    let dst = out.path().join("big.safetensors");
    let summary = convert(
        &src,
        &dst,
        &ConvertOptions::new().max_shard_size(Some(3 << 20)),
    )
    .unwrap();
    assert_eq!(summary.files_written.len(), 3);
    assert!(out.path().join("big.safetensors.index.json").is_file());
    let shards: Vec<&Path> = summary.files_written[..2]
        .iter()
        .map(|p| p.as_path())
        .collect();
    check(env, &[Path::new("check-st"), &src, shards[0], shards[1]]);
}

#[test]
fn progress_is_reported() {
    let Some(env) = env() else { return };
    let out = tempfile::tempdir().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let opts = ConvertOptions::new().progress(move |p| {
        s2.lock()
            .unwrap()
            .push((p.phase, p.bytes_done, p.bytes_total));
    });
    convert(
        env.fixtures.join("big.pt"),
        out.path().join("b.safetensors"),
        &opts,
    )
    .unwrap();
    let seen = seen.lock().unwrap();
    let last = seen.last().unwrap();
    assert_eq!(last.0, safeweights_convert::Phase::Verifying);
    assert_eq!(last.1, last.2);
    assert!(seen
        .iter()
        .any(|p| p.0 == safeweights_convert::Phase::Writing));
}

/// Issue 20: tied weights in a converted folder keep the name transformers
/// keeps (`transformer.wte.weight` for GPT-2, the input embeddings; the
/// `lm_head.weight` of `_tied_weights_keys` is dropped and tied back at
/// load), so every transformers version loads it; logits are equal.
#[test]
fn issue20_tied_weights_keep_the_name_transformers_keeps() {
    let Some(env) = env() else { return };
    let out = tempfile::tempdir().unwrap();
    let src = env.fixtures.join("hf_single");
    let dst = out.path().join("converted");
    let summary = convert(&src, &dst, &ConvertOptions::new()).unwrap();
    let dropped: Vec<(&str, &str)> = summary
        .dropped_aliases
        .iter()
        .map(|a| (a.name.as_str(), a.kept.as_str()))
        .collect();
    assert_eq!(dropped, [("lm_head.weight", "transformer.wte.weight")]);
    let written = safeweights::Checkpoint::open(dst.join("model.safetensors")).unwrap();
    assert!(written.info("transformer.wte.weight").is_ok());
    assert!(written.info("lm_head.weight").is_err());
    let meta = written.metadata().unwrap();
    assert_eq!(
        meta.get("lm_head.weight").map(String::as_str),
        Some("transformer.wte.weight")
    );
    // transformers loads it, with the same logits as the .bin folder
    check(env, &[Path::new("check-folder"), &src, &dst]);
    // a lone file keeps the reference's choice (first in sort order)
    let file = out.path().join("lone.safetensors");
    let summary = convert(src.join("pytorch_model.bin"), &file, &ConvertOptions::new()).unwrap();
    assert_eq!(summary.dropped_aliases[0].kept, "lm_head.weight");
}

fn relative_names(summary: &safeweights_convert::ConvertSummary, dst: &Path) -> Vec<String> {
    summary
        .files_written
        .iter()
        .map(|p| p.strip_prefix(dst).unwrap().to_string_lossy().into_owned())
        .collect()
}

/// Issue 20: folder conversion knows the other libraries' file names
/// (diffusers pipelines with component folders, variants and shards; peft
/// adapters; sentence-transformers modules) and writes the names those
/// libraries load; every output holds its source's tensors bit for bit.
#[test]
fn issue20_folders_of_other_libraries() {
    let Some(env) = env() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    run(&env.python, &["make-libraries", d.to_str().unwrap()]);
    let st = |src: PathBuf, outs: &[PathBuf]| {
        let mut args: Vec<&Path> = vec![Path::new("check-st"), &src];
        args.extend(outs.iter().map(PathBuf::as_path));
        check(env, &args);
    };
    // a diffusers pipeline
    let (src, dst) = (d.join("pipeline"), d.join("pipeline-st"));
    let summary = convert(&src, &dst, &ConvertOptions::new()).unwrap();
    assert_eq!(
        relative_names(&summary, &dst),
        [
            "text_encoder/model.safetensors",
            "unet/diffusion_pytorch_model.safetensors",
            "unet/diffusion_pytorch_model.fp16.safetensors",
            "vae/diffusion_pytorch_model-00001-of-00002.safetensors",
            "vae/diffusion_pytorch_model-00002-of-00002.safetensors",
            "vae/diffusion_pytorch_model.safetensors.index.json",
        ]
    );
    for kept in [
        "model_index.json",
        "unet/config.json",
        "text_encoder/config.json",
        "scheduler/scheduler_config.json",
    ] {
        assert!(dst.join(kept).is_file(), "{kept} not copied");
    }
    assert!(!dst.join("unet/diffusion_pytorch_model.bin").exists());
    st(
        src.join("unet/diffusion_pytorch_model.bin"),
        &[dst.join("unet/diffusion_pytorch_model.safetensors")],
    );
    st(
        src.join("unet/diffusion_pytorch_model.fp16.bin"),
        &[dst.join("unet/diffusion_pytorch_model.fp16.safetensors")],
    );
    st(
        d.join("vae_all.pt"),
        &[
            dst.join("vae/diffusion_pytorch_model-00001-of-00002.safetensors"),
            dst.join("vae/diffusion_pytorch_model-00002-of-00002.safetensors"),
        ],
    );
    // the text encoder loads in transformers with the same logits
    check(
        env,
        &[
            Path::new("check-folder"),
            &src.join("text_encoder"),
            &dst.join("text_encoder"),
        ],
    );
    // a peft adapter
    let (src, dst) = (d.join("peft"), d.join("peft-st"));
    let summary = convert(&src, &dst, &ConvertOptions::new()).unwrap();
    assert_eq!(
        relative_names(&summary, &dst),
        ["adapter_model.safetensors"]
    );
    assert!(dst.join("adapter_config.json").is_file());
    st(
        src.join("adapter_model.bin"),
        &[dst.join("adapter_model.safetensors")],
    );
    // a sentence-transformers model
    let (src, dst) = (d.join("sentence"), d.join("sentence-st"));
    let summary = convert(&src, &dst, &ConvertOptions::new()).unwrap();
    assert_eq!(
        relative_names(&summary, &dst),
        ["model.safetensors", "2_Dense/model.safetensors"]
    );
    assert!(dst.join("1_Pooling/config.json").is_file());
    assert!(dst.join("modules.json").is_file());
    st(
        src.join("2_Dense/pytorch_model.bin"),
        &[dst.join("2_Dense/model.safetensors")],
    );
}
