//! Regression tests for issue 20 ("Fit"): the command line tidied (exit
//! codes, one overwrite flag, hints, progress, completions) and Hugging Face
//! folders handled as their users expect.

use super::*;

/// Issue 20: `convert` of a file with trailing bytes exited 2 where
/// docs/cli.md says 1, and `load` of it exited 1 where they say 2.
#[test]
fn issue20_exit_codes_match_the_docs() {
    let (dir, path) = sample_dir();
    append(&path, b"junk");
    let conv = run(
        dir.path(),
        &["convert", "model.safetensors", "out.safetensors"],
    );
    assert_eq!(conv.code, 1, "{}", conv.stderr);
    assert!(conv.stderr.contains("trailing bytes"), "{}", conv.stderr);
    assert!(conv.stderr.contains("\nhint: "), "{}", conv.stderr);
    let load = run(dir.path(), &["load", "model.safetensors"]);
    assert_eq!(load.code, 2, "{}", load.stderr);
    assert!(load.stderr.contains("\nhint: "), "{}", load.stderr);
    let inspect = run(dir.path(), &["inspect", "model.safetensors"]);
    assert_eq!(inspect.code, 1, "{}", inspect.stderr);
    let diff = run(
        dir.path(),
        &["diff", "model.safetensors", "model.safetensors"],
    );
    assert_eq!(diff.code, 2, "{}", diff.stderr);
}

/// Issue 20: each command's `--help` states its own exit codes.
#[test]
fn issue20_each_help_states_its_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    for (command, says) in [
        ("inspect", "1  the input breaks a format rule"),
        ("validate", "1  some path is invalid"),
        ("diff", "1  the checkpoints differ"),
        ("reshard", "2  the input cannot be read, the output exists"),
        ("merge", "2  the input cannot be read, the output exists"),
        ("scan", "1  findings at or above --fail-on"),
        ("convert", "1  the source breaks a format rule"),
        ("load", "1  --verify found a tensor that differs"),
        ("demo", "1  a check failed"),
        ("completions", "0  printed"),
    ] {
        let r = run(dir.path(), &[command, "--help"]);
        assert_eq!(r.code, 0, "{command}: {}", r.stderr);
        assert!(r.stdout.contains("Exit codes:"), "{command}: {}", r.stdout);
        assert!(r.stdout.contains(says), "{command}: {}", r.stdout);
    }
}

/// Issue 20: one overwrite flag name, `--force`, with `--overwrite` kept
/// as an alias, on every command that replaces an output.
#[test]
fn issue20_force_and_overwrite_on_every_writing_command() {
    let (dir, _) = sample_dir();
    std::fs::copy(pickle_fixture("small.pt"), dir.path().join("small.pt")).unwrap();
    let first = run(dir.path(), &["convert", "small.pt", "small.safetensors"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let refused = run(dir.path(), &["convert", "small.pt", "small.safetensors"]);
    assert_eq!(refused.code, 2);
    assert!(
        refused.stderr.contains("hint: pass --force"),
        "{}",
        refused.stderr
    );
    for flag in ["--force", "--overwrite"] {
        let r = run(
            dir.path(),
            &["convert", "small.pt", "small.safetensors", flag],
        );
        assert_eq!(r.code, 0, "convert {flag}: {}", r.stderr);
        let r = run(
            dir.path(),
            &["reshard", "model.safetensors", "-o", "shards", flag],
        );
        assert_eq!(r.code, 0, "reshard {flag}: {}", r.stderr);
        let r = run(
            dir.path(),
            &["merge", "shards", "-o", "merged.safetensors", flag],
        );
        assert_eq!(r.code, 0, "merge {flag}: {}", r.stderr);
    }
}

/// Issue 20: `safeweights completions bash|zsh|fish` prints a script that
/// knows the subcommands.
#[test]
fn issue20_shell_completions() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let r = run(dir.path(), &["completions", shell]);
        assert_eq!(r.code, 0, "{shell}: {}", r.stderr);
        assert!(r.stdout.contains("safeweights"), "{shell}");
        for sub in ["inspect", "validate", "convert", "scan", "completions"] {
            assert!(r.stdout.contains(sub), "{shell} script lacks {sub}");
        }
    }
    let r = run(dir.path(), &["completions", "tcsh"]);
    assert_eq!(r.code, 2);
}

