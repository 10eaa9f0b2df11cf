//! A minimal strict zip reader that records every anomaly.
//!
//! `safeweights-pickle` announces a strict zip reader but has not committed
//! one yet, so this crate carries its own, behind this module boundary; it
//! can be swapped for the shared one later. It reads the central directory
//! (with zip64), checks each local header against it, and only decompresses
//! the members the scanner asks for.

use std::borrow::Cow;
use std::collections::HashMap;

/// One anomaly (rule id, message, member name, offset).
#[derive(Debug, Clone)]
pub(crate) struct Anomaly {
    pub rule: &'static str,
    pub what: String,
    pub member: Option<String>,
    pub offset: Option<u64>,
}

#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub name: String,
    pub flags: u16,
    pub method: u16,
    pub crc: u32,
    pub csize: u64,
    pub usize: u64,
    pub local_offset: u64,
    /// Start of the member's data (after the local header); `None` if the
    /// local header is unreadable.
    pub data_offset: Option<u64>,
}

impl Entry {
    pub fn is_dir(&self) -> bool {
        self.name.ends_with('/')
    }
}

#[derive(Debug)]
pub(crate) struct Zip<'a> {
    data: &'a [u8],
    pub entries: Vec<Entry>,
    pub anomalies: Vec<Anomaly>,
}

/// Why a member could not be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// Would expand past the limit.
    TooBig,
    /// Compression method or encryption the scanner cannot read.
    Unsupported,
    /// Broken data.
    Corrupt(String),
}

