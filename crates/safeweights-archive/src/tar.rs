//! A small strict tar reader (ustar, pax, GNU long names) with positioned reads.
//!
//! [`parse`] walks the 512-byte headers of an archive through any [`Source`]
//! ([`parse_bytes`] for bytes in memory) without touching member data, and returns the members it found plus
//! the first structural problem (members read before it are kept, so scanners
//! can still look at them; checkpoint readers treat any problem as fatal).
//! Every member it returns lies entirely inside the source:
//! `offset + size <= len`.

use safeweights::Source;

use crate::error::{TarError, TarErrorKind};
use crate::slice::SliceSource;

/// Largest pax extended header or GNU long name/link body read into memory.
pub const MAX_META_BYTES: u64 = 1 << 20;

/// Tar member type flag of a regular file (`'0'`; also `'\0'` and `'7'`).
pub fn is_regular(kind: u8) -> bool {
    matches!(kind, b'0' | 0 | b'7')
}

/// One member of a tar archive (pax and GNU long-name headers are folded in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarEntry {
    /// Member name (pax `path`, GNU long name, or ustar prefix + name).
    pub name: String,
    /// Offset of the member's own 512-byte header.
    pub header_offset: u64,
    /// Offset of the member's data.
    pub offset: u64,
    /// Data size in bytes (pax `size` when present).
    pub size: u64,
    /// Type flag: `b'0'` / `0` file, `b'1'` hard link, `b'2'` symlink, `b'5'` directory...
    pub kind: u8,
    /// Link target for links.
    pub link: String,
}

/// Parse result: members plus the first structural problem, if any.
#[derive(Debug, Default, Clone)]
pub struct Tar {
    /// Members in archive order (pax / GNU metadata headers folded in).
    pub entries: Vec<TarEntry>,
    /// The first structural problem, with the offset of the bad header;
    /// members before it are kept.
    pub error: Option<TarError>,
    /// Parsing stopped because more than `max_entries` members were found.
    pub more: bool,
}

fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(b.get(..end).unwrap_or(b)).into_owned()
}

