//! Replays the committed `.npy` header fuzz corpus (`fuzz/corpus/npy`)
//! through the parser: every input the fuzzer kept is checked on every run.
#![allow(clippy::disallowed_methods)] // Tests, examples and benches use std::fs directly; the rule is for library code.

#[test]
fn npy_header_corpus_parses_without_panic() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/corpus/npy");
    let mut accepted = 0;
    for entry in std::fs::read_dir(dir).expect("fuzz/corpus/npy") {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        if let Ok((shape, offset, nbytes)) = safeweights_convert::npy_header(&bytes) {
            accepted += 1;
            assert!(offset >= 10, "the data starts after the header");
            let elements: u64 = shape.iter().map(|&d| d as u64).product();
            assert!(elements == 0 || nbytes >= elements);
        }
    }
    assert!(accepted >= 5, "the seeds written by numpy.save parse");
}
