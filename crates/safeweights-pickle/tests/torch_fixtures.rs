//! Checkpoints written by real `torch.save` (see tests/fixtures/make_fixtures.py),
//! compared against expected.json computed by torch itself.
#![allow(clippy::disallowed_methods)] // Tests, examples and benches use std::fs directly; the rule is for library code.

use safeweights::MemorySource;
use safeweights_pickle::torch::{Format, TorchCheckpoint};
use safeweights_pickle::{Error, TorchDtype};
use serde_json::Value as J;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn expected() -> J {
    let s = std::fs::read_to_string(fixture("expected.json")).unwrap();
    serde_json::from_str(&s).unwrap()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Compare every tensor and leaf of a fixture with what torch reported.
fn check_fixture(name: &str) -> TorchCheckpoint {
    let ck = TorchCheckpoint::open(fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let exp = expected();
    let exp = &exp[name];
    let tensors = exp["tensors"].as_object().unwrap();
    assert_eq!(
        ck.tensors().len(),
        tensors.len(),
        "{name}: tensor count; got {:?}",
        ck.tensors().iter().map(|t| &t.name).collect::<Vec<_>>()
    );
    for nt in ck.tensors() {
        let e = &tensors[&nt.name];
        assert!(!e.is_null(), "{name}: unexpected tensor {:?}", nt.name);
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
        if shape.iter().all(|&d| d > 0) {
            assert_eq!(t.stride, stride, "{} stride", nt.name);
        }
        assert_eq!(
            t.storage_offset,
            e["offset"].as_u64().unwrap(),
            "{} offset",
            nt.name
        );
        assert_eq!(
            t.is_parameter,
            e["parameter"].as_bool().unwrap(),
            "{} param",
            nt.name
        );
        let bytes = ck.tensor_bytes(t).unwrap();
        assert_eq!(
            hex(&bytes),
            e["bytes"].as_str().unwrap(),
            "{name}: {} bytes",
            nt.name
        );
    }
    let leaves = exp["leaves"].as_object().unwrap();
    assert_eq!(
        ck.leaves().len(),
        leaves.len(),
        "{name}: leaves {:?}",
        ck.leaves()
    );
    for (k, v) in ck.leaves() {
        let e = &leaves[k];
        match (v, e) {
            (J::Number(a), J::Number(b)) => {
                assert!(
                    (a.as_f64().unwrap() - b.as_f64().unwrap()).abs() < 1e-12,
                    "{k}"
                )
            }
            (J::Array(a), J::Array(b)) if a.is_empty() && b.is_empty() => {}
            _ => assert_eq!(v, e, "{name}: leaf {k}"),
        }
    }
    ck
}

#[test]
fn all_dtypes_zip() {
    let ck = check_fixture("all_dtypes.pt");
    assert_eq!(ck.format(), Format::Zip);
    let mut seen: Vec<TorchDtype> = ck.tensors().iter().map(|t| t.tensor.dtype).collect();
    seen.sort_by_key(|d| d.torch_name());
    seen.dedup();
    // every non-quantized dtype torch can save
    assert_eq!(seen.len(), 22, "{seen:?}");
    for t in ck.tensors() {
        assert_eq!(t.name, t.tensor.dtype.torch_name());
    }
    let code = |n: &str| ck.tensor(n).unwrap().tensor.dtype.safetensors_code();
    assert_eq!(code("float32"), Some("F32"));
    assert_eq!(code("bfloat16"), Some("BF16"));
    assert_eq!(code("float8_e4m3fn"), Some("F8_E4M3"));
    assert_eq!(code("float8_e8m0fnu"), Some("F8_E8M0"));
    assert_eq!(code("float4_e2m1fn_x2"), Some("F4"));
    assert_eq!(code("uint16"), Some("U16"));
    assert_eq!(code("complex64"), Some("C64"));
    assert_eq!(code("complex128"), None);
    // new dtypes use _rebuild_tensor_v3 over an untyped storage
    assert!(ck.tensor("uint16").unwrap().tensor.storage.untyped);
    assert!(!ck.tensor("float32").unwrap().tensor.storage.untyped);
}

#[test]
fn views_and_ties_zip() {
    let ck = check_fixture("views.pt");
    let shared = ck.shared_storages();
    let base_group = shared
        .iter()
        .find(|(_, names)| names.contains(&"base".to_string()))
        .unwrap();
    for n in ["transposed", "slice", "strided", "row", "tied_a", "tied_b"] {
        assert!(
            base_group.1.contains(&n.to_string()),
            "{n} shares base storage"
        );
    }
    let t = &ck.tensor("transposed").unwrap().tensor;
    assert!(!t.is_contiguous());
    assert!(ck.tensor("base").unwrap().tensor.is_contiguous());
    // anomalies: torch sets the data-descriptor bit, nothing else
    for a in ck.anomalies() {
        assert!(
            matches!(
                a,
                safeweights_pickle::archive::Anomaly::DataDescriptor { .. }
            ),
            "{a:?}"
        );
    }
}

#[test]
fn views_legacy() {
    let ck = check_fixture("views_legacy.pt");
    assert_eq!(ck.format(), Format::Legacy);
}

#[test]
fn nested_zip_and_legacy() {
    for f in ["nested.pt", "nested_legacy.pt"] {
        let ck = check_fixture(f);
        let names: Vec<&str> = ck.tensors().iter().map(|t| t.name.as_str()).collect();
        assert!(names.contains(&"state_dict.body.0.weight"), "{names:?}");
        assert!(
            names.contains(&"optimizer.state.0.momentum_buffer"),
            "{names:?}"
        );
        // tied lm_head / embed
        let shared = ck.shared_storages();
        assert!(shared
            .iter()
            .any(|(_, n)| n.contains(&"state_dict.lm_head.weight".into())
                && n.contains(&"state_dict.embed.weight".into())));
        let leaf = |k: &str| {
            ck.leaves()
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(leaf("epoch"), Some(J::from(3)));
        assert_eq!(leaf("big"), Some(J::from("1180591620717411303424")));
        assert_eq!(leaf("config.name"), Some(J::from("tiny")));
        assert_eq!(leaf("config.none"), Some(J::Null));
    }
}

#[test]
fn parameter_root() {
    let ck = check_fixture("parameter.pt");
    assert_eq!(ck.tensors()[0].name, "");
    assert!(ck.tensors()[0].tensor.is_parameter);
    assert!(ck.tensors()[0].tensor.requires_grad);
}

#[test]
fn big_endian_archive_is_byteswapped() {
    let ck = check_fixture("small_big_endian.pt");
    assert!(ck.is_big_endian());
    let w = ck.tensor("w").unwrap();
    let b = ck.tensor_bytes(&w.tensor).unwrap();
    let f: Vec<f32> = b
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(f, vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
}

#[test]
fn torchscript_is_refused() {
    match TorchCheckpoint::open(fixture("torchscript.pt")) {
        Err(Error::TorchScript { evidence, .. }) => {
            assert!(evidence.contains("code/") || evidence.ends_with("constants.pkl"))
        }
        other => panic!("expected TorchScript error, got {other:?}"),
    }
}

#[test]
fn copy_contiguous_streams() {
    let ck = TorchCheckpoint::open(fixture("views.pt")).unwrap();
    let t = &ck.tensor("transposed").unwrap().tensor;
    let mut out = Vec::new();
    let n = ck.copy_contiguous(t, &mut out).unwrap();
    assert_eq!(n, 24 * 4);
    let f: Vec<f32> = out
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(&f[..5], &[0.0, 6.0, 12.0, 18.0, 1.0]);
}

#[test]
fn in_memory_source_and_corruption() {
    let bytes = std::fs::read(fixture("small.pt")).unwrap();
    let ck = TorchCheckpoint::from_source(
        MemorySource::new(bytes.clone()),
        "mem.pt",
        Default::default(),
    )
    .unwrap();
    assert_eq!(ck.tensors().len(), 4);
    // flip a byte inside data.pkl: CRC mismatch must be reported
    let pos = bytes
        .windows(9)
        .position(|w| w == b"data.pkl\x00")
        .unwrap_or(0);
    let _ = pos;
    let z = safeweights_pickle::archive::ZipArchive::new(MemorySource::new(bytes.clone())).unwrap();
    let e = z
        .entries()
        .iter()
        .find(|e| e.name.ends_with("data.pkl"))
        .unwrap();
    let mut bad = bytes.clone();
    bad[e.data_offset as usize + 3] ^= 0x55;
    match TorchCheckpoint::from_source(MemorySource::new(bad), "bad.pt", Default::default()) {
        Err(Error::Zip { kind, .. }) => {
            assert!(matches!(
                kind,
                safeweights_pickle::ZipErrorKind::CrcMismatch { .. }
            ))
        }
        other => panic!("{other:?}"),
    }
    // truncation at every 97th byte never panics
    for cut in (0..bytes.len()).step_by(97) {
        let _ = TorchCheckpoint::from_source(
            MemorySource::new(bytes[..cut].to_vec()),
            "cut.pt",
            Default::default(),
        );
    }
}

#[test]
fn storage_too_small_is_typed_error() {
    // shrink a storage entry: rewrite the zip with python would be heavy; instead use the
    // legacy file and cut the final storage short
    let bytes = std::fs::read(fixture("views_legacy.pt")).unwrap();
    let cut = bytes[..bytes.len() - 4].to_vec();
    let err = TorchCheckpoint::from_source(MemorySource::new(cut), "short.pt", Default::default())
        .unwrap_err();
    assert!(
        matches!(err, Error::Invalid { .. } | Error::Io { .. }),
        "{err}"
    );
}
