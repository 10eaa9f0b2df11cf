//! Raw deflate (RFC 1951) with an output limit, for zip members and gzip
//! bodies, over `flate2`.
//!
//! Inflating stops at the end of the deflate stream (bytes after it are
//! ignored), at the first broken block, when the input runs out, or when the
//! output would pass the limit; in every case the output produced so far is
//! kept, so scanners can look at what a broken member starts with.

use flate2::{Decompress, FlushDecompress, Status};

/// Why inflating stopped before the end of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The output would pass the limit.
    TooBig,
    /// The input ended inside the stream.
    Truncated,
    /// A block is broken.
    Corrupt,
}

impl Stop {
    /// The name reported in messages (these names have been reported since
    /// the first release; they are the inflate statuses of miniz).
    pub(crate) fn status(self) -> &'static str {
        match self {
            Stop::TooBig => "HasMoreOutput",
            Stop::Truncated => "FailedCannotMakeProgress",
            Stop::Corrupt => "Failed",
        }
    }
}

/// An incomplete inflate: why it stopped and the output up to there (at most
/// the limit).
#[derive(Debug)]
pub(crate) struct Partial {
    pub stop: Stop,
    pub output: Vec<u8>,
}

/// Inflates a raw deflate stream to at most `limit` bytes.
pub(crate) fn inflate(input: &[u8], limit: usize) -> Result<Vec<u8>, Partial> {
    // One byte past the limit tells "exactly the limit" from "more".
    let cap = limit.saturating_add(1);
    let mut out: Vec<u8> = Vec::with_capacity(input.len().saturating_mul(2).clamp(1, cap));
    let mut d = Decompress::new(false);
    loop {
        let (in_before, out_before) = (d.total_in(), out.len());
        let rest = usize::try_from(in_before)
            .ok()
            .and_then(|i| input.get(i..))
            .unwrap_or(&[]);
        let status = d.decompress_vec(rest, &mut out, FlushDecompress::None);
        if out.len() > limit {
            out.truncate(limit);
            return Err(Partial {
                stop: Stop::TooBig,
                output: out,
            });
        }
        let stop = match status {
            Ok(Status::StreamEnd) => return Ok(out),
            Ok(_) if out.len() == out.capacity() => {
                let want = out.capacity().saturating_mul(2).clamp(64, cap);
                out.reserve_exact(want.saturating_sub(out.len()));
                continue;
            }
            Ok(_) if d.total_in() != in_before || out.len() != out_before => continue,
            Ok(_) => Stop::Truncated,
            Err(_) => Stop::Corrupt,
        };
        return Err(Partial { stop, output: out });
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests build fixtures with std::fs.
mod tests {
    use super::*;
    use std::io::Write;

    fn deflate(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(6));
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn limits_truncation_and_garbage() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let z = deflate(&data);
        assert_eq!(inflate(&z, data.len()).unwrap(), data);
        assert_eq!(inflate(&z, usize::MAX).unwrap(), data);
        let p = inflate(&z, data.len() - 1).unwrap_err();
        assert_eq!(p.stop, Stop::TooBig);
        assert_eq!(p.output, &data[..data.len() - 1]);
        let p = inflate(&z[..z.len() / 2], data.len()).unwrap_err();
        assert_eq!(p.stop, Stop::Truncated);
        assert!(data.starts_with(&p.output));
        assert_eq!(inflate(&[], 10).unwrap_err().stop, Stop::Truncated);
        assert_eq!(inflate(&[0xff; 8], 10).unwrap_err().stop, Stop::Corrupt);
        assert_eq!(inflate(&deflate(b""), 0).unwrap(), b"");
        let mut trailing = deflate(b"abc");
        trailing.extend_from_slice(b"garbage");
        assert_eq!(inflate(&trailing, 3).unwrap(), b"abc");
    }
}
