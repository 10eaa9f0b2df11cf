//! Compressed `.npz` members are inflated once, streaming, in bounded memory:
//! a 256 MiB array converts under an address-space limit far below its size
//! (before, each 8 MiB read inflated the whole member again, and the first
//! one allocated all of it), and a member that expands past its declared
//! size is an error, not an allocation.
#![allow(clippy::disallowed_methods)] // Tests write fixtures with std::fs.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use flate2::{Compress, Compression, FlushCompress};
use safeweights_convert::{convert, ConvertOptions};

const MIB: usize = 1 << 20;

/// A raw deflate stream of `mib` MiB of zeros, built from one compressed
/// MiB repeated (a full flush makes each block independent of the others).
fn deflated_zeros(mib: usize) -> Vec<u8> {
    let zeros = vec![0u8; MIB];
    let mut c = Compress::new(Compression::fast(), false);
    let mut block = Vec::with_capacity(64 << 10);
    c.compress_vec(&zeros, &mut block, FlushCompress::Full)
        .unwrap();
    assert_eq!(c.total_in() as usize, MIB);
    let mut end = Vec::with_capacity(64);
    c.compress_vec(&[], &mut end, FlushCompress::Finish)
        .unwrap();
    let mut out = Vec::with_capacity(block.len() * mib + end.len());
    for _ in 0..mib {
        out.extend_from_slice(&block);
    }
    out.extend_from_slice(&end);
    out
}

/// An `.npy` header for `count` little-endian f32 values.
fn npy_header(count: usize) -> Vec<u8> {
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({count},), }}");
    let mut h = dict.into_bytes();
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(b' ');
    }
    h.push(b'\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(h.len() as u16).to_le_bytes());
    out.extend_from_slice(&h);
    out
}

/// A one-member zip: `name` deflated as `compressed`, declaring `size` bytes
/// and `crc`.
fn zip_one(name: &str, compressed: &[u8], size: u64, crc: u32) -> Vec<u8> {
    let (csize, usize_) = (compressed.len() as u32, size as u32);
    let mut z = Vec::new();
    z.extend_from_slice(b"PK\x03\x04");
    z.extend_from_slice(&[20, 0, 0, 0, 8, 0, 0, 0, 0, 0]);
    z.extend_from_slice(&crc.to_le_bytes());
    z.extend_from_slice(&csize.to_le_bytes());
    z.extend_from_slice(&usize_.to_le_bytes());
    z.extend_from_slice(&(name.len() as u16).to_le_bytes());
    z.extend_from_slice(&0u16.to_le_bytes());
    z.extend_from_slice(name.as_bytes());
    z.extend_from_slice(compressed);
    let cd = z.len() as u32;
    z.extend_from_slice(b"PK\x01\x02");
    z.extend_from_slice(&[20, 0, 20, 0, 0, 0, 8, 0, 0, 0, 0, 0]);
    z.extend_from_slice(&crc.to_le_bytes());
    z.extend_from_slice(&csize.to_le_bytes());
    z.extend_from_slice(&usize_.to_le_bytes());
    z.extend_from_slice(&(name.len() as u16).to_le_bytes());
    z.extend_from_slice(&[0; 12]);
    z.extend_from_slice(&0u32.to_le_bytes());
    z.extend_from_slice(name.as_bytes());
    let cd_len = z.len() as u32 - cd;
    z.extend_from_slice(b"PK\x05\x06");
    z.extend_from_slice(&[0, 0, 0, 0, 1, 0, 1, 0]);
    z.extend_from_slice(&cd_len.to_le_bytes());
    z.extend_from_slice(&cd.to_le_bytes());
    z.extend_from_slice(&0u16.to_le_bytes());
    z
}

/// `x.npy` holding `mib` MiB of f32 zeros, compressed as `np.savez_compressed` does.
fn write_compressed_npz(path: &Path, mib: usize) {
    let count = mib * MIB / 4;
    let header = npy_header(count);
    // Header, then the zeros: one deflate stream over both.
    let mut c = Compress::new(Compression::fast(), false);
    let mut head = Vec::with_capacity(4096);
    c.compress_vec(&header, &mut head, FlushCompress::Full)
        .unwrap();
    let mut stream = head;
    stream.extend_from_slice(&deflated_zeros(mib));
    let mut crc = crc32fast::Hasher::new();
    crc.update(&header);
    let zeros = vec![0u8; MIB];
    for _ in 0..mib {
        crc.update(&zeros);
    }
    let size = (header.len() + mib * MIB) as u64;
    let zip = zip_one("x.npy", &stream, size, crc.finalize());
    std::fs::File::create(path)
        .unwrap()
        .write_all(&zip)
        .unwrap();
}

/// Runs in the child: converts under an address-space limit.
#[test]
fn child_convert_under_address_space_limit() {
    let Ok(dir) = std::env::var("SAFEWEIGHTS_NPZ_CHILD_DIR") else {
        return; // Only meaningful when spawned by the parent test below.
    };
    let dir = Path::new(&dir);
    // SAFETY: plain libc call with valid arguments; this process is a
    // dedicated child running this one test.
    unsafe {
        let limit = libc::rlimit {
            rlim_cur: 160 << 20,
            rlim_max: 160 << 20,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_DATA, &limit), 0);
    }
    let out = dir.join("x.safetensors");
    convert(dir.join("big.npz"), &out, &ConvertOptions::new()).unwrap();
    #[allow(clippy::print_stdout)] // The parent reads it.
    {
        println!("CHILD-OK");
    }
}

#[test]
fn a_compressed_npz_streams_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    write_compressed_npz(&dir.path().join("big.npz"), 256);
    let run = Command::new(std::env::current_exe().unwrap())
        .args([
            "child_convert_under_address_space_limit",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SAFEWEIGHTS_NPZ_CHILD_DIR", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success() && stdout.contains("CHILD-OK"),
        "conversion under a 160 MiB data limit failed: {:?}\n{stdout}\n{}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    let file = safeweights::SafeTensorsFile::open(dir.path().join("x.safetensors")).unwrap();
    let info = file.info("x").unwrap();
    assert_eq!(info.shape, [256 * MIB / 4]);
}

#[test]
fn a_member_that_expands_past_its_declared_size_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let header = npy_header(4);
    let mut c = Compress::new(Compression::fast(), false);
    let mut stream = Vec::with_capacity(4096);
    c.compress_vec(&header, &mut stream, FlushCompress::Full)
        .unwrap();
    stream.extend_from_slice(&deflated_zeros(64));
    // Declares the 16 bytes the header announces; inflates to 64 MiB more.
    let declared = header.len() as u64 + 16;
    let zip = zip_one("x.npy", &stream, declared, 0);
    let path = dir.path().join("bomb.npz");
    std::fs::write(&path, zip).unwrap();
    let err = convert(
        &path,
        dir.path().join("x.safetensors"),
        &ConvertOptions::new(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("bomb.npz"), "{err}");
    assert!(err.contains("expands past"), "{err}");
    assert!(
        !err.contains("CRC"),
        "the size limit, not a CRC check, stops it: {err}"
    );
    assert!(!dir.path().join("x.safetensors").exists());
}
