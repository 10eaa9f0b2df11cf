//! Every error of the loader: its kind is unique and documented in
//! `docs/errors.md` with its class.

use std::collections::BTreeSet;
use std::io;

use safeweights::Diagnostic;

use crate::LoadError;

/// `docs/errors.md`'s rows under ``## `section` ``: `(kind, class)`.
fn documented(section: &str) -> Vec<(String, String)> {
    let doc = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/errors.md"));
    safeweights::diagnostic::testing::documented_kinds(doc, section)
}

fn examples() -> Vec<LoadError> {
    let file = || "m.safetensors".to_owned();
    let tensor = || "w".to_owned();
    vec![
        LoadError::Plan {
            file: file(),
            tensor: tensor(),
            reason: "planned twice".to_owned(),
        },
        LoadError::Open {
            file: file(),
            source: io::Error::from_raw_os_error(2),
        },
        LoadError::Read {
            file: file(),
            tensor: tensor(),
            offset: 4096,
            source: io::Error::from(io::ErrorKind::UnexpectedEof),
        },
        LoadError::Destination {
            tensor: tensor(),
            reason: "8 bytes for 16 planned".to_owned(),
        },
        LoadError::Alloc {
            bytes: 1 << 40,
            what: "pinned host memory",
        },
        LoadError::CudaUnavailable("no CUDA device".to_owned()),
        LoadError::Cuda {
            file: file(),
            tensor: tensor(),
            call: "cudaMemcpyAsync",
            code: 719,
            message: "unspecified launch failure".to_owned(),
        },
        LoadError::Mismatch {
            file: file(),
            tensor: tensor(),
            offset: 3,
        },
        LoadError::Panic("boom".to_owned()),
    ]
}

#[test]
fn every_kind_is_unique_and_documented_with_its_class() {
    let doc = documented("safeweights-load");
    let mut seen = BTreeSet::new();
    for e in examples() {
        let kind = e.kind();
        assert!(seen.insert(kind), "kind {kind:?} is used twice");
        let row = doc.iter().find(|(k, _)| k == kind);
        let (_, class) = row.unwrap_or_else(|| panic!("{kind:?} is not in docs/errors.md"));
        assert_eq!(class, e.class().as_str(), "class of {kind:?}");
    }
    let documented: BTreeSet<&str> = doc.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(documented, seen, "docs/errors.md and the examples differ");
}

#[test]
fn format_errors_take_the_core_kind_and_messages_join_the_chain() {
    let core = safeweights::Error::TensorNotFound {
        file: "m.safetensors".to_owned(),
        tensor: "x".to_owned(),
    };
    let e = LoadError::Format(core);
    assert_eq!((e.kind(), e.tensor()), ("tensor_not_found", Some("x")));
    let e = LoadError::Read {
        file: "m.safetensors".to_owned(),
        tensor: "w".to_owned(),
        offset: 4096,
        source: io::Error::from_raw_os_error(5),
    };
    assert_eq!(e.offset(), Some(4096));
    assert_eq!(
        e.message(),
        "m.safetensors: reading tensor \"w\" at offset 4096: Input/output error (os error 5)"
    );
}

/// Every error's facts and message, as a user sees them: a change is a
/// reviewed snapshot diff.
#[test]
fn messages() {
    let table: Vec<String> = examples()
        .into_iter()
        .map(|e| safeweights::diagnostic::testing::facts_and_message(&e))
        .collect();
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(concat!(env!("CARGO_MANIFEST_DIR"), "/src/error/snapshots"));
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| insta::assert_snapshot!("error_messages", table.join("\n")));
}
