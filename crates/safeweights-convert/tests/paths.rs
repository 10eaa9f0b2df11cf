//! Path and content safety of conversions (issues 21 and 22): what a folder
//! conversion copies, through which symlinks, what it overwrites, and which
//! archives and tensor names it refuses. No Python needed.
#![allow(clippy::disallowed_methods)] // Tests, examples and benches use std::fs directly; the rule is for library code.

use std::io::Cursor;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use safeweights::{write_file, Dtype, TensorRef};
use safeweights_archive::ZipWriter;
use safeweights_convert::{convert, copy_companion_files, ConvertError, ConvertOptions};

/// A zip of the given members (names as given, duplicates allowed).
fn zip(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut z = ZipWriter::new(Cursor::new(Vec::new()));
    for (name, data) in members {
        z.entry(name, data).unwrap();
    }
    z.finish().unwrap().into_inner()
}

/// `{'w': tensor of 4 f32 zeros}` as `torch.save` writes it, with extra members.
fn torch_zip(extra: &[(&str, &[u8])]) -> Vec<u8> {
    let mut p = vec![0x80, 2, b'}', b'('];
    let u = |s: &str| {
        let mut v = vec![b'X'];
        v.extend_from_slice(&(s.len() as u32).to_le_bytes());
        v.extend_from_slice(s.as_bytes());
        v
    };
    p.extend(u("w"));
    p.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\n((");
    p.extend(u("storage"));
    p.extend_from_slice(b"ctorch\nFloatStorage\n");
    p.extend(u("0"));
    p.extend(u("cpu"));
    p.extend_from_slice(&[
        b'K', 4, b't', b'Q', b'K', 0, b'K', 4, 0x85, b'K', 1, 0x85, 0x89,
    ]);
    p.extend_from_slice(b"ccollections\nOrderedDict\n)RtRu.");
    let data = [0u8; 16];
    let mut members: Vec<(&str, &[u8])> = vec![
        ("archive/data.pkl", &p),
        ("archive/byteorder", b"little"),
        ("archive/data/0", &data),
        ("archive/version", b"3\n"),
    ];
    members.extend_from_slice(extra);
    zip(&members)
}

/// Protocol 0: `os.system("echo pwned")`.
const EVIL_PICKLE: &[u8] = b"cos\nsystem\n(S'echo pwned'\ntR.";

/// A `.npy` object array whose data is `EVIL_PICKLE`.
fn object_npy() -> Vec<u8> {
    let mut h = b"{'descr': '|O', 'fortran_order': False, 'shape': (1,), }".to_vec();
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(b' ');
    }
    h.push(b'\n');
    let mut v = b"\x93NUMPY\x01\x00".to_vec();
    v.extend_from_slice(&(h.len() as u16).to_le_bytes());
    v.extend(h);
    v.extend_from_slice(EVIL_PICKLE);
    v
}

/// A plain `.npy` of 2 u8.
fn plain_npy() -> Vec<u8> {
    let mut h = b"{'descr': '|u1', 'fortran_order': False, 'shape': (2,), }".to_vec();
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(b' ');
    }
    h.push(b'\n');
    let mut v = b"\x93NUMPY\x01\x00".to_vec();
    v.extend_from_slice(&(h.len() as u16).to_le_bytes());
    v.extend(h);
    v.extend_from_slice(&[1, 2]);
    v
}

/// A model folder with `pytorch_model.bin` and `config.json`.
fn model_folder(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("pytorch_model.bin"), torch_zip(&[])).unwrap();
    std::fs::write(dir.join("config.json"), "{}").unwrap();
}

fn names(paths: &[PathBuf], base: &Path) -> Vec<String> {
    paths
        .iter()
        .map(|p| p.strip_prefix(base).unwrap().display().to_string())
        .collect()
}

fn skipped(s: &safeweights_convert::ConvertSummary, base: &Path) -> Vec<(String, String)> {
    s.files_skipped
        .iter()
        .map(|f| {
            (
                f.path.strip_prefix(base).unwrap().display().to_string(),
                f.reason.clone(),
            )
        })
        .collect()
}