/// A Hugging Face folder of pickle weights: `pytorch_model.bin` (a real
/// torch zip) and `config.json`.
fn bin_folder(dir: &Path, name: &str) -> PathBuf {
    let folder = dir.join(name);
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(pickle_fixture("small.pt"), folder.join("pytorch_model.bin")).unwrap();
    std::fs::write(folder.join("config.json"), b"{}").unwrap();
    folder
}

/// Issue 20: `scan` of a folder of `.bin` files suggests converting the
/// folder, never a per-file `pytorch_model.bin.safetensors`.
#[test]
fn issue20_scan_suggests_the_folder_conversion() {
    let dir = tempfile::tempdir().unwrap();
    bin_folder(dir.path(), "gpt2");
    std::fs::copy(pickle_fixture("small.pt"), dir.path().join("ck.pt")).unwrap();
    let r = run(
        dir.path(),
        &["scan", "--policy", "safetensors-only", "gpt2", "ck.pt"],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("safeweights convert gpt2 gpt2-safetensors"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("safeweights convert ck.pt ck.safetensors"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains(".bin.safetensors"), "{}", r.stdout);
    assert!(!r.stdout.contains(".pt.safetensors"), "{}", r.stdout);
    // and the suggested command works
    let conv = run(dir.path(), &["convert", "gpt2", "gpt2-safetensors"]);
    assert_eq!(conv.code, 0, "{}", conv.stderr);
    assert!(dir
        .path()
        .join("gpt2-safetensors/model.safetensors")
        .is_file());
}

/// Issue 20: `inspect`/`validate` of a pickle checkpoint or a `.bin`-only
/// folder say what it is and point to `convert` (not "header length
/// 578712552184433488 exceeds the limit").
#[test]
fn issue20_inspect_and_validate_of_pickles_point_to_convert() {
    let dir = tempfile::tempdir().unwrap();
    bin_folder(dir.path(), "gpt2");
    let r = run(dir.path(), &["inspect", "gpt2/pytorch_model.bin"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(!r.stderr.contains("exceeds the limit"), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("not a safetensors file: this is a zip archive (a PyTorch checkpoint"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("hint: convert it to safetensors (no code from it is run): `safeweights convert gpt2/pytorch_model.bin gpt2/pytorch_model.safetensors`"),
        "{}",
        r.stderr
    );
    let v = run(
        dir.path(),
        &["--json", "validate", "gpt2/pytorch_model.bin"],
    );
    assert_eq!(v.code, 1, "{}", v.stderr);
    assert_eq!(json(&v)[0]["error"]["kind"], "not_safetensors");
    let r = run(dir.path(), &["inspect", "gpt2"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("only PyTorch pickle weights (pytorch_model.bin)"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("hint: convert the folder to safetensors (other files are copied; no code is run): `safeweights convert gpt2 gpt2-safetensors`"),
        "{}",
        r.stderr
    );
    let v = run(dir.path(), &["validate", "gpt2"]);
    assert_eq!(v.code, 2, "{}", v.stdout);
    assert!(v.stdout.starts_with("ERROR    gpt2: "), "{}", v.stdout);
}

/// Issue 20: variants and checkpoints side by side are separate
/// checkpoints (the default one opens), and `inspect`/`validate` of a
/// pipeline folder go through its component folders.
#[test]
fn issue20_variants_side_by_side_and_pipelines() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("m")).unwrap();
    write_sample(&d.join("m/model.safetensors"), 0.0);
    write_sample(&d.join("m/model.fp16.safetensors"), 1.0);
    write_sample(&d.join("m/adapter_model.safetensors"), 2.0);
    let r = run(d, &["validate", "m"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert_eq!(r.stdout, "OK       m: 4 tensors\n");
    let r = run(d, &["inspect", "m"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("layout: single file"), "{}", r.stdout);
    std::fs::remove_file(d.join("m/model.safetensors")).unwrap();
    let r = run(d, &["inspect", "m"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "several checkpoints found (adapter_model.safetensors, model.fp16.safetensors)"
        ),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("hint: pass the file"), "{}", r.stderr);
    // a pipeline
    let p = d.join("pipe");
    for c in ["unet", "vae", "scheduler"] {
        std::fs::create_dir_all(p.join(c)).unwrap();
    }
    std::fs::write(
        p.join("model_index.json"),
        r#"{"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"], "scheduler": ["diffusers", "PNDMScheduler"]}"#,
    )
    .unwrap();
    std::fs::write(p.join("scheduler/scheduler_config.json"), b"{}").unwrap();
    write_sample(&p.join("unet/diffusion_pytorch_model.safetensors"), 0.0);
    write_sample(
        &p.join("unet/diffusion_pytorch_model.fp16.safetensors"),
        0.0,
    );
    write_sample(&p.join("vae/diffusion_pytorch_model.safetensors"), 0.0);
    append(&p.join("vae/diffusion_pytorch_model.safetensors"), b"x");
    let r = run(d, &["validate", "pipe"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stdout.contains("OK       pipe/unet: 4 tensors\n"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("INVALID  pipe/vae/diffusion_pytorch_model.safetensors: "),
        "{}",
        r.stdout
    );
    assert!(r.stdout.ends_with("1 of 2 valid\n"), "{}", r.stdout);
    std::fs::remove_file(p.join("vae/diffusion_pytorch_model.safetensors")).unwrap();
    let r = run(d, &["--json", "inspect", "pipe"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = json(&r);
    assert_eq!(v["components"].as_array().unwrap().len(), 1);
    assert_eq!(v["components"][0]["path"], "pipe/unet");
}

/// A protocol-2 pickle building a `mylib.layers.Block` (a team's class).
fn team_pickle() -> Vec<u8> {
    let mut p = vec![0x80, 0x02];
    p.extend_from_slice(b"cmylib.layers\nBlock\n)\x81.");
    p
}

/// Issue 20: `scan --allow-global MODULE.NAME` (repeatable) and
/// `--allow-globals-from FILE` accept a team's known classes, never a
/// critical global.
#[test]
fn issue20_scan_allow_global() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("team.pkl"), team_pickle()).unwrap();
    std::fs::write(dir.path().join("evil.pkl"), malicious_pickle()).unwrap();
    let plain = run(dir.path(), &["scan", "team.pkl"]);
    assert_eq!(plain.code, 1, "{}", plain.stdout);
    assert!(
        plain.stdout.contains("mylib.layers.Block"),
        "{}",
        plain.stdout
    );
    let allowed = run(
        dir.path(),
        &["scan", "team.pkl", "--allow-global", "mylib.layers.Block"],
    );
    assert_eq!(allowed.code, 0, "{}", allowed.stdout);
    let module = run(
        dir.path(),
        &[
            "scan",
            "team.pkl",
            "--allow-global",
            "other.X",
            "--allow-global",
            "mylib.layers.*",
        ],
    );
    assert_eq!(module.code, 0, "{}", module.stdout);
    std::fs::write(
        dir.path().join("allowed.txt"),
        "# our classes\nmylib.layers.Block\n\nposix.system  # never allowed\n",
    )
    .unwrap();
    let from_file = run(
        dir.path(),
        &[
            "scan",
            "team.pkl",
            "evil.pkl",
            "--allow-globals-from",
            "allowed.txt",
        ],
    );
    assert_eq!(from_file.code, 1, "{}", from_file.stdout);
    assert!(
        from_file.stdout.contains("CRITICAL"),
        "{}",
        from_file.stdout
    );
    assert!(!from_file.stdout.contains("HIGH"), "{}", from_file.stdout);
    let bad = run(dir.path(), &["scan", "team.pkl", "--allow-global", "Block"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("write MODULE.NAME"), "{}", bad.stderr);
}

/// Issue 20: figures with sensible precision: "1 thread", not "1 threads";
/// `max |a-b| = 0.3137`, not 17 digits.
#[test]
fn issue20_figures_with_sensible_precision() {
    let (dir, _) = sample_dir();
    write_sample(&dir.path().join("other.safetensors"), 0.313_725_5);
    let r = run(
        dir.path(),
        &["diff", "model.safetensors", "other.safetensors"],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("layer.weight: 1 value differs, max |a-b| = 0.3137\n"),
        "{}",
        r.stdout
    );
    let r = run(dir.path(), &["load", "model.safetensors", "--threads", "1"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("(1 thread via pread, 1 read of up to"),
        "{}",
        r.stdout
    );
}
