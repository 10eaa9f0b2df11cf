//! Fuzzes the strict zip reader used for PyTorch archives: opening, listing
//! and reading every member of arbitrary bytes never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use safeweights_pickle::zip::ZipArchive;

fuzz_target!(|data: &[u8]| {
    if let Ok(archive) = ZipArchive::new(data.to_vec()) {
        let entries: Vec<_> = archive.entries().to_vec();
        for entry in &entries {
            let _ = archive.read(entry, 1 << 20);
        }
        let _ = archive.anomalies();
    }
});
