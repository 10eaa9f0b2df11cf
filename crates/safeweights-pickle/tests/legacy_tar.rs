//! Legacy tar checkpoints (PyTorch < 0.4), written by
//! tests/fixtures/make_legacy_tar.py and checked there with `torch.load`;
//! compared with legacy_tar_expected.json (what torch loaded).
#![allow(clippy::disallowed_methods)] // Tests, examples and benches use std::fs directly; the rule is for library code.

use safeweights::MemorySource;
use safeweights_pickle::archive::tar;
use safeweights_pickle::torch::{Format, TorchCheckpoint};
use safeweights_pickle::TarErrorKind;
use safeweights_pickle::{Error, Limits, PickleErrorKind};
use serde_json::Value as J;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn reads_the_same_tensors_as_torch() {
    let ck = TorchCheckpoint::open(fixture("legacy_tar.pt")).unwrap();
    assert_eq!(ck.format(), Format::LegacyTar);
    assert!(!ck.is_big_endian());
    let exp: J = serde_json::from_str(
        &std::fs::read_to_string(fixture("legacy_tar_expected.json")).unwrap(),
    )
    .unwrap();
    let exp = &exp["legacy_tar.pt"];
    let tensors = exp["tensors"].as_object().unwrap();
    let names: Vec<&str> = ck.tensors().iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names.len(), tensors.len(), "{names:?}");
    for nt in ck.tensors() {
        let e = &tensors[&nt.name];
        assert!(!e.is_null(), "unexpected tensor {}", nt.name);
        let t = &nt.tensor;
        assert_eq!(
            t.dtype.torch_name(),
            e["dtype"].as_str().unwrap(),
            "{}",
            nt.name
        );
        let shape: Vec<u64> = serde_json::from_value(e["shape"].clone()).unwrap();
        let stride: Vec<u64> = serde_json::from_value(e["stride"].clone()).unwrap();
        assert_eq!(t.shape, shape, "{} shape", nt.name);
        assert_eq!(t.stride, stride, "{} stride", nt.name);
        // torch reports offsets inside a storage view; ours are inside the root
        assert_eq!(
            t.storage_offset - t.storage.view_offset,
            e["offset"].as_u64().unwrap(),
            "{} offset",
            nt.name
        );
        let bytes = ck.tensor_bytes(t).unwrap();
        assert_eq!(
            hex(&bytes),
            e["bytes"].as_str().unwrap(),
            "{} bytes",
            nt.name
        );
    }
    let leaves = exp["leaves"].as_object().unwrap();
    assert_eq!(ck.leaves().len(), leaves.len(), "{:?}", ck.leaves());
    for (k, v) in ck.leaves() {
        assert_eq!(Some(v), leaves.get(k), "leaf {k}");
    }
    // views and the storage view share their root storages
    let shared = ck.shared_storages();
    let group = |n: &str| {
        shared
            .iter()
            .find(|(_, names)| names.iter().any(|x| x == n))
            .map(|(_, names)| names.clone())
            .unwrap_or_default()
    };
    let g = group("state_dict.weight");
    for n in ["state_dict.weight_t_view", "state_dict.strided"] {
        assert!(g.iter().any(|x| x == n), "{n} in {g:?}");
    }
    assert!(!ck
        .tensor("state_dict.weight_t_view")
        .unwrap()
        .tensor
        .is_contiguous());
    let g = group("meta.layers.0");
    assert!(g.iter().any(|x| x == "meta.layers.1"), "{g:?}");
    let scalar = &ck.tensor("meta.step").unwrap().tensor;
    assert!(scalar.shape.is_empty());
    assert_eq!(ck.tensor_bytes(scalar).unwrap(), 42i64.to_le_bytes());
}

fn open_err(name: &str) -> Error {
    match TorchCheckpoint::open(fixture(name)) {
        Ok(_) => panic!("{name} was accepted"),
        Err(e) => e,
    }
}

