//! One malformed file per rule, each failing with its own error; and the
//! reference agrees on which files it rejects.

use std::process::Command;

use safeweights::{Diagnostic, HeaderError, ParseOptions, SafeTensors};

use crate::testutil::{raw_file, reference_python};

const T_U8_2: &str = r#"{"dtype":"U8","shape":[2],"data_offsets":[0,2]}"#;

struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    /// Whether the reference (and our lenient mode) rejects it too.
    reference_rejects: bool,
    check: fn(&HeaderError) -> bool,
}

fn cases() -> Vec<Case> {
    let mut huge = 100_000_001u64.to_le_bytes().to_vec();
    huge.extend_from_slice(b"{}");
    let mut past_end = 64u64.to_le_bytes().to_vec();
    past_end.extend_from_slice(b"{}      ");
    let mut bad_utf8 = 4u64.to_le_bytes().to_vec();
    bad_utf8.extend_from_slice(b"{\"\xff}");
    vec![
        Case {
            name: "header under 8 bytes",
            bytes: vec![1, 2, 3],
            reference_rejects: true,
            check: |e| matches!(e, HeaderError::HeaderTooSmall { len: 3 }),
        },
        Case {
            name: "N over 100,000,000",
            bytes: huge,
            reference_rejects: true,
            check: |e| {
                matches!(
                    e,
                    HeaderError::HeaderTooLarge {
                        len: 100_000_001,
                        ..
                    }
                )
            },
        },
        Case {
            name: "N past the end",
            bytes: past_end,
            reference_rejects: true,
            check: |e| {
                matches!(
                    e,
                    HeaderError::HeaderPastEnd {
                        len: 64,
                        file_len: 16
                    }
                )
            },
        },
        Case {
            name: "invalid UTF-8",
            bytes: bad_utf8,
            reference_rejects: true,
            check: |e| matches!(e, HeaderError::InvalidUtf8 { offset: 10 }),
        },
        Case {
            name: "invalid JSON",
            bytes: raw_file(r#"{"a":"#, &[]),
            reference_rejects: true,
            check: |e| matches!(e, HeaderError::InvalidJson { .. }),
        },
        Case {
            name: "non-object header",
            bytes: raw_file("[1,2]", &[]),
            reference_rejects: true,
            check: |e| matches!(e, HeaderError::NotAnObject { found: "array" }),
        },
        Case {
            name: "tensor entry not an object",
            bytes: raw_file(r#"{"a":3}"#, &[]),
            reference_rejects: true,
            check: |e| matches!(e, HeaderError::TensorNotAnObject { .. }),
        },
        Case {
            name: "unknown dtype",
            bytes: raw_file(
                r#"{"a":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}}"#,
                &[0; 16],
            ),
            reference_rejects: true,
            check: |e| matches!(e, HeaderError::UnknownDtype { dtype, .. } if dtype == "F128"),
        },
        Case {
            name: "missing shape",
            bytes: raw_file(r#"{"a":{"dtype":"U8","data_offsets":[0,2]}}"#, &[0; 2]),
            reference_rejects: true,
            check: |e| matches!(e, HeaderError::MissingField { field: "shape", .. }),
        },
        Case {
            name: "missing data_offsets",
            bytes: raw_file(r#"{"a":{"dtype":"U8","shape":[2]}}"#, &[0; 2]),
            reference_rejects: true,
            check: |e| {
                matches!(
                    e,
                    HeaderError::MissingField {
                        field: "data_offsets",
                        ..
                    }
                )
            },
        },
        Case {
            name: "negative dimension",
            bytes: raw_file(
                r#"{"a":{"dtype":"U8","shape":[-2],"data_offsets":[0,2]}}"#,
                &[0; 2],
            ),
            reference_rejects: true,
            check: |e| matches!(e, HeaderError::MalformedField { field: "shape", .. }),
        },
        Case {
            name: "three data offsets",
            bytes: raw_file(
                r#"{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,1,2]}}"#,
                &[0; 2],
            ),
            reference_rejects: true,
            check: |e| {
                matches!(
                    e,
                    HeaderError::MalformedField {
                        field: "data_offsets",
                        ..
                    }
                )
            },
        },
        Case {
            name: "dtype not a string",
            bytes: raw_file(
                r#"{"a":{"dtype":7,"shape":[2],"data_offsets":[0,2]}}"#,
                &[0; 2],
            ),
            reference_rejects: true,
            check: |e| matches!(e, HeaderError::MalformedField { field: "dtype", .. }),
        },
        Case {
            name: "offsets end before they begin",
            bytes: raw_file(
                r#"{"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"U8","shape":[2],"data_offsets":[2,0]}}"#,
                &[0; 2],
            ),
            reference_rejects: true,
            check: |e| {
                matches!(
                    e,
                    HeaderError::InvertedOffsets {
                        start: 2,
                        end: 0,
                        ..
                    } | HeaderError::Gap { .. }
                )
            },
        },
        Case {
            name: "hole between tensors",
            bytes: raw_file(
                r#"{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[3,5]}}"#,
                &[0; 5],
            ),
            reference_rejects: true,
            check: |e| {
                matches!(
                    e,
                    HeaderError::Gap {
                        start: 3,
                        expected: 2,
                        ..
                    }
                )
            },
        },
        Case {
            name: "first tensor not at offset 0",
            bytes: raw_file(
                r#"{"a":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}}"#,
                &[0; 3],
            ),
            reference_rejects: true,
            check: |e| {
                matches!(
                    e,
                    HeaderError::Gap {
                        start: 1,
                        expected: 0,
                        ..
                    }
                )
            },
        },
        Case {
            name: "overlapping tensors",
            bytes: raw_file(
                r#"{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}}"#,
                &[0; 3],
            ),
            reference_rejects: true,
            check: |e| {
                matches!(
                    e,
                    HeaderError::Overlap {
                        start: 1,
                        expected: 2,
                        ..
                    }
                )
            },
        },
        Case {
            name: "size not matching shape x dtype",
            bytes: raw_file(
                r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#,
                &[0; 4],
            ),
            reference_rejects: true,
            check: |e| {
                matches!(
                    e,
                    HeaderError::SizeMismatch {
                        expected: 8,
                        start: 0,
                        end: 4,
                        ..
                    }
                )
            },
        },
        Case {
            name: "shape overflow",
            bytes: raw_file(
                r#"{"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,4]}}"#,
                &[0; 4],
            ),
            reference_rejects: true,
            check: |e| matches!(e, HeaderError::Overflow { .. }),
        },
        Case {
            name: "size overflow (elements x bits)",
            bytes: raw_file(
                r#"{"a":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,4]}}"#,
                &[0; 4],
            ),
            reference_rejects: true,
            check: |e| matches!(e, HeaderError::Overflow { .. }),
        },
        Case {
            name: "sub-byte tensor not a whole number of bytes",
            bytes: raw_file(
                r#"{"a":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}"#,
                &[0; 2],
            ),
            reference_rejects: true,
            check: |e| matches!(e, HeaderError::NotByteAligned { elements: 3, .. }),
        },
        Case {
            name: "trailing bytes",
            bytes: raw_file(&format!(r#"{{"a":{T_U8_2}}}"#), &[0; 3]),
            reference_rejects: true,
            check: |e| {
                matches!(
                    e,
                    HeaderError::TrailingBytes {
                        expected: 2,
                        actual: 3
                    }
                )
            },
        },
        Case {
            name: "truncated buffer",
            bytes: raw_file(&format!(r#"{{"a":{T_U8_2}}}"#), &[0; 1]),
            reference_rejects: true,
            check: |e| {
                matches!(
                    e,
                    HeaderError::Truncated {
                        expected: 2,
                        actual: 1
                    }
                )
            },
        },
        Case {
            name: "metadata not an object",
            bytes: raw_file(r#"{"__metadata__":["x"]}"#, &[]),
            reference_rejects: true,
            check: |e| matches!(e, HeaderError::InvalidMetadata { .. }),
        },
        Case {
            name: "metadata value not a string",
            bytes: raw_file(r#"{"__metadata__":{"epoch":3}}"#, &[]),
            reference_rejects: true,
            check: |e| matches!(e, HeaderError::InvalidMetadata { .. }),
        },
        // Stricter than the reference:
        Case {
            name: "duplicate tensor name",
            bytes: raw_file(&format!(r#"{{"a":{T_U8_2},"a":{T_U8_2}}}"#), &[0; 2]),
            reference_rejects: false,
            check: |e| matches!(e, HeaderError::DuplicateKey { key, scope } if key == "a" && scope == "header"),
        },
        Case {
            name: "duplicate metadata key",
            bytes: raw_file(r#"{"__metadata__":{"k":"1","k":"2"}}"#, &[]),
            reference_rejects: false,
            check: |e| matches!(e, HeaderError::DuplicateKey { scope, .. } if scope == "__metadata__"),
        },
        Case {
            name: "duplicate field inside a tensor",
            bytes: raw_file(
                r#"{"a":{"dtype":"U8","dtype":"I8","shape":[2],"data_offsets":[0,2]}}"#,
                &[0; 2],
            ),
            reference_rejects: true,
            check: |e| matches!(e, HeaderError::DuplicateKey { key, .. } if key == "dtype"),
        },
        Case {
            name: "duplicate __metadata__",
            bytes: raw_file(r#"{"__metadata__":{},"__metadata__":{}}"#, &[]),
            reference_rejects: true,
            check: |e| matches!(e, HeaderError::DuplicateKey { key, .. } if key == "__metadata__"),
        },
        Case {
            name: "control character in a tensor name",
            bytes: raw_file(&format!(r#"{{"a\u0000b":{T_U8_2}}}"#), &[0; 2]),
            reference_rejects: false,
            check: |e| matches!(e, HeaderError::ControlCharacter { code: 0, .. }),
        },
        Case {
            name: "escape character in a tensor name",
            bytes: raw_file(&format!(r#"{{"a\u001b[31m":{T_U8_2}}}"#), &[0; 2]),
            reference_rejects: false,
            check: |e| matches!(e, HeaderError::ControlCharacter { code: 0x1b, .. }),
        },
    ]
}

#[test]
fn each_rule_has_its_own_error() {
    for case in cases() {
        let err = SafeTensors::deserialize(&case.bytes).expect_err(case.name);
        let header = err
            .header_error()
            .unwrap_or_else(|| panic!("{}: {err}", case.name));
        assert!(
            (case.check)(header),
            "{}: wrong error: {header:?}",
            case.name
        );
        // The message names the source.
        assert!(err.message().starts_with("<memory>: "), "{}", err.message());
        let lenient = SafeTensors::deserialize_with(&case.bytes, &ParseOptions::lenient());
        assert_eq!(
            lenient.is_err(),
            case.reference_rejects,
            "{}: lenient mode disagrees with the reference",
            case.name
        );
    }
}

#[test]
fn errors_name_the_file_tensor_and_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.safetensors");
    let bytes = raw_file(
        r#"{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[3,5]}}"#,
        &[0; 5],
    );
    std::fs::write(&path, bytes).unwrap();
    let msg = safeweights::SafeTensorsFile::open(&path)
        .unwrap_err()
        .message();
    assert!(msg.contains("bad.safetensors"), "{msg}");
    assert!(msg.contains("tensor \"b\""), "{msg}");
    assert!(
        msg.contains("offset 3") && msg.contains("ends at 2"),
        "{msg}"
    );
}

/// The reference package rejects exactly the files it should, and accepts the
/// ones only strict mode refuses.
#[test]
fn reference_agrees_on_rejections() {
    let Some(python) = reference_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cases = cases();
    for (i, case) in cases.iter().enumerate() {
        std::fs::write(dir.path().join(format!("{i}.safetensors")), &case.bytes).unwrap();
    }
    let script = r#"
import sys, os, safetensors
d = sys.argv[1]
for i in range(int(sys.argv[2])):
    data = open(os.path.join(d, f"{i}.safetensors"), "rb").read()
    try:
        safetensors.deserialize(data)
        print("accept")
    except Exception:
        print("reject")
"#;
    let out = Command::new(python)
        .args(["-c", script])
        .arg(dir.path())
        .arg(cases.len().to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verdicts: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(verdicts.len(), cases.len());
    for (case, verdict) in cases.iter().zip(verdicts) {
        let rejects = verdict == "reject";
        assert_eq!(
            rejects, case.reference_rejects,
            "reference on {:?}",
            case.name
        );
    }
}
