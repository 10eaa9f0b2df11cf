//! Cross-implementation tests against the reference `safetensors` package.

use std::collections::BTreeMap;
use std::process::Command;

use safeweights::{
    serialize_with, Dtype, Metadata, ParseOptions, SafeTensors, TensorRef, WriteOptions,
};
use serde_json::Value;

use crate::testutil::{reference_python, reference_script};

struct Case {
    metadata: Option<Metadata>,
    tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)>,
}

fn load_case(dir: &std::path::Path, i: usize) -> Case {
    let spec: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(format!("case_{i}.json"))).unwrap())
            .unwrap();
    let blob = std::fs::read(dir.join(format!("case_{i}.data"))).unwrap();
    let metadata = spec["metadata"].as_object().map(|m| {
        m.iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect::<BTreeMap<_, _>>()
    });
    let tensors = spec["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let start = t["start"].as_u64().unwrap() as usize;
            let end = t["end"].as_u64().unwrap() as usize;
            (
                t["name"].as_str().unwrap().to_owned(),
                t["dtype"].as_str().unwrap().parse::<Dtype>().unwrap(),
                t["shape"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d.as_u64().unwrap() as usize)
                    .collect(),
                blob[start..end].to_vec(),
            )
        })
        .collect();
    Case { metadata, tensors }
}

fn header_json(bytes: &[u8]) -> Value {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    serde_json::from_slice(&bytes[8..8 + n]).unwrap()
}

/// Randomized tensor sets over every dtype, empty and scalar tensors and
/// metadata: our bytes equal the reference's, each side reads the other's.
#[test]
fn byte_identical_to_reference_and_mutually_readable() {
    let Some(python) = reference_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new(&python)
        .arg(reference_script())
        .args(["write", "20261123"])
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success(), "reference writer failed");

    let mut identical = 0;
    for i in 0..60 {
        let case = load_case(dir.path(), i);
        let refs: Vec<TensorRef<'_>> = case
            .tensors
            .iter()
            .map(|(name, dtype, shape, data)| TensorRef {
                name,
                dtype: *dtype,
                shape,
                data,
            })
            .collect();
        // Names with control characters (tabs) are written as the reference
        // writes them in lenient mode only.
        let has_control = case
            .tensors
            .iter()
            .any(|t| t.0.chars().any(char::is_control));
        let strict = safeweights::serialize(&refs, case.metadata.as_ref());
        assert_eq!(strict.is_err(), has_control, "case {i}");
        let ours = serialize_with(&refs, case.metadata.as_ref(), &WriteOptions::lenient()).unwrap();
        std::fs::write(dir.path().join(format!("case_{i}.ours.safetensors")), &ours).unwrap();

        let ref_path = dir.path().join(format!("case_{i}.ref.safetensors"));
        if !ref_path.exists() {
            continue; // F6 sets: the reference's Python API cannot write them.
        }
        let theirs = std::fs::read(&ref_path).unwrap();
        if case.tensors.is_empty() && case.metadata.as_ref().is_some_and(|m| m.is_empty()) {
            // The reference (0.8.0) writes `{},"__metadata__":{}}` here: not
            // JSON, unreadable by itself. We write `{"__metadata__":{}}`.
            assert!(SafeTensors::deserialize(&theirs).is_err());
            assert!(SafeTensors::deserialize(&ours).is_ok());
            continue;
        }
        if case.metadata.as_ref().is_none_or(|m| m.len() <= 1) {
            assert_eq!(ours, theirs, "case {i}: bytes differ from the reference");
            identical += 1;
        } else {
            // The reference writes metadata keys in hash order; we sort them.
            assert_eq!(ours.len(), theirs.len(), "case {i}");
            assert_eq!(header_json(&ours), header_json(&theirs), "case {i}");
            let n = 8 + u64::from_le_bytes(ours[..8].try_into().unwrap()) as usize;
            assert_eq!(ours[n..], theirs[n..], "case {i}: data differ");
        }

        // We read the reference's file, strictly unless a name has a control
        // character, with equal tensors.
        let strict_read = SafeTensors::deserialize_with(&theirs, &ParseOptions::strict());
        assert_eq!(strict_read.is_err(), has_control, "case {i}");
        let parsed = SafeTensors::deserialize_with(&theirs, &ParseOptions::lenient()).unwrap();
        assert_eq!(
            parsed.header().metadata(),
            case.metadata.as_ref(),
            "case {i}"
        );
        assert_eq!(parsed.header().len(), case.tensors.len());
        for (name, dtype, shape, data) in &case.tensors {
            let t = parsed.tensor(name).unwrap();
            assert_eq!(t.dtype(), *dtype, "case {i} {name}");
            assert_eq!(t.shape(), &shape[..], "case {i} {name}");
            assert_eq!(t.data(), &data[..], "case {i} {name}");
        }
    }
    assert!(
        identical >= 20,
        "too few byte-identical comparisons: {identical}"
    );

    // The reference reads every file we wrote, F6 included.
    let out = Command::new(&python)
        .arg(reference_script())
        .arg("read")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "reference failed to read our files:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("read 60 safeweights files"), "{stdout}");
}