fn forbidden(e: &Error) -> Option<(String, String, String)> {
    match e {
        Error::Pickle {
            member: Some(m),
            source,
            ..
        } => match &source.kind {
            PickleErrorKind::ForbiddenGlobal { module, name } => {
                Some((m.clone(), module.clone(), name.clone()))
            }
            _ => None,
        },
        _ => None,
    }
}

#[test]
fn forbidden_global_in_the_object_pickle() {
    let e = open_err("legacy_tar_evil_pickle.pt");
    assert_eq!(
        forbidden(&e),
        Some(("pickle".into(), "os".into(), "system".into())),
        "{e}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("legacy_tar_evil_pickle.pt") && msg.contains("member pickle"),
        "{msg}"
    );
    assert!(msg.contains("at byte 2"), "{msg}");
}

#[test]
fn forbidden_global_in_the_storages_pickle() {
    let e = open_err("legacy_tar_evil_storages.pt");
    assert_eq!(
        forbidden(&e),
        Some(("storages".into(), "os".into(), "system".into())),
        "{e}"
    );
}

#[test]
fn storage_shorter_than_declared() {
    let e = open_err("legacy_tar_short_storage.pt");
    match &e {
        Error::TarMember { member, reason, .. } => {
            assert_eq!(member, "storages");
            assert!(reason.contains("declares"), "{reason}");
        }
        _ => panic!("{e}"),
    }
}

#[test]
fn tensor_view_out_of_bounds() {
    // torch.load accepts this file and silently grows the storage
    let e = open_err("legacy_tar_view_oob.pt");
    assert!(matches!(e, Error::TensorOutOfBounds { .. }), "{e}");
}

#[test]
fn truncated_tar() {
    let e = open_err("legacy_tar_truncated.pt");
    match &e {
        Error::Tar { kind, offset, .. } => {
            assert!(matches!(kind, TarErrorKind::PastEnd { .. }), "{e}");
            assert!(*offset > 0);
        }
        _ => panic!("{e}"),
    }
}

#[test]
fn oversized_members_hit_limits() {
    let e = TorchCheckpoint::open_with_limits(
        fixture("legacy_tar.pt"),
        Limits::default().max_pickle_bytes(64),
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            Error::LimitExceeded {
                limit: "max_pickle_bytes",
                ..
            }
        ),
        "{e}"
    );
    let e =
        TorchCheckpoint::open_with_limits(fixture("legacy_tar.pt"), Limits::default().max_nodes(3))
            .unwrap_err();
    assert!(matches!(e, Error::LimitExceeded { .. }), "{e}");
}

