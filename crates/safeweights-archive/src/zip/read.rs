//! The reader: [`ZipArchive`] with its two ways to open an archive (see the
//! [module documentation](super)).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use safeweights::Source;

use super::anomaly::Anomaly;
use super::entry::{Entry, Method};
use super::spec::{
    crc32, le16, le32, le64, u32_at, u64_at, CDH_SIG, DESCRIPTOR, DESC_SIG, ENCRYPTED, EOCD_SIG,
    KNOWN_FLAGS, LFH_SIG, ZIP64_EOCD_SIG, ZIP64_LOC_SIG,
};
use crate::error::{InspectError, ZipError, ZipErrorKind};
use crate::inflate::{inflate, Stop};

/// A parsed zip archive over a [`Source`] source.
pub struct ZipArchive<R> {
    src: R,
    entries: Vec<Entry>,
    by_name: HashMap<String, usize>,
    anomalies: Vec<Anomaly>,
}

/// Sources need not be `Debug`: the archive shows its directory.
impl<R> fmt::Debug for ZipArchive<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZipArchive")
            .field("entries", &self.entries)
            .field("anomalies", &self.anomalies)
            .finish_non_exhaustive()
    }
}

/// Result of the zip reader: errors carry the file offset where they were detected.
pub type ZipResult<T> = Result<T, ZipError>;

/// Maximum number of entries accepted by [`ZipArchive::new`].
const MAX_ENTRIES: u64 = 1_000_000;

/// Positioned reads bounded by the source length.
struct Src<'s, R: ?Sized> {
    src: &'s R,
    len: u64,
}

impl<R: Source + ?Sized> Src<'_, R> {
    /// Exactly `n` bytes at `off`, or `None` if they are not all there.
    fn get(&self, off: u64, n: u64) -> Option<Vec<u8>> {
        if off.checked_add(n)? > self.len {
            return None;
        }
        let mut buf = vec![0u8; usize::try_from(n).ok()?];
        self.src.read_exact_at(off, &mut buf).ok()?;
        Some(buf)
    }
    /// Like [`Src::get`], with the error strict reading reports.
    fn exact(&self, off: u64, n: u64, what: &'static str) -> ZipResult<Vec<u8>> {
        self.get(off, n).ok_or(ZipError::new(off, trunc(what)))
    }
    /// Up to `n` bytes at `off`: fewer where the source ends.
    fn upto(&self, off: u64, n: u64) -> Vec<u8> {
        let n = n.min(self.len.saturating_sub(off));
        self.get(off, n).unwrap_or_default()
    }
}

/// Offset in `tail` of the end of central directory record. Strict: the
/// last one whose comment ends exactly at the end of the file; lenient: the
/// last signature.
fn find_eocd(tail: &[u8], lenient: bool) -> Option<usize> {
    let mut i = tail.len().checked_sub(22)?;
    loop {
        if u32_at(tail, i) == Some(EOCD_SIG) {
            let clen = usize::from(le16(tail, i + 20));
            if lenient || i + 22 + clen == tail.len() {
                return Some(i);
            }
        }
        if i == 0 {
            return None;
        }
        i -= 1;
    }
}

/// Zip64 extended information (extra field 1): replaces the 32-bit fields
/// that are saturated, in order. False if the field is too short.
fn zip64_extra(extra: &[u8], size: &mut u64, csize: &mut u64, off: Option<&mut u64>) -> bool {
    let mut i = 0usize;
    while i + 4 <= extra.len() {
        let id = le16(extra, i);
        let len = usize::from(le16(extra, i + 2));
        let body = extra.get(i + 4..i + 4 + len);
        if id == 0x0001 {
            let Some(body) = body else { return false };
            let mut p = 0usize;
            let mut take = |v: &mut u64| -> bool {
                if *v != 0xFFFF_FFFF {
                    return true;
                }
                match u64_at(body, p) {
                    Some(x) => {
                        *v = x;
                        p += 8;
                        true
                    }
                    None => false,
                }
            };
            let mut ok = take(size) && take(csize);
            if let Some(o) = off {
                ok = ok && take(o);
            }
            return ok;
        }
        i += 4 + len;
    }
    true
}

/// Absolute, drive-relative or `..` names escape the extraction folder.
fn traversal(name: &str) -> bool {
    super::spec::escapes_extraction(name)
}

