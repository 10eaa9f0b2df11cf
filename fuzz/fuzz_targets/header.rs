//! Fuzzes the header parser and reader with arbitrary file images, strict and
//! lenient. Any panic is a bug; every accepted file must be self-consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use safeweights::{ParseOptions, SafeTensors};

fuzz_target!(|data: &[u8]| {
    for options in [ParseOptions::strict(), ParseOptions::lenient()] {
        if let Ok(file) = SafeTensors::deserialize_with(data, &options) {
            let mut end = 0;
            for t in file.tensors() {
                assert_eq!(t.info().data_offsets.0, end);
                end = t.info().data_offsets.1;
                assert_eq!(Some(t.data().len()), t.dtype().byte_size(t.info().element_count()));
            }
            assert_eq!(end as u64, file.header().data_len());
        }
    }
});
