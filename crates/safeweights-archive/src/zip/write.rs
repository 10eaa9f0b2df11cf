//! A small streaming zip writer: stored (uncompressed) entries only, data
//! aligned to 64 bytes like PyTorch's writer (padding in an `FB` extra
//! field), zip64 where sizes or offsets need it, CRC-32 computed while
//! streaming and patched into the local header afterwards.

use std::io::{self, Seek, SeekFrom, Write};

use super::spec::{CDH_SIG, EOCD_SIG, LFH_SIG, UTF8_NAMES, ZIP64_EOCD_SIG, ZIP64_LOC_SIG};

const ALIGN: u64 = 64;
const U32_MAX: u64 = 0xFFFF_FFFF;

struct Record {
    name: String,
    offset: u64,
    size: u64,
    crc: u32,
}

/// Writes a zip archive to `W` (which must support seeking back to patch CRCs).
pub struct ZipWriter<W: Write + Seek> {
    out: W,
    pos: u64,
    records: Vec<Record>,
    open: Option<OpenEntry>,
}

struct OpenEntry {
    header_offset: u64,
    expected: u64,
    written: u64,
    crc: crc32fast::Hasher,
}

fn le16(v: &mut Vec<u8>, x: u16) {
    v.extend_from_slice(&x.to_le_bytes());
}
fn le32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_le_bytes());
}
fn le64(v: &mut Vec<u8>, x: u64) {
    v.extend_from_slice(&x.to_le_bytes());
}

impl<W: Write + Seek> ZipWriter<W> {
    /// A writer starting at the current position 0 of `out`.
    pub fn new(out: W) -> Self {
        ZipWriter {
            out,
            pos: 0,
            records: Vec::new(),
            open: None,
        }
    }

    /// Starts an entry of exactly `size` bytes; write its bytes with
    /// [`Write::write`] and close it with [`finish_entry`](Self::finish_entry).
    pub fn start_entry(&mut self, name: &str, size: u64) -> io::Result<()> {
        if self.open.is_some() {
            return Err(io::Error::other("previous zip entry not finished"));
        }
        if name.is_empty() || name.contains('\0') || super::spec::escapes_extraction(name) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "zip entry name {name:?} is empty, absolute or climbs out with '..': it would be extracted outside its folder"
                ),
            ));
        }
        if name.len() > usize::from(u16::MAX) - 1 {
            return Err(io::Error::other("zip entry name longer than 65534 bytes"));
        }
        let zip64 = size >= U32_MAX;
        let mut h = Vec::with_capacity(30 + name.len() + 128);
        le32(&mut h, LFH_SIG);
        le16(&mut h, if zip64 { 45 } else { 20 });
        le16(&mut h, UTF8_NAMES);
        le16(&mut h, 0); // stored
        le16(&mut h, 0);
        le16(&mut h, 0x21); // 1980-01-01
        le32(&mut h, 0); // CRC, patched later
        let s32 = if zip64 { U32_MAX as u32 } else { size as u32 };
        le32(&mut h, s32);
        le32(&mut h, s32);
        le16(&mut h, name.len() as u16);
        let mut extra = Vec::new();
        if zip64 {
            le16(&mut extra, 1);
            le16(&mut extra, 16);
            le64(&mut extra, size);
            le64(&mut extra, size);
        }
        let start = self.pos + 30 + name.len() as u64 + extra.len() as u64 + 4;
        let pad = (ALIGN - start % ALIGN) % ALIGN;
        le16(&mut extra, 0x4246); // "FB"
        le16(&mut extra, pad as u16);
        extra.resize(extra.len() + pad as usize, b'Z');
        le16(&mut h, extra.len() as u16);
        h.extend_from_slice(name.as_bytes());
        h.extend_from_slice(&extra);
        self.out.write_all(&h)?;
        self.open = Some(OpenEntry {
            header_offset: self.pos,
            expected: size,
            written: 0,
            crc: crc32fast::Hasher::new(),
        });
        self.records.push(Record {
            name: name.to_owned(),
            offset: self.pos,
            size,
            crc: 0,
        });
        self.pos += h.len() as u64;
        Ok(())
    }

    /// Writes a whole small entry.
    pub fn entry(&mut self, name: &str, data: &[u8]) -> io::Result<()> {
        self.start_entry(name, data.len() as u64)?;
        self.write_all(data)?;
        self.finish_entry()
    }

    /// Checks the size and patches the CRC into the local header.
    pub fn finish_entry(&mut self) -> io::Result<()> {
        let e = self
            .open
            .take()
            .ok_or_else(|| io::Error::other("no open zip entry"))?;
        if e.written != e.expected {
            return Err(io::Error::other(format!(
                "zip entry: {} of {} bytes written",
                e.written, e.expected
            )));
        }
        let crc = e.crc.finalize();
        self.out.seek(SeekFrom::Start(e.header_offset + 14))?;
        self.out.write_all(&crc.to_le_bytes())?;
        self.out.seek(SeekFrom::Start(self.pos))?;
        if let Some(r) = self.records.last_mut() {
            r.crc = crc;
        }
        Ok(())
    }

    /// Writes the central directory and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        if self.open.is_some() {
            return Err(io::Error::other("zip entry not finished"));
        }
        let cd_start = self.pos;
        let mut cd = Vec::new();
        for r in &self.records {
            let zip64 = r.size >= U32_MAX || r.offset >= U32_MAX;
            le32(&mut cd, CDH_SIG);
            le16(&mut cd, if zip64 { 45 } else { 20 });
            le16(&mut cd, if zip64 { 45 } else { 20 });
            le16(&mut cd, UTF8_NAMES);
            le16(&mut cd, 0);
            le16(&mut cd, 0);
            le16(&mut cd, 0x21);
            le32(&mut cd, r.crc);
            let (s, o) = if zip64 {
                (U32_MAX as u32, U32_MAX as u32)
            } else {
                (r.size as u32, r.offset as u32)
            };
            le32(&mut cd, s);
            le32(&mut cd, s);
            le16(&mut cd, r.name.len() as u16);
            le16(&mut cd, if zip64 { 28 } else { 0 });
            le16(&mut cd, 0); // comment
            le16(&mut cd, 0); // disk
            le16(&mut cd, 0); // internal attrs
            le32(&mut cd, 0); // external attrs
            le32(&mut cd, o);
            cd.extend_from_slice(r.name.as_bytes());
            if zip64 {
                le16(&mut cd, 1);
                le16(&mut cd, 24);
                le64(&mut cd, r.size);
                le64(&mut cd, r.size);
                le64(&mut cd, r.offset);
            }
            if cd.len() >= 1 << 20 {
                self.out.write_all(&cd)?;
                self.pos += cd.len() as u64;
                cd.clear();
            }
        }
        self.out.write_all(&cd)?;
        self.pos += cd.len() as u64;
        let cd_size = self.pos - cd_start;
        let n = self.records.len() as u64;
        let mut end = Vec::new();
        let need64 = n >= 0xFFFF || cd_size >= U32_MAX || cd_start >= U32_MAX;
        if need64 {
            let z64 = self.pos;
            le32(&mut end, ZIP64_EOCD_SIG);
            le64(&mut end, 44);
            le16(&mut end, 45);
            le16(&mut end, 45);
            le32(&mut end, 0);
            le32(&mut end, 0);
            le64(&mut end, n);
            le64(&mut end, n);
            le64(&mut end, cd_size);
            le64(&mut end, cd_start);
            le32(&mut end, ZIP64_LOC_SIG);
            le32(&mut end, 0);
            le64(&mut end, z64);
            le32(&mut end, 1);
        }
        le32(&mut end, EOCD_SIG);
        le16(&mut end, 0);
        le16(&mut end, 0);
        let n16 = if need64 { 0xFFFF } else { n as u16 };
        le16(&mut end, n16);
        le16(&mut end, n16);
        le32(
            &mut end,
            if need64 {
                U32_MAX as u32
            } else {
                cd_size as u32
            },
        );
        le32(
            &mut end,
            if need64 {
                U32_MAX as u32
            } else {
                cd_start as u32
            },
        );
        le16(&mut end, 0);
        self.out.write_all(&end)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write + Seek> Write for ZipWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let e = self
            .open
            .as_mut()
            .ok_or_else(|| io::Error::other("no open zip entry"))?;
        if buf.len() as u64 > e.expected - e.written {
            return Err(io::Error::other("more bytes than the zip entry's size"));
        }
        self.out.write_all(buf)?;
        e.crc.update(buf);
        e.written += buf.len() as u64;
        self.pos += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests build fixtures with std::fs.
