//! Sharded checkpoints: opening by folder or index, consistency errors, writing.

use safeweights::sharded::{parse_size, plan_shards, shard_file_name, write_sharded};
use safeweights::{write_file, Checkpoint, Dtype, Error, ShardError};

use crate::testutil::{refs, Owned};

fn model() -> Vec<Owned> {
    (0..10)
        .map(|i| Owned::counting(&format!("layers.{i}.weight"), Dtype::F32, &[64, 16]))
        .collect()
}

#[test]
fn reshard_and_reopen_by_folder_index_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("model.safetensors");
    let tensors = model();
    write_file(&src, &refs(&tensors), None).unwrap();
    let ckpt = Checkpoint::open(&src).unwrap();
    let out = dir.path().join("sharded");
    // 4 KiB tensors, 10 KB shards: two tensors per shard.
    let written = write_sharded(&ckpt, &out, "model", Some(10_000), None, &mut |_| {}).unwrap();
    assert_eq!(written.len(), 6, "5 shards + index");
    assert!(out.join("model-00001-of-00005.safetensors").exists());
    let index_text = std::fs::read_to_string(out.join("model.safetensors.index.json")).unwrap();
    assert!(index_text.starts_with(
        "{\n  \"metadata\": {\n    \"total_size\": 40960\n  },\n  \"weight_map\": {\n"
    ));
    assert!(index_text.ends_with("}\n"));

    for path in [out.clone(), out.join("model.safetensors.index.json")] {
        let sharded = Checkpoint::open(&path).unwrap();
        assert_eq!(sharded.len(), 10);
        assert_eq!(sharded.files().len(), 5);
        assert_eq!(sharded.index().unwrap().total_size(), Some(40960));
        for t in &tensors {
            assert_eq!(sharded.tensor(&t.name).unwrap().data(), &t.data[..]);
        }
    }
}

