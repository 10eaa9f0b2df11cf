//! A small, strict zip reader built for untrusted archives.
//!
//! It reads the end of central directory (with zip64), the central directory
//! and each local header, supports stored and deflated entries, checks
//! CRC-32, and records [`Anomaly`]s for scanners: encryption, odd flags,
//! unsupported methods, path traversal, duplicate names, local header or data
//! descriptor disagreeing with the central directory, overlapping members,
//! data before, between or after the members. Data is read through
//! [`ReadAt`] positioned reads, so storages need not be loaded whole.
//!
//! Two ways to open an archive:
//! - [`ZipArchive::new`] (loaders): structural problems that would make the
//!   reader guess (a missing local header, data past the end of the file, a
//!   stored entry whose sizes disagree, data prepended to the archive, bytes
//!   after the end record) are errors;
//! - [`ZipArchive::inspect`] (scanners): only an unfindable or unreadable
//!   directory is an error; everything else is recorded as an anomaly and the
//!   archive is read the way readers that locate the directory from the end
//!   of the file read it (prepended data shifts every offset).

use crate::error::ZipErrorKind;
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

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

impl<T: ReadAt + ?Sized> ReadAt for &T {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        (**self).read_exact_at(buf, offset)
    }
    fn len(&self) -> std::io::Result<u64> {
        (**self).len()
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

impl Method {
    fn from_code(m: u16) -> Self {
        match m {
            0 => Method::Stored,
            8 => Method::Deflated,
            m => Method::Other(m),
        }
    }
    /// The method number as written in the archive.
    pub fn code(self) -> u16 {
        match self {
            Method::Stored => 0,
            Method::Deflated => 8,
            Method::Other(m) => m,
        }
    }
}

/// Flag bits for traditional (0) and strong (6) encryption.
const ENCRYPTED: u16 = 0x0041;
/// Flag bit 3: sizes and CRC-32 follow the data in a data descriptor.
const DESCRIPTOR: u16 = 0x0008;
/// Flag bits ordinary writers set: encryption, compression options,
/// descriptor, UTF-8 names.
const KNOWN_FLAGS: u16 = 0x080E | ENCRYPTED;

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
    /// Offset of the entry data (after the local header); meaningless when
    /// `has_local_header` is false.
    pub data_offset: u64,
    /// Whether a local header was found where the central directory points
    /// (always true for archives opened with [`ZipArchive::new`]).
    pub has_local_header: bool,
}

impl Entry {
    /// Whether the entry is a folder (its name ends with `/`).
    pub fn is_dir(&self) -> bool {
        self.name.ends_with('/')
    }
}

/// Something suspicious about the archive that did not prevent reading it.
///
/// Its `Display` is a one-line description; [`Anomaly::member`] and
/// [`Anomaly::offset`] locate it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Anomaly {
    /// Entry is flagged as encrypted (traditional or strong encryption).
    Encrypted {
        /// Entry name.
        name: String,
        /// Offset of its local header.
        offset: u64,
    },
    /// Entry uses a trailing data descriptor (flag bit 3), as streaming
    /// writers such as `torch.save` do.
    DataDescriptor {
        /// Entry name.
        name: String,
        /// Offset of its local header.
        offset: u64,
    },
    /// General-purpose flag bits that ordinary writers do not set.
    UnexpectedFlags {
        /// Entry name.
        name: String,
        /// The unexpected bits.
        bits: u16,
        /// Offset of its local header.
        offset: u64,
    },
    /// Compression method other than stored or deflated.
    UnsupportedMethod {
        /// Entry name.
        name: String,
        /// Method number.
        method: u16,
        /// Offset of its local header.
        offset: u64,
    },
    /// Entry name is absolute or contains a `..` component.
    PathTraversal {
        /// Entry name.
        name: String,
        /// Offset of its local header.
        offset: u64,
    },
    /// Two entries have the same name (the first is used).
    DuplicateName {
        /// Entry name.
        name: String,
        /// Offset of the second one's local header.
        offset: u64,
    },
    /// The central directory points at no local header
    /// ([`ZipArchive::inspect`] only; an error otherwise).
    MissingLocalHeader {
        /// Entry name.
        name: String,
        /// Where the local header should be.
        offset: u64,
    },
    /// Local header disagrees with the central directory.
    LocalMismatch {
        /// Entry name.
        name: String,
        /// What differs.
        what: String,
        /// Offset of the local header.
        offset: u64,
    },
    /// The data descriptor after an entry disagrees with the central directory.
    DescriptorMismatch {
        /// Entry name.
        name: String,
        /// Where the descriptor should be.
        offset: u64,
    },
    /// Two entries' byte ranges overlap.
    Overlap {
        /// The entry that starts first.
        first: String,
        /// The entry that starts inside it.
        second: String,
        /// Offset of the second one's local header.
        offset: u64,
    },
    /// CRC-32 mismatch found by [`ZipArchive::verify`].
    CrcMismatch {
        /// Entry name.
        name: String,
        /// Offset of the entry data.
        offset: u64,
    },
    /// A structure is broken but the rest of the archive can be read.
    Malformed {
        /// Entry name, if it concerns one entry.
        name: Option<String>,
        /// Description.
        what: String,
        /// Where.
        offset: u64,
    },
    /// Bytes that belong to no member: before the archive, between or
    /// before the members, or after the end record.
    ExtraBytes {
        /// The entry they precede, if any.
        name: Option<String>,
        /// Description.
        what: String,
        /// Where they start.
        offset: u64,
    },
    /// The archive has a comment.
    Comment {
        /// Comment length.
        len: u16,
        /// Offset of the end of central directory record.
        offset: u64,
    },
}

