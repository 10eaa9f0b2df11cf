//! Every error of the scanner: its kind is unique and documented in
//! `docs/errors.md` with its class.

use std::collections::BTreeSet;

use safeweights::Diagnostic;

use crate::{ScanError, UnknownOutputFormat, UnknownPolicy, UnknownSeverity};

/// `docs/errors.md`'s rows under ``## `section` ``: `(kind, class)`.
fn documented(section: &str) -> Vec<(String, String)> {
    let doc = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/errors.md"));
    safeweights::diagnostic::testing::documented_kinds(doc, section)
}

fn examples() -> Vec<Box<dyn Diagnostic>> {
    vec![
        Box::new(ScanError {
            file: "x.bin".to_owned(),
            message: "not a regular file".to_owned(),
        }),
        Box::new(UnknownPolicy("strict".to_owned())),
        Box::new(UnknownSeverity("urgent".to_owned())),
        Box::new(UnknownOutputFormat("xml".to_owned())),
    ]
}

#[test]
fn every_kind_is_unique_and_documented_with_its_class() {
    let doc = documented("safeweights-scan");
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
    assert_eq!(examples()[0].message(), "x.bin: not a regular file");
}