#[test]
fn index_inconsistencies_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let a = Owned::counting("a", Dtype::U8, &[4]);
    let b = Owned::counting("b", Dtype::U8, &[4]);
    write_file(
        dir.path().join("s1.safetensors"),
        &refs(std::slice::from_ref(&a)),
        None,
    )
    .unwrap();
    write_file(
        dir.path().join("s2.safetensors"),
        &refs(&[a.clone(), b.clone()]),
        None,
    )
    .unwrap();
    let index = dir.path().join("model.safetensors.index.json");
    let open = |json: &str| {
        std::fs::write(&index, json).unwrap();
        Checkpoint::open(&index).unwrap_err()
    };
    let err = open(r#"{"weight_map":{"a":"s1.safetensors","b":"s1.safetensors"}}"#);
    assert!(
        matches!(&err, Error::Shard { source: ShardError::MissingFromShard { tensor, .. }, .. } if tensor == "b"),
        "{err}"
    );
    let err = open(r#"{"weight_map":{"a":"s1.safetensors","b":"s2.safetensors"}}"#);
    assert!(
        matches!(&err, Error::Shard { source: ShardError::DuplicateTensor { tensor, .. }, .. } if tensor == "a"),
        "{err}"
    );
    let err = open(r#"{"weight_map":{"a":"../s1.safetensors"}}"#);
    assert!(
        matches!(
            &err,
            Error::Shard {
                source: ShardError::UnsafeShardPath { .. },
                ..
            }
        ),
        "{err}"
    );
    let err = open(r#"{"weight_map":{"a":"/etc/passwd"}}"#);
    assert!(
        matches!(
            &err,
            Error::Shard {
                source: ShardError::UnsafeShardPath { .. },
                ..
            }
        ),
        "{err}"
    );
    let err = open(r#"{"metadata":{}}"#);
    assert!(
        matches!(
            &err,
            Error::Shard {
                source: ShardError::InvalidIndex { .. },
                ..
            }
        ),
        "{err}"
    );
    // Without an index, two unnumbered files of a folder are two
    // checkpoints, not shards of one (issue 20): the folder names them.
    std::fs::remove_file(&index).unwrap();
    let err = Checkpoint::open(dir.path()).unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Shard {
                source: ShardError::SeveralCheckpoints(names),
                ..
            } if names == "s1.safetensors, s2.safetensors"
        ),
        "{err}"
    );
}

#[test]
fn shard_planning_and_names() {
    assert_eq!(plan_shards(&[5, 5, 5], 10), vec![vec![0, 1], vec![2]]);
    assert_eq!(plan_shards(&[20, 1, 1], 10), vec![vec![0], vec![1, 2]]);
    assert_eq!(plan_shards(&[], 10), vec![Vec::<usize>::new()]);
    assert_eq!(
        shard_file_name("model", 0, 3),
        "model-00001-of-00003.safetensors"
    );
    assert_eq!(shard_file_name("model", 0, 1), "model.safetensors");
    assert_eq!(parse_size("5GB"), Some(5_000_000_000));
    assert_eq!(parse_size("1.5MB"), Some(1_500_000));
    assert_eq!(parse_size("2GiB"), Some(2 << 30));
    assert_eq!(parse_size("100"), Some(100));
    assert_eq!(parse_size("five"), None);
    assert_eq!(parse_size("0"), None);
}

fn shard_err(err: Error) -> ShardError {
    match err {
        Error::Shard { source, .. } => source,
        other => panic!("expected a shard error, got {other:?}"),
    }
}

#[test]
fn incomplete_shard_sets_without_an_index_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for i in 1..=3 {
        let t = Owned::counting(&format!("t{i}"), Dtype::U8, &[4]);
        let name = format!("model-{i:05}-of-00008.safetensors");
        write_file(dir.path().join(name), &refs(std::slice::from_ref(&t)), None).unwrap();
    }
    let err = shard_err(Checkpoint::open(dir.path()).unwrap_err());
    assert_eq!(
        err,
        ShardError::MissingShard {
            shard: "model-00004-of-00008.safetensors".into(),
            count: 8
        }
    );
    assert!(err.to_string().contains("model-00004-of-00008"), "{err}");

    // A complete set opens; a shard that is not a regular file is named.
    let dir = tempfile::tempdir().unwrap();
    for i in 1..=2 {
        let t = Owned::counting(&format!("t{i}"), Dtype::U8, &[4]);
        let name = format!("model-{i:05}-of-00002.safetensors");
        write_file(dir.path().join(name), &refs(std::slice::from_ref(&t)), None).unwrap();
    }
    assert_eq!(Checkpoint::open(dir.path()).unwrap().len(), 2);
    std::fs::create_dir(dir.path().join("extra.safetensors")).unwrap();
    assert_eq!(
        shard_err(Checkpoint::open(dir.path()).unwrap_err()),
        ShardError::NotAFile {
            shard: "extra.safetensors".into()
        }
    );
}

#[test]
fn an_index_over_the_limit_is_refused_before_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let index = dir.path().join("model.safetensors.index.json");
    let f = std::fs::File::create(&index).unwrap();
    // Sparse: takes no disk, and must take no memory either.
    f.set_len(safeweights::sharded::MAX_INDEX_LEN + 1).unwrap();
    let err = shard_err(Checkpoint::open(&index).unwrap_err());
    assert!(
        matches!(err, ShardError::IndexTooLarge { len, .. } if len == safeweights::sharded::MAX_INDEX_LEN + 1),
        "{err:?}"
    );
}

/// Every file under `dir` with its bytes, for before/after comparisons.
fn snapshot(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap_or_default(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn rewriting_a_checkpoint_replaces_its_files_and_keeps_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("model.safetensors");
    write_file(&src, &refs(&model()), None).unwrap();
    let ckpt = Checkpoint::open(&src).unwrap();
    let out = dir.path().join("out");
    write_sharded(&ckpt, &out, "model", Some(10_000), None, &mut |_| {}).unwrap();
    std::fs::write(out.join("config.json"), b"{}").unwrap();
    // Three shards of a different count replace the five.
    write_sharded(&ckpt, &out, "model", Some(15_000), None, &mut |_| {}).unwrap();
    let names: Vec<String> = snapshot(&out).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "config.json",
            "model-00001-of-00004.safetensors",
            "model-00002-of-00004.safetensors",
            "model-00003-of-00004.safetensors",
            "model-00004-of-00004.safetensors",
            "model.safetensors.index.json"
        ]
    );
    assert_eq!(Checkpoint::open(&out).unwrap().len(), 10);
    let leftovers: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Runs in the child: a file-size limit lets the first shards through and