impl Anomaly {
    /// The entry concerned, if any.
    pub fn member(&self) -> Option<&str> {
        match self {
            Anomaly::Encrypted { name, .. }
            | Anomaly::DataDescriptor { name, .. }
            | Anomaly::UnexpectedFlags { name, .. }
            | Anomaly::UnsupportedMethod { name, .. }
            | Anomaly::PathTraversal { name, .. }
            | Anomaly::DuplicateName { name, .. }
            | Anomaly::MissingLocalHeader { name, .. }
            | Anomaly::LocalMismatch { name, .. }
            | Anomaly::DescriptorMismatch { name, .. }
            | Anomaly::CrcMismatch { name, .. }
            | Anomaly::Overlap { second: name, .. } => Some(name),
            Anomaly::Malformed { name, .. } | Anomaly::ExtraBytes { name, .. } => name.as_deref(),
            Anomaly::Comment { .. } => None,
        }
    }

    /// File offset where it was found.
    pub fn offset(&self) -> u64 {
        match self {
            Anomaly::Encrypted { offset, .. }
            | Anomaly::DataDescriptor { offset, .. }
            | Anomaly::UnexpectedFlags { offset, .. }
            | Anomaly::UnsupportedMethod { offset, .. }
            | Anomaly::PathTraversal { offset, .. }
            | Anomaly::DuplicateName { offset, .. }
            | Anomaly::MissingLocalHeader { offset, .. }
            | Anomaly::LocalMismatch { offset, .. }
            | Anomaly::DescriptorMismatch { offset, .. }
            | Anomaly::Overlap { offset, .. }
            | Anomaly::CrcMismatch { offset, .. }
            | Anomaly::Malformed { offset, .. }
            | Anomaly::ExtraBytes { offset, .. }
            | Anomaly::Comment { offset, .. } => *offset,
        }
    }
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Anomaly::Encrypted { .. } => {
                f.write_str("member is encrypted: its content cannot be inspected")
            }
            Anomaly::DataDescriptor { .. } => {
                f.write_str("member sizes and CRC-32 follow its data (data descriptor)")
            }
            Anomaly::UnexpectedFlags { bits, .. } => {
                write!(f, "unexpected general-purpose flag bits 0x{bits:04x}")
            }
            Anomaly::UnsupportedMethod { method, .. } => {
                write!(f, "compression method {method} cannot be inspected")
            }
            Anomaly::PathTraversal { name, .. } => {
                write!(f, "member name {name:?} is absolute or contains '..'")
            }
            Anomaly::DuplicateName { name, .. } => write!(
                f,
                "member name {name:?} appears more than once; readers disagree on which one is used"
            ),
            Anomaly::MissingLocalHeader { .. } => {
                f.write_str("central directory points at no local header")
            }
            Anomaly::DescriptorMismatch { .. } => {
                f.write_str("data descriptor disagrees with the central directory")
            }
            Anomaly::Overlap { first, .. } => write!(
                f,
                "member overlaps {first:?}: the same bytes are read as two members"
            ),
            Anomaly::CrcMismatch { .. } => {
                f.write_str("CRC-32 of the content disagrees with the central directory")
            }
            Anomaly::LocalMismatch { what, .. }
            | Anomaly::Malformed { what, .. }
            | Anomaly::ExtraBytes { what, .. } => f.write_str(what),
            Anomaly::Comment { len, .. } => write!(f, "archive comment of {len} bytes"),
        }
    }
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

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([s[0], s[1]]))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_le_bytes(a))
}
fn le16(b: &[u8], at: usize) -> u16 {
    u16_at(b, at).unwrap_or(0)
}
fn le32(b: &[u8], at: usize) -> u32 {
    u32_at(b, at).unwrap_or(0)
}
fn le64(b: &[u8], at: usize) -> u64 {
    u64_at(b, at).unwrap_or(0)
}

