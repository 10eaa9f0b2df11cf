//! Tar (safeweights-pickle's strict reader over an in-memory archive) and gzip readers.

pub(crate) use safeweights_pickle::tar::is_tar;
use safeweights_pickle::tar::{Tar, TarErrorKind};

/// Reads the headers of an in-memory tar archive with safeweights-pickle's
/// reader (data is not touched; every member lies inside `data`).
pub(crate) fn parse(data: &[u8], max_entries: usize) -> Tar {
    // a slice only fails to read past its end, which the reader checks first
    safeweights_pickle::tar::parse(data, max_entries).unwrap_or_else(|_| Tar {
        error: Some((0, TarErrorKind::TruncatedHeader)),
        ..Tar::default()
    })
}

/// A decompressed gzip stream.
pub(crate) struct Gunzip {
    pub name: Option<String>,
    pub data: Vec<u8>,
}

/// Why gunzip failed.
pub(crate) enum GzError {
    TooBig,
    Corrupt(String),
}

/// Decompresses the first member of a gzip stream, to at most `limit` bytes.
pub(crate) fn gunzip(data: &[u8], limit: u64) -> Result<Gunzip, GzError> {
    let bad = |m: &str| GzError::Corrupt(m.to_string());
    if data.len() < 18 || data[0] != 0x1f || data[1] != 0x8b {
        return Err(bad("not a gzip stream"));
    }
    if data[2] != 8 {
        return Err(bad("unknown gzip compression method"));
    }
    let flags = data[3];
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
    match miniz_oxide::inflate::decompress_to_vec_with_limit(body, limit) {
        Ok(v) => Ok(Gunzip { name, data: v }),
        Err(e) => match e.status {
            miniz_oxide::inflate::TINFLStatus::HasMoreOutput => Err(GzError::TooBig),
            s => Err(GzError::Corrupt(format!(
                "deflate stream is broken ({s:?})"
            ))),
        },
    }
}