/// An octal (NUL/space padded) or base-256 header number.
fn number(field: &[u8]) -> Option<u64> {
    let (&first, rest) = field.split_first()?;
    if first == 0xff {
        // base-256 negative
        return None;
    }
    if first & 0x80 != 0 {
        let mut v: u64 = u64::from(first & 0x7f);
        for &b in rest {
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

fn field(h: &[u8; 512], start: usize, end: usize) -> &[u8] {
    h.get(start..end).unwrap_or(&[])
}

/// Unsigned or signed (old tar) header checksum matches the stored one.
fn checksum_ok(h: &[u8; 512]) -> bool {
    let Some(stored) = number(field(h, 148, 156)) else {
        return false;
    };
    let mut unsigned: u64 = 0;
    let mut signed: i64 = 0;
    for (i, &b) in h.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    unsigned == stored || u64::try_from(signed).ok() == Some(stored)
}

/// Whether `data` starts with a tar header (valid checksum, non-empty).
pub fn is_tar(data: &[u8]) -> bool {
    let Some(h) = data.get(..512).and_then(|h| <&[u8; 512]>::try_from(h).ok()) else {
        return false;
    };
    (field(h, 257, 262) == b"ustar" || h[0] != 0) && checksum_ok(h)
}

/// Pax records `"<len> <key>=<value>\n"` (the length counts the whole record).
fn pax_records(body: &[u8]) -> Result<Vec<(String, String)>, TarErrorKind> {
    let bad = |m: &str| TarErrorKind::BadPax(m.to_string());
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        if rest.iter().all(|&b| b == 0) {
            break;
        }
        let sp = rest
            .iter()
            .position(|&b| b == b' ')
            .ok_or_else(|| bad("record without a length"))?;
        let len: usize = std::str::from_utf8(rest.get(..sp).unwrap_or(&[]))
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("record length is not a decimal number"))?;
        let rec = rest
            .get(..len)
            .filter(|r: &&[u8]| <[u8]>::len(r) > sp + 1 && r.last() == Some(&b'\n'))
            .ok_or_else(|| bad("record length does not match its content"))?;
        let kv = rec.get(sp + 1..<[u8]>::len(rec) - 1).unwrap_or(&[]);
        let eq = kv
            .iter()
            .position(|&b| b == b'=')
            .ok_or_else(|| bad("record without '='"))?;
        let (k, v) = kv.split_at(eq);
        out.push((
            String::from_utf8_lossy(k).into_owned(),
            String::from_utf8_lossy(v.get(1..).unwrap_or(&[])).into_owned(),
        ));
        rest = rest.get(len..).unwrap_or(&[]);
    }
    Ok(out)
}

/// Read the headers of a tar archive (member data is not read).
///
/// Stops at the end-of-archive zero block, at the first structural problem
/// (recorded in [`Tar::error`]), or once more than `max_entries` members were
/// collected ([`Tar::more`]). I/O errors other than reading past the end are
/// returned as `Err`.
pub fn parse<R: Source + ?Sized>(src: &R, max_entries: usize) -> std::io::Result<Tar> {
    let len = src.len();
    let mut t = Tar::default();
    let mut pos: u64 = 0;
    let mut long_name: Option<String> = None;
    let mut long_link: Option<String> = None;
    let mut pax_size: Option<u64> = None;
    let fail = |t: &mut Tar, at: u64, k: TarErrorKind| t.error = Some(TarError::new(at, k));
    loop {
        if t.entries.len() > max_entries {
            t.more = true;
            break;
        }
        if pos >= len {
            break;
        }
        let mut h = [0u8; 512];
        if len - pos < 512 {
            fail(&mut t, pos, TarErrorKind::TruncatedHeader);
            break;
        }
        src.read_exact_at(pos, &mut h)?;
        if h.iter().all(|&b| b == 0) {
            break;
        }
        if !checksum_ok(&h) {
            fail(&mut t, pos, TarErrorKind::BadChecksum);
            break;
        }
        let Some(mut size) = number(field(&h, 124, 136)) else {
            fail(&mut t, pos, TarErrorKind::BadField("size"));
            break;
        };
        let kind = h[156];
        if !matches!(kind, b'x' | b'g' | b'L' | b'K') {
            if let Some(s) = pax_size.take() {
                size = s;
            }
        }
        let body = pos + 512;
        let Some(next) = size
            .checked_add(511)
            .map(|s| s / 512 * 512)
            .and_then(|s| body.checked_add(s))
        else {
            fail(&mut t, pos, TarErrorKind::SizeOverflow);
            break;
        };
        if body.checked_add(size).is_none_or(|e| e > len) {
            fail(&mut t, pos, TarErrorKind::PastEnd { size });
            break;
        }
        let meta = |what: &'static str| -> Result<Vec<u8>, TarErrorKind> {
            if size > MAX_META_BYTES {
                return Err(TarErrorKind::MetaTooLarge {
                    what,
                    size,
                    max: MAX_META_BYTES,
                });
            }
            Ok(vec![0u8; size as usize])
        };
        match kind {
            b'L' | b'K' | b'x' | b'g' => {
                let what = match kind {
                    b'L' => "GNU long name",
                    b'K' => "GNU long link",
                    _ => "pax header",
                };
                let mut content = match meta(what) {
                    Ok(c) => c,
                    Err(k) => {
                        fail(&mut t, pos, k);
                        break;
                    }
                };
                src.read_exact_at(body, &mut content)?;
                match kind {
                    b'L' => long_name = Some(cstr(&content)),
                    b'K' => long_link = Some(cstr(&content)),
                    b'x' => match pax_records(&content) {
                        Ok(recs) => {
                            for (k, v) in recs {
                                match k.as_str() {
                                    "path" => long_name = Some(v),
                                    "linkpath" => long_link = Some(v),
                                    "size" => match v.parse::<u64>() {
                                        Ok(s) => pax_size = Some(s),
                                        Err(_) => {
                                            fail(
                                                &mut t,
                                                pos,
                                                TarErrorKind::BadPax(format!(
                                                    "size {v:?} is not a number"
                                                )),
                                            );
                                            return Ok(t);
                                        }
                                    },
                                    _ => {}
                                }
                            }
                        }
                        Err(k) => {
                            fail(&mut t, pos, k);
                            break;
                        }
                    },
                    _ => {}
                }
            }
            _ => {
                let mut name = cstr(field(&h, 0, 100));
                if field(&h, 257, 262) == b"ustar" {
                    let prefix = cstr(field(&h, 345, 500));
                    if !prefix.is_empty() {
                        name = format!("{prefix}/{name}");
                    }
                }
                let name = long_name.take().unwrap_or(name);
                let link = long_link
                    .take()
                    .unwrap_or_else(|| cstr(field(&h, 157, 257)));
                t.entries.push(TarEntry {
                    name,
                    header_offset: pos,
                    offset: body,
                    size,
                    kind,
                    link,
                });
            }
        }
        pos = next;
    }
    Ok(t)
}

