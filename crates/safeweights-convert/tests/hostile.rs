//! Hostile inputs: each refused construct fails with the right error and
//! leaves nothing at the destination. No Python needed: archives are
//! crafted here with the crate's zip writer and hand-written pickles.
#![allow(clippy::disallowed_methods)] // Tests, examples and benches use std::fs directly; the rule is for library code.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use safeweights_archive::ZipWriter;
use safeweights_convert::{convert, ConvertError, ConvertOptions};
use safeweights_pickle::{Error as PE, PickleErrorKind};

/// A torch-style zip archive with `data.pkl` and the given storages.
fn archive(pkl: &[u8], storages: &[(&str, &[u8])]) -> Vec<u8> {
    let mut z = ZipWriter::new(Cursor::new(Vec::new()));
    z.entry("archive/data.pkl", pkl).unwrap();
    z.entry("archive/byteorder", b"little").unwrap();
    for (k, d) in storages {
        z.entry(&format!("archive/data/{k}"), d).unwrap();
    }
    z.entry("archive/version", b"3\n").unwrap();
    z.finish().unwrap().into_inner()
}

fn binunicode(s: &str) -> Vec<u8> {
    let mut v = vec![b'X'];
    v.extend_from_slice(&(s.len() as u32).to_le_bytes());
    v.extend_from_slice(s.as_bytes());
    v
}