mod tests {
    use super::super::entry::Method;
    use super::super::read::ZipArchive;
    use super::*;
    use safeweights::MemorySource;

    #[test]
    fn written_archives_read_back_aligned() {
        let mut w = ZipWriter::new(io::Cursor::new(Vec::new()));
        w.entry("archive/data.pkl", b"pickle bytes").unwrap();
        w.start_entry("archive/data/0", 100).unwrap();
        w.write_all(&[7u8; 60]).unwrap();
        w.write_all(&[9u8; 40]).unwrap();
        w.finish_entry().unwrap();
        let bytes = w.finish().unwrap().into_inner();
        let zip = ZipArchive::new(MemorySource::new(bytes)).unwrap();
        assert!(zip.anomalies().is_empty(), "{:?}", zip.anomalies());
        assert_eq!(zip.entries().len(), 2);
        for e in zip.entries() {
            assert_eq!(e.method, Method::Stored);
            assert_eq!(e.data_offset % ALIGN, 0, "{}", e.name);
        }
        let e = zip.entry("archive/data/0").unwrap();
        let data = zip.read(e, 1000).unwrap();
        assert_eq!(&data[..60], &[7u8; 60]);
        assert_eq!(&data[60..], &[9u8; 40]);
        let e = zip.entry("archive/data.pkl").unwrap();
        assert_eq!(zip.read(e, 1000).unwrap(), b"pickle bytes");
    }

    /// Issue 21: no member name that would be extracted outside its folder.
    #[test]
    fn issue21_unsafe_member_names_are_refused() {
        for name in [
            "../../escape.npy",
            "/abs/path.npy",
            "a/../../b",
            "..\\x",
            "C:evil.npy",
            "\\\\server\\x",
            "",
            "a\0b",
        ] {
            let mut w = ZipWriter::new(io::Cursor::new(Vec::new()));
            let err = w.entry(name, b"x").unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{name:?}");
            assert!(w.records.is_empty());
        }
        let mut w = ZipWriter::new(io::Cursor::new(Vec::new()));
        w.entry("a/b..c/..d.npy", b"x").unwrap();
    }

    #[test]
    fn sizes_are_enforced() {
        let mut w = ZipWriter::new(io::Cursor::new(Vec::new()));
        w.start_entry("a", 3).unwrap();
        assert!(w.write_all(b"abcd").is_err());
        w.write_all(b"ab").unwrap();
        assert!(w.finish_entry().is_err());
        let mut w = ZipWriter::new(io::Cursor::new(Vec::new()));
        w.start_entry("a", 1).unwrap();
        assert!(w.start_entry("b", 1).is_err());
        let w = {
            let mut w = ZipWriter::new(io::Cursor::new(Vec::new()));
            w.start_entry("a", 1).unwrap();
            w
        };
        assert!(w.finish().is_err());
    }
}
