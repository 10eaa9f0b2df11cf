//! Replays the committed fuzz corpus (`fuzz/corpus/header`) through the
//! parser, so every input the fuzzer ever kept is checked on every test run.

use safeweights::{ParseOptions, SafeTensors};

#[test]
fn fuzz_corpus_parses_without_panic() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/header");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz corpus folder") {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        for options in [ParseOptions::strict(), ParseOptions::lenient()] {
            if let Ok(file) = SafeTensors::deserialize_with(&bytes, &options) {
                let end: usize = file.tensors().map(|t| t.data().len()).sum();
                assert_eq!(end as u64, file.header().data_len());
            }
        }
        count += 1;
    }
    assert!(count >= 10, "corpus has only {count} inputs");
}