impl<R: Source> ZipArchive<R> {
    /// Parse the directory of an archive for loading: anything that would
    /// make the reader guess is an error (see the module documentation).
    pub fn new(src: R) -> ZipResult<Self> {
        Self::open(src, false)
    }

    /// Parse the directory of an archive for inspection: only a directory
    /// that cannot be found or read is an error; every other problem is
    /// recorded in [`ZipArchive::anomalies`]. Entries whose local header is
    /// missing have `has_local_header` false.
    pub fn inspect(src: R) -> ZipResult<Self> {
        Self::open(src, true)
    }

    fn open(src: R, lenient: bool) -> ZipResult<Self> {
        let len = src.len();
        let rd = Src { src: &src, len };
        if len < 22 {
            return Err(ZipError::new(0, ZipErrorKind::NoEndOfCentralDirectory));
        }
        let tail_len = len.min(22 + 65535);
        let tail_start = len - tail_len;
        let tail = rd.exact(tail_start, tail_len, "end of central directory")?;
        let ep = find_eocd(&tail, lenient)
            .ok_or(ZipError::new(len, ZipErrorKind::NoEndOfCentralDirectory))?;
        let eocd = tail_start + ep as u64;
        let e = tail.get(ep..).unwrap_or(&[]);
        let mut anomalies = Vec::new();
        let comment_len = le16(e, 20);
        let end = eocd + 22 + u64::from(comment_len);
        if end != len {
            anomalies.push(Anomaly::ExtraBytes {
                name: None,
                what: format!(
                    "{} bytes after the end-of-central-directory record",
                    len.abs_diff(end)
                ),
                offset: eocd,
            });
        }
        if comment_len != 0 {
            anomalies.push(Anomaly::Comment {
                len: comment_len,
                offset: eocd,
            });
        }
        let disk = le16(e, 4);
        let cd_disk = le16(e, 6);
        let mut n_entries = u64::from(le16(e, 10));
        let mut cd_size = u64::from(le32(e, 12));
        let mut cd_off = u64::from(le32(e, 16));
        let mut cd_end = eocd;
        if eocd >= 20 {
            let loc = rd.exact(eocd - 20, 20, "zip64 locator")?;
            if le32(&loc, 0) == ZIP64_LOC_SIG {
                let z_off = le64(&loc, 8);
                let z = rd.exact(z_off, 56, "zip64 end of central directory")?;
                if le32(&z, 0) != ZIP64_EOCD_SIG {
                    return Err(ZipError::new(
                        z_off,
                        ZipErrorKind::BadSignature {
                            what: "zip64 end of central directory",
                        },
                    ));
                }
                n_entries = le64(&z, 32);
                cd_size = le64(&z, 40);
                cd_off = le64(&z, 48);
                cd_end = z_off;
            }
        }
        if disk != 0 || cd_disk != 0 {
            return Err(ZipError::new(
                eocd,
                ZipErrorKind::Invalid {
                    what: "disk number",
                    reason: "multi-disk archives are not supported".into(),
                },
            ));
        }
        if !lenient && n_entries > MAX_ENTRIES {
            return Err(ZipError::new(
                eocd,
                ZipErrorKind::Invalid {
                    what: "entry count",
                    reason: format!("{n_entries} entries (max {MAX_ENTRIES})"),
                },
            ));
        }
        // Strict: the directory is where the end record says. Lenient: where
        // it ends is known (just before the end record); data prepended to
        // the archive (self-extracting archives, polyglots) shifts every
        // offset, and readers that find the directory from the end see them
        // shifted.
        let (cd_start, cd_limit, shift) = if lenient {
            let invalid = |what, reason: &str| {
                ZipError::new(
                    eocd,
                    ZipErrorKind::Invalid {
                        what,
                        reason: reason.into(),
                    },
                )
            };
            let real_cd = cd_end
                .checked_sub(cd_size)
                .ok_or_else(|| invalid("central directory size", "larger than the file"))?;
            let shift = real_cd
                .checked_sub(cd_off)
                .ok_or_else(|| invalid("central directory offset", "past its end"))?;
            if shift > 0 {
                anomalies.push(Anomaly::ExtraBytes {
                    name: None,
                    what: format!("{shift} bytes before the archive (prepended data or polyglot)"),
                    offset: 0,
                });
            }
            (real_cd, len, shift)
        } else {
            let cd_limit = cd_off.checked_add(cd_size).filter(|&e| e <= len);
            let cd_limit = cd_limit.ok_or(ZipError::new(cd_off, trunc("central directory")))?;
            (cd_off, cd_limit, 0)
        };
        let cd = Src {
            src: &src,
            len: cd_limit,
        };
        let mut entries: Vec<Entry> = Vec::new();
        let mut p = cd_start;
        for _ in 0..n_entries {
            let here = p;
            let h = cd.exact(p, 46, "central directory entry")?;
            if le32(&h, 0) != CDH_SIG {
                return Err(ZipError::new(
                    here,
                    ZipErrorKind::BadSignature {
                        what: "central directory entry",
                    },
                ));
            }
            let flags = le16(&h, 8);
            let method = Method::from_code(le16(&h, 10));
            let crc32 = le32(&h, 16);
            let mut csize = u64::from(le32(&h, 20));
            let mut size = u64::from(le32(&h, 24));
            let nlen = u64::from(le16(&h, 28));
            let xlen = u64::from(le16(&h, 30));
            let clen = u64::from(le16(&h, 32));
            let mut hoff = u64::from(le32(&h, 42));
            let name_b = cd
                .get(p + 46, nlen)
                .ok_or(ZipError::new(here, trunc("entry name")))?;
            let extra = cd
                .get(p + 46 + nlen, xlen)
                .ok_or(ZipError::new(here, trunc("entry extra field")))?;
            let name = String::from_utf8_lossy(&name_b).into_owned();
            if !zip64_extra(&extra, &mut size, &mut csize, Some(&mut hoff)) {
                anomalies.push(Anomaly::Malformed {
                    name: Some(name.clone()),
                    what: "truncated zip64 extra field".into(),
                    offset: here,
                });
            }
            entries.push(Entry {
                name,
                method,
                flags,
                crc32,
                compressed_size: csize,
                size,
                header_offset: hoff.saturating_add(shift),
                data_offset: 0,
                has_local_header: false,
            });
            p += 46 + nlen + xlen + clen;
        }
        let mut zip = ZipArchive {
            src,
            entries,
            by_name: HashMap::new(),
            anomalies,
        };
        zip.check_locals(len, cd_start, lenient)?;
        Ok(zip)
    }

