//! Replays the committed fuzz corpora (`fuzz/corpus/{scan,pickle,zip}`)
//! through the scanner, so every input the fuzzers kept is re-checked on
//! every test run.
#![allow(clippy::disallowed_methods)] // Tests, examples and benches use std::fs directly; the rule is for library code.

use safeweights_scan::{scan_bytes, ScanOptions};

#[test]
fn fuzz_corpora_scan_without_panic() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let mut count = 0;
    for corpus in ["scan", "pickle", "zip"] {
        for entry in std::fs::read_dir(root.join(corpus)).expect("fuzz corpus folder") {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            let report = scan_bytes("corpus.bin", &bytes, &ScanOptions::new());
            // Every report renders to valid JSON.
            let json = safeweights_scan::render_json(&report);
            assert!(serde_json::from_str::<serde_json::Value>(&json).is_ok());
            count += 1;
        }
    }
    assert!(count >= 30, "corpora hold only {count} inputs");
}
