//! Arbitrary bytes never panic the scanner.
#![allow(clippy::disallowed_methods)] // Tests, examples and benches use std::fs directly; the rule is for library code.

mod common;

use proptest::prelude::*;
use safeweights_scan::{scan_bytes, Limits, ScanOptions};

fn opts() -> ScanOptions {
    ScanOptions::new().limits(Limits {
        max_expanded_bytes: 1 << 20,
        ..Limits::default()
    })
}

/// Seeds that reach deep code paths; proptest mutates them.
fn seeds() -> Vec<Vec<u8>> {
    use common::*;
    let evil = p4_call("os", "system", "id");
    vec![
        evil.clone(),
        p0_call("os", "system", "id"),
        zip(&[("archive/data.pkl", &evil), ("archive/data/0", &[0; 16])]),
        tar(&[("a.pkl", &evil)]),
        gzip(&evil),
        npy("|O", &evil),
        safetensors_raw(
            r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
            &[0; 4],
        ),
        onnx_external("../x"),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let r = scan_bytes("fuzz", &data, &opts());
        let _ = safeweights_scan::render_json(&r);
    }

    #[test]
    fn mutated_seeds(
        which in 0usize..8,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<usize>(),
    ) {
        let mut d = seeds()[which].clone();
        for (pos, b) in edits {
            let n = d.len();
            d[pos % n] = b;
        }
        let keep = d.len() - cut % (d.len() / 4 + 1);
        d.truncate(keep);
        let r = scan_bytes("fuzz", &d, &opts());
        let _ = safeweights_scan::render_sarif(&r);
    }
}