    /// Checks each local header against the central directory, then looks
    /// for overlapping members and bytes that belong to none.
    fn check_locals(&mut self, len: u64, cd_start: u64, lenient: bool) -> ZipResult<()> {
        let rd = Src {
            src: &self.src,
            len,
        };
        let mut found = Vec::new();
        let mut spans: Vec<(u64, u64, usize)> = Vec::new();
        // Names folded to lower case: readers that look members up without
        // regard to case (miniz, which PyTorch uses) may take either twin.
        let mut folded: HashMap<String, String> = HashMap::new();
        for (i, e) in self.entries.iter_mut().enumerate() {
            let n = &e.name;
            let lo = e.header_offset;
            match self.by_name.entry(n.clone()) {
                std::collections::hash_map::Entry::Occupied(_) => {
                    found.push(Anomaly::DuplicateName {
                        name: n.clone(),
                        offset: lo,
                    });
                }
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(i);
                    match folded.entry(n.to_lowercase()) {
                        std::collections::hash_map::Entry::Occupied(o) => {
                            found.push(Anomaly::CaseTwin {
                                name: n.clone(),
                                other: o.get().clone(),
                                offset: lo,
                            });
                        }
                        std::collections::hash_map::Entry::Vacant(v) => {
                            v.insert(n.clone());
                        }
                    }
                }
            }
            if traversal(n) {
                found.push(Anomaly::PathTraversal {
                    name: n.clone(),
                    offset: lo,
                });
            }
            if e.flags & ENCRYPTED != 0 {
                found.push(Anomaly::Encrypted {
                    name: n.clone(),
                    offset: lo,
                });
            }
            if e.flags & DESCRIPTOR != 0 {
                found.push(Anomaly::DataDescriptor {
                    name: n.clone(),
                    offset: lo,
                });
            }
            let odd = e.flags & !KNOWN_FLAGS;
            if odd != 0 {
                found.push(Anomaly::UnexpectedFlags {
                    name: n.clone(),
                    bits: odd,
                    offset: lo,
                });
            }
            if let Method::Other(m) = e.method {
                found.push(Anomaly::UnsupportedMethod {
                    name: n.clone(),
                    method: m,
                    offset: lo,
                });
            }
            let lh = rd.upto(lo, 30);
            if !lenient && lh.len() < 30 {
                return Err(ZipError::new(lo, trunc("local header")));
            }
            if u32_at(&lh, 0) != Some(LFH_SIG) {
                if !lenient {
                    return Err(ZipError::new(
                        lo,
                        ZipErrorKind::BadSignature {
                            what: "local header",
                        },
                    ));
                }
                found.push(Anomaly::MissingLocalHeader {
                    name: n.clone(),
                    offset: lo,
                });
                continue;
            }
            let lflags = le16(&lh, 6);
            let lmethod = le16(&lh, 8);
            let lcrc = le32(&lh, 14);
            let mut lcsize = u64::from(le32(&lh, 18));
            let mut lsize = u64::from(le32(&lh, 22));
            let nlen = u64::from(le16(&lh, 26));
            let xlen = u64::from(le16(&lh, 28));
            let lname = rd.get(lo + 30, nlen);
            if !lenient && lname.is_none() {
                return Err(ZipError::new(lo + 30, trunc("local entry name")));
            }
            let lname = lname.map(|b| String::from_utf8_lossy(&b).into_owned());
            let lextra = rd.get(lo + 30 + nlen, xlen).unwrap_or_default();
            zip64_extra(&lextra, &mut lsize, &mut lcsize, None);
            if lname.as_deref() != Some(n.as_str()) {
                found.push(Anomaly::LocalMismatch {
                    name: n.clone(),
                    what: format!(
                        "local header names the member {:?}, the central directory {n:?}",
                        lname.as_deref().unwrap_or("<truncated>")
                    ),
                    offset: lo,
                });
            }
            if lmethod != e.method.code() || (lflags & ENCRYPTED) != (e.flags & ENCRYPTED) {
                found.push(Anomaly::LocalMismatch {
                    name: n.clone(),
                    what: "local header and central directory disagree on method or encryption"
                        .into(),
                    offset: lo,
                });
            }
            let descriptor = e.flags & DESCRIPTOR != 0 || lflags & DESCRIPTOR != 0;
            let sizes_in_local = !(descriptor && lcrc == 0 && lcsize == 0 && lsize == 0);
            if sizes_in_local && (lcrc != e.crc32 || lcsize != e.compressed_size || lsize != e.size)
            {
                found.push(Anomaly::LocalMismatch {
                    name: n.clone(),
                    what: format!(
                        "local header says {lcsize}/{lsize} bytes crc {lcrc:08x}, central directory {}/{} crc {:08x}",
                        e.compressed_size, e.size, e.crc32
                    ),
                    offset: lo,
                });
            }
            let start = lo + 30 + nlen + xlen;
            e.data_offset = start;
            e.has_local_header = true;
            let mut end = start.saturating_add(e.compressed_size);
            if end > len {
                if !lenient {
                    return Err(ZipError::new(lo, trunc("entry data")));
                }
                found.push(Anomaly::Malformed {
                    name: Some(n.clone()),
                    what: "member data runs past the end of the file".into(),
                    offset: lo,
                });
                continue;
            }
            if !lenient && e.method == Method::Stored && e.compressed_size != e.size {
                return Err(ZipError::new(
                    lo,
                    ZipErrorKind::Invalid {
                        what: "stored entry size",
                        reason: format!(
                            "{n:?}: compressed {} != uncompressed {}",
                            e.compressed_size, e.size
                        ),
                    },
                ));
            }
            if descriptor {
                // Optional signature, CRC-32, then 32- or 64-bit sizes.
                let d = rd.upto(end, 24);
                let q = if u32_at(&d, 0) == Some(DESC_SIG) {
                    4
                } else {
                    0
                };
                let crc = u32_at(&d, q);
                let c32 = u32_at(&d, q + 4).map(u64::from);
                let u32_ = u32_at(&d, q + 8).map(u64::from);
                let c64 = u64_at(&d, q + 4);
                let u64_ = u64_at(&d, q + 12);
                let crc_ok = crc == Some(e.crc32);
                if crc_ok && c32 == Some(e.compressed_size) && u32_ == Some(e.size) {
                    end += q as u64 + 12;
                } else if crc_ok && c64 == Some(e.compressed_size) && u64_ == Some(e.size) {
                    end += q as u64 + 20;
                } else {
                    found.push(Anomaly::DescriptorMismatch {
                        name: n.clone(),
                        offset: end,
                    });
                }
            }
            spans.push((lo, end, i));
        }
        self.anomalies.extend(found);
        spans.sort_unstable();
        let mut prev_end = 0u64;
        let mut prev_name: Option<&str> = None;
        for (s, end, i) in spans {
            let name = self.entries.get(i).map(|e| e.name.as_str()).unwrap_or("");
            if s < prev_end {
                self.anomalies.push(Anomaly::Overlap {
                    first: prev_name.unwrap_or("?").to_string(),
                    second: name.to_string(),
                    offset: s,
                });
            } else if s > prev_end {
                let what = match prev_name {
                    None => format!("{} bytes before the first member", s - prev_end),
                    Some(p) => format!(
                        "{} unreferenced bytes between {p:?} and this member",
                        s - prev_end
                    ),
                };
                let seen = self
                    .anomalies
                    .iter()
                    .any(|a| matches!(a, Anomaly::ExtraBytes { .. }));
                if prev_name.is_some() || !seen {
                    self.anomalies.push(Anomaly::ExtraBytes {
                        name: Some(name.to_string()),
                        what,
                        offset: prev_end,
                    });
                }
            }
            if end > prev_end {
                prev_end = end;
                prev_name = Some(name);
            }
        }
        if prev_end < cd_start && prev_name.is_some() {
            self.anomalies.push(Anomaly::ExtraBytes {
                name: None,
                what: format!(
                    "{} unreferenced bytes before the central directory",
                    cd_start - prev_end
                ),
                offset: prev_end,
            });
        }
        Ok(())
    }

    /// All entries in central-directory order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }
    /// Anomalies found so far.
    pub fn anomalies(&self) -> &[Anomaly] {
        &self.anomalies
    }
    /// Find an entry by exact name (first of duplicates).
    pub fn entry(&self, name: &str) -> Option<&Entry> {
        self.by_name.get(name).and_then(|&i| self.entries.get(i))
    }
    /// The underlying source.
    pub fn source(&self) -> &R {
        &self.src
    }

    pub(super) fn check_readable(&self, e: &Entry) -> ZipResult<()> {
        if e.flags & ENCRYPTED != 0 {
            return Err(ZipError::new(
                e.header_offset,
                ZipErrorKind::Unsupported {
                    name: e.name.clone(),
                    what: "encryption".into(),
                },
            ));
        }
        if let Method::Other(m) = e.method {
            return Err(ZipError::new(
                e.header_offset,
                ZipErrorKind::Unsupported {
                    name: e.name.clone(),
                    what: format!("compression method {m}"),
                },
            ));
        }
        if !e.has_local_header {
            return Err(ZipError::new(
                e.header_offset,
                ZipErrorKind::BadSignature {
                    what: "local header",
                },
            ));
        }
        Ok(())
    }

    /// Read a whole entry into memory (at most `max` bytes), checking CRC-32.
    pub fn read(&self, e: &Entry, max: u64) -> ZipResult<Vec<u8>> {
        self.check_readable(e)?;
        if e.size > max || e.compressed_size > max {
            return Err(ZipError::new(
                e.header_offset,
                ZipErrorKind::Invalid {
                    what: "entry size",
                    reason: format!("{:?} is {} bytes (limit {max})", e.name, e.size),
                },
            ));
        }
        let raw = self.raw(e)?;
        let data = match e.method {
            Method::Stored => raw,
            _ => {
                let limit = usize::try_from(e.size).unwrap_or(usize::MAX);
                let out = inflate(&raw, limit).map_err(|p| {
                    ZipError::new(
                        e.data_offset,
                        ZipErrorKind::Inflate {
                            name: e.name.clone(),
                            reason: p.stop.status().into(),
                        },
                    )
                })?;
                if out.len() as u64 != e.size {
                    return Err(ZipError::new(
                        e.data_offset,
                        ZipErrorKind::Inflate {
                            name: e.name.clone(),
                            reason: format!("got {} bytes, directory says {}", out.len(), e.size),
                        },
                    ));
                }
                out
            }
        };
        let crc = crc32(0, &data);
        if crc != e.crc32 {
            return Err(ZipError::new(
                e.data_offset,
                ZipErrorKind::CrcMismatch {
                    name: e.name.clone(),
                    expected: e.crc32,
                    computed: crc,
                },
            ));
        }
        Ok(data)
    }

    fn raw(&self, e: &Entry) -> ZipResult<Vec<u8>> {
        let n = usize::try_from(e.compressed_size)
            .map_err(|_| ZipError::new(e.data_offset, trunc("entry data")))?;
        let mut buf = vec![0u8; n];
        self.src
            .read_exact_at(e.data_offset, &mut buf)
            .map_err(|_| ZipError::new(e.data_offset, trunc("entry data")))?;
        Ok(buf)
    }

    /// Read `buf.len()` bytes at `offset` inside a **stored** entry without
    /// reading the rest of it (no CRC check; see [`ZipArchive::verify`]).
    pub fn read_stored_at(&self, e: &Entry, offset: u64, buf: &mut [u8]) -> ZipResult<()> {
        self.check_readable(e)?;
        if e.method != Method::Stored {
            return Err(ZipError::new(
                e.header_offset,
                ZipErrorKind::Unsupported {
                    name: e.name.clone(),
                    what: "positioned reads of a compressed entry".into(),
                },
            ));
        }
        offset
            .checked_add(buf.len() as u64)
            .filter(|&end| end <= e.size)
            .ok_or(ZipError::new(e.data_offset, trunc("read inside entry")))?;
        self.src
            .read_exact_at(e.data_offset + offset, buf)
            .map_err(|_| ZipError::new(e.data_offset, trunc("entry data")))
    }

    /// Stream every entry, checking sizes and CRC-32; mismatches are recorded
    /// as anomalies and returned.
    pub fn verify(&mut self) -> Vec<Anomaly> {
        let mut found = Vec::new();
        for e in &self.entries {
            if self.check_readable(e).is_err() {
                continue;
            }
            let ok = match e.method {
                Method::Stored => {
                    let mut crc = 0u32;
                    let mut off = 0u64;
                    let mut buf = vec![0u8; 1 << 20];
                    let mut good = true;
                    while off < e.size {
                        let n = (e.size - off).min(buf.len() as u64) as usize;
                        let chunk = &mut buf[..n];
                        if self.src.read_exact_at(e.data_offset + off, chunk).is_err() {
                            good = false;
                            break;
                        }
                        crc = crc32(crc, chunk);
                        off += n as u64;
                    }
                    good && crc == e.crc32
                }
                // Streamed: a member is inflated in bounded memory, its
                // declared size and CRC-32 checked as the bytes pass.
                _ => self
                    .open_member(e)
                    .is_ok_and(|mut r| std::io::copy(&mut r, &mut std::io::sink()).is_ok()),
            };
            if !ok {
                found.push(Anomaly::CrcMismatch {
                    name: e.name.clone(),
                    offset: e.data_offset,
                });
            }
        }
        self.anomalies.extend(found.iter().cloned());
        found
    }
}

