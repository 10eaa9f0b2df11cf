//! Whole-file compressed streams, as `joblib.dump(..., compress=...)` writes
//! them: zlib, bzip2, xz, the legacy `.lzma` ("alone") format, and the `ZF`
//! files of joblib before 0.10 (a hex length, then zlib). gzip is opened by
//! `safeweights_archive::gzip`. Every decompressor writes into a buffer that
//! refuses to grow past the expanded-size budget, so a bomb stops at the
//! limit instead of exhausting memory.

use std::io::{self, Read, Write};

/// A compressed stream kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// RFC 1950 zlib (joblib `compress='zlib'` and `compress=True`).
    Zlib,
    /// bzip2, possibly several streams back to back, as Python's `bz2` reads them.
    Bzip2,
    /// xz container.
    Xz,
    /// Legacy LZMA "alone" format (`lzma.FORMAT_ALONE`, joblib `compress='lzma'`).
    LzmaAlone,
    /// joblib < 0.10: `ZF`, the hex length padded to 19 bytes, then zlib.
    JoblibZf,
}

impl Kind {
    /// The member name its content is reported under.
    pub(crate) fn member_name(self) -> &'static str {
        match self {
            Kind::Zlib => "<zlib>",
            Kind::Bzip2 => "<bzip2>",
            Kind::Xz => "<xz>",
            Kind::LzmaAlone => "<lzma>",
            Kind::JoblibZf => "<joblib-zf>",
        }
    }

    /// A human name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Zlib => "zlib stream",
            Kind::Bzip2 => "bzip2 stream",
            Kind::Xz => "xz stream",
            Kind::LzmaAlone => "legacy .lzma stream",
            Kind::JoblibZf => "legacy joblib ZF file",
        }
    }
}

/// Why a stream was not expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DecompressError {
    /// It expands past the budget.
    #[error("expands past the size limit")]
    TooBig,
    /// It is broken: why, and what decoded before the break.
    #[error("{0}")]
    Corrupt(String, Vec<u8>),
}

/// Bytes of the joblib `ZF` header: `ZF` and `hex(2**64)` (19 characters).
const ZF_HEADER: usize = 2 + 19;

/// Identifies a compressed stream from its first bytes.
pub(crate) fn sniff(data: &[u8]) -> Option<Kind> {
    if data.starts_with(b"\xfd7zXZ\x00") {
        return Some(Kind::Xz);
    }
    if data.len() >= 10 && data.starts_with(b"BZh") && (b'1'..=b'9').contains(&data[3]) {
        return Some(Kind::Bzip2);
    }
    if data.starts_with(b"ZF0x") && zf_length(data).is_some() {
        return Some(Kind::JoblibZf);
    }
    // Deflate with a 32 KiB window and one of the four level flags zlib
    // writes (the header check bits come with them): `x\x01`, `x^`,
    // `x\x9c`, `x\xda`.
    if let [0x78, 0x01 | 0x5e | 0x9c | 0xda, _, ..] = data {
        return Some(Kind::Zlib);
    }
    if is_lzma_alone(data) {
        return Some(Kind::LzmaAlone);
    }
    None
}

/// The "alone" header: properties byte, dictionary size, unpacked size.
/// Only what `lzma.FORMAT_ALONE` writes is recognised: the default
/// `lc=3, lp=0, pb=2` properties (0x5d), a dictionary size that is a power
/// of two (or 2^n + 2^(n-1)) of at least 4 KiB, and an unknown (all ones)
/// or plausible unpacked size.
fn is_lzma_alone(data: &[u8]) -> bool {
    let Some(h) = data.get(..13) else {
        return false;
    };
    if h[0] != 0x5d {
        return false;
    }
    let dict = u32::from_le_bytes([h[1], h[2], h[3], h[4]]);
    let pow2ish = dict.is_power_of_two() || dict.checked_shr(dict.trailing_zeros()) == Some(3);
    let size = u64::from_le_bytes([h[5], h[6], h[7], h[8], h[9], h[10], h[11], h[12]]);
    dict >= 4096 && pow2ish && (size == u64::MAX || size < 1 << 48)
}

/// The declared length of a `ZF` file (`int(header[2:21], 16)`).
fn zf_length(data: &[u8]) -> Option<u64> {
    let field = std::str::from_utf8(data.get(2..ZF_HEADER)?).ok()?;
    let hex = field.trim_end_matches(' ').strip_prefix("0x")?;
    u64::from_str_radix(hex, 16).ok()
}