fn u16_at(d: &[u8], o: u64) -> Option<u16> {
    let o = usize::try_from(o).ok()?;
    let b = d.get(o..o.checked_add(2)?)?;
    Some(u16::from_le_bytes([b[0], b[1]]))
}
fn u32_at(d: &[u8], o: u64) -> Option<u32> {
    let o = usize::try_from(o).ok()?;
    let b = d.get(o..o.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}
fn u64_at(d: &[u8], o: u64) -> Option<u64> {
    let o = usize::try_from(o).ok()?;
    let b = d.get(o..o.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Some(u64::from_le_bytes(a))
}
fn bytes_at(d: &[u8], o: u64, n: u64) -> Option<&[u8]> {
    let o = usize::try_from(o).ok()?;
    let n = usize::try_from(n).ok()?;
    d.get(o..o.checked_add(n)?)
}

const EOCD: u32 = 0x0605_4b50;
const EOCD64: u32 = 0x0606_4b50;
const LOC64: u32 = 0x0706_4b50;
const CEN: u32 = 0x0201_4b50;
const LOC: u32 = 0x0403_4b50;
const DESC: u32 = 0x0807_4b50;

/// Whether a zip end-of-central-directory record exists near the end.
pub(crate) fn has_eocd(data: &[u8]) -> bool {
    find_eocd(data).is_some()
}

fn find_eocd(data: &[u8]) -> Option<u64> {
    if data.len() < 22 {
        return None;
    }
    let lowest = data.len().saturating_sub(22 + 65535);
    let mut i = data.len() - 22;
    loop {
        if data[i..i + 4] == EOCD.to_le_bytes() {
            return Some(i as u64);
        }
        if i == lowest {
            return None;
        }
        i -= 1;
    }
}

/// Zip64 extra field: the fields whose 32-bit value is saturated, in order.
fn zip64_extra(extra: &[u8], usize_: &mut u64, csize: &mut u64, off: Option<&mut u64>) -> bool {
    let mut i = 0usize;
    while i + 4 <= extra.len() {
        let id = u16::from_le_bytes([extra[i], extra[i + 1]]);
        let len = usize::from(u16::from_le_bytes([extra[i + 2], extra[i + 3]]));
        let body = extra.get(i + 4..i + 4 + len);
        if id == 0x0001 {
            let Some(body) = body else { return false };
            let mut p = 0u64;
            let mut take = |v: &mut u64| -> bool {
                if *v == 0xFFFF_FFFF {
                    match u64_at(body, p) {
                        Some(x) => {
                            *v = x;
                            p += 8;
                            true
                        }
                        None => false,
                    }
                } else {
                    true
                }
            };
            let mut ok = take(usize_) && take(csize);
            if let Some(o) = off {
                ok = ok && take(o);
            }
            return ok;
        }
        i += 4 + len;
    }
    true
}

fn traversal(name: &str) -> bool {
    let n = name.replace('\\', "/");
    n.starts_with('/') || n.as_bytes().get(1) == Some(&b':') || n.split('/').any(|c| c == "..")
}

impl<'a> Zip<'a> {
    /// Parses the central directory and every local header.
    pub fn open(data: &'a [u8]) -> Result<Zip<'a>, String> {
        let mut anomalies = Vec::new();
        let eocd = find_eocd(data).ok_or("no end-of-central-directory record")?;
        let disk = u16_at(data, eocd + 4).unwrap_or(0);
        let cd_disk = u16_at(data, eocd + 6).unwrap_or(0);
        let mut count = u64::from(u16_at(data, eocd + 10).unwrap_or(0));
        let mut cd_size = u64::from(u32_at(data, eocd + 12).unwrap_or(0));
        let mut cd_off = u64::from(u32_at(data, eocd + 16).unwrap_or(0));
        let comment_len = u64::from(u16_at(data, eocd + 20).unwrap_or(0));
        if disk != 0 || cd_disk != 0 {
            return Err("multi-disk zip archives are not supported".into());
        }
        let tail = eocd + 22 + comment_len;
        if tail != data.len() as u64 {
            anomalies.push(Anomaly {
                rule: "zip.prefix-data",
                what: format!(
                    "{} bytes after the end-of-central-directory record",
                    (data.len() as u64).abs_diff(tail)
                ),
                member: None,
                offset: Some(eocd),
            });
        }
        let mut cd_end = eocd;
        if eocd >= 20 && u32_at(data, eocd - 20) == Some(LOC64) {
            let z64 = u64_at(data, eocd - 20 + 8).ok_or("truncated zip64 locator")?;
            if u32_at(data, z64) != Some(EOCD64) {
                return Err("zip64 locator does not point at a zip64 end record".into());
            }
            count = u64_at(data, z64 + 32).ok_or("truncated zip64 end record")?;
            cd_size = u64_at(data, z64 + 40).ok_or("truncated zip64 end record")?;
            cd_off = u64_at(data, z64 + 48).ok_or("truncated zip64 end record")?;
            cd_end = z64;
        }
        // Data prepended to the archive shifts every offset (self-extracting
        // archives, polyglots); the reader that finds the directory by its
        // end sees them shifted.
        let real_cd = cd_end
            .checked_sub(cd_size)
            .ok_or("central directory larger than the file")?;
        let shift = real_cd
            .checked_sub(cd_off)
            .ok_or("central directory offset past its end")?;
        if shift > 0 {
            anomalies.push(Anomaly {
                rule: "zip.prefix-data",
                what: format!("{shift} bytes before the archive (prepended data or polyglot)"),
                member: None,
                offset: Some(0),
            });
        }
        let mut entries = Vec::new();
        let mut p = real_cd;
        for _ in 0..count {
            if u32_at(data, p) != Some(CEN) {
                return Err(format!("bad central directory entry at offset {p}"));
            }
            let flags = u16_at(data, p + 8).unwrap_or(0);
            let method = u16_at(data, p + 10).unwrap_or(0);
            let crc = u32_at(data, p + 16).unwrap_or(0);
            let mut csize = u64::from(u32_at(data, p + 20).unwrap_or(0));
            let mut usize_ = u64::from(u32_at(data, p + 24).unwrap_or(0));
            let nlen = u64::from(u16_at(data, p + 28).unwrap_or(0));
            let xlen = u64::from(u16_at(data, p + 30).unwrap_or(0));
            let clen = u64::from(u16_at(data, p + 32).unwrap_or(0));
            let mut local = u64::from(u32_at(data, p + 42).unwrap_or(0));
            let name_raw = bytes_at(data, p + 46, nlen).ok_or("truncated central directory")?;
            let extra = bytes_at(data, p + 46 + nlen, xlen).ok_or("truncated central directory")?;
            let name = String::from_utf8_lossy(name_raw).into_owned();
            if !zip64_extra(extra, &mut usize_, &mut csize, Some(&mut local)) {
                anomalies.push(Anomaly {
                    rule: "zip.malformed",
                    what: "truncated zip64 extra field".into(),
                    member: Some(name.clone()),
                    offset: Some(p),
                });
            }
            entries.push(Entry {
                name,
                flags,
                method,
                crc,
                csize,
                usize: usize_,
                local_offset: local.saturating_add(shift),
                data_offset: None,
            });
            p += 46 + nlen + xlen + clen;
        }
        let mut zip = Zip {
            data,
            entries,
            anomalies,
        };
        zip.check_locals(real_cd);
        Ok(zip)
    }

    fn push(&mut self, rule: &'static str, what: String, member: Option<&str>, offset: u64) {
        self.anomalies.push(Anomaly {
            rule,
            what,
            member: member.map(str::to_string),
            offset: Some(offset),
        });
    }

    fn check_locals(&mut self, cd_start: u64) {
        let data = self.data;
        let mut spans: Vec<(u64, u64, usize)> = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for i in 0..self.entries.len() {
            let e = self.entries[i].clone();
            let n = &e.name;
            if let Some(prev) = seen.insert(n.clone(), i) {
                let _ = prev;
                self.push(
                    "zip.duplicate-name",
                    format!("member name {n:?} appears more than once; readers disagree on which one is used"),
                    Some(n),
                    e.local_offset,
                );
            }
            if traversal(n) {
                self.push(
                    "zip.path-traversal",
                    format!("member name {n:?} is absolute or contains '..'"),
                    Some(n),
                    e.local_offset,
                );
            }
            if e.flags & 0x0041 != 0 {
                self.push(
                    "zip.encrypted",
                    "member is encrypted: its content cannot be inspected".into(),
                    Some(n),
                    e.local_offset,
                );
            }
            let odd = e.flags & !(0x080E | 0x0041);
            if odd != 0 {
                self.push(
                    "zip.flags",
                    format!("unexpected general-purpose flag bits 0x{odd:04x}"),
                    Some(n),
                    e.local_offset,
                );
            }
            if e.method != 0 && e.method != 8 {
                self.push(
                    "zip.unsupported-method",
                    format!("compression method {} cannot be inspected", e.method),
                    Some(n),
                    e.local_offset,
                );
            }
            let lo = e.local_offset;
            if u32_at(data, lo) != Some(LOC) {
                self.push(
                    "zip.header-mismatch",
                    "central directory points at no local header".into(),
                    Some(n),
                    lo,
                );
                continue;
            }
            let lflags = u16_at(data, lo + 6).unwrap_or(0);
            let lmethod = u16_at(data, lo + 8).unwrap_or(0);
            let lcrc = u32_at(data, lo + 14).unwrap_or(0);
            let mut lcsize = u64::from(u32_at(data, lo + 18).unwrap_or(0));
            let mut lusize = u64::from(u32_at(data, lo + 22).unwrap_or(0));
            let nlen = u64::from(u16_at(data, lo + 26).unwrap_or(0));
            let xlen = u64::from(u16_at(data, lo + 28).unwrap_or(0));
            let lname = bytes_at(data, lo + 30, nlen).map(String::from_utf8_lossy);
            let lextra = bytes_at(data, lo + 30 + nlen, xlen).unwrap_or_default();
            zip64_extra(lextra, &mut lusize, &mut lcsize, None);
            if lname.as_deref() != Some(n.as_str()) {
                self.push(
                    "zip.header-mismatch",
                    format!(
                        "local header names the member {:?}, the central directory {n:?}",
                        lname.as_deref().unwrap_or("<truncated>")
                    ),
                    Some(n),
                    lo,
                );
            }
            if lmethod != e.method || (lflags & 0x0041) != (e.flags & 0x0041) {
                self.push(
                    "zip.header-mismatch",
                    "local header and central directory disagree on method or encryption".into(),
                    Some(n),
                    lo,
                );
            }
            let descriptor = e.flags & 0x0008 != 0 || lflags & 0x0008 != 0;
            let sizes_in_local = !(descriptor && lcrc == 0 && lcsize == 0 && lusize == 0);
            if sizes_in_local && (lcrc != e.crc || lcsize != e.csize || lusize != e.usize) {
                self.push(
                    "zip.header-mismatch",
                    format!(
                        "local header says {lcsize}/{lusize} bytes crc {lcrc:08x}, central directory {}/{} crc {:08x}",
                        e.csize, e.usize, e.crc
                    ),
                    Some(n),
                    lo,
                );
            }
            let start = lo + 30 + nlen + xlen;
            self.entries[i].data_offset = Some(start);
            let mut end = start.saturating_add(e.csize);
            if end > data.len() as u64 {
                self.push(
                    "zip.malformed",
                    "member data runs past the end of the file".into(),
                    Some(n),
                    lo,
                );
                continue;
            }
            if descriptor {
                let mut q = end;
                if u32_at(data, q) == Some(DESC) {
                    q += 4;
                }
                let crc = u32_at(data, q);
                let c32 = u32_at(data, q + 4).map(u64::from);
                let u32_ = u32_at(data, q + 8).map(u64::from);
                let c64 = u64_at(data, q + 4);
                let u64_ = u64_at(data, q + 12);
                let ok32 = crc == Some(e.crc) && c32 == Some(e.csize) && u32_ == Some(e.usize);
                let ok64 = crc == Some(e.crc) && c64 == Some(e.csize) && u64_ == Some(e.usize);
                if ok32 {
                    end = q + 12;
                } else if ok64 {
                    end = q + 20;
                } else {
                    self.push(
                        "zip.descriptor-mismatch",
                        "data descriptor disagrees with the central directory".into(),
                        Some(n),
                        end,
                    );
                }
            }
            spans.push((lo, end, i));
        }
        spans.sort();
        let mut prev_end = 0u64;
        let mut prev_name: Option<String> = None;
        for (s, e, i) in spans {
            let name = self.entries[i].name.clone();
            if s < prev_end {
                self.push(
                    "zip.overlap",
                    format!(
                        "member overlaps {:?}: the same bytes are read as two members",
                        prev_name.as_deref().unwrap_or("?")
                    ),
                    Some(&name),
                    s,
                );
            } else if s > prev_end {
                let what = match &prev_name {
                    None => format!("{} bytes before the first member", s - prev_end),
                    Some(p) => format!(
                        "{} unreferenced bytes between {p:?} and this member",
                        s - prev_end
                    ),
                };
                if prev_name.is_some()
                    || !self.anomalies.iter().any(|a| a.rule == "zip.prefix-data")
                {
                    self.push("zip.prefix-data", what, Some(&name), prev_end);
                }
            }
            if e > prev_end {
                prev_end = e;
                prev_name = Some(name);
            }
        }
        if prev_end < cd_start && prev_name.is_some() {
            self.push(
                "zip.prefix-data",
                format!(
                    "{} unreferenced bytes before the central directory",
                    cd_start - prev_end
                ),
                None,
                prev_end,
            );
        }
    }

    fn raw(&self, e: &Entry) -> Result<&'a [u8], ReadError> {
        if e.flags & 0x0041 != 0 {
            return Err(ReadError::Unsupported);
        }
        let start = e
            .data_offset
            .ok_or_else(|| ReadError::Corrupt("unreadable local header".into()))?;
        bytes_at(self.data, start, e.csize)
            .ok_or_else(|| ReadError::Corrupt("member data runs past the end of the file".into()))
    }

    /// The first `n` bytes of a member (for identifying it).
    pub fn head(&self, e: &Entry, n: usize) -> Result<Cow<'a, [u8]>, ReadError> {
        let raw = self.raw(e)?;
        match e.method {
            0 => Ok(Cow::Borrowed(&raw[..raw.len().min(n)])),
            8 => match miniz_oxide::inflate::decompress_to_vec_with_limit(raw, n) {
                Ok(v) => Ok(Cow::Owned(v)),
                Err(err) => Ok(Cow::Owned(err.output)),
            },
            _ => Err(ReadError::Unsupported),
        }
    }

    /// The whole member, expanded to at most `limit` bytes. The CRC is the
    /// caller's to check (see [`crc32`]).
    pub fn read(&self, e: &Entry, limit: u64) -> Result<Cow<'a, [u8]>, ReadError> {
        let raw = self.raw(e)?;
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        match e.method {
            0 => {
                if raw.len() > limit {
                    return Err(ReadError::TooBig);
                }
                Ok(Cow::Borrowed(raw))
            }
            8 => match miniz_oxide::inflate::decompress_to_vec_with_limit(raw, limit) {
                Ok(v) => Ok(Cow::Owned(v)),
                Err(err) => match err.status {
                    miniz_oxide::inflate::TINFLStatus::HasMoreOutput => Err(ReadError::TooBig),
                    s => Err(ReadError::Corrupt(format!(
                        "deflate stream is broken ({s:?})"
                    ))),
                },
            },
            _ => Err(ReadError::Unsupported),
        }
    }
}