/// Member access for scanners: nothing is checked but what is needed to
/// read the bytes. Sources held in memory or mapped
/// ([`Source::as_bytes`]) are read without copying: stored members are
/// borrowed.
impl<R: Source> ZipArchive<R> {
    /// The first `len` bytes of a member's data, checked to lie inside the source.
    fn span(&self, e: &Entry, len: u64) -> Result<Cow<'_, [u8]>, InspectError> {
        let past_end = || InspectError::Corrupt("member data runs past the end of the file".into());
        let start = e.data_offset;
        let end = start
            .checked_add(len)
            .filter(|&end| end <= self.src.len())
            .ok_or_else(past_end)?;
        if let Some(all) = self.src.as_bytes() {
            let s = usize::try_from(start).ok();
            let t = usize::try_from(end).ok();
            let bytes = s.zip(t).and_then(|(s, t)| all.get(s..t));
            return bytes.map(Cow::Borrowed).ok_or_else(past_end);
        }
        let mut buf = vec![0u8; usize::try_from(len).map_err(|_| past_end())?];
        self.src
            .read_exact_at(start, &mut buf)
            .map_err(|_| past_end())?;
        Ok(Cow::Owned(buf))
    }

    /// Checks that a member can be read at all and that its data lies inside
    /// the source.
    fn inspectable(&self, e: &Entry) -> Result<(), InspectError> {
        if e.flags & ENCRYPTED != 0 {
            return Err(InspectError::Unsupported);
        }
        if !e.has_local_header {
            return Err(InspectError::Corrupt("unreadable local header".into()));
        }
        match e.data_offset.checked_add(e.compressed_size) {
            Some(end) if end <= self.src.len() => Ok(()),
            _ => Err(InspectError::Corrupt(
                "member data runs past the end of the file".into(),
            )),
        }
    }

    /// The first `n` bytes of a member (for identifying it); a broken
    /// deflate stream yields what could be expanded, zero-filled to the
    /// window it was expanded into (see `broken_head_len`).
    pub fn head(&self, e: &Entry, n: usize) -> Result<Cow<'_, [u8]>, InspectError> {
        self.inspectable(e)?;
        match e.method {
            Method::Stored => self.span(e, e.compressed_size.min(n as u64)),
            Method::Deflated => {
                let raw = self.span(e, e.compressed_size)?;
                Ok(Cow::Owned(match inflate(&raw, n) {
                    Ok(v) => v,
                    Err(p) if p.stop == Stop::TooBig => p.output,
                    Err(mut p) => {
                        let len = broken_head_len(raw.len(), n, p.output.len());
                        p.output.resize(len, 0);
                        p.output
                    }
                }))
            }
            Method::Other(_) => Err(InspectError::Unsupported),
        }
    }

    /// The whole member, expanded to at most `limit` bytes, without checking
    /// its size or CRC-32 (the caller's to check, see
    /// [`crc32`](super::spec::crc32)): stored members of sources in memory
    /// are borrowed, deflated ones expanded.
    pub fn read_unverified(&self, e: &Entry, limit: u64) -> Result<Cow<'_, [u8]>, InspectError> {
        self.inspectable(e)?;
        match e.method {
            Method::Stored => {
                if e.compressed_size > limit {
                    return Err(InspectError::TooBig);
                }
                self.span(e, e.compressed_size)
            }
            Method::Deflated => {
                let raw = self.span(e, e.compressed_size)?;
                let limit = usize::try_from(limit).unwrap_or(usize::MAX);
                match inflate(&raw, limit) {
                    Ok(v) => Ok(Cow::Owned(v)),
                    Err(p) if p.stop == Stop::TooBig => Err(InspectError::TooBig),
                    Err(p) => Err(InspectError::Corrupt(format!(
                        "deflate stream is broken ({})",
                        p.stop.status()
                    ))),
                }
            }
            Method::Other(_) => Err(InspectError::Unsupported),
        }
    }
}