/// A writer that refuses to hold more than `limit` bytes.
struct Bounded {
    buf: Vec<u8>,
    limit: u64,
    over: bool,
}

impl Write for Bounded {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let room = self.limit.saturating_sub(self.buf.len() as u64);
        if b.len() as u64 > room {
            self.over = true;
            return Err(io::Error::other("expanded-size limit"));
        }
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads `r` to its end into at most `limit` bytes.
fn read_bounded(mut r: impl Read, limit: u64) -> Result<Vec<u8>, DecompressError> {
    let mut out = Vec::new();
    let n = r
        .by_ref()
        .take(limit.saturating_add(1))
        .read_to_end(&mut out);
    match n {
        Ok(_) if out.len() as u64 > limit => Err(DecompressError::TooBig),
        Ok(_) => Ok(out),
        Err(e) => Err(DecompressError::Corrupt(e.to_string(), out)),
    }
}

/// Decompresses `data` of `kind` into at most `limit` bytes.
pub(crate) fn decompress(kind: Kind, data: &[u8], limit: u64) -> Result<Vec<u8>, DecompressError> {
    match kind {
        Kind::Zlib => read_bounded(flate2::read::ZlibDecoder::new(data), limit),
        Kind::JoblibZf => {
            // `read_zfile` skips one more byte when it is the padding space.
            let start = if data.get(ZF_HEADER) == Some(&b' ') {
                ZF_HEADER + 1
            } else {
                ZF_HEADER
            };
            let body = data.get(start..).unwrap_or_default();
            read_bounded(flate2::read::ZlibDecoder::new(body), limit)
        }
        Kind::Bzip2 => read_bounded(bzip2::read::MultiBzDecoder::new(data), limit),
        Kind::Xz | Kind::LzmaAlone => {
            let mut out = Bounded {
                buf: Vec::new(),
                limit,
                over: false,
            };
            let mut input = data;
            let r = if kind == Kind::Xz {
                lzma_rs::xz_decompress(&mut input, &mut out)
            } else {
                lzma_rs::lzma_decompress(&mut input, &mut out)
            };
            match r {
                _ if out.over => Err(DecompressError::TooBig),
                Ok(()) => Ok(out.buf),
                Err(e) => Err(DecompressError::Corrupt(
                    match e {
                        lzma_rs::error::Error::IoError(e)
                        | lzma_rs::error::Error::HeaderTooShort(e) => e.to_string(),
                        lzma_rs::error::Error::LzmaError(m) | lzma_rs::error::Error::XzError(m) => {
                            m
                        }
                    },
                    out.buf,
                )),
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests build fixtures with std::fs.
mod tests {
    use super::*;

    #[test]
    fn sniffs_only_what_joblib_writes() {
        assert_eq!(sniff(b"x\x9c\x03\x00\x00\x00\x00\x01"), Some(Kind::Zlib));
        assert_eq!(sniff(b"x marks the spot"), None);
        assert_eq!(sniff(b"BZh91AY&SY"), Some(Kind::Bzip2));
        assert_eq!(sniff(b"BZh"), None);
        assert_eq!(
            sniff(b"\x5d\x00\x00\x40\x00\xff\xff\xff\xff\xff\xff\xff\xff\x00"),
            Some(Kind::LzmaAlone)
        );
        assert_eq!(sniff(b"]\x00\x00\x00\x00\xff\xff"), None);
        assert_eq!(sniff(b"ZF0x1f               x\x9c"), Some(Kind::JoblibZf));
        assert_eq!(sniff(b"ZF0xzz"), None);
    }

    #[test]
    fn bombs_stop_at_the_limit() {
        use std::io::Write as _;
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(&vec![0u8; 1 << 20]).unwrap();
        let z = e.finish().unwrap();
        assert_eq!(
            decompress(Kind::Zlib, &z, 1000),
            Err(DecompressError::TooBig)
        );
        assert_eq!(decompress(Kind::Zlib, &z, 1 << 20).unwrap().len(), 1 << 20);
        let mut x = Vec::new();
        lzma_rs::xz_compress(&mut &vec![0u8; 1 << 16][..], &mut x).unwrap();
        assert_eq!(decompress(Kind::Xz, &x, 1000), Err(DecompressError::TooBig));
        assert!(matches!(
            decompress(Kind::Xz, &x[..x.len() / 2], 1 << 20),
            Err(DecompressError::Corrupt(..))
        ));
    }
}
