//! NumPy `.npy` files and `.npz` archives as a tensor source.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use safeweights::{FileSource, Source as ByteSource};
use safeweights_archive::{Method, ZipArchive, ZipError};

use crate::error::{ConvertError, Result};
use crate::npy::{parse_header, to_c_order_le, NpyHeader, MAX_HEADER};
use crate::source::{check_unique, Entry, TensorSource};

/// Fortran-order arrays are transposed in memory up to this size.
const MAX_FORTRAN_BYTES: u64 = 1 << 30;

fn npy_err(file: &Path, member: Option<&str>, reason: impl Into<String>) -> ConvertError {
    ConvertError::Npy {
        file: file.to_path_buf(),
        member: member.map(str::to_owned),
        reason: reason.into(),
    }
}

/// Where one array's `.npy` bytes live.
enum Place {
    /// Directly in a `.npy` file at this base offset.
    Direct(u64),
    /// A stored `.npz` member (index into the archive's entries).
    Stored(usize),
    /// A deflated `.npz` member (index into the archive's entries).
    Deflated(usize),
}

struct Array {
    header: NpyHeader,
    place: Place,
    member: Option<String>,
}

/// A `.npy` file or the arrays of a `.npz`.
pub(crate) struct NpySource {
    file: PathBuf,
    zip: Option<ZipArchive<FileSource>>,
    raw: Option<FileSource>,
    arrays: Vec<Array>,
    entries: Vec<Entry>,
}

fn entry_for(name: String, h: &NpyHeader) -> Entry {
    Entry {
        name,
        dtype: h.dtype.dtype,
        shape: h.shape.clone(),
        bytes: h.nbytes,
    }
}

impl NpySource {
    /// A single `.npy`; its tensor is named after the file stem.
    pub fn open_npy(path: &Path) -> Result<Self> {
        let f = FileSource::open(path).map_err(crate::error::io_err(path))?;
        let len = f.len();
        let mut head = vec![0u8; len.min((MAX_HEADER + 12) as u64) as usize];
        f.read_exact_at(0, &mut head)
            .map_err(crate::error::io_err(path))?;
        let h = parse_header(&head).map_err(|r| npy_err(path, None, r))?;
        check_len(path, None, &h, len)?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(NpySource {
            file: path.to_path_buf(),
            entries: vec![entry_for(name, &h)],
            arrays: vec![Array {
                header: h,
                place: Place::Direct(0),
                member: None,
            }],
            zip: None,
            raw: Some(f),
        })
    }

    /// An `.npz`: every member must be a `.npy`; names drop the `.npy` suffix.
    pub fn open_npz(path: &Path) -> Result<Self> {
        let f = FileSource::open(path).map_err(crate::error::io_err(path))?;
        let zerr = |e| ConvertError::Pickle(safeweights_pickle::Error::zip(path, e));
        let zip = ZipArchive::new(f).map_err(zerr)?;
        let mut arrays = Vec::new();
        let mut entries = Vec::new();
        for (i, e) in zip.entries().iter().enumerate() {
            let member = Some(e.name.as_str());
            let name = e
                .name
                .strip_suffix(".npy")
                .ok_or_else(|| npy_err(path, member, "member is not a .npy array"))?;
            let (h, place) = match e.method {
                Method::Stored => {
                    let mut head = vec![0u8; e.size.min((MAX_HEADER + 12) as u64) as usize];
                    zip.read_stored_at(e, 0, &mut head).map_err(zerr)?;
                    let h = parse_header(&head).map_err(|r| npy_err(path, member, r))?;
                    (h, Place::Stored(i))
                }
                _ => {
                    // Only the header is inflated here; the data is streamed
                    // once, when it is copied.
                    let limit = e.size.min((MAX_HEADER + 12) as u64);
                    let mut head = Vec::new();
                    zip.open_member(e)
                        .map_err(zerr)?
                        .take(limit)
                        .read_to_end(&mut head)
                        .map_err(|err| member_read_err(path, member, err))?;
                    let h = parse_header(&head).map_err(|r| npy_err(path, member, r))?;
                    (h, Place::Deflated(i))
                }
            };
            check_len(path, member, &h, e.size)?;
            entries.push(entry_for(name.to_owned(), &h));
            arrays.push(Array {
                header: h,
                place,
                member: Some(e.name.clone()),
            });
        }
        check_unique(path, &entries)?;
        Ok(NpySource {
            file: path.to_path_buf(),
            zip: Some(zip),
            raw: None,
            arrays,
            entries,
        })
    }

    fn zerr(&self) -> impl Fn(ZipError) -> ConvertError + '_ {
        |e| ConvertError::Pickle(safeweights_pickle::Error::zip(&self.file, e))
    }

    /// Raw (as stored) data bytes of array `i` at `offset`.
    fn read_raw(&self, i: usize, offset: u64, buf: &mut [u8]) -> Result<()> {
        let a = &self.arrays[i];
        let at = a.header.data_offset + offset;
        match (&a.place, &self.zip, &self.raw) {
            (Place::Stored(e), Some(z), _) => z
                .read_stored_at(&z.entries()[*e], at, buf)
                .map_err(self.zerr()),
            (Place::Deflated(e), Some(z), _) => {
                // A positioned read inflates up to `at` (bounded memory);
                // whole arrays are streamed once by `copy_to` instead.
                let member = a.member.as_deref();
                let mut r = z.open_member(&z.entries()[*e]).map_err(self.zerr())?;
                io::copy(&mut (&mut r).take(at), &mut io::sink())
                    .and_then(|_| r.read_exact(buf))
                    .map_err(|err| member_read_err(&self.file, member, err))
            }
            (Place::Direct(base), _, Some(f)) => f
                .read_exact_at(base + at, buf)
                .map_err(crate::error::io_err(&self.file)),
            _ => Err(npy_err(&self.file, None, "array source missing")),
        }
    }
}