/// Rebuild a tar from (name, data, type) members with valid checksums.
fn tar(members: &[(&str, &[u8], u8)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data, kind) in members {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..107].copy_from_slice(b"0000644");
        h[124..135].copy_from_slice(format!("{:011o}", data.len()).as_bytes());
        h[156] = *kind;
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

fn members() -> Vec<(String, Vec<u8>)> {
    let data = std::fs::read(fixture("legacy_tar.pt")).unwrap();
    let t = tar::parse(&MemorySource::new(data.clone()), 16).unwrap();
    t.entries
        .iter()
        .map(|e| {
            let s = e.offset as usize;
            (e.name.clone(), data[s..s + e.size as usize].to_vec())
        })
        .collect()
}

fn from_bytes(data: Vec<u8>) -> Result<TorchCheckpoint<MemorySource>, Error> {
    TorchCheckpoint::from_source(MemorySource::new(data), "mem.pt", Limits::default())
}

#[test]
fn structural_variants() {
    let m = members();
    let get = |n: &str| m.iter().find(|(k, _)| k == n).unwrap().1.clone();
    let (sys, pkl, ten, sto) = (
        get("sys_info"),
        get("pickle"),
        get("tensors"),
        get("storages"),
    );
    // rebuilt from its members it still reads, also without sys_info
    from_bytes(tar(&[
        ("sys_info", &sys, b'0'),
        ("pickle", &pkl, b'0'),
        ("tensors", &ten, b'0'),
        ("storages", &sto, b'0'),
    ]))
    .unwrap();
    from_bytes(tar(&[
        ("pickle", &pkl, b'0'),
        ("tensors", &ten, b'0'),
        ("storages", &sto, b'0'),
    ]))
    .unwrap();
    // missing member
    let e = from_bytes(tar(&[("pickle", &pkl, b'0'), ("storages", &sto, b'0')])).unwrap_err();
    assert!(matches!(e, Error::NotACheckpoint { .. }), "{e}");
    // duplicate member: tarfile would silently take the last one
    let e = from_bytes(tar(&[
        ("pickle", &pkl, b'0'),
        ("tensors", &ten, b'0'),
        ("storages", &sto, b'0'),
        ("pickle", &pkl, b'0'),
    ]))
    .unwrap_err();
    assert!(
        matches!(e, Error::TarMember { ref member, .. } if member == "pickle"),
        "{e}"
    );
    // a symlink member: torch would extract it and follow it
    let e = from_bytes(tar(&[
        ("pickle", &pkl, b'0'),
        ("tensors", &ten, b'0'),
        ("storages", b"", b'2'),
    ]))
    .unwrap_err();
    assert!(
        matches!(e, Error::TarMember { ref member, .. } if member == "storages"),
        "{e}"
    );
    // big-endian sys_info
    let be = b"\x80\x02}q\x00X\r\x00\x00\x00little_endianq\x01\x89s.";
    let e = from_bytes(tar(&[
        ("sys_info", be, b'0'),
        ("pickle", &pkl, b'0'),
        ("tensors", &ten, b'0'),
        ("storages", &sto, b'0'),
    ]))
    .unwrap_err();
    assert!(
        matches!(e, Error::TarMember { ref member, .. } if member == "sys_info"),
        "{e}"
    );
    // too many members
    let many: Vec<(String, Vec<u8>)> = (0..70).map(|i| (format!("m{i}"), vec![])).collect();
    let refs: Vec<(&str, &[u8], u8)> = many
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice(), b'0'))
        .collect();
    let e = from_bytes(tar(&refs)).unwrap_err();
    assert!(matches!(e, Error::LimitExceeded { .. }), "{e}");
    // a module-class persistent id tuple in the object pickle is refused
    let tuple_pid = b"\x80\x02X\x01\x00\x00\x00aX\x01\x00\x00\x00b\x86Q.";
    let e = from_bytes(tar(&[
        ("pickle", tuple_pid, b'0'),
        ("tensors", &ten, b'0'),
        ("storages", &sto, b'0'),
    ]))
    .unwrap_err();
    assert!(
        matches!(e, Error::Pickle { ref source, .. } if matches!(source.kind, PickleErrorKind::BadPersistentId(_))),
        "{e}"
    );
    // an unknown key
    let unknown = b"\x80\x02X\x01\x00\x00\x007Q.";
    let e = from_bytes(tar(&[
        ("pickle", unknown, b'0'),
        ("tensors", &ten, b'0'),
        ("storages", &sto, b'0'),
    ]))
    .unwrap_err();
    assert!(
        e.to_string().contains("neither a tensor nor a storage"),
        "{e}"
    );
}

#[test]
fn no_panics_on_corrupted_files() {
    let data = std::fs::read(fixture("legacy_tar.pt")).unwrap();
    for cut in (0..data.len()).step_by(97) {
        let _ = from_bytes(data[..cut].to_vec());
    }
    let end = data.len().min(6000);
    for i in (0..end).step_by(3) {
        for x in [0x01u8, 0x80, 0xff] {
            let mut d = data.clone();
            d[i] ^= x;
            if let Ok(ck) = from_bytes(d) {
                for t in ck.tensors() {
                    let _ = ck.tensor_bytes(&t.tensor);
                }
            }
        }
    }
}