/// The length of the head of a broken deflate member: what was expanded,
/// zero-filled to the window it was expanded into. The window starts at
/// twice the compressed size and doubles, never past `n`. Scanners decide
/// from the head's length whether to read a member whole (and report it
/// broken), and this is the length the head has always had (the window of
/// miniz's `decompress_to_vec_with_limit`), so verdicts do not change.
fn broken_head_len(compressed: usize, n: usize, expanded: usize) -> usize {
    let mut window = compressed.saturating_mul(2).min(n);
    while window < expanded && window > 0 {
        window = window.saturating_mul(2).min(n);
    }
    window.max(expanded)
}

fn trunc(what: &'static str) -> ZipErrorKind {
    ZipErrorKind::Truncated { what }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests build fixtures with std::fs.
mod tests {
    use super::*;
    use crate::slice::SliceSource;
    use safeweights::MemorySource;

    /// A zip of stored members.
    fn write_stored(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut cd = Vec::new();
        for &(name, body) in members {
            let off = out.len() as u32;
            let crc = crc32(0, body);
            out.extend_from_slice(&LFH_SIG.to_le_bytes());
            out.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            out.extend_from_slice(&crc.to_le_bytes());
            out.extend_from_slice(&(body.len() as u32).to_le_bytes());
            out.extend_from_slice(&(body.len() as u32).to_le_bytes());
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(body);
            cd.extend_from_slice(&CDH_SIG.to_le_bytes());
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
        out.extend_from_slice(&EOCD_SIG.to_le_bytes());
        out.extend_from_slice(&[0, 0, 0, 0]);
        out.extend_from_slice(&(members.len() as u16).to_le_bytes());
        out.extend_from_slice(&(members.len() as u16).to_le_bytes());
        out.extend_from_slice(&(cd.len() as u32).to_le_bytes());
        out.extend_from_slice(&cd_off.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out
    }

    #[test]
    fn roundtrip_clean() {
        let z = write_stored(&[("a/data.pkl", b"hello"), ("a/x", b"world")]);
        for zip in [
            ZipArchive::new(SliceSource::new(&z)).unwrap(),
            ZipArchive::inspect(SliceSource::new(&z)).unwrap(),
        ] {
            assert!(zip.anomalies().is_empty(), "{:?}", zip.anomalies());
            assert_eq!(zip.entries().len(), 2);
            let e = &zip.entries()[0];
            assert_eq!(zip.read(e, 100).unwrap(), b"hello");
            assert_eq!(&*zip.read_unverified(e, 100).unwrap(), b"hello");
            assert_eq!(&*zip.head(e, 3).unwrap(), b"hel");
            assert_eq!(zip.read_unverified(e, 4), Err(InspectError::TooBig));
        }
    }

    #[test]
    fn broken_deflate_heads_fill_their_window() {
        assert_eq!(broken_head_len(10, 4096, 0), 20);
        assert_eq!(broken_head_len(10, 4096, 35), 40);
        assert_eq!(broken_head_len(3000, 4096, 5), 4096);
        assert_eq!(broken_head_len(0, 4096, 0), 0);
        assert_eq!(broken_head_len(10, 16, 12), 16);
    }

    #[test]
    fn duplicate_and_traversal() {
        let z = write_stored(&[("a", b"1"), ("a", b"2"), ("../x", b"3")]);
        let zip = ZipArchive::new(MemorySource::new(z)).unwrap();
        let a = zip.anomalies();
        assert!(a.contains(&Anomaly::DuplicateName {
            name: "a".into(),
            offset: 32
        }));
        assert!(a
            .iter()
            .any(|a| matches!(a, Anomaly::PathTraversal { name, .. } if name == "../x")));
        assert_eq!(zip.read(zip.entry("a").unwrap(), 10).unwrap(), b"1");
    }

    /// Issue 21: `archive/data.pkl` and `archive/DATA.pkl` differ only in
    /// case; PyTorch's reader may pick either, so the twin is an anomaly.
    #[test]
    fn issue21_case_twins_are_an_anomaly() {
        let z = write_stored(&[("archive/data.pkl", b"1"), ("archive/DATA.pkl", b"2")]);
        let zip = ZipArchive::new(MemorySource::new(z)).unwrap();
        assert!(
            zip.anomalies().iter().any(|a| matches!(a,
                Anomaly::CaseTwin { name, other, .. } if name == "archive/DATA.pkl" && other == "archive/data.pkl")),
            "{:?}",
            zip.anomalies()
        );
        let plain = write_stored(&[("a/data.pkl", b"1"), ("a/data/0", b"2")]);
        assert!(ZipArchive::new(MemorySource::new(plain))
            .unwrap()
            .anomalies()
            .is_empty());
    }

    #[test]
    fn prepended_data_refused_when_loading_recorded_when_inspecting() {
        let mut z = b"#!/bin/sh\nexit 0\n".to_vec();
        z.extend(write_stored(&[("a", b"payload")]));
        assert!(ZipArchive::new(SliceSource::new(&z)).is_err());
        let zip = ZipArchive::inspect(SliceSource::new(&z)).unwrap();
        let e = &zip.entries()[0];
        assert_eq!(zip.read(e, 100).unwrap(), b"payload");
        assert!(matches!(
            &zip.anomalies()[0],
            Anomaly::ExtraBytes { offset: 0, what, .. } if what.contains("17 bytes before the archive")
        ));
    }

    #[test]
    fn missing_local_header_refused_when_loading_recorded_when_inspecting() {
        let mut z = write_stored(&[("a", b"payload")]);
        z[0] = b'X';
        assert!(matches!(
            ZipArchive::new(SliceSource::new(&z)),
            Err(ZipError {
                offset: 0,
                kind: ZipErrorKind::BadSignature { .. }
            })
        ));
        let zip = ZipArchive::inspect(SliceSource::new(&z)).unwrap();
        let e = &zip.entries()[0];
        assert!(!e.has_local_header);
        assert!(zip.read(e, 100).is_err());
        assert!(matches!(
            zip.read_unverified(e, 100),
            Err(InspectError::Corrupt(_))
        ));
        assert_eq!(
            zip.anomalies()[0].to_string(),
            "central directory points at no local header"
        );
    }
}