/// A member that cannot be streamed: a zip problem (size, CRC, inflate) as
/// the zip error it is, anything else as an I/O error of the file.
fn member_read_err(file: &Path, member: Option<&str>, err: io::Error) -> ConvertError {
    if err
        .get_ref()
        .is_some_and(|inner| inner.downcast_ref::<ZipError>().is_some())
    {
        let zip = err
            .into_inner()
            .and_then(|inner| inner.downcast::<ZipError>().ok())
            .map(|z| *z);
        if let Some(z) = zip {
            return ConvertError::Pickle(safeweights_pickle::Error::zip(file, z));
        }
        return npy_err(file, member, "member cannot be read");
    }
    crate::error::io_err(file)(err)
}

impl NpySource {
    /// Streams a deflated array: inflated once, in chunks, with its declared
    /// size and CRC checked at the end.
    fn copy_deflated(
        &self,
        i: usize,
        e: &safeweights_archive::Entry,
        w: &mut dyn Write,
    ) -> Result<u64> {
        let a = &self.arrays[i];
        let h = &a.header;
        let member = a.member.as_deref();
        let zip = self
            .zip
            .as_ref()
            .ok_or_else(|| npy_err(&self.file, member, "no archive"))?;
        let mut r = zip.open_member(e).map_err(self.zerr())?;
        let read_err = |err| member_read_err(&self.file, member, err);
        io::copy(&mut (&mut r).take(h.data_offset), &mut io::sink()).map_err(read_err)?;
        let mut buf = vec![0u8; CHUNK.min(h.nbytes) as usize];
        let mut at = 0u64;
        while at < h.nbytes {
            let n = (h.nbytes - at).min(CHUNK) as usize;
            let piece = &mut buf[..n];
            r.read_exact(piece).map_err(read_err)?;
            if h.dtype.big_endian {
                for c in piece.chunks_exact_mut(h.dtype.swap) {
                    c.reverse();
                }
            }
            w.write_all(piece)
                .map_err(crate::error::io_err(&self.file))?;
            at += n as u64;
        }
        // The end of the member: its declared size and CRC-32 are checked.
        let mut rest = [0u8; 1];
        if r.read(&mut rest).map_err(read_err)? != 0 {
            return Err(npy_err(
                &self.file,
                member,
                "member holds bytes past the array",
            ));
        }
        Ok(h.nbytes)
    }
}

fn check_len(file: &Path, member: Option<&str>, h: &NpyHeader, len: u64) -> Result<()> {
    if h.data_offset.checked_add(h.nbytes) != Some(len) {
        return Err(npy_err(
            file,
            member,
            format!(
                "header announces {} data bytes after byte {}, but the array has {} bytes",
                h.nbytes, h.data_offset, len
            ),
        ));
    }
    if h.fortran_order && h.shape.len() > 1 && h.nbytes > MAX_FORTRAN_BYTES {
        return Err(npy_err(
            file,
            member,
            format!("Fortran-order arrays over {MAX_FORTRAN_BYTES} bytes are not supported"),
        ));
    }
    Ok(())
}

const CHUNK: u64 = 8 << 20;

impl TensorSource for NpySource {
    fn entries(&self) -> &[Entry] {
        &self.entries
    }

    fn copy_to(&self, i: usize, w: &mut dyn Write) -> Result<u64> {
        let h = &self.arrays[i].header;
        if let (Place::Deflated(e), Some(z)) = (&self.arrays[i].place, &self.zip) {
            if !(h.fortran_order && h.shape.len() > 1) {
                return self.copy_deflated(i, &z.entries()[*e], w);
            }
        }
        let io = crate::error::io_err(&self.file);
        if h.fortran_order && h.shape.len() > 1 {
            let mut all = vec![0u8; h.nbytes as usize];
            self.read_raw(i, 0, &mut all)?;
            let out = to_c_order_le(&all, &h.shape, &h.dtype, true);
            w.write_all(&out).map_err(io)?;
            return Ok(h.nbytes);
        }
        let mut buf = vec![0u8; CHUNK.min(h.nbytes) as usize];
        let mut at = 0u64;
        while at < h.nbytes {
            let n = (h.nbytes - at).min(CHUNK) as usize;
            let piece = &mut buf[..n];
            self.read_raw(i, at, piece)?;
            if h.dtype.big_endian {
                for c in piece.chunks_exact_mut(h.dtype.swap) {
                    c.reverse();
                }
            }
            if let Err(e) = w.write_all(piece) {
                return Err(crate::error::io_err(&self.file)(e));
            }
            at += n as u64;
        }
        let _ = io;
        Ok(h.nbytes)
    }

    fn read_at(&self, i: usize, offset: u64, buf: &mut [u8]) -> Result<()> {
        let h = &self.arrays[i].header;
        if h.fortran_order && h.shape.len() > 1 || h.dtype.big_endian {
            let mut all = Vec::new();
            self.copy_to(i, &mut all)?;
            let s = offset as usize;
            let src = all
                .get(s..s + buf.len())
                .ok_or_else(|| npy_err(&self.file, None, "read past the end"))?;
            buf.copy_from_slice(src);
            return Ok(());
        }
        self.read_raw(i, offset, buf)
    }

    fn file(&self, _: usize) -> &Path {
        &self.file
    }
}
