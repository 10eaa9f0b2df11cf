//! Every error of the scanner: its kind is unique and documented in
//! `docs/errors.md` with its class.
#![allow(clippy::disallowed_methods)] // A test: reads docs/errors.md with std::fs.

use std::collections::BTreeSet;

use safeweights::{Diagnostic, ErrorClass};

use crate::{ScanError, UnknownOutputFormat, UnknownPolicy, UnknownSeverity};

/// `docs/errors.md`'s rows under `## \`section\``, up to the next heading:
/// `(kind, class)`.
fn documented(section: &str) -> Vec<(String, String)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/errors.md");
    let text = std::fs::read_to_string(path).expect("docs/errors.md");
    let heading = format!("## `{section}`");
    let mut rows = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with('#') {
            inside = line.trim() == heading;
            continue;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if inside && cells.len() > 3 && cells[1].starts_with('`') {
            rows.push((cells[1].trim_matches('`').to_owned(), cells[2].to_owned()));
        }
    }
    rows
}

fn class_name(class: ErrorClass) -> &'static str {
    match class {
        ErrorClass::InvalidInput => "invalid_input",
        ErrorClass::Io => "io",
        ErrorClass::Usage => "usage",
        ErrorClass::Unsupported => "unsupported",
        ErrorClass::Limit => "limit",
        _ => "a class docs/errors.md does not know",
    }
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
        assert_eq!(class, class_name(e.class()), "class of {kind:?}");
    }
    let documented: BTreeSet<&str> = doc.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(documented, seen, "docs/errors.md and the examples differ");
    assert_eq!(examples()[0].message(), "x.bin: not a regular file");
}