#[test]
fn issue21_folder_conversion_copies_nothing_through_symlinks_that_leave() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("hf");
    model_folder(&src);
    let secret = t.path().join("secret");
    std::fs::create_dir(&secret).unwrap();
    std::fs::write(secret.join("key.txt"), "SECRET").unwrap();
    symlink("../secret/key.txt", src.join("tokenizer.json")).unwrap();
    symlink("/etc/hostname", src.join("vocab.txt")).unwrap();
    symlink("../secret", src.join("extra_dir")).unwrap();
    symlink("/etc", src.join("etc_dir")).unwrap();
    // inside the folder: followed
    symlink("config.json", src.join("config_link.json")).unwrap();
    std::fs::create_dir(src.join("sub")).unwrap();
    std::fs::write(src.join("sub/a.txt"), "a").unwrap();
    symlink("../sub", src.join("sub/again")).unwrap(); // a loop
    symlink("ping", src.join("pong")).unwrap(); // a loop of links
    symlink("pong", src.join("ping")).unwrap();
    let out = t.path().join("out");
    let s = convert(&src, &out, &ConvertOptions::new()).unwrap();
    assert_eq!(
        names(&s.files_copied, &out),
        ["config.json", "config_link.json", "sub/a.txt"]
    );
    let sk = skipped(&s, &src);
    let reason = |name: &str| {
        sk.iter()
            .find(|(p, _)| p == name)
            .map(|(_, r)| r.clone())
            .unwrap_or_else(|| panic!("{name} not listed: {sk:?}"))
    };
    for name in ["tokenizer.json", "vocab.txt", "extra_dir", "etc_dir"] {
        assert!(
            reason(name).contains("leaves the source folder"),
            "{name}: {}",
            reason(name)
        );
    }
    assert!(reason("sub/again").starts_with("symlink loop"));
    assert!(reason("ping").contains("cannot be resolved"));
    assert!(reason("pong").contains("cannot be resolved"));
    assert!(!out.join("tokenizer.json").exists());
    assert!(!out.join("vocab.txt").exists());
    assert!(!out.join("extra_dir").exists());
    assert_eq!(std::fs::read(out.join("config_link.json")).unwrap(), b"{}");
    // the JSON summary lists them too
    let json = serde_json::to_string(&s).unwrap();
    assert!(json.contains("leaves the source folder"), "{json}");
}