const EOCD_SIG: u32 = 0x0605_4b50;
const ZIP64_LOC_SIG: u32 = 0x0706_4b50;
const ZIP64_EOCD_SIG: u32 = 0x0606_4b50;
const CDH_SIG: u32 = 0x0201_4b50;
const LFH_SIG: u32 = 0x0403_4b50;
const DESC_SIG: u32 = 0x0807_4b50;

/// Maximum number of entries accepted by [`ZipArchive::new`].
const MAX_ENTRIES: u64 = 1_000_000;

/// Positioned reads bounded by the source length.
struct Src<'s, R: ?Sized> {
    src: &'s R,
    len: u64,
}

impl<R: ReadAt + ?Sized> Src<'_, R> {
    /// Exactly `n` bytes at `off`, or `None` if they are not all there.
    fn get(&self, off: u64, n: u64) -> Option<Vec<u8>> {
        if off.checked_add(n)? > self.len {
            return None;
        }
        let mut buf = vec![0u8; usize::try_from(n).ok()?];
        self.src.read_exact_at(&mut buf, off).ok()?;
        Some(buf)
    }
    /// Like [`Src::get`], with the error strict reading reports.
    fn exact(&self, off: u64, n: u64, what: &'static str) -> ZipResult<Vec<u8>> {
        self.get(off, n).ok_or((off, trunc(what)))
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
    let n = name.replace('\\', "/");
    n.starts_with('/') || n.as_bytes().get(1) == Some(&b':') || n.split('/').any(|c| c == "..")
}

