//! Converting a legacy tar checkpoint (PyTorch < 0.4) gives the tensors torch
//! loads from it (fixtures and expected values: safeweights-pickle's
//! tests/fixtures/make_legacy_tar.py).
#![allow(clippy::disallowed_methods)] // Tests, examples and benches use std::fs directly; the rule is for library code.

use safeweights_convert::{convert, ConvertError, ConvertOptions};
use safeweights_pickle::{Error as PE, PickleErrorKind};
use serde_json::Value as J;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../safeweights-pickle/tests/fixtures")
        .join(name)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn legacy_tar_converts_to_torchs_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let dst = dir.path().join("old.safetensors");
    let s = convert(fixture("legacy_tar.pt"), &dst, &ConvertOptions::new()).unwrap();
    assert_eq!(s.source_format, "torch-legacy-tar");
    let exp: J = serde_json::from_str(
        &std::fs::read_to_string(fixture("legacy_tar_expected.json")).unwrap(),
    )
    .unwrap();
    let tensors = exp["legacy_tar.pt"]["tensors"].as_object().unwrap();
    let f = safeweights::SafeTensorsFile::open(&dst).unwrap();
    let mut names = f.names();
    names.sort();
    let mut want: Vec<&str> = tensors.keys().map(|k| k.as_str()).collect();
    want.sort();
    assert_eq!(names, want);
    for (name, e) in tensors {
        let t = f.tensor(name).unwrap();
        let code = match e["dtype"].as_str().unwrap() {
            "float32" => "F32",
            "float64" => "F64",
            "float16" => "F16",
            "int64" => "I64",
            "int32" => "I32",
            "int16" => "I16",
            "int8" => "I8",
            "uint8" => "U8",
            d => panic!("{d}"),
        };
        assert_eq!(t.dtype().name(), code, "{name}");
        let shape: Vec<usize> = serde_json::from_value(e["shape"].clone()).unwrap();
        assert_eq!(t.shape(), shape.as_slice(), "{name}");
        assert_eq!(hex(t.data()), e["bytes"].as_str().unwrap(), "{name}");
    }
}

#[test]
fn hostile_legacy_tar_is_refused_and_leaves_nothing() {
    for name in [
        "legacy_tar_evil_pickle.pt",
        "legacy_tar_evil_storages.pt",
        "legacy_tar_short_storage.pt",
        "legacy_tar_view_oob.pt",
        "legacy_tar_truncated.pt",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let dst = dir.path().join("out.safetensors");
        let err = convert(fixture(name), &dst, &ConvertOptions::new()).unwrap_err();
        assert!(err.to_string().contains(name), "{name}: {err}");
        if name.contains("evil") {
            let forbidden = matches!(
                &err,
                ConvertError::Pickle(PE::Pickle { source, .. })
                    if matches!(source.kind, PickleErrorKind::ForbiddenGlobal { .. })
            );
            assert!(forbidden, "{name}: {err}");
        }
        assert!(!dst.exists(), "{name}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "{name}");
    }
}