/// [`parse`] over bytes in memory. Reading a slice fails only past its end,
/// which `parse` checks before every read, so this cannot fail with an I/O
/// error; were it to, the problem is reported as a truncated header at byte 0.
pub fn parse_bytes(data: &[u8], max_entries: usize) -> Tar {
    parse(&SliceSource::new(data), max_entries).unwrap_or_else(|_| Tar {
        error: Some(TarError::new(0, TarErrorKind::TruncatedHeader)),
        ..Tar::default()
    })
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests build fixtures with std::fs.
mod tests {
    use super::*;

    fn header(name: &str, size: u64, kind: u8) -> [u8; 512] {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..107].copy_from_slice(b"0000644");
        h[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
        h[156] = kind;
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        h
    }

    fn member(out: &mut Vec<u8>, name: &str, data: &[u8], kind: u8) {
        out.extend_from_slice(&header(name, data.len() as u64, kind));
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }

    #[test]
    fn reads_members_and_pax_overrides() {
        let mut t = Vec::new();
        member(&mut t, "a", b"hello", b'0');
        let long = "d/".repeat(80) + "f";
        let rec = format!("path={long}\n");
        let mut n = rec.len() + 4;
        if format!("{n} {rec}").len() != n {
            n += 1;
        }
        let pax = format!("{n} {rec}");
        member(&mut t, "PaxHeader", pax.as_bytes(), b'x');
        member(&mut t, "short", b"xy", b'0');
        t.extend_from_slice(&[0u8; 1024]);
        let r = parse(&SliceSource::new(&t), 10).unwrap();
        assert!(r.error.is_none(), "{:?}", r.error);
        assert_eq!(r.entries.len(), 2);
        assert_eq!(r.entries[0].name, "a");
        assert_eq!(r.entries[0].offset, 512);
        assert_eq!(r.entries[0].size, 5);
        assert_eq!(r.entries[1].name, long);
        assert!(is_tar(&t));
    }

    #[test]
    fn structural_errors() {
        let mut t = Vec::new();
        member(&mut t, "a", &[1u8; 600], b'0');
        let r = parse(&SliceSource::new(&t[..700]), 10).unwrap();
        assert_eq!(
            r.error,
            Some(TarError::new(0, TarErrorKind::PastEnd { size: 600 }))
        );
        let r = parse(&SliceSource::new(&t[..100]), 10).unwrap();
        assert_eq!(
            r.error,
            Some(TarError::new(0, TarErrorKind::TruncatedHeader))
        );
        let mut bad = t.clone();
        bad[0] = b'b';
        let r = parse(&SliceSource::new(&bad), 10).unwrap();
        assert_eq!(r.error, Some(TarError::new(0, TarErrorKind::BadChecksum)));
        let mut many = Vec::new();
        for i in 0..5 {
            member(&mut many, &format!("m{i}"), b"", b'0');
        }
        let r = parse(&SliceSource::new(&many), 2).unwrap();
        assert!(r.more);
        assert_eq!(r.entries.len(), 3);
        let mut pax = Vec::new();
        member(&mut pax, "PaxHeader", b"99 path=x\n", b'x');
        member(&mut pax, "f", b"", b'0');
        let r = parse(&SliceSource::new(&pax), 10).unwrap();
        assert!(matches!(
            r.error,
            Some(TarError {
                offset: 0,
                kind: TarErrorKind::BadPax(_)
            })
        ));
    }

    #[test]
    fn never_panics_on_garbage() {
        let mut t = Vec::new();
        member(&mut t, "a", b"hello", b'0');
        for cut in 0..t.len() {
            let _ = parse(&SliceSource::new(&t[..cut]), 10);
        }
        for i in 0..t.len() {
            let mut m = t.clone();
            m[i] ^= 0xa5;
            let _ = parse(&SliceSource::new(&m), 10);
        }
    }
}