/// stops a later one, as a full disk would.
#[test]
fn child_reshard_past_file_size_limit() {
    let Ok(dir) = std::env::var("SAFEWEIGHTS_RESHARD_CHILD_DIR") else {
        return; // Only meaningful when spawned by the parent test below.
    };
    let dir = std::path::Path::new(&dir);
    // SAFETY: plain libc calls with valid arguments; this process is a
    // dedicated child running this one test.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let limit = libc::rlimit {
            rlim_cur: 12 * 1024,
            rlim_max: 12 * 1024,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
    }
    let ckpt = Checkpoint::open(dir.join("big.safetensors")).unwrap();
    let err = write_sharded(
        &ckpt,
        &dir.join("out"),
        "model",
        Some(10_000),
        None,
        &mut |_| {},
    )
    .unwrap_err();
    println!("CHILD-OK {err}");
}

#[test]
fn a_failed_rewrite_leaves_the_old_checkpoint_exactly_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("model.safetensors");
    write_file(&src, &refs(&model()), None).unwrap();
    let out = dir.path().join("out");
    let ckpt = Checkpoint::open(&src).unwrap();
    write_sharded(&ckpt, &out, "model", Some(10_000), None, &mut |_| {}).unwrap();
    std::fs::write(out.join("config.json"), b"{}").unwrap();
    // The new source has one tensor too large for the child's size limit.
    let mut tensors = model();
    tensors.push(Owned::counting("zz.big", Dtype::F32, &[64, 64]));
    write_file(dir.path().join("big.safetensors"), &refs(&tensors), None).unwrap();
    let before = snapshot(&out);

    let run = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "sharded::child_reshard_past_file_size_limit",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SAFEWEIGHTS_RESHARD_CHILD_DIR", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success() && stdout.contains("CHILD-OK"),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(snapshot(&out), before, "the old checkpoint changed");
    assert_eq!(Checkpoint::open(&out).unwrap().len(), 10);
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["big.safetensors", "model.safetensors", "out"]);
}

#[test]
fn merge_gives_back_the_file_and_describe_files_the_shards() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("model.safetensors");
    let tensors = model();
    let meta: safeweights::Metadata = [("format".to_owned(), "pt".to_owned())].into();
    write_file(&src, &refs(&tensors), Some(&meta)).unwrap();
    let ckpt = Checkpoint::open(&src).unwrap();
    let out = dir.path().join("sharded");
    let written =
        write_sharded(&ckpt, &out, "model", Some(10_000), Some(&meta), &mut |_| {}).unwrap();

    let rows = safeweights::sharded::describe_files(&written).unwrap();
    assert_eq!(rows.len(), 5, "the index is skipped");
    assert_eq!(rows[0].file, "model-00001-of-00005.safetensors");
    for (row, path) in rows.iter().zip(&written) {
        assert_eq!(row.tensors, 2);
        assert_eq!(row.bytes, 2 * 64 * 16 * 4);
        assert_eq!(row.file_bytes, std::fs::metadata(path).unwrap().len());
    }

    let shards = Checkpoint::open(&out).unwrap();
    let merged = dir.path().join("merged.safetensors");
    let mut progress = 0;
    let size = shards.merge_into(&merged, &mut |n| progress += n).unwrap();
    assert_eq!(progress, 40960);
    assert_eq!(size, std::fs::metadata(&merged).unwrap().len());
    // Deterministic layout, metadata kept: the same bytes as the original.
    assert_eq!(
        std::fs::read(&merged).unwrap(),
        std::fs::read(&src).unwrap()
    );
    // Merging replaces an existing file atomically.
    let again = safeweights::sharded::merge(&shards, &merged, &mut |_| {}).unwrap();
    assert_eq!(again, size);
}