/// `{'w': _rebuild_tensor_v2(('storage', FloatStorage, '0', 'cpu', numel), offset, (n,), (1,), False, OrderedDict())}`
fn tensor_pickle(numel: u8, offset: u8, n: u8) -> Vec<u8> {
    let mut p = vec![0x80, 2, b'}', b'('];
    p.extend(binunicode("w"));
    p.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\n((");
    p.extend(binunicode("storage"));
    p.extend_from_slice(b"ctorch\nFloatStorage\n");
    p.extend(binunicode("0"));
    p.extend(binunicode("cpu"));
    p.extend_from_slice(&[
        b'K', numel, b't', b'Q', b'K', offset, b'K', n, 0x85, b'K', 1, 0x85, 0x89,
    ]);
    p.extend_from_slice(b"ccollections\nOrderedDict\n)RtRu.");
    p
}

struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    fn new() -> Self {
        Case {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn input(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
    /// Converts into an empty output folder and checks nothing is left there.
    fn refuse(&self, src: &Path, dst_name: &str) -> ConvertError {
        let out = self.dir.path().join("out");
        std::fs::create_dir_all(&out).unwrap();
        let err = convert(src, out.join(dst_name), &ConvertOptions::new()).unwrap_err();
        let left: Vec<_> = std::fs::read_dir(&out).unwrap().collect();
        assert!(left.is_empty(), "left behind after {err}: {left:?}");
        err
    }
}

fn pickle_kind(e: &ConvertError) -> &PickleErrorKind {
    match e {
        ConvertError::Pickle(PE::Pickle { source, .. }) => &source.kind,
        other => panic!("expected a pickle error, got {other}"),
    }
}

#[test]
fn well_formed_crafted_archive_converts() {
    let c = Case::new();
    let data: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let src = c.input("ok.bin", &archive(&tensor_pickle(4, 1, 3), &[("0", &data)]));
    let dst = c.dir.path().join("ok.safetensors");
    let s = convert(&src, &dst, &ConvertOptions::new()).unwrap();
    assert_eq!(s.tensors, 1);
    let f = safeweights::SafeTensorsFile::open(&dst).unwrap();
    assert_eq!(f.tensor("w").unwrap().data(), &data[4..]);
}

#[test]
fn foreign_global_is_refused() {
    let c = Case::new();
    let mut pkl = vec![0x80, 2];
    pkl.extend_from_slice(b"cos\nsystem\n");
    pkl.extend(binunicode("echo pwned"));
    pkl.extend_from_slice(&[0x85, b'R', b'.']);
    let src = c.input("evil.bin", &archive(&pkl, &[]));
    let err = c.refuse(&src, "evil.safetensors");
    match pickle_kind(&err) {
        PickleErrorKind::ForbiddenGlobal { module, name } => {
            assert_eq!((module.as_str(), name.as_str()), ("os", "system"))
        }
        k => panic!("{k}"),
    }
    assert!(err.to_string().contains("evil.bin"));
}

#[test]
fn torchscript_is_refused() {
    let c = Case::new();
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../safeweights-pickle/tests/fixtures/torchscript.pt");
    let err = c.refuse(&src, "ts.safetensors");
    assert!(
        matches!(err, ConvertError::Pickle(PE::TorchScript { .. })),
        "{err}"
    );
}

#[test]
fn out_of_bounds_view_is_refused() {
    let c = Case::new();
    let data = [0u8; 16]; // 4 floats
    let src = c.input(
        "oob.bin",
        &archive(&tensor_pickle(4, 2, 8), &[("0", &data)]),
    );
    let err = c.refuse(&src, "oob.safetensors");
    assert!(
        matches!(&err, ConvertError::Pickle(PE::TensorOutOfBounds { tensor, .. }) if tensor == "w"),
        "{err}"
    );
    // storage smaller than the pickle claims
    let src = c.input(
        "short.bin",
        &archive(&tensor_pickle(8, 0, 4), &[("0", &data)]),
    );
    let err = c.refuse(&src, "short.safetensors");
    assert!(
        matches!(err, ConvertError::Pickle(PE::Invalid { .. })),
        "{err}"
    );
}

#[test]
fn memo_bomb_is_refused() {
    // a = []; then 64 times a = [a, a]: 2^64 paths through shared references
    let c = Case::new();
    let mut pkl = vec![0x80, 2, b']', b'q', 0];
    for i in 0..64u8 {
        pkl.extend_from_slice(&[b'(', b'h', i, b'h', i, b'l', b'q', i + 1]);
    }
    pkl.push(b'.');
    let src = c.input("memo.bin", &archive(&pkl, &[]));
    let err = c.refuse(&src, "memo.safetensors");
    assert!(
        matches!(
            err,
            ConvertError::Pickle(PE::LimitExceeded { .. })
                | ConvertError::Pickle(PE::Pickle { .. })
        ),
        "{err}"
    );
    assert!(err.to_string().contains("limit"), "{err}");
}

#[test]
fn recursion_bomb_is_refused() {
    // 100 000 nested lists
    let c = Case::new();
    let mut pkl = vec![0x80, 2];
    pkl.extend(std::iter::repeat_n(b']', 100_000));
    pkl.extend(std::iter::repeat_n(b'a', 99_999));
    pkl.push(b'.');
    let src = c.input("deep.bin", &archive(&pkl, &[]));
    let err = c.refuse(&src, "deep.safetensors");
    assert!(err.to_string().contains("limit"), "{err}");
}

#[test]
fn sparse_rebuild_gets_a_clear_error() {
    let c = Case::new();
    let mut pkl = vec![0x80, 2];
    pkl.extend_from_slice(b"ctorch._utils\n_rebuild_sparse_tensor\n)R.");
    let src = c.input("sparse.pt", &archive(&pkl, &[]));
    let err = c.refuse(&src, "s.safetensors");
    assert!(matches!(err, ConvertError::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("sparse"), "{err}");
}

#[test]
fn broken_legacy_tar_and_garbage() {
    let c = Case::new();
    // a ustar magic with a wrong header checksum
    let mut tar = vec![0u8; 1024];
    tar[257..262].copy_from_slice(b"ustar");
    let src = c.input("old.tar.pt", &tar);
    let err = c.refuse(&src, "old.safetensors");
    assert!(matches!(err, ConvertError::Pickle(PE::Tar { .. })), "{err}");
    let src = c.input("junk.bin", b"hello world, not a checkpoint");
    let err = c.refuse(&src, "junk.safetensors");
    assert!(
        matches!(err, ConvertError::Pickle(PE::NotACheckpoint { .. })),
        "{err}"
    );
}

#[test]
fn bare_pickle_with_forbidden_global_is_reported_as_unsafe() {
    let c = Case::new();
    // Protocol 2 and protocol 0 pickles calling os.system, not in a zip.
    let mut p2 = vec![0x80, 2];
    p2.extend_from_slice(b"cos\nsystem\n");
    p2.extend(binunicode("echo pwned"));
    p2.extend_from_slice(&[0x85, b'R', b'.']);
    let p0 = b"cposix\nsystem\n(S'echo pwned'\ntR.".to_vec();
    for (file, pkl, want) in [
        ("evil.pkl", &p2, ("os", "system")),
        ("evil0.bin", &p0, ("posix", "system")),
    ] {
        let src = c.input(file, pkl);
        let err = c.refuse(&src, "evil.safetensors");
        match pickle_kind(&err) {
            PickleErrorKind::ForbiddenGlobal { module, name } => {
                assert_eq!((module.as_str(), name.as_str()), want)
            }
            k => panic!("{k}"),
        }
        assert!(err.to_string().contains(file), "{err}");
        assert!(err.to_string().contains("forbidden global"), "{err}");
    }
    // A bare pickle of plain data is still "not a checkpoint", and so is
    // text that happens to start like a GLOBAL opcode.
    for (file, bytes) in [
        ("data.pkl", &[0x80, 2, b'}', b'.'][..]),
        ("notes.txt", &b"cool stuff\nmore text\n"[..]),
    ] {
        let src = c.input(file, bytes);
        let err = c.refuse(&src, "x.safetensors");
        assert!(
            matches!(err, ConvertError::Pickle(PE::NotACheckpoint { .. })),
            "{err}"
        );
    }
}

fn npy(header: &str, data: &[u8]) -> Vec<u8> {
    let mut v = b"\x93NUMPY\x01\x00".to_vec();
    let mut h = header.to_string();
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    v.extend_from_slice(&(h.len() as u16).to_le_bytes());
    v.extend_from_slice(h.as_bytes());
    v.extend_from_slice(data);
    v
}

#[test]
fn npy_headers_are_strict() {
    let c = Case::new();
    let good = npy(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }",
        &[0; 8],
    );
    let src = c.input("good.npy", &good);
    let dst = c.dir.path().join("good.safetensors");
    convert(&src, &dst, &ConvertOptions::new()).unwrap();
    for (name, header, data) in [
        ("obj.npy", "{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", &[0u8; 16][..]),
        ("rec.npy", "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", &[0; 8]),
        ("extra.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}", &[0; 8]),
        ("short.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", &[0; 8]),
        ("long.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", &[0; 8]),
        ("neg.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }", &[0; 8]),
        ("c16.npy", "{'descr': '<c16', 'fortran_order': False, 'shape': (1,), }", &[0; 16]),
        ("dup.npy", "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}", &[0; 8]),
        ("code.npy", "{'descr': __import__('os'), 'fortran_order': False, 'shape': (2,)}", &[0; 8]),
        ("huge.npy", "{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999, 99999999999, 99999999999), }", &[0; 8]),
    ] {
        let src = c.input(name, &npy(header, data));
        let err = c.refuse(&src, "x.safetensors");
        assert!(matches!(err, ConvertError::Npy { .. }), "{name}: {err}");
    }
}

#[test]
fn npz_members_must_be_npy() {
    let c = Case::new();
    let mut z = ZipWriter::new(Cursor::new(Vec::new()));
    z.entry(
        "a.npy",
        &npy(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }",
            &[0; 4],
        ),
    )
    .unwrap();
    z.entry("payload.pkl", b"\x80\x02cos\nsystem\n.").unwrap();
    let bytes = z.finish().unwrap().into_inner();
    let src = c.input("mixed.npz", &bytes);
    // not all members are .npy: not an npz; read as a (bogus) torch zip and refused
    let err = c.refuse(&src, "x.safetensors");
    assert!(matches!(err, ConvertError::Pickle(_)), "{err}");
}

#[test]
fn destination_rules() {
    let c = Case::new();
    let data = [0u8; 16];
    let src = c.input("ok.bin", &archive(&tensor_pickle(4, 0, 4), &[("0", &data)]));
    let err = convert(&src, c.dir.path().join("x.txt"), &ConvertOptions::new()).unwrap_err();
    assert!(matches!(err, ConvertError::Unsupported { .. }), "{err}");
    let dst = c.input("exists.safetensors", b"keep me");
    let err = convert(&src, &dst, &ConvertOptions::new()).unwrap_err();
    assert!(
        matches!(err, ConvertError::DestinationExists { .. }),
        "{err}"
    );
    assert_eq!(std::fs::read(&dst).unwrap(), b"keep me");
    convert(&src, &dst, &ConvertOptions::new().overwrite(true)).unwrap();
    // converting a file onto itself is refused even with overwrite
    let err = convert(&dst, &dst, &ConvertOptions::new().overwrite(true)).unwrap_err();
    assert!(matches!(err, ConvertError::Unsupported { .. }), "{err}");
    // a folder without weights
    let empty = c.dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let err = convert(&empty, c.dir.path().join("o"), &ConvertOptions::new()).unwrap_err();
    assert!(matches!(err, ConvertError::Folder { .. }), "{err}");
    assert!(!c.dir.path().join("o").exists());
}

#[test]
fn hf_index_pointing_outside_is_refused() {
    let c = Case::new();
    let dir = c.dir.path().join("m");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join("pytorch_model.bin.index.json"),
        r#"{"metadata": {}, "weight_map": {"w": "../../etc/passwd"}}"#,
    )
    .unwrap();
    let out = c.dir.path().join("out");
    let err = convert(&dir, &out, &ConvertOptions::new()).unwrap_err();
    assert!(matches!(err, ConvertError::Folder { .. }), "{err}");
    assert!(!out.exists());
    let leftovers: Vec<_> = std::fs::read_dir(c.dir.path()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
}

#[test]
fn failing_shard_leaves_no_half_folder() {
    // second shard is hostile: the folder conversion fails and nothing is left
    let c = Case::new();
    let dir = c.dir.path().join("m");
    std::fs::create_dir(&dir).unwrap();
    let data = [0u8; 16];
    std::fs::write(
        dir.join("pytorch_model-00001-of-00002.bin"),
        archive(&tensor_pickle(4, 0, 4), &[("0", &data)]),
    )
    .unwrap();
    let mut evil = vec![0x80, 2];
    evil.extend_from_slice(b"cbuiltins\neval\n.");
    std::fs::write(
        dir.join("pytorch_model-00002-of-00002.bin"),
        archive(&evil, &[]),
    )
    .unwrap();
    std::fs::write(
        dir.join("pytorch_model.bin.index.json"),
        r#"{"metadata": {}, "weight_map": {"w": "pytorch_model-00001-of-00002.bin", "v": "pytorch_model-00002-of-00002.bin"}}"#,
    )
    .unwrap();
    std::fs::write(dir.join("config.json"), "{}").unwrap();
    let out = c.dir.path().join("out");
    let err = convert(&dir, &out, &ConvertOptions::new()).unwrap_err();
    assert!(
        matches!(pickle_kind(&err), PickleErrorKind::ForbiddenGlobal { .. }),
        "{err}"
    );
    assert!(!out.exists());
    assert_eq!(std::fs::read_dir(c.dir.path()).unwrap().count(), 1);
}
