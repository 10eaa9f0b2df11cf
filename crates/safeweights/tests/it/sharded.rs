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
    // Without an index, the same tensor in two files of a folder is an error too.
    std::fs::remove_file(&index).unwrap();
    let err = Checkpoint::open(dir.path()).unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Shard {
                source: ShardError::DuplicateTensor { .. },
                ..
            }
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
