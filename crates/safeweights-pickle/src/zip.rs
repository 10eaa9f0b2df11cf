//! A small, strict zip reader built for untrusted PyTorch archives.
//!
//! It reads the end of central directory (with zip64), the central directory
//! and each local header, supports stored and deflated entries, checks
//! CRC-32, and records [`Anomaly`]s (CRC mismatch, encryption or
//! data-descriptor flags, local/central disagreement, duplicate names,
//! overlapping members) for scanners. Data is read through [`ReadAt`]
//! positioned reads, so storages need not be loaded whole.

use crate::error::ZipErrorKind;
use std::collections::HashMap;

/// Positioned reads (like `pread`).
pub trait ReadAt {
    /// Fill `buf` from `offset`; error if the source is too short.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()>;
    /// Total length in bytes.
    fn len(&self) -> std::io::Result<u64>;
    /// Whether the source is empty.
    fn is_empty(&self) -> std::io::Result<bool> {
        Ok(self.len()? == 0)
    }
}

impl ReadAt for [u8] {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| eof())?;
        let end = start.checked_add(buf.len()).ok_or_else(eof)?;
        let src = self.get(start..end).ok_or_else(eof)?;
        buf.copy_from_slice(src);
        Ok(())
    }
    fn len(&self) -> std::io::Result<u64> {
        Ok(<[u8]>::len(self) as u64)
    }
}

impl ReadAt for Vec<u8> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.as_slice().read_exact_at(buf, offset)
    }
    fn len(&self) -> std::io::Result<u64> {
        Ok(Vec::len(self) as u64)
    }
}

impl ReadAt for std::fs::File {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        #[cfg(unix)]
        {
            std::os::unix::fs::FileExt::read_exact_at(self, buf, offset)
        }
        #[cfg(windows)]
        {
            let mut done = 0usize;
            while done < buf.len() {
                let n = std::os::windows::fs::FileExt::seek_read(
                    self,
                    &mut buf[done..],
                    offset + done as u64,
                )?;
                if n == 0 {
                    return Err(eof());
                }
                done += n;
            }
            Ok(())
        }
    }
    fn len(&self) -> std::io::Result<u64> {
        Ok(self.metadata()?.len())
    }
}

fn eof() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "read past end of data")
}

/// Compression method of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Method {
    /// Stored (0).
    Stored,
    /// Deflated (8).
    Deflated,
    /// Anything else (reading fails).
    Other(u16),
}

/// One archive member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Name from the central directory.
    pub name: String,
    /// Compression method.
    pub method: Method,
    /// General-purpose flags (central directory).
    pub flags: u16,
    /// CRC-32 from the central directory.
    pub crc32: u32,
    /// Compressed size.
    pub compressed_size: u64,
    /// Uncompressed size.
    pub size: u64,
    /// Offset of the local header.
    pub header_offset: u64,
    /// Offset of the entry data (after the local header).
    pub data_offset: u64,
}

/// Something suspicious about the archive that did not prevent reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Anomaly {
    /// Entry is flagged as encrypted.
    Encrypted {
        /// Entry name.
        name: String,
    },
    /// Entry uses a trailing data descriptor (flag bit 3).
    DataDescriptor {
        /// Entry name.
        name: String,
    },
    /// Local header disagrees with the central directory.
    LocalMismatch {
        /// Entry name.
        name: String,
        /// What differs.
        what: String,
    },
    /// Two entries have the same name (the first is used).
    DuplicateName {
        /// Entry name.
        name: String,
    },
    /// Two entries' byte ranges overlap.
    Overlap {
        /// First entry.
        first: String,
        /// Second entry.
        second: String,
    },
    /// CRC-32 mismatch found by [`ZipArchive::verify`].
    CrcMismatch {
        /// Entry name.
        name: String,
    },
    /// Bytes between the start of the file and the first entry, or a comment.
    ExtraBytes {
        /// Description.
        what: String,
    },
}

/// A parsed zip archive over a [`ReadAt`] source.
#[derive(Debug)]
pub struct ZipArchive<R> {
    src: R,
    entries: Vec<Entry>,
    by_name: HashMap<String, usize>,
    anomalies: Vec<Anomaly>,
}

/// Error with the file offset where it was detected.
pub type ZipResult<T> = Result<T, (u64, ZipErrorKind)>;

