//! Fuzzes the strict zip reader used for PyTorch archives: opening (strictly
//! and for inspection), listing and reading every member of arbitrary bytes
//! never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use safeweights::MemorySource;
use safeweights_archive::{SliceSource, ZipArchive};

fuzz_target!(|data: &[u8]| {
    if let Ok(archive) = ZipArchive::new(MemorySource::new(data.to_vec())) {
        let entries: Vec<_> = archive.entries().to_vec();
        for entry in &entries {
            let _ = archive.read(entry, 1 << 20);
        }
        let _ = archive.anomalies();
    }
    if let Ok(mut archive) = ZipArchive::inspect(SliceSource::new(data)) {
        let entries: Vec<_> = archive.entries().to_vec();
        for entry in &entries {
            let _ = archive.head(entry, 4096);
            let _ = archive.read_unverified(entry, 1 << 20);
        }
        let _ = archive.verify();
    }
});