const fn crc_table() -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}
static CRC: [u32; 256] = crc_table();

/// CRC-32 (IEEE), as zip and gzip use it.
pub(crate) fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c = CRC[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

/// Writes a zip (stored or deflated members) for tests and fixtures.
#[cfg(test)]
pub(crate) fn write_stored(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut cd = Vec::new();
    for (name, body) in members {
        let off = out.len() as u32;
        let crc = crc32(body);
        out.extend_from_slice(&LOC.to_le_bytes());
        out.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(body);
        cd.extend_from_slice(&CEN.to_le_bytes());
        cd.extend_from_slice(&[20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        cd.extend_from_slice(&crc.to_le_bytes());
        cd.extend_from_slice(&(body.len() as u32).to_le_bytes());
        cd.extend_from_slice(&(body.len() as u32).to_le_bytes());
        cd.extend_from_slice(&(name.len() as u16).to_le_bytes());
        cd.extend_from_slice(&[0; 12]);
        cd.extend_from_slice(&off.to_le_bytes());
        cd.extend_from_slice(name.as_bytes());
    }
    let cd_off = out.len() as u32;
    out.extend_from_slice(&cd);
    out.extend_from_slice(&EOCD.to_le_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&(members.len() as u16).to_le_bytes());
    out.extend_from_slice(&(members.len() as u16).to_le_bytes());
    out.extend_from_slice(&(cd.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_off.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn roundtrip_clean() {
        let z = write_stored(&[("a/data.pkl", b"hello"), ("a/x", b"world")]);
        let zip = Zip::open(&z).unwrap();
        assert!(zip.anomalies.is_empty(), "{:?}", zip.anomalies);
        assert_eq!(zip.entries.len(), 2);
        assert_eq!(&*zip.read(&zip.entries[0], 100).unwrap(), b"hello");
    }

    #[test]
    fn duplicate() {
        let z = write_stored(&[("a", b"1"), ("a", b"2")]);
        let zip = Zip::open(&z).unwrap();
        assert!(zip.anomalies.iter().any(|a| a.rule == "zip.duplicate-name"));
    }
}
