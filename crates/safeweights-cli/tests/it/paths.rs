//! Issue 21 (path safety, terminal injection) and the `--overwrite` and
//! merge-onto-an-input items of issue 22, through the binary.

use std::os::unix::fs::symlink;
use std::path::Path;

use safeweights::{write_file_with, Dtype, Metadata, TensorRef, WriteOptions};

use crate::{json, run, write_sample};

/// What a terminal would act on: ESC, BEL, CR, C1 CSI.
fn assert_inert(text: &str) {
    for c in ['\x1b', '\x07', '\r', '\u{9b}'] {
        assert!(!text.contains(c), "raw {c:?} in {text:?}");
    }
}

/// A file whose metadata and tensor names hold escape sequences (written
/// leniently, as the reference would).
fn write_hostile(path: &Path) {
    let data = [0u8; 4];
    let tensors = [
        TensorRef {
            name: "evil\x1b[31mname",
            dtype: Dtype::U8,
            shape: &[4],
            data: &data,
        },
        TensorRef {
            name: "plain",
            dtype: Dtype::U8,
            shape: &[4],
            data: &data,
        },
    ];
    let metadata: Metadata = [
        ("note".to_owned(), "\x1b[2J\x1b]0;PWNED\x07".to_owned()),
        ("fake\nOK line".to_owned(), "x\ny".to_owned()),
    ]
    .into();
    write_file_with(path, &tensors, Some(&metadata), &WriteOptions::lenient()).unwrap();
}

