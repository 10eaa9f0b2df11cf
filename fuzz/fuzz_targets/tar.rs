//! Fuzzes the strict tar reader used for legacy PyTorch checkpoints and by
//! the scanner: parsing arbitrary bytes never panics, and every member it
//! returns lies inside the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use safeweights_archive::tar;

fuzz_target!(|data: &[u8]| {
    let t = tar::parse_bytes(data, 1024);
    for e in &t.entries {
        assert!(e.offset + e.size <= data.len() as u64);
    }
    let _ = tar::is_tar(data);
});
