//! Every error of the core: its kind is unique and documented in
//! `docs/errors.md` with its class, and its message is snapshot-tested.

use std::collections::BTreeSet;
use std::io;

use crate::decode::DecodeError;
use crate::{Diagnostic, Dtype, Error, HeaderError, ShardError, SliceError, UnknownDtype};

/// `docs/errors.md`'s rows under ``## `section` ``: `(kind, class)`.
fn documented(section: &str) -> Vec<(String, String)> {
    let doc = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/errors.md"));
    crate::diagnostic::testing::documented_kinds(doc, section)
}

fn t() -> String {
    "w".to_owned()
}

fn header_errors() -> Vec<HeaderError> {
    use HeaderError as H;
    vec![
        H::HeaderTooSmall { len: 5 },
        H::HeaderTooLarge {
            len: 200_000_000,
            limit: 100_000_000,
        },
        H::HeaderPastEnd {
            len: 4096,
            file_len: 100,
        },
        H::InvalidUtf8 { offset: 17 },
        H::InvalidJson {
            message: "expected `:`".to_owned(),
            line: 1,
            column: 9,
        },
        H::NotAnObject { found: "array" },
        H::DuplicateKey {
            key: "w".to_owned(),
            scope: "header".to_owned(),
        },
        H::TensorNotAnObject {
            tensor: t(),
            found: "string",
        },
        H::UnknownDtype {
            tensor: t(),
            dtype: "F128".to_owned(),
        },
        H::MissingField {
            tensor: t(),
            field: "shape",
        },
        H::MalformedField {
            tensor: t(),
            field: "data_offsets",
            expected: "two unsigned integers",
        },
        H::InvertedOffsets {
            tensor: t(),
            start: 8,
            end: 4,
        },
        H::Gap {
            tensor: t(),
            start: 12,
            expected: 8,
        },
        H::Overlap {
            tensor: t(),
            start: 4,
            expected: 8,
        },
        H::Overflow {
            tensor: t(),
            dtype: Dtype::F32,
            shape: vec![u64::MAX, 2],
        },
        H::NotByteAligned {
            tensor: t(),
            dtype: Dtype::F4,
            elements: 3,
        },
        H::SizeMismatch {
            tensor: t(),
            dtype: Dtype::F32,
            shape: vec![2, 2],
            expected: 16,
            start: 0,
            end: 12,
        },
        H::TrailingBytes {
            expected: 52,
            actual: 60,
        },
        H::Truncated {
            expected: 60,
            actual: 52,
        },
        H::InvalidMetadata {
            reason: "value of \"format\" is a number".to_owned(),
        },
        H::ReservedName,
        H::ControlCharacter {
            tensor: "a\u{1b}b".to_owned(),
            code: 0x1b,
        },
        H::MetadataControlCharacter {
            key: "note".to_owned(),
            code: 0x1b,
        },
    ]
}

fn shard_errors() -> Vec<ShardError> {
    use ShardError as S;
    vec![
        S::InvalidIndex {
            reason: "no weight_map".to_owned(),
        },
        S::UnsafeShardPath {
            tensor: t(),
            shard: "../x.safetensors".to_owned(),
        },
        S::MissingFromShard {
            tensor: t(),
            shard: "s1.safetensors".to_owned(),
        },
        S::DuplicateTensor {
            tensor: t(),
            first: "s1.safetensors".to_owned(),
            second: "s2.safetensors".to_owned(),
        },
        S::NotInIndex {
            tensor: t(),
            shard: "s1.safetensors".to_owned(),
        },
        S::Empty,
        S::AmbiguousIndex("a.index.json, b.index.json".to_owned()),
        S::MissingShard {
            shard: "model-00004-of-00008.safetensors".to_owned(),
            count: 8,
        },
        S::NotAFile {
            shard: "extra.safetensors".to_owned(),
        },
        S::IndexTooLarge {
            len: 100_000_001,
            limit: 100_000_000,
        },
        S::SeveralCheckpoints("model.safetensors, model.fp16.safetensors".to_owned()),
        S::PickleWeights("pytorch_model.bin".to_owned()),
    ]
}

fn slice_errors() -> Vec<SliceError> {
    use SliceError as S;
    vec![
        S::TooManyIndices { given: 3, ndim: 2 },
        S::IndexOutOfRange {
            index: -4,
            dim: 0,
            size: 3,
        },
        S::ZeroStep { dim: 1 },
        S::NotByteAligned { dtype: Dtype::F4 },
        S::Overflow,
    ]
}

/// One error of every kind of the core, wrapped as users meet them.
fn examples() -> Vec<Box<dyn Diagnostic>> {
    let file = || "model.safetensors".to_owned();
    let mut out: Vec<Box<dyn Diagnostic>> = Vec::new();
    for source in header_errors() {
        out.push(Box::new(Error::Header {
            file: file(),
            source,
        }));
    }
    for source in shard_errors() {
        out.push(Box::new(Error::Shard {
            file: "model.safetensors.index.json".to_owned(),
            source,
        }));
    }
    for source in slice_errors() {
        out.push(Box::new(Error::Slice {
            file: file(),
            tensor: t(),
            source,
        }));
    }
    out.push(Box::new(Error::io(
        "missing.safetensors",
        io::Error::from_raw_os_error(2),
    )));
    out.push(Box::new(Error::TensorNotFound {
        file: file(),
        tensor: "nope".to_owned(),
    }));
    out.push(Box::new(Error::InvalidWrite {
        file: file(),
        reason: "tensor \"b\": 1 of 3 bytes written".to_owned(),
    }));
    out.push(Box::new(DecodeError {
        dtype: Dtype::F6_E2M3,
        len: 4,
        group: 3,
    }));
    out.push(Box::new(UnknownDtype("F128".to_owned())));
    out
}

#[test]
fn every_kind_is_unique_and_documented_with_its_class() {
    let doc = documented("safeweights");
    let mut seen = BTreeSet::new();
    for e in examples() {
        let kind = e.kind();
        assert!(seen.insert(kind), "kind {kind:?} is used twice");
        let row = doc.iter().find(|(k, _)| k == kind);
        let (_, class) = row.unwrap_or_else(|| panic!("{kind:?} is not in docs/errors.md"));
        assert_eq!(class, e.class().as_str(), "class of {kind:?}");
    }
    let documented: BTreeSet<&str> = doc.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        documented, seen,
        "docs/errors.md lists kinds with no example here"
    );
}

#[test]
fn wrappers_take_the_kind_class_and_tensor_of_their_source() {
    for source in header_errors() {
        let (kind, class, tensor, offset) = (
            source.kind(),
            source.class(),
            source.tensor().map(str::to_owned),
            source.offset(),
        );
        let e = Error::Header {
            file: "f".to_owned(),
            source,
        };
        assert_eq!(
            (e.kind(), e.class(), e.tensor(), e.offset()),
            (kind, class, tensor.as_deref(), offset)
        );
        assert_eq!(e.file(), Some(std::path::Path::new("f")));
    }
}

/// Every message, as users read it: the error and its causes, joined.
#[test]
fn messages() {
    let table: Vec<String> = examples()
        .iter()
        .map(|e| crate::diagnostic::testing::facts_and_message(e.as_ref()))
        .collect();
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(concat!(env!("CARGO_MANIFEST_DIR"), "/src/error/snapshots"));
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| insta::assert_snapshot!("error_messages", table.join("\n")));
}
