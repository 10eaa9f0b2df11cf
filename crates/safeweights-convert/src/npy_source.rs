//! NumPy `.npy` files and `.npz` archives as a tensor source.

use std::io::Write;
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
                    let all = zip.read(e, u64::MAX).map_err(zerr)?;
                    let h = parse_header(&all).map_err(|r| npy_err(path, member, r))?;
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
                let all = z.read(&z.entries()[*e], u64::MAX).map_err(self.zerr())?;
                let s = usize::try_from(at).unwrap_or(usize::MAX);
                let src = all
                    .get(s..s.saturating_add(buf.len()))
                    .ok_or_else(|| npy_err(&self.file, a.member.as_deref(), "short member"))?;
                buf.copy_from_slice(src);
                Ok(())
            }
            (Place::Direct(base), _, Some(f)) => f
                .read_exact_at(base + at, buf)
                .map_err(crate::error::io_err(&self.file)),
            _ => Err(npy_err(&self.file, None, "array source missing")),
        }
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