#[test]
fn issue21_folder_conversion_reads_no_weights_through_symlinks_that_leave() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("hf");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(t.path().join("other.bin"), torch_zip(&[])).unwrap();
    symlink("../other.bin", src.join("pytorch_model.bin")).unwrap();
    let out = t.path().join("out");
    let err = convert(&src, &out, &ConvertOptions::new()).unwrap_err();
    assert!(
        matches!(&err, ConvertError::Folder { reason, .. } if reason.contains("resolves outside")),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn issue21_folder_conversion_follows_hugging_face_cache_links() {
    let t = tempfile::tempdir().unwrap();
    let repo = t.path().join("models--org--m");
    let snap = repo.join("snapshots/0123abcd");
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::create_dir_all(repo.join("blobs")).unwrap();
    std::fs::write(repo.join("blobs/aaaa"), torch_zip(&[])).unwrap();
    std::fs::write(repo.join("blobs/bbbb"), "{\"x\": 1}").unwrap();
    std::fs::write(repo.join("refs"), "x").unwrap();
    symlink("../../blobs/aaaa", snap.join("pytorch_model.bin")).unwrap();
    symlink("../../blobs/bbbb", snap.join("config.json")).unwrap();
    // but not elsewhere in the cache
    symlink("../../refs", snap.join("notes.txt")).unwrap();
    let out = t.path().join("out");
    let s = convert(&snap, &out, &ConvertOptions::new()).unwrap();
    assert_eq!(names(&s.files_copied, &out), ["config.json"]);
    assert_eq!(
        std::fs::read_to_string(out.join("config.json")).unwrap(),
        "{\"x\": 1}"
    );
    assert!(!std::fs::symlink_metadata(out.join("config.json"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(skipped(&s, &snap)
        .iter()
        .any(|(p, r)| p == "notes.txt" && r.contains("leaves the source folder")));
}

#[test]
fn issue21_folder_conversion_copies_no_code_carriers() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("hf");
    model_folder(&src);
    std::fs::write(src.join("extra.npy"), object_npy()).unwrap();
    std::fs::write(
        src.join("arrays.npz"),
        zip(&[("ok.npy", &plain_npy()), ("evil.npy", &object_npy())]),
    )
    .unwrap();
    std::fs::write(src.join("bundle.zip"), zip(&[("payload.pkl", EVIL_PICKLE)])).unwrap();
    std::fs::write(src.join("readme.txt"), EVIL_PICKLE).unwrap();
    std::fs::write(src.join("plain.npy"), plain_npy()).unwrap();
    std::fs::write(src.join("tokenizer.json"), "{\"version\": \"1.0\"}").unwrap();
    let out = t.path().join("out");
    let s = convert(&src, &out, &ConvertOptions::new()).unwrap();
    assert_eq!(
        names(&s.files_copied, &out),
        ["config.json", "plain.npy", "tokenizer.json"]
    );
    let sk = skipped(&s, &src);
    for name in ["arrays.npz", "bundle.zip", "extra.npy", "readme.txt"] {
        assert!(
            sk.iter()
                .any(|(p, r)| p == name && r.contains("not copied")),
            "{name}: {sk:?}"
        );
        assert!(!out.join(name).exists());
    }
    // the finished output scans clean
    let report = safeweights_scan::scan_paths(&[&out], &safeweights_scan::ScanOptions::new());
    assert!(report.findings.is_empty(), "{:?}", report.findings);
}

#[test]
fn issue21_convert_refuses_zip_anomalies_the_scanner_reports() {
    let t = tempfile::tempdir().unwrap();
    let dup = t.path().join("dup.bin");
    std::fs::write(&dup, torch_zip(&[("archive/data.pkl", EVIL_PICKLE)])).unwrap();
    let twin = t.path().join("twin.bin");
    std::fs::write(&twin, torch_zip(&[("archive/DATA.pkl", EVIL_PICKLE)])).unwrap();
    for (src, rule) in [(&dup, "zip.duplicate-name"), (&twin, "zip.duplicate-name")] {
        // the scanner distrusts the file ...
        let report = safeweights_scan::scan_file(src, &safeweights_scan::ScanOptions::new());
        assert!(report.findings.iter().any(|f| f.rule == rule));
        // ... and so does convert
        let dst = t.path().join("out.safetensors");
        let err = convert(src, &dst, &ConvertOptions::new()).unwrap_err();
        assert!(
            matches!(&err, ConvertError::ZipAnomaly { rule: r, .. } if r == rule),
            "{err}"
        );
        assert!(err.to_string().contains("--allow-zip-anomalies"));
        assert!(!dst.exists());
        // unless told otherwise
        convert(src, &dst, &ConvertOptions::new().allow_zip_anomalies(true)).unwrap();
        std::fs::remove_file(&dst).unwrap();
    }
    // a folder whose shard has a twin is refused as well
    let hf = t.path().join("hf");
    std::fs::create_dir(&hf).unwrap();
    std::fs::copy(&twin, hf.join("pytorch_model.bin")).unwrap();
    let err = convert(&hf, t.path().join("o"), &ConvertOptions::new()).unwrap_err();
    assert!(matches!(&err, ConvertError::ZipAnomaly { .. }), "{err}");
}

#[test]
fn issue21_npz_output_refuses_tensor_names_that_are_unsafe_paths() {
    let t = tempfile::tempdir().unwrap();
    for name in ["../../escape", "/abs/path", "C:\\evil", "a/../../b"] {
        let src = t.path().join("x.safetensors");
        let data = [0u8; 4];
        write_file(
            &src,
            &[TensorRef {
                name,
                dtype: Dtype::U8,
                shape: &[4],
                data: &data,
            }],
            None,
        )
        .unwrap();
        let dst = t.path().join("out.npz");
        let err = convert(&src, &dst, &ConvertOptions::new()).unwrap_err();
        assert!(
            matches!(&err, ConvertError::UnsafeTensorName { tensor, .. } if tensor == name),
            "{name}: {err}"
        );
        assert!(!dst.exists());
    }
}

#[test]
fn issue22_overwrite_never_deletes_what_convert_does_not_own() {
    let t = tempfile::tempdir().unwrap();
    let w = t.path().join("w");
    let src = w.join("hf");
    model_folder(&src);
    std::fs::write(src.join("training_args.bin"), EVIL_PICKLE).unwrap();
    std::fs::write(w.join("t.txt"), "unrelated").unwrap();
    let yes = ConvertOptions::new().overwrite(true);
    // the destination holds the source
    let err = convert(&src, &w, &yes).unwrap_err();
    assert!(err.to_string().contains("holds the source folder"), "{err}");
    assert!(src.join("training_args.bin").exists());
    assert!(w.join("t.txt").exists());
    // a folder of unrelated files
    let notes = t.path().join("notes");
    std::fs::create_dir(&notes).unwrap();
    std::fs::write(notes.join("todo.md"), "mine").unwrap();
    let err = convert(&src, &notes, &yes).unwrap_err();
    assert!(
        matches!(&err, ConvertError::DestinationNotOurs { files, .. } if files == "todo.md"),
        "{err}"
    );
    assert_eq!(std::fs::read(notes.join("todo.md")).unwrap(), b"mine");
    // an earlier output is replaced, and what was removed is said
    let out = t.path().join("out");
    convert(&src, &out, &ConvertOptions::new()).unwrap();
    let s = convert(&src, &out, &yes).unwrap();
    assert_eq!(
        names(&s.files_removed, &out),
        ["config.json", "model.safetensors"]
    );
    // ... unless someone added a file to it since
    std::fs::write(out.join("mine.txt"), "x").unwrap();
    let err = convert(&src, &out, &yes).unwrap_err();
    assert!(
        matches!(&err, ConvertError::DestinationNotOurs { .. }),
        "{err}"
    );
    assert!(out.join("mine.txt").exists());
}

#[test]
fn issue21_companion_files_for_reshard_and_merge() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("ckpt");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("model.safetensors"), "weights").unwrap();
    std::fs::write(src.join("model.safetensors.index.json"), "{}").unwrap();
    std::fs::write(src.join("config.json"), "{}").unwrap();
    std::fs::write(src.join("generation_config.json"), "{}").unwrap();
    std::fs::write(src.join("tokenizer.json"), "{}").unwrap();
    std::fs::write(src.join("training_args.bin"), EVIL_PICKLE).unwrap();
    std::fs::write(src.join("extra.npy"), object_npy()).unwrap();
    symlink("/etc/hostname", src.join("vocab.txt")).unwrap();
    let out = t.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("tokenizer.json"), "mine").unwrap();
    let c = copy_companion_files(&src, &out, false).unwrap();
    assert_eq!(
        names(&c.copied, &out),
        ["config.json", "generation_config.json"]
    );
    let sk: Vec<&str> = c
        .skipped
        .iter()
        .map(|s| s.path.file_name().unwrap().to_str().unwrap())
        .collect();
    assert_eq!(
        sk,
        [
            "training_args.bin",
            "vocab.txt",
            "tokenizer.json",
            "extra.npy"
        ]
    );
    assert_eq!(std::fs::read(out.join("tokenizer.json")).unwrap(), b"mine");
    let c = copy_companion_files(&src, &out, true).unwrap();
    assert_eq!(
        names(&c.copied, &out),
        ["config.json", "generation_config.json", "tokenizer.json"]
    );
    // the same folder: nothing to do
    assert!(copy_companion_files(&src, &src, true)
        .unwrap()
        .copied
        .is_empty());
}
