//! Only what must be read is read: a 20 GiB (sparse) PyTorch zip checkpoint
//! scans in well under a second because tensor payloads are never touched.
#![allow(clippy::disallowed_methods)] // Tests, examples and benches use std::fs directly; the rule is for library code.

mod common;

use std::io::{Seek, SeekFrom, Write};
use std::time::Instant;

use safeweights_scan::{scan_file, Format, ScanOptions, Severity};

fn le16(v: &mut Vec<u8>, x: u16) {
    v.extend_from_slice(&x.to_le_bytes());
}
fn le32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_le_bytes());
}
fn le64(v: &mut Vec<u8>, x: u64) {
    v.extend_from_slice(&x.to_le_bytes());
}

#[test]
fn twenty_gib_checkpoint_reads_kilobytes() {
    const BIG: u64 = 20 << 30;
    let pkl = common::benign_p2();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.pt");
    let mut f = std::fs::File::create(&path).unwrap();

    // member 1: big/data.pkl (stored)
    let mut h = Vec::new();
    le32(&mut h, 0x0403_4b50);
    le16(&mut h, 45);
    le16(&mut h, 0);
    le16(&mut h, 0);
    le32(&mut h, 0);
    le32(&mut h, common::crc32(&pkl));
    le32(&mut h, pkl.len() as u32);
    le32(&mut h, pkl.len() as u32);
    le16(&mut h, 12);
    le16(&mut h, 0);
    h.extend_from_slice(b"big/data.pkl");
    h.extend_from_slice(&pkl);
    // member 2: big/data/0 (stored, 20 GiB of zeros, zip64 sizes)
    let off2 = h.len() as u64;
    le32(&mut h, 0x0403_4b50);
    le16(&mut h, 45);
    le16(&mut h, 0);
    le16(&mut h, 0);
    le32(&mut h, 0);
    le32(&mut h, 0); // crc: never checked, the payload is never read
    le32(&mut h, u32::MAX);
    le32(&mut h, u32::MAX);
    le16(&mut h, 10);
    le16(&mut h, 20);
    h.extend_from_slice(b"big/data/0");
    le16(&mut h, 1);
    le16(&mut h, 16);
    le64(&mut h, BIG);
    le64(&mut h, BIG);
    f.write_all(&h).unwrap();
    f.seek(SeekFrom::Current(BIG as i64)).unwrap();
    let cd_off = h.len() as u64 + BIG;

    let mut cd = Vec::new();
    let central = |cd: &mut Vec<u8>, name: &[u8], crc: u32, size: Option<u32>, off: u64| {
        le32(cd, 0x0201_4b50);
        le16(cd, 45);
        le16(cd, 45);
        le16(cd, 0);
        le16(cd, 0);
        le32(cd, 0);
        le32(cd, crc);
        le32(cd, size.unwrap_or(u32::MAX));
        le32(cd, size.unwrap_or(u32::MAX));
        le16(cd, name.len() as u16);
        le16(cd, if size.is_none() { 20 } else { 0 });
        cd.extend_from_slice(&[0; 10]);
        le32(cd, off as u32);
        cd.extend_from_slice(name);
        if size.is_none() {
            le16(cd, 1);
            le16(cd, 16);
            le64(cd, BIG);
            le64(cd, BIG);
        }
    };
    central(
        &mut cd,
        b"big/data.pkl",
        common::crc32(&pkl),
        Some(pkl.len() as u32),
        0,
    );
    central(&mut cd, b"big/data/0", 0, None, off2);
    let mut tail = cd.clone();
    let z64 = cd_off + cd.len() as u64;
    le32(&mut tail, 0x0606_4b50);
    le64(&mut tail, 44);
    le16(&mut tail, 45);
    le16(&mut tail, 45);
    le32(&mut tail, 0);
    le32(&mut tail, 0);
    le64(&mut tail, 2);
    le64(&mut tail, 2);
    le64(&mut tail, cd.len() as u64);
    le64(&mut tail, cd_off);
    le32(&mut tail, 0x0706_4b50);
    le32(&mut tail, 0);
    le64(&mut tail, z64);
    le32(&mut tail, 1);
    le32(&mut tail, 0x0605_4b50);
    le32(&mut tail, 0);
    le16(&mut tail, 0xFFFF);
    le16(&mut tail, 0xFFFF);
    le32(&mut tail, u32::MAX);
    le32(&mut tail, u32::MAX);
    le16(&mut tail, 0);
    f.write_all(&tail).unwrap();
    drop(f);

    let t = Instant::now();
    let r = scan_file(&path, &ScanOptions::new());
    let took = t.elapsed();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.files[0].format, Format::PytorchZip);
    assert_eq!(r.files[0].size, cd_off + tail.len() as u64);
    assert!(
        r.findings.iter().all(|f| f.severity == Severity::Info),
        "{}",
        safeweights_scan::render_human(&r, &Default::default())
    );
    assert!(
        took.as_secs_f64() < 2.0,
        "scan took {took:?}: payload was read"
    );
}

/// The tensor-level checks of a safetensors file (zips stored in tensors)
/// read the first and last bytes of each tensor, and the whole of 1-D byte
/// tensors only: a sparse 24 GiB file (packed 2-D `U8` weights included)
/// still scans in well under a second.
#[test]
fn twenty_gib_safetensors_reads_kilobytes() {
    const BIG: u64 = 20 << 30;
    const PACKED: u64 = 4 << 30;
    let header = format!(
        r#"{{"a":{{"dtype":"F32","shape":[{}],"data_offsets":[0,{BIG}]}},"q":{{"dtype":"U8","shape":[{},4],"data_offsets":[{BIG},{}]}},"b":{{"dtype":"U8","shape":[1024],"data_offsets":[{},{}]}}}}"#,
        BIG / 4,
        PACKED / 4,
        BIG + PACKED,
        BIG + PACKED,
        BIG + PACKED + 1024
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.safetensors");
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(&(header.len() as u64).to_le_bytes()).unwrap();
    f.write_all(header.as_bytes()).unwrap();
    f.seek(SeekFrom::Current((BIG + PACKED) as i64)).unwrap();
    f.write_all(&[7u8; 1024]).unwrap();
    drop(f);

    let t = Instant::now();
    let r = scan_file(&path, &ScanOptions::new());
    let took = t.elapsed();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.files[0].format, Format::Safetensors);
    assert!(
        r.findings.is_empty(),
        "{}",
        safeweights_scan::render_human(&r, &Default::default())
    );
    assert!(
        took.as_secs_f64() < 2.0,
        "scan took {took:?}: payload was read"
    );
}
