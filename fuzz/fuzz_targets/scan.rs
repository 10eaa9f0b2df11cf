//! Fuzzes the scanner end to end on one in-memory file: format detection,
//! containers, pickles, safetensors; no input may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use safeweights_scan::{scan_bytes, ScanOptions};

fuzz_target!(|data: &[u8]| {
    let _ = scan_bytes("fuzz.bin", data, &ScanOptions::new());
});