#[test]
fn issue21_inspect_validate_diff_escape_untrusted_text() {
    let dir = tempfile::tempdir().unwrap();
    let evil = dir.path().join("evil.safetensors");
    write_hostile(&evil);
    let r = run(dir.path(), &["inspect", "--lenient", "evil.safetensors"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_inert(&r.stdout);
    assert!(
        r.stdout.contains("note: \\u{1b}[2J\\u{1b}]0;PWNED\\u{7}"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("fake\\nOK line: x\\ny"), "{}", r.stdout);
    assert!(
        !r.stdout.lines().any(|l| l.starts_with("OK")),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("evil\\u{1b}[31mname"), "{}", r.stdout);
    // JSON stays exact
    let r = run(
        dir.path(),
        &["inspect", "--json", "--lenient", "evil.safetensors"],
    );
    assert_eq!(json(&r)["metadata"]["note"], "\x1b[2J\x1b]0;PWNED\x07");
    // strict validate flags control characters in metadata; lenient accepts
    let r = run(dir.path(), &["validate", "--json", "evil.safetensors"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let v = json(&r);
    assert_eq!(v[0]["error"]["kind"], "metadata_control_character", "{v}");
    assert_eq!(v[0]["error"]["code"], 0x1b);
    let r = run(dir.path(), &["validate", "evil.safetensors"]);
    assert_eq!(r.code, 1);
    assert_inert(&r.stdout);
    assert_inert(&r.stderr);
    let r = run(dir.path(), &["validate", "--lenient", "evil.safetensors"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    // diff names the hostile tensor escaped
    write_sample(&dir.path().join("sample.safetensors"), 0.0);
    let r = run(
        dir.path(),
        &[
            "diff",
            "--lenient",
            "evil.safetensors",
            "sample.safetensors",
        ],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_inert(&r.stdout);
    assert!(
        r.stdout.contains("only in a  evil\\u{1b}[31mname"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("\\u001b[2J"), "{}", r.stdout);
    // errors on stderr name files escaped too
    let name = "gone\x1b[2J.safetensors";
    let r = run(dir.path(), &["inspect", name]);
    assert_eq!(r.code, 2);
    assert_inert(&r.stderr);
    assert!(r.stderr.contains("gone\\u{1b}[2J"), "{}", r.stderr);
}

#[test]
fn issue21_scan_human_output_escapes_file_names() {
    let dir = tempfile::tempdir().unwrap();
    let name = "evil\r\x1b[2K\x1b[32mOK clean.pkl";
    std::fs::write(dir.path().join(name), crate::malicious_pickle()).unwrap();
    for color in ["never", "always"] {
        let r = run(dir.path(), &["scan", "--color", color, "."]);
        assert_eq!(r.code, 1, "{}", r.stdout);
        assert!(!r.stdout.contains('\r'), "{:?}", r.stdout);
        assert!(!r.stdout.contains("\x1b[2K"), "{:?}", r.stdout);
        assert!(!r.stdout.contains("\x1b[32m"), "{:?}", r.stdout);
        assert!(
            r.stdout
                .contains("evil\\r\\u{1b}[2K\\u{1b}[32mOK clean.pkl"),
            "{:?}",
            r.stdout
        );
    }
    let r = run(dir.path(), &["scan", "--json", "."]);
    assert_eq!(json(&r)["findings"][0]["file"], format!("./{name}"));
    let r = run(dir.path(), &["scan", "--format", "sarif", "."]);
    let v = json(&r);
    let uri =
        &v["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"];
    assert_eq!(uri, "./evil%0D%1B%5B2K%1B%5B32mOK%20clean.pkl");
}

#[test]
fn issue21_scan_looks_behind_a_directory_symlink() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("model")).unwrap();
    std::fs::create_dir_all(dir.path().join("elsewhere")).unwrap();
    std::fs::write(dir.path().join("elsewhere/x.pt"), crate::malicious_pickle()).unwrap();
    write_sample(&dir.path().join("model/model.safetensors"), 0.0);
    symlink("../elsewhere", dir.path().join("model/ckpt")).unwrap();
    for extra in [&[][..], &["--policy", "safetensors-only"][..]] {
        let mut args = vec!["scan", "--json", "model"];
        args.extend_from_slice(extra);
        let r = run(dir.path(), &args);
        assert_eq!(r.code, 1, "{}", r.stdout);
        let v = json(&r);
        let hit = v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["file"] == "model/ckpt/x.pt" && f["severity"] == "critical");
        assert!(hit, "{v}");
    }
}

#[test]
fn issue21_unsafe_shard_path_through_a_symlink_is_refused_with_a_clear_hint() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("secret")).unwrap();
    std::fs::create_dir_all(dir.path().join("ckpt")).unwrap();
    write_sample(&dir.path().join("secret/x.safetensors"), 0.0);
    symlink("../secret", dir.path().join("ckpt/sub")).unwrap();
    let names = ["layer.weight", "layer.bias", "position_ids", "proj.weight"];
    let map: serde_json::Map<String, serde_json::Value> = names
        .iter()
        .map(|n| (n.to_string(), "sub/x.safetensors".into()))
        .collect();
    std::fs::write(
        dir.path().join("ckpt/model.safetensors.index.json"),
        serde_json::json!({ "weight_map": map }).to_string(),
    )
    .unwrap();
    let r = run(dir.path(), &["validate", "--json", "ckpt"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert_eq!(json(&r)[0]["error"]["kind"], "unsafe_shard_path");
    let r = run(dir.path(), &["inspect", "ckpt"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("hint: the index names a shard path outside the checkpoint folder"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("regenerate the index"), "{}", r.stderr);
}

/// A Hugging Face style folder: two shards, an index and the usual files.
fn hf_folder(dir: &Path) {
    let src = dir.join("sample.safetensors");
    write_sample(&src, 0.0);
    let r = run(
        dir,
        &[
            "reshard",
            "-q",
            "sample.safetensors",
            "--max-shard-size",
            "40B",
            "-o",
            "ckpt",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    std::fs::remove_file(src).unwrap();
    for f in ["config.json", "generation_config.json", "tokenizer.json"] {
        std::fs::write(dir.join("ckpt").join(f), "{}").unwrap();
    }
    std::fs::write(
        dir.join("ckpt/training_args.bin"),
        crate::malicious_pickle(),
    )
    .unwrap();
    std::fs::write(dir.join("secret.txt"), "SECRET").unwrap();
    symlink("../secret.txt", dir.join("ckpt/vocab.txt")).unwrap();
}

#[test]
fn issue21_reshard_and_merge_carry_the_folders_other_files() {
    let dir = tempfile::tempdir().unwrap();
    hf_folder(dir.path());
    let shards = std::fs::read_dir(dir.path().join("ckpt"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with("safetensors")
        })
        .count();
    assert!(shards > 1);
    let r = run(
        dir.path(),
        &[
            "reshard",
            "--json",
            "ckpt",
            "--max-shard-size",
            "1GB",
            "-o",
            "out",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = json(&r);
    let copied: Vec<&str> = v["companions"]["copied"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(
        copied,
        [
            "out/config.json",
            "out/generation_config.json",
            "out/tokenizer.json"
        ]
    );
    let skipped = v["companions"]["skipped"].to_string();
    assert!(skipped.contains("training_args.bin"), "{skipped}");
    assert!(skipped.contains("leaves the source folder"), "{skipped}");
    assert!(!dir.path().join("out/vocab.txt").exists());
    assert!(!dir.path().join("out/training_args.bin").exists());
    // merge writes them beside the merged file
    std::fs::create_dir(dir.path().join("merged")).unwrap();
    let r = run(
        dir.path(),
        &["merge", "ckpt", "-o", "merged/model.safetensors"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_inert(&r.stdout);
    assert!(
        r.stdout.contains("copied  merged/config.json"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("skipped ckpt/vocab.txt"), "{}", r.stdout);
    for f in ["config.json", "generation_config.json", "tokenizer.json"] {
        assert!(dir.path().join("merged").join(f).is_file(), "{f}");
    }
    let r = run(dir.path(), &["validate", "merged/model.safetensors"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
}

#[test]
fn issue22_merge_onto_one_of_its_inputs_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    hf_folder(dir.path());
    let first = "ckpt/model-00001-of-00002.safetensors";
    assert!(dir.path().join(first).exists());
    let before = std::fs::read(dir.path().join(first)).unwrap();
    let r = run(dir.path(), &["merge", "ckpt", "-o", first, "--force"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(
        r.stderr
            .contains("the output is one of the checkpoint's inputs"),
        "{}",
        r.stderr
    );
    assert_eq!(std::fs::read(dir.path().join(first)).unwrap(), before);
    let r = run(dir.path(), &["validate", "ckpt"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
}

#[test]
fn issue22_convert_overwrite_refuses_what_it_does_not_own() {
    let dir = tempfile::tempdir().unwrap();
    let w = dir.path().join("w");
    let hf = w.join("hf");
    std::fs::create_dir_all(&hf).unwrap();
    std::fs::copy(
        crate::pickle_fixture("small.pt"),
        hf.join("pytorch_model.bin"),
    )
    .unwrap();
    std::fs::write(hf.join("config.json"), "{}").unwrap();
    std::fs::write(hf.join("training_args.bin"), crate::malicious_pickle()).unwrap();
    std::fs::write(w.join("t.txt"), "unrelated").unwrap();
    let r = run(dir.path(), &["convert", "w/hf", "w", "--overwrite"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("holds the source folder"), "{}", r.stderr);
    assert!(hf.join("training_args.bin").exists());
    assert!(w.join("t.txt").exists());
    std::fs::create_dir(dir.path().join("notes")).unwrap();
    std::fs::write(dir.path().join("notes/todo.md"), "mine").unwrap();
    let r = run(dir.path(), &["convert", "w/hf", "notes", "--overwrite"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("todo.md"), "{}", r.stderr);
    assert!(dir.path().join("notes/todo.md").exists());
    // an earlier output is replaced, saying what was removed
    let r = run(dir.path(), &["convert", "w/hf", "out"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run(dir.path(), &["convert", "w/hf", "out", "--overwrite"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("removed out/model.safetensors"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("skipped w/hf/training_args.bin"),
        "{}",
        r.stdout
    );
}

#[test]
fn issue21_convert_refuses_zip_anomalies_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    // small.pt with a case twin of its data.pkl holding os.system
    let src = std::fs::read(crate::pickle_fixture("small.pt")).unwrap();
    let zip = safeweights_archive::ZipArchive::new(safeweights::MemorySource::new(src)).unwrap();
    let twin_path = dir.path().join("twin.pt");
    let mut w = safeweights_archive::ZipWriter::new(std::fs::File::create(&twin_path).unwrap());
    let mut pkl_name = String::new();
    for e in zip.entries() {
        let data = zip.read(e, 1 << 30).unwrap();
        w.entry(&e.name, &data).unwrap();
        if e.name.ends_with("/data.pkl") {
            pkl_name = e.name.clone();
        }
    }
    w.entry(
        &pkl_name.replace("data.pkl", "DATA.PKL"),
        &crate::malicious_pickle(),
    )
    .unwrap();
    w.finish().unwrap();
    let r = run(dir.path(), &["scan", "--json", "twin.pt"]);
    assert_eq!(r.code, 1);
    let r = run(dir.path(), &["convert", "twin.pt", "twin.safetensors"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("--allow-zip-anomalies"), "{}", r.stderr);
    assert!(!dir.path().join("twin.safetensors").exists());
    let r = run(
        dir.path(),
        &[
            "convert",
            "--allow-zip-anomalies",
            "twin.pt",
            "twin.safetensors",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn issue21_convert_folder_lists_refused_symlinks_and_escapes_names() {
    let dir = tempfile::tempdir().unwrap();
    let hf = dir.path().join("hf");
    std::fs::create_dir_all(&hf).unwrap();
    std::fs::copy(
        crate::pickle_fixture("small.pt"),
        hf.join("pytorch_model.bin"),
    )
    .unwrap();
    std::fs::write(hf.join("notes\x1b[2J.txt"), "hello").unwrap();
    symlink("/etc/hostname", hf.join("vocab.txt")).unwrap();
    let r = run(dir.path(), &["convert", "hf", "out"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_inert(&r.stdout);
    assert!(
        r.stdout.contains("copied  out/notes\\u{1b}[2J.txt"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("skipped hf/vocab.txt (symlink to /etc/hostname leaves the source folder"),
        "{}",
        r.stdout
    );
    let r = run(dir.path(), &["--json", "convert", "hf", "out2"]);
    let v = json(&r);
    assert!(v["files_skipped"]
        .to_string()
        .contains("leaves the source folder"));
    assert!(!dir.path().join("out/vocab.txt").exists());
}