/// Issue 20: weight variants and checkpoints side by side are separate
/// checkpoints: a folder opens the default one (`model.safetensors`), or
/// names them all; a folder of pickle weights says so.
#[test]
fn issue20_variants_and_side_by_side_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let put = |name: &str, tensor: &str| {
        let t = Owned::counting(tensor, Dtype::U8, &[4]);
        write_file(d.join(name), &refs(std::slice::from_ref(&t)), None).unwrap();
    };
    put("model.fp16.safetensors", "w");
    put("adapter_model.safetensors", "lora_A");
    let err = shard_err(Checkpoint::open(d).unwrap_err());
    assert_eq!(
        err,
        ShardError::SeveralCheckpoints("adapter_model.safetensors, model.fp16.safetensors".into())
    );
    put("model.safetensors", "w");
    let opened = Checkpoint::open(d).unwrap();
    assert_eq!(opened.files().len(), 1);
    assert!(opened.files()[0].name().ends_with("/model.safetensors"));
    assert_eq!(opened.names().collect::<Vec<_>>(), ["w"]);
    // each can be opened by name
    assert_eq!(
        Checkpoint::open(d.join("adapter_model.safetensors"))
            .unwrap()
            .names()
            .collect::<Vec<_>>(),
        ["lora_A"]
    );
    // pickle weights only
    let bin = tempfile::tempdir().unwrap();
    std::fs::write(bin.path().join("pytorch_model.bin"), b"PK\x03\x04").unwrap();
    std::fs::write(bin.path().join("config.json"), b"{}").unwrap();
    let err = shard_err(Checkpoint::open(bin.path()).unwrap_err());
    assert_eq!(err, ShardError::PickleWeights("pytorch_model.bin".into()));
}

/// Issue 21: `sub/x.safetensors` with `sub -> ../secret` leaves the folder
/// although the path is lexically plain; it is refused like `../secret/...`.
#[test]
fn issue21_shard_path_through_a_directory_symlink_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    let ckpt = dir.path().join("ckpt");
    std::fs::create_dir_all(&secret).unwrap();
    std::fs::create_dir_all(ckpt.join("inside")).unwrap();
    let a = Owned::counting("a", Dtype::U8, &[4]);
    write_file(
        secret.join("x.safetensors"),
        &refs(std::slice::from_ref(&a)),
        None,
    )
    .unwrap();
    write_file(
        ckpt.join("inside/x.safetensors"),
        &refs(std::slice::from_ref(&a)),
        None,
    )
    .unwrap();
    std::os::unix::fs::symlink("../secret", ckpt.join("sub")).unwrap();
    let index = ckpt.join("model.safetensors.index.json");
    std::fs::write(&index, r#"{"weight_map":{"a":"sub/x.safetensors"}}"#).unwrap();
    let err = Checkpoint::open(&index).unwrap_err();
    assert!(
        matches!(&err, Error::Shard { source: ShardError::UnsafeShardPath { shard, .. }, .. } if shard == "sub/x.safetensors"),
        "{err}"
    );
    // a sub-folder that stays inside is fine, and so is a symlinked shard file
    std::fs::write(&index, r#"{"weight_map":{"a":"inside/x.safetensors"}}"#).unwrap();
    assert_eq!(Checkpoint::open(&index).unwrap().len(), 1);
    std::os::unix::fs::symlink("inside/x.safetensors", ckpt.join("linked.safetensors")).unwrap();
    std::fs::write(&index, r#"{"weight_map":{"a":"linked.safetensors"}}"#).unwrap();
    assert_eq!(Checkpoint::open(&index).unwrap().len(), 1);
}

/// Issue 22: merging onto one of the inputs would leave the checkpoint
/// invalid; it is refused and the shard is untouched.
#[test]
fn issue22_merge_onto_an_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("model.safetensors");
    write_file(&src, &refs(&model()), None).unwrap();
    let out = dir.path().join("sharded");
    write_sharded(
        &Checkpoint::open(&src).unwrap(),
        &out,
        "model",
        Some(10_000),
        None,
        &mut |_| {},
    )
    .unwrap();
    let shard = out.join("model-00001-of-00005.safetensors");
    let before = std::fs::read(&shard).unwrap();
    let ckpt = Checkpoint::open(&out).unwrap();
    let err = ckpt.merge_into(&shard, &mut |_| {}).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidWrite { reason, .. } if reason.contains("one of the checkpoint's inputs")),
        "{err}"
    );
    drop(ckpt);
    assert_eq!(std::fs::read(&shard).unwrap(), before);
    assert_eq!(Checkpoint::open(&out).unwrap().len(), 10);
}