fn le16(b: &[u8], at: usize) -> u16 {
    let mut a = [0u8; 2];
    if let Some(s) = b.get(at..at + 2) {
        a.copy_from_slice(s);
    }
    u16::from_le_bytes(a)
}
fn le32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        a.copy_from_slice(s);
    }
    u32::from_le_bytes(a)
}
fn le64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        a.copy_from_slice(s);
    }
    u64::from_le_bytes(a)
}

const EOCD_SIG: u32 = 0x0605_4b50;
const ZIP64_LOC_SIG: u32 = 0x0706_4b50;
const ZIP64_EOCD_SIG: u32 = 0x0606_4b50;
const CDH_SIG: u32 = 0x0201_4b50;
const LFH_SIG: u32 = 0x0403_4b50;

/// Maximum number of entries accepted.
const MAX_ENTRIES: u64 = 1_000_000;

impl<R: ReadAt> ZipArchive<R> {
    /// Parse the directory of an archive.
    pub fn new(src: R) -> ZipResult<Self> {
        let len = src.len().map_err(|_| (0, trunc("file")))?;
        let read = |off: u64, n: u64, what: &'static str| -> ZipResult<Vec<u8>> {
            let end = off.checked_add(n).ok_or((off, trunc(what)))?;
            if end > len {
                return Err((off, trunc(what)));
            }
            let n = usize::try_from(n).map_err(|_| (off, trunc(what)))?;
            let mut buf = vec![0u8; n];
            src.read_exact_at(&mut buf, off)
                .map_err(|_| (off, trunc(what)))?;
            Ok(buf)
        };
        if len < 22 {
            return Err((0, ZipErrorKind::NoEndOfCentralDirectory));
        }
        let tail_len = len.min(22 + 65535);
        let tail_start = len - tail_len;
        let tail = read(tail_start, tail_len, "end of central directory")?;
        let mut eocd_pos = None;
        let mut i = tail.len().saturating_sub(22);
        loop {
            if le32(&tail, i) == EOCD_SIG {
                let clen = le16(&tail, i + 20) as usize;
                if i + 22 + clen == tail.len() {
                    eocd_pos = Some(i);
                    break;
                }
            }
            if i == 0 {
                break;
            }
            i -= 1;
        }
        let ep = eocd_pos.ok_or((len, ZipErrorKind::NoEndOfCentralDirectory))?;
        let eocd_off = tail_start + ep as u64;
        let e = tail.get(ep..).unwrap_or(&[]);
        let mut anomalies = Vec::new();
        if le16(e, 20) != 0 {
            anomalies.push(Anomaly::ExtraBytes {
                what: "archive comment".into(),
            });
        }
        let disk = le16(e, 4);
        let cd_disk = le16(e, 6);
        let mut n_entries = u64::from(le16(e, 10));
        let mut cd_size = u64::from(le32(e, 12));
        let mut cd_off = u64::from(le32(e, 16));
        // zip64
        if eocd_off >= 20 {
            let loc = read(eocd_off - 20, 20, "zip64 locator")?;
            if le32(&loc, 0) == ZIP64_LOC_SIG {
                let z_off = le64(&loc, 8);
                let z = read(z_off, 56, "zip64 end of central directory")?;
                if le32(&z, 0) != ZIP64_EOCD_SIG {
                    return Err((
                        z_off,
                        ZipErrorKind::BadSignature {
                            what: "zip64 end of central directory",
                        },
                    ));
                }
                n_entries = le64(&z, 32);
                cd_size = le64(&z, 40);
                cd_off = le64(&z, 48);
            }
        }
        if disk != 0 || cd_disk != 0 {
            return Err((
                eocd_off,
                ZipErrorKind::Invalid {
                    what: "disk number",
                    reason: "multi-disk archives are not supported".into(),
                },
            ));
        }
        if n_entries > MAX_ENTRIES {
            return Err((
                eocd_off,
                ZipErrorKind::Invalid {
                    what: "entry count",
                    reason: format!("{n_entries} entries (max {MAX_ENTRIES})"),
                },
            ));
        }
        let cd = read(cd_off, cd_size, "central directory")?;
        let mut entries: Vec<Entry> = Vec::new();
        let mut by_name = HashMap::new();
        let mut p = 0usize;
        for _ in 0..n_entries {
            let here = cd_off + p as u64;
            let h = cd
                .get(p..p + 46)
                .ok_or((here, trunc("central directory entry")))?;
            if le32(h, 0) != CDH_SIG {
                return Err((
                    here,
                    ZipErrorKind::BadSignature {
                        what: "central directory entry",
                    },
                ));
            }
            let flags = le16(h, 8);
            let method = match le16(h, 10) {
                0 => Method::Stored,
                8 => Method::Deflated,
                m => Method::Other(m),
            };
            let crc32 = le32(h, 16);
            let mut csize = u64::from(le32(h, 20));
            let mut usize_ = u64::from(le32(h, 24));
            let nlen = le16(h, 28) as usize;
            let xlen = le16(h, 30) as usize;
            let clen = le16(h, 32) as usize;
            let mut hoff = u64::from(le32(h, 42));
            let name_start = p + 46;
            let name_b = cd
                .get(name_start..name_start + nlen)
                .ok_or((here, trunc("entry name")))?;
            let name = String::from_utf8_lossy(name_b).into_owned();
            let extra = cd
                .get(name_start + nlen..name_start + nlen + xlen)
                .ok_or((here, trunc("entry extra field")))?;
            // zip64 extended information
            let mut x = 0usize;
            while x + 4 <= extra.len() {
                let id = le16(extra, x);
                let sz = le16(extra, x + 2) as usize;
                let body = extra.get(x + 4..x + 4 + sz).unwrap_or(&[]);
                if id == 1 {
                    let mut q = 0usize;
                    if usize_ == 0xFFFF_FFFF {
                        usize_ = le64(body, q);
                        q += 8;
                    }
                    if csize == 0xFFFF_FFFF {
                        csize = le64(body, q);
                        q += 8;
                    }
                    if hoff == 0xFFFF_FFFF {
                        hoff = le64(body, q);
                    }
                }
                x += 4 + sz;
            }
            p = name_start + nlen + xlen + clen;
            if flags & 1 != 0 {
                anomalies.push(Anomaly::Encrypted { name: name.clone() });
            }
            if flags & 8 != 0 {
                anomalies.push(Anomaly::DataDescriptor { name: name.clone() });
            }
            // local header
            let lh = read(hoff, 30, "local header")?;
            if le32(&lh, 0) != LFH_SIG {
                return Err((
                    hoff,
                    ZipErrorKind::BadSignature {
                        what: "local header",
                    },
                ));
            }
            let l_nlen = u64::from(le16(&lh, 26));
            let l_xlen = u64::from(le16(&lh, 28));
            let l_name = read(hoff + 30, l_nlen, "local entry name")?;
            if l_name != name_b {
                anomalies.push(Anomaly::LocalMismatch {
                    name: name.clone(),
                    what: format!("local name {:?}", String::from_utf8_lossy(&l_name)),
                });
            }
            if le16(&lh, 8) != le16(h, 10) {
                anomalies.push(Anomaly::LocalMismatch {
                    name: name.clone(),
                    what: "compression method".into(),
                });
            }
            if flags & 8 == 0 {
                let (lc, lcs, lus) = (le32(&lh, 14), le32(&lh, 18), le32(&lh, 22));
                let sizes_ok = (lcs == 0xFFFF_FFFF || u64::from(lcs) == csize)
                    && (lus == 0xFFFF_FFFF || u64::from(lus) == usize_);
                if lc != crc32 || !sizes_ok {
                    anomalies.push(Anomaly::LocalMismatch {
                        name: name.clone(),
                        what: "crc32 or sizes".into(),
                    });
                }
            }
            let data_offset = hoff + 30 + l_nlen + l_xlen;
            let data_end = data_offset
                .checked_add(csize)
                .ok_or((hoff, trunc("entry data")))?;
            if data_end > len {
                return Err((hoff, trunc("entry data")));
            }
            if method == Method::Stored && csize != usize_ {
                return Err((
                    hoff,
                    ZipErrorKind::Invalid {
                        what: "stored entry size",
                        reason: format!("{name:?}: compressed {csize} != uncompressed {usize_}"),
                    },
                ));
            }
            let entry = Entry {
                name: name.clone(),
                method,
                flags,
                crc32,
                compressed_size: csize,
                size: usize_,
                header_offset: hoff,
                data_offset,
            };
            match by_name.entry(name) {
                std::collections::hash_map::Entry::Occupied(o) => {
                    anomalies.push(Anomaly::DuplicateName {
                        name: o.key().clone(),
                    });
                }
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(entries.len());
                }
            }
            entries.push(entry);
        }
        // overlaps
        let mut ranges: Vec<(u64, u64, usize)> = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.header_offset, e.data_offset + e.compressed_size, i))
            .collect();
        ranges.sort_unstable();
        for w in ranges.windows(2) {
            if let [a, b] = w {
                if b.0 < a.1 {
                    anomalies.push(Anomaly::Overlap {
                        first: entries.get(a.2).map(|e| e.name.clone()).unwrap_or_default(),
                        second: entries.get(b.2).map(|e| e.name.clone()).unwrap_or_default(),
                    });
                }
            }
        }
        if let Some(first) = ranges.first() {
            if first.0 > 0 {
                anomalies.push(Anomaly::ExtraBytes {
                    what: format!("{} bytes before the first entry", first.0),
                });
            }
        }
        Ok(ZipArchive {
            src,
            entries,
            by_name,
            anomalies,
        })
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

    fn check_readable(&self, e: &Entry) -> ZipResult<()> {
        if e.flags & 1 != 0 {
            return Err((
                e.header_offset,
                ZipErrorKind::Unsupported {
                    name: e.name.clone(),
                    what: "encryption".into(),
                },
            ));
        }
        if let Method::Other(m) = e.method {
            return Err((
                e.header_offset,
                ZipErrorKind::Unsupported {
                    name: e.name.clone(),
                    what: format!("compression method {m}"),
                },
            ));
        }
        Ok(())
    }

    /// Read a whole entry into memory (at most `max` bytes), checking CRC-32.
    pub fn read(&self, e: &Entry, max: u64) -> ZipResult<Vec<u8>> {
        self.check_readable(e)?;
        if e.size > max || e.compressed_size > max {
            return Err((
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
                let out = miniz_oxide::inflate::decompress_to_vec_with_limit(
                    &raw,
                    usize::try_from(e.size).unwrap_or(usize::MAX),
                )
                .map_err(|err| {
                    (
                        e.data_offset,
                        ZipErrorKind::Inflate {
                            name: e.name.clone(),
                            reason: format!("{:?}", err.status),
                        },
                    )
                })?;
                if out.len() as u64 != e.size {
                    return Err((
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
            return Err((
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
        let n =
            usize::try_from(e.compressed_size).map_err(|_| (e.data_offset, trunc("entry data")))?;
        let mut buf = vec![0u8; n];
        self.src
            .read_exact_at(&mut buf, e.data_offset)
            .map_err(|_| (e.data_offset, trunc("entry data")))?;
        Ok(buf)
    }

    /// Read `buf.len()` bytes at `offset` inside a **stored** entry without
    /// reading the rest of it (no CRC check; see [`ZipArchive::verify`]).
    pub fn read_stored_at(&self, e: &Entry, offset: u64, buf: &mut [u8]) -> ZipResult<()> {
        self.check_readable(e)?;
        if e.method != Method::Stored {
            return Err((
                e.header_offset,
                ZipErrorKind::Unsupported {
                    name: e.name.clone(),
                    what: "positioned reads of a compressed entry".into(),
                },
            ));
        }
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&end| end <= e.size)
            .ok_or((e.data_offset, trunc("read inside entry")))?;
        let _ = end;
        self.src
            .read_exact_at(buf, e.data_offset + offset)
            .map_err(|_| (e.data_offset, trunc("entry data")))
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
                        if self.src.read_exact_at(chunk, e.data_offset + off).is_err() {
                            good = false;
                            break;
                        }
                        crc = crc32(crc, chunk);
                        off += n as u64;
                    }
                    good && crc == e.crc32
                }
                _ => self.read(e, e.size).is_ok(),
            };
            if !ok {
                found.push(Anomaly::CrcMismatch {
                    name: e.name.clone(),
                });
            }
        }
        self.anomalies.extend(found.iter().cloned());
        found
    }
}

fn trunc(what: &'static str) -> ZipErrorKind {
    ZipErrorKind::Truncated { what }
}

/// CRC-32 (IEEE), continuing from `crc` (start with 0).
pub fn crc32(crc: u32, data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let t = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, slot) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            *slot = c;
        }
        t
    });
    let mut c = !crc;
    for &b in data {
        c = t[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_known() {
        assert_eq!(crc32(0, b"123456789"), 0xCBF4_3926);
    }
}
