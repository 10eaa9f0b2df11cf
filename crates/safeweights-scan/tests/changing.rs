//! A file truncated while the scanner reads it is reported as an error naming
//! the file; the process is never killed by SIGBUS.
#![allow(clippy::disallowed_methods)] // Tests, examples and benches use std::fs directly; the rule is for library code.

use std::fs;
use std::path::Path;
use std::time::Duration;

use safeweights_scan::{scan_file, ScanOptions};

/// A ustar archive of `n` small text members: the scanner walks every header,
/// so it touches pages across the whole file.
fn many_member_tar(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        let body = format!("member {i}\n").repeat(60);
        let mut h = [0u8; 512];
        let name = format!("notes/{i:05}.txt");
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..107].copy_from_slice(b"0000644");
        h[108..115].copy_from_slice(b"0000000");
        h[116..123].copy_from_slice(b"0000000");
        h[124..135].copy_from_slice(format!("{:011o}", body.len()).as_bytes());
        h[136..147].copy_from_slice(b"00000000000");
        h[156] = b'0';
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| b as u32).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(body.as_bytes());
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

fn truncate(path: &Path) {
    if let Ok(f) = fs::OpenOptions::new().write(true).open(path) {
        let _ = f.set_len(0);
    }
}

#[test]
fn truncation_during_a_scan_is_an_error_not_a_signal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("archive.tar");
    let image = many_member_tar(6000);
    let opts = ScanOptions::default();
    fs::write(&path, &image).unwrap();
    let whole = scan_file(&path, &opts);
    assert!(whole.errors.is_empty(), "{:?}", whole.errors);

    for round in 0..40u64 {
        fs::write(&path, &image).unwrap();
        let p = path.clone();
        let cutter = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_micros(200 * round));
            truncate(&p);
        });
        // Before the guard, a read past the new end killed the test process.
        let report = scan_file(&path, &opts);
        cutter.join().unwrap();
        // Whether the cut landed mid-scan depends on timing; when it did,
        // the report names the file, and no round may crash.
        for e in &report.errors {
            assert!(e.file.contains("archive.tar"), "{e:?}");
        }
    }
}
