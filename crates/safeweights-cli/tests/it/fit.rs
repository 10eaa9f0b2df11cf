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
