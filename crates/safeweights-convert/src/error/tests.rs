//! Every error of the converter: its kind is unique and documented in
//! `docs/errors.md` with its class.

use std::collections::BTreeSet;
use std::path::PathBuf;

use safeweights::Diagnostic;
use safeweights_pickle::{PickleError, PickleErrorKind};

use crate::ConvertError;

/// `docs/errors.md`'s rows under ``## `section` ``: `(kind, class)`.
fn documented(section: &str) -> Vec<(String, String)> {
    let doc = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/errors.md"));
    safeweights::diagnostic::testing::documented_kinds(doc, section)
}

fn examples() -> Vec<ConvertError> {
    let file = || PathBuf::from("model.bin");
    let tensor = || "w".to_owned();
    vec![
        ConvertError::Io {
            file: file(),
            source: std::io::Error::from_raw_os_error(2),
        },
        ConvertError::UnsupportedTensor {
            file: file(),
            tensor: tensor(),
            reason: "complex128 has no safetensors dtype".to_owned(),
        },
        ConvertError::Unsupported {
            file: file(),
            reason: "GGUF is not converted".to_owned(),
        },
        ConvertError::Npy {
            file: PathBuf::from("a.npz"),
            member: Some("x.npy".to_owned()),
            reason: "object arrays hold Python objects".to_owned(),
        },
        ConvertError::DuplicateName {
            file: file(),
            name: "a.b".to_owned(),
        },
        ConvertError::DestinationExists {
            path: PathBuf::from("out.safetensors"),
        },
        ConvertError::Folder {
            folder: PathBuf::from("model"),
            reason: "pytorch_model.bin.index.json lists a missing shard".to_owned(),
        },
        ConvertError::Verification {
            file: PathBuf::from("out.safetensors"),
            tensor: tensor(),
            reason: "byte 3 differs".to_owned(),
        },
        ConvertError::DestinationNotOurs {
            path: PathBuf::from("out"),
            files: "notes.txt".to_owned(),
        },
        ConvertError::UnsafeOutput {
            file: PathBuf::from("out/extra.npy"),
            reason: "NumPy object array: the data is a pickle".to_owned(),
        },
        ConvertError::UnsafeTensorName {
            file: PathBuf::from("x.safetensors"),
            tensor: "../../escape".to_owned(),
            reason: "the member name would leave the extraction folder".to_owned(),
        },
        ConvertError::ZipAnomaly {
            file: file(),
            member: Some("archive/data.pkl".to_owned()),
            rule: "zip.duplicate-name".to_owned(),
            what: "two members are named archive/data.pkl".to_owned(),
        },
    ]
}

/// Pickle reader errors, which keep the pickle reader's own kinds.
fn pickle_examples() -> Vec<ConvertError> {
    use safeweights_pickle::Error as P;
    let file = || PathBuf::from("model.bin");
    vec![
        P::Io {
            file: file(),
            source: std::io::Error::from_raw_os_error(2),
        },
        P::Pickle {
            file: file(),
            member: Some("archive/data.pkl".to_owned()),
            source: PickleError::new(
                2,
                PickleErrorKind::ForbiddenGlobal {
                    module: "posix".to_owned(),
                    name: "system".to_owned(),
                },
            ),
        },
        P::Pickle {
            file: file(),
            member: None,
            source: PickleError::new(9, PickleErrorKind::MissingStop),
        },
        P::Invalid {
            file: file(),
            reason: "no data.pkl".to_owned(),
        },
        P::LegacyTar { file: file() },
        P::LimitExceeded {
            file: file(),
            limit: "objects",
            max: 10,
        },
    ]
    .into_iter()
    .map(ConvertError::Pickle)
    .collect()
}

#[test]
fn every_kind_is_unique_and_documented_with_its_class() {
    let doc = documented("safeweights-convert");
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
fn pickle_errors_keep_the_pickle_readers_documented_kinds() {
    let doc = documented("safeweights-pickle");
    let kinds: Vec<&str> = pickle_examples().iter().map(|e| e.kind()).collect();
    assert_eq!(
        kinds,
        [
            "io",
            "pickle_forbidden_global",
            "pickle_missing_stop",
            "invalid_checkpoint",
            "legacy_tar_unsupported",
            "limit_exceeded"
        ]
    );
    for e in pickle_examples() {
        let kind = e.kind();
        let row = doc.iter().find(|(k, _)| k == kind);
        let (_, class) = row.unwrap_or_else(|| panic!("{kind:?} is not in docs/errors.md"));
        assert_eq!(class, e.class().as_str(), "class of {kind:?}");
    }
}

#[test]
fn facts_and_messages() {
    let e = &pickle_examples()[1];
    assert_eq!(e.offset(), Some(2));
    assert_eq!(e.member(), Some("archive/data.pkl"));
    assert_eq!(e.file(), Some(std::path::Path::new("model.bin")));
    let e = &examples()[0];
    assert_eq!(
        e.message(),
        "model.bin: I/O error: No such file or directory (os error 2)"
    );
    // A pickle error that still embeds its source is not repeated.
    let e = &pickle_examples()[0];
    assert_eq!(
        e.message(),
        "model.bin: I/O error: No such file or directory (os error 2)"
    );
    let core = safeweights::Error::Header {
        file: "x.safetensors".to_owned(),
        source: safeweights::HeaderError::ReservedName,
    };
    let e = ConvertError::Format(core);
    assert_eq!(
        (e.kind(), e.message().as_str()),
        (
            "reserved_name",
            "x.safetensors: a tensor may not be named \"__metadata__\""
        )
    );
}

/// Every error's facts and message, as a user sees them: a change is a
/// reviewed snapshot diff.
#[test]
fn messages() {
    let table: Vec<String> = examples()
        .into_iter()
        .chain(pickle_examples())
        .map(|e| safeweights::diagnostic::testing::facts_and_message(&e))
        .collect();
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(concat!(env!("CARGO_MANIFEST_DIR"), "/src/error/snapshots"));
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| insta::assert_snapshot!("error_messages", table.join("\n")));
}