impl<R: ReadAt> ZipArchive<R> {
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
        let len = src.len().map_err(|_| (0, trunc("file")))?;
        let rd = Src { src: &src, len };
        if len < 22 {
            return Err((0, ZipErrorKind::NoEndOfCentralDirectory));
        }
        let tail_len = len.min(22 + 65535);
        let tail_start = len - tail_len;
        let tail = rd.exact(tail_start, tail_len, "end of central directory")?;
        let ep = find_eocd(&tail, lenient).ok_or((len, ZipErrorKind::NoEndOfCentralDirectory))?;
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
                cd_end = z_off;
            }
        }
        if disk != 0 || cd_disk != 0 {
            return Err((
                eocd,
                ZipErrorKind::Invalid {
                    what: "disk number",
                    reason: "multi-disk archives are not supported".into(),
                },
            ));
        }
        if !lenient && n_entries > MAX_ENTRIES {
            return Err((
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
                (
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
            let cd_limit = cd_limit.ok_or((cd_off, trunc("central directory")))?;
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
                return Err((
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
            let name_b = cd.get(p + 46, nlen).ok_or((here, trunc("entry name")))?;
            let extra = cd
                .get(p + 46 + nlen, xlen)
                .ok_or((here, trunc("entry extra field")))?;
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
                return Err((lo, trunc("local header")));
            }
            if u32_at(&lh, 0) != Some(LFH_SIG) {
                if !lenient {
                    return Err((
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
                return Err((lo + 30, trunc("local entry name")));
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
                    return Err((lo, trunc("entry data")));
                }
                found.push(Anomaly::Malformed {
                    name: Some(n.clone()),
                    what: "member data runs past the end of the file".into(),
                    offset: lo,
                });
                continue;
            }
            if !lenient && e.method == Method::Stored && e.compressed_size != e.size {
                return Err((
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

    fn check_readable(&self, e: &Entry) -> ZipResult<()> {
        if e.flags & ENCRYPTED != 0 {
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
        if !e.has_local_header {
            return Err((
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
        offset
            .checked_add(buf.len() as u64)
            .filter(|&end| end <= e.size)
            .ok_or((e.data_offset, trunc("read inside entry")))?;
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
                    offset: e.data_offset,
                });
            }
        }
        self.anomalies.extend(found.iter().cloned());
        found
    }
}

/// Why [`ZipArchive::head`] or [`ZipArchive::read_unverified`] could not
/// read a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InspectError {
    /// It would expand past the limit.
    TooBig,
    /// Encrypted, or a compression method this reader does not support.
    Unsupported,
    /// Broken data.
    Corrupt(String),
}

/// Zero-copy member access for archives held in memory (scanners).
impl<'a> ZipArchive<&'a [u8]> {
    fn raw_slice(&self, e: &Entry) -> Result<&'a [u8], InspectError> {
        if e.flags & ENCRYPTED != 0 {
            return Err(InspectError::Unsupported);
        }
        if !e.has_local_header {
            return Err(InspectError::Corrupt("unreadable local header".into()));
        }
        let data: &'a [u8] = self.src;
        let start = usize::try_from(e.data_offset).ok();
        let n = usize::try_from(e.compressed_size).ok();
        start
            .zip(n)
            .and_then(|(s, n)| data.get(s..s.checked_add(n)?))
            .ok_or_else(|| {
                InspectError::Corrupt("member data runs past the end of the file".into())
            })
    }

    /// The first `n` bytes of a member (for identifying it); a broken
    /// deflate stream yields what could be expanded.
    pub fn head(&self, e: &Entry, n: usize) -> Result<Cow<'a, [u8]>, InspectError> {
        let raw = self.raw_slice(e)?;
        match e.method {
            Method::Stored => Ok(Cow::Borrowed(&raw[..raw.len().min(n)])),
            Method::Deflated => match miniz_oxide::inflate::decompress_to_vec_with_limit(raw, n) {
                Ok(v) => Ok(Cow::Owned(v)),
                Err(err) => Ok(Cow::Owned(err.output)),
            },
            Method::Other(_) => Err(InspectError::Unsupported),
        }
    }

    /// The whole member, expanded to at most `limit` bytes, without checking
    /// its size or CRC-32 (the caller's to check, see [`crc32`]): stored
    /// members are borrowed, deflated ones expanded.
    pub fn read_unverified(&self, e: &Entry, limit: u64) -> Result<Cow<'a, [u8]>, InspectError> {
        let raw = self.raw_slice(e)?;
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        match e.method {
            Method::Stored => {
                if raw.len() > limit {
                    return Err(InspectError::TooBig);
                }
                Ok(Cow::Borrowed(raw))
            }
            Method::Deflated => {
                match miniz_oxide::inflate::decompress_to_vec_with_limit(raw, limit) {
                    Ok(v) => Ok(Cow::Owned(v)),
                    Err(err) => match err.status {
                        miniz_oxide::inflate::TINFLStatus::HasMoreOutput => {
                            Err(InspectError::TooBig)
                        }
                        s => Err(InspectError::Corrupt(format!(
                            "deflate stream is broken ({s:?})"
                        ))),
                    },
                }
            }
            Method::Other(_) => Err(InspectError::Unsupported),
        }
    }
}

fn trunc(what: &'static str) -> ZipErrorKind {
    ZipErrorKind::Truncated { what }
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
static CRC_TABLE: [u32; 256] = crc_table();

/// CRC-32 (IEEE), continuing from `crc` (start with 0).
pub fn crc32(crc: u32, data: &[u8]) -> u32 {
    let mut c = !crc;
    for &b in data {
        c = CRC_TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn crc_known() {
        assert_eq!(crc32(0, b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(crc32(0, b"1234"), b"56789"), 0xCBF4_3926);
    }

    #[test]
    fn roundtrip_clean() {
        let z = write_stored(&[("a/data.pkl", b"hello"), ("a/x", b"world")]);
        for zip in [
            ZipArchive::new(z.as_slice()).unwrap(),
            ZipArchive::inspect(z.as_slice()).unwrap(),
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
    fn duplicate_and_traversal() {
        let z = write_stored(&[("a", b"1"), ("a", b"2"), ("../x", b"3")]);
        let zip = ZipArchive::new(z).unwrap();
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

    #[test]
    fn prepended_data_refused_when_loading_recorded_when_inspecting() {
        let mut z = b"#!/bin/sh\nexit 0\n".to_vec();
        z.extend(write_stored(&[("a", b"payload")]));
        assert!(ZipArchive::new(z.as_slice()).is_err());
        let zip = ZipArchive::inspect(z.as_slice()).unwrap();
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
            ZipArchive::new(z.as_slice()),
            Err((0, ZipErrorKind::BadSignature { .. }))
        ));
        let zip = ZipArchive::inspect(z.as_slice()).unwrap();
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
