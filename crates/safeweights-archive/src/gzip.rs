//! Gzip (RFC 1952): the first member of a stream, decompressed within a
//! size limit.
//!
//! Scanners want the content even when the trailer lies, so the header is
//! parsed here and only the deflate body goes to the inflater: the CRC-32
//! and size in the trailer are not checked (a lying trailer changes nothing
//! a reader loads).

use crate::error::GzipError;
use crate::inflate::{inflate, Stop};

/// A decompressed gzip stream.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Gunzip {
    /// The original file name from the header (`FNAME`), if any.
    pub name: Option<String>,
    /// The decompressed bytes.
    pub data: Vec<u8>,
}

/// Whether `data` starts like a gzip stream (magic bytes `1f 8b`).
pub fn is_gzip(data: &[u8]) -> bool {
    data.starts_with(b"\x1f\x8b")
}

/// Decompresses the first member of a gzip stream, to at most `limit` bytes.
pub fn gunzip(data: &[u8], limit: u64) -> Result<Gunzip, GzipError> {
    let bad = |m: &str| GzipError::Corrupt(m.to_string());
    if data.len() < 18 || !is_gzip(data) {
        return Err(bad("not a gzip stream"));
    }
    if data.get(2) != Some(&8) {
        return Err(bad("unknown gzip compression method"));
    }
    let flags = data.get(3).copied().unwrap_or(0);
    let mut p = 10usize;
    if flags & 4 != 0 {
        let n = data
            .get(p..p + 2)
            .map(|b| usize::from(u16::from_le_bytes([b[0], b[1]])))
            .ok_or_else(|| bad("truncated gzip header"))?;
        p += 2 + n;
    }
    let mut name = None;
    if flags & 8 != 0 {
        let rest = data.get(p..).ok_or_else(|| bad("truncated gzip header"))?;
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| bad("truncated gzip header"))?;
        name = Some(String::from_utf8_lossy(&rest[..end]).into_owned());
        p += end + 1;
    }
    if flags & 16 != 0 {
        let rest = data.get(p..).ok_or_else(|| bad("truncated gzip header"))?;
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| bad("truncated gzip header"))?;
        p += end + 1;
    }
    if flags & 2 != 0 {
        p += 2;
    }
    let body = data.get(p..).ok_or_else(|| bad("truncated gzip header"))?;
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    match inflate(body, limit) {
        Ok(v) => Ok(Gunzip { name, data: v }),
        Err(e) if e.stop == Stop::TooBig => Err(GzipError::TooBig),
        Err(e) => Err(GzipError::Corrupt(format!(
            "deflate stream is broken ({})",
            e.stop.status()
        ))),
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests build fixtures with std::fs.
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip_named(name: &str, data: &[u8]) -> Vec<u8> {
        let mut e = flate2::GzBuilder::new()
            .filename(name)
            .write(Vec::new(), flate2::Compression::new(6));
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn name_data_and_limits() {
        let g = gunzip(&gzip_named("model.pt", b"hello gzip"), 100).unwrap();
        assert_eq!(g.name.as_deref(), Some("model.pt"));
        assert_eq!(g.data, b"hello gzip");
        let z = gzip_named("x", &[0u8; 4096]);
        assert_eq!(gunzip(&z, 4096).unwrap().data.len(), 4096);
        assert_eq!(gunzip(&z, 4095), Err(GzipError::TooBig));
        let cut = &z[..z.len() - 12];
        assert!(matches!(gunzip(cut, 1 << 20), Err(GzipError::Corrupt(m)) if m.contains("broken")));
        assert_eq!(
            gunzip(b"not gzip at all, not gzip", 10),
            Err(GzipError::Corrupt("not a gzip stream".into()))
        );
        let mut other_method = z.clone();
        other_method[2] = 7;
        assert!(gunzip(&other_method, 10).is_err());
    }

    #[test]
    fn never_panics_on_cut_headers() {
        let z = gzip_named("a-long-name.bin", b"content");
        for cut in 0..z.len() {
            let _ = gunzip(&z[..cut], 100);
        }
        for i in 3..10 {
            let mut m = z.clone();
            m[3] = 0xff;
            m[i] ^= 0x5a;
            let _ = gunzip(&m, 100);
        }
    }
}
