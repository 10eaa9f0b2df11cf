//! Writes the scanner's crafted technique corpus to a folder, for
//! `bench/scan.py` (detections side by side with picklescan and modelscan):
//!
//!     cargo run --release -p safeweights-scan --example dump_corpus -- OUT_DIR
//!
//! One file per distinct crafted byte string of the corpus table `cases()`
//! (`tests/common/cases.rs`, shared with `tests/corpus.rs`, included here as
//! is with the byte builders of `tests/common/mod.rs`), plus the two
//! `disguised()` files of its `extension_is_ignored` test, and
//! `OUT_DIR/manifest.json`: for each file its corpus case names, the rules the
//! corpus expects, and the benchmark's label:
//!
//! - `attack`: loading the file (or extracting it) runs attacker-chosen code,
//!   calls a dangerous primitive, or reaches outside the model folder;
//! - `suspect`: a crafted anomaly with no working payload (broken or odd zip,
//!   invalid safetensors, unknown but plausible imports, a TorchScript program,
//!   a computed global): safeweights flags these by design, they are counted
//!   apart, neither as attacks nor as false alarms.
//!
//! Cases with the same bytes share one file, named after the first; its
//! label is the label of that first case. Each file gets the extension a
//! user would give it (peers choose their scanner from the extension;
//! safeweights never looks at it). Cases that only make sense with
//! non-default options (`opts` other than `ScanOptions::new()`:
//! `limit-members`, `limit-expanded*`, `policy-*`) are left out: the peers
//! have no such knobs.
//!
//! The label and extension come from [`SUSPECT`] and [`EXT`] below, keyed by
//! case name: a new case is an attack in a `.pkl` file unless listed there.
//! As a guard, every name in those tables must be a case, and every file is
//! scanned here with `scan_bytes` and must produce the findings its cases
//! expect, or this exits 1. Nothing is ever unpickled or executed.
#![allow(clippy::disallowed_methods)] // Tests, examples and benches use std::fs directly; the rule is for library code.

#[path = "../tests/common/cases.rs"]
mod cases;
#[path = "../tests/common/mod.rs"]
mod common;
use cases::*;

use safeweights_scan::{scan_bytes, ScanOptions};
use std::io::Write;

/// Cases labelled `suspect`: a crafted anomaly with no working payload. Every
/// other case is an `attack`.
const SUSPECT: &[&str] = &[
    "p2-newobj-unknown",
    "truncated",
    "stack-global-unresolved",
    "reduce-non-global",
    "zip-bad-crc",
    "zip-encrypted",
    "zip-odd-flags",
    "zip-name-mismatch",
    "zip-size-mismatch",
    "7z",
    "joblib-sklearn",
    "safetensors-duplicate",
    "safetensors-invalid",
    "torchscript",
];

/// File extension of every case that is not a plain pickle (`pkl`).
const EXT: &[(&str, &str)] = &[
    ("torch-zip-malicious", "pt"),
    ("zip-bad-crc", "pt"),
    ("zip-encrypted", "zip"),
    ("zip-odd-flags", "zip"),
    ("zip-name-mismatch", "pt"),
    ("zip-size-mismatch", "pt"),
    ("zip-duplicate", "pt"),
    ("zip-overlap", "pt"),
    ("zip-prefix-data", "pt"),
    ("zip-traversal", "zip"),
    ("zip-deflated-member", "zip"),
    ("zip-tar-zip", "zip"),
    ("tar-gz", "tar.gz"),
    ("gzip-pickle", "pkl.gz"),
    ("7z", "7z"),
    ("tar-traversal", "tar"),
    ("npy-object", "npy"),
    ("npz-object-pickle", "npz"),
    ("joblib-sklearn", "joblib"),
    ("keras-lambda", "keras"),
    ("h5-lambda", "h5"),
    ("safetensors-trailing", "safetensors"),
    ("safetensors-duplicate", "safetensors"),
    ("safetensors-invalid", "safetensors"),
    ("onnx-escape", "onnx"),
    ("onnx-absolute", "onnx"),
    ("torchscript", "pt"),
    ("limit-depth", "zip"),
    ("disguised-pickle-as-safetensors", "safetensors"),
    ("disguised-torch-zip-as-txt", "txt"),
];

/// One file: the cases whose bytes it holds.
struct Item {
    cases: Vec<Case>,
    ext: &'static str,
    label: &'static str,
}

fn items() -> Vec<Item> {
    let mut v: Vec<Item> = Vec::new();
    for c in cases().into_iter().chain(disguised()) {
        if c.opts != ScanOptions::new() {
            continue;
        }
        // Same bytes as an earlier case: one file, both expectations.
        if let Some(it) = v.iter_mut().find(|it| it.cases[0].data == c.data) {
            it.cases.push(c);
            continue;
        }
        let ext = EXT
            .iter()
            .find(|(n, _)| *n == c.name)
            .map_or("pkl", |(_, e)| *e);
        let label = if SUSPECT.contains(&c.name) {
            "suspect"
        } else {
            "attack"
        };
        v.push(Item {
            cases: vec![c],
            ext,
            label,
        });
    }
    v
}

fn main() {
    let out =
        std::path::PathBuf::from(std::env::args().nth(1).expect("usage: dump_corpus OUT_DIR"));
    std::fs::create_dir_all(&out).expect("create OUT_DIR");
    let mut manifest = Vec::new();
    let mut bad = 0;
    let items = items();
    // Guard against stale names in the lookup tables.
    for name in SUSPECT.iter().chain(EXT.iter().map(|(n, _)| n)) {
        if !items
            .iter()
            .flat_map(|it| &it.cases)
            .any(|c| c.name == *name)
        {
            let _ = writeln!(std::io::stderr(), "{name}: not a corpus case");
            bad += 1;
        }
    }
    for it in items {
        let file = format!("{}.{}", it.cases[0].name, it.ext);
        let data = &it.cases[0].data;
        std::fs::write(out.join(&file), data).expect("write");
        // Guard against drift from tests/corpus.rs.
        let r = scan_bytes(&file, data, &ScanOptions::new());
        for c in &it.cases {
            if !r.findings.iter().any(|f| {
                f.rule == c.rule
                    && f.severity >= c.severity
                    && c.member.is_none_or(|m| f.member.as_deref() == Some(m))
            }) {
                let _ = writeln!(
                    std::io::stderr(),
                    "{}: expected {} ({}) {:?} not found",
                    c.name,
                    c.rule,
                    c.severity,
                    c.member
                );
                bad += 1;
            }
        }
        manifest.push(serde_json::json!({
            "file": file,
            "cases": it.cases.iter().map(|c| c.name).collect::<Vec<_>>(),
            "rules": it.cases.iter().map(|c| c.rule).collect::<Vec<_>>(),
            "label": it.label,
        }));
    }
    std::fs::write(
        out.join("manifest.json"),
        serde_json::to_string_pretty(&manifest).unwrap(),
    )
    .expect("write manifest");
    let _ = writeln!(
        std::io::stdout(),
        "{} files in {}",
        manifest.len(),
        out.display()
    );
    if bad > 0 {
        std::process::exit(1);
    }
}
