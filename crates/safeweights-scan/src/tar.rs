//! Minimal tar (ustar, GNU long names, pax paths) and gzip readers.

/// One regular-file member of a tar archive.
#[derive(Debug, Clone)]
pub(crate) struct TarEntry {
    pub name: String,
    pub offset: u64,
    pub size: u64,
    /// `'0'` file, `'1'` hard link, `'2'` symlink...
    pub kind: u8,
    pub link: String,
}

/// Parse result: entries plus a structural problem, if any (entries read
/// before it are kept).
#[derive(Debug, Default)]
pub(crate) struct Tar {
    pub entries: Vec<TarEntry>,
    pub error: Option<(u64, String)>,
}

fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

fn number(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        // base-256
        let mut v: u64 = u64::from(field[0] & 0x7f);
        for &b in &field[1..] {
            v = v.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        return Some(v);
    }
    let s = cstr(field);
    let s = s.trim_matches(|c: char| c == ' ' || c == '\0');
    if s.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(s, 8).ok()
}

fn checksum_ok(h: &[u8]) -> bool {
    let Some(stored) = number(&h[148..156]) else {
        return false;
    };
    let sum: u64 = h
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u64::from(b)
            }
        })
        .sum();
    sum == stored
}

/// Whether `data` starts with a tar header.
pub(crate) fn is_tar(data: &[u8]) -> bool {
    let Some(h) = data.get(..512) else {
        return false;
    };
    (&h[257..262] == b"ustar" && checksum_ok(h)) || (h[0] != 0 && checksum_ok(h))
}

fn pax_path(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let mut path = None;
    for rec in text.split('\n') {
        if let Some((_, kv)) = rec.split_once(' ') {
            if let Some(v) = kv.strip_prefix("path=") {
                path = Some(v.to_string());
            }
        }
    }
    path
}

/// Reads the headers of a tar archive (data is not touched).
pub(crate) fn parse(data: &[u8], max_entries: usize) -> Tar {
    let mut t = Tar::default();
    let mut pos: u64 = 0;
    let mut long_name: Option<String> = None;
    let mut long_link: Option<String> = None;
    let len = data.len() as u64;
    loop {
        if t.entries.len() > max_entries {
            break;
        }
        let Some(h) = usize::try_from(pos)
            .ok()
            .and_then(|p| data.get(p..p.checked_add(512)?))
        else {
            if pos < len {
                t.error = Some((pos, "truncated header".into()));
            }
            break;
        };
        if h.iter().all(|&b| b == 0) {
            break;
        }
        if !checksum_ok(h) {
            t.error = Some((pos, "header checksum mismatch".into()));
            break;
        }
        let Some(size) = number(&h[124..136]) else {
            t.error = Some((pos, "bad size field".into()));
            break;
        };
        let kind = h[156];
        let body = pos + 512;
        let Some(next) = size
            .checked_add(511)
            .map(|s| s / 512 * 512)
            .and_then(|s| body.checked_add(s))
        else {
            t.error = Some((pos, "size overflows".into()));
            break;
        };
        if body.saturating_add(size) > len {
            t.error = Some((pos, format!("member of {size} bytes runs past the end")));
            break;
        }
        let content = &data[body as usize..(body + size) as usize];
        match kind {
            b'L' => long_name = Some(cstr(content)),
            b'K' => long_link = Some(cstr(content)),
            b'x' => {
                if let Some(p) = pax_path(content) {
                    long_name = Some(p);
                }
            }
            b'g' => {}
            _ => {
                let mut name = cstr(&h[0..100]);
                if &h[257..262] == b"ustar" {
                    let prefix = cstr(&h[345..500]);
                    if !prefix.is_empty() {
                        name = format!("{prefix}/{name}");
                    }
                }
                let name = long_name.take().unwrap_or(name);
                let link = long_link.take().unwrap_or_else(|| cstr(&h[157..257]));
                t.entries.push(TarEntry {
                    name,
                    offset: body,
                    size,
                    kind,
                    link,
                });
            }
        }
        pos = next;
    }
    t
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
