//! NumPy `.npy` / `.npz`: a small strict header parser and writer.
//!
//! Only plain numeric dtypes are accepted (`b1`, `i1`..`i8`, `u1`..`u8`,
//! `f2`/`f4`/`f8`, `c8`); object arrays, structured dtypes, strings,
//! datetimes and complex128 are refused. Nothing is ever unpickled.

use std::io::Write;
use std::path::{Path, PathBuf};

use safeweights::{Dtype, FileSource, Source as ByteSource};
use safeweights_archive::{Method, ZipArchive, ZipError};

use crate::error::{ConvertError, Result};
use crate::tensors::{check_unique, Entry, Source};

/// The `.npy` magic.
pub(crate) const MAGIC: &[u8; 6] = b"\x93NUMPY";
const MAX_HEADER: usize = 1 << 20;
/// Fortran-order arrays are transposed in memory up to this size.
const MAX_FORTRAN_BYTES: u64 = 1 << 30;

/// A numpy dtype that maps to a safetensors dtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NpyDtype {
    pub dtype: Dtype,
    pub size: u64,
    pub big_endian: bool,
    /// Byte-swap unit (complex swaps each component).
    pub swap: usize,
}

impl NpyDtype {
    /// Parses a descr like `<f4`, `|b1`, `>i8`, `=u2`.
    pub fn parse(descr: &str) -> std::result::Result<NpyDtype, String> {
        let (order, code) = match descr.chars().next() {
            Some(c @ ('<' | '>' | '|' | '=')) => (c, &descr[1..]),
            _ => ('=', descr),
        };
        let (dtype, size, swap) = match code {
            "b1" | "?" => (Dtype::BOOL, 1, 1),
            "i1" | "b" => (Dtype::I8, 1, 1),
            "u1" | "B" => (Dtype::U8, 1, 1),
            "i2" => (Dtype::I16, 2, 2),
            "u2" => (Dtype::U16, 2, 2),
            "i4" => (Dtype::I32, 4, 4),
            "u4" => (Dtype::U32, 4, 4),
            "i8" => (Dtype::I64, 8, 8),
            "u8" => (Dtype::U64, 8, 8),
            "f2" | "e" => (Dtype::F16, 2, 2),
            "f4" | "f" => (Dtype::F32, 4, 4),
            "f8" | "d" => (Dtype::F64, 8, 8),
            "c8" | "F" => (Dtype::C64, 8, 4),
            "c16" | "D" => return Err("complex128 has no safetensors dtype".into()),
            c if c.starts_with('O') => {
                return Err("object arrays hold Python objects and are refused".into())
            }
            c if c.starts_with(['U', 'S', 'a', 'V', 'M', 'm']) => {
                return Err(format!(
                    "dtype {descr:?} (strings, bytes, void, datetime) is not a tensor dtype"
                ))
            }
            _ => return Err(format!("unsupported dtype {descr:?}")),
        };
        if order == '|' && size > 1 {
            return Err(format!(
                "dtype {descr:?}: '|' byte order on a multi-byte type"
            ));
        }
        let big_endian = order == '>' || (order == '=' && cfg!(target_endian = "big"));
        Ok(NpyDtype {
            dtype,
            size,
            big_endian: big_endian && size > 1,
            swap,
        })
    }
}

/// The descr numpy writes for a safetensors dtype, if numpy has it.
pub(crate) fn descr_of(d: Dtype) -> Option<&'static str> {
    Some(match d {
        Dtype::BOOL => "|b1",
        Dtype::U8 => "|u1",
        Dtype::I8 => "|i1",
        Dtype::I16 => "<i2",
        Dtype::U16 => "<u2",
        Dtype::I32 => "<i4",
        Dtype::U32 => "<u4",
        Dtype::I64 => "<i8",
        Dtype::U64 => "<u8",
        Dtype::F16 => "<f2",
        Dtype::F32 => "<f4",
        Dtype::F64 => "<f8",
        Dtype::C64 => "<c8",
        _ => return None,
    })
}

pub(crate) fn nbytes(shape: &[usize], size: u64) -> Option<u64> {
    shape.iter().try_fold(size, |a, &d| a.checked_mul(d as u64))
}

/// A parsed `.npy` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NpyHeader {
    pub dtype: NpyDtype,
    pub fortran_order: bool,
    pub shape: Vec<usize>,
    /// Offset of the data from the start of the `.npy` bytes.
    pub data_offset: u64,
    pub nbytes: u64,
}

/// Parses the header at the start of `head` (which holds at least the whole header).
pub(crate) fn parse_header(head: &[u8]) -> std::result::Result<NpyHeader, String> {
    if head.len() < 10 || &head[..6] != MAGIC {
        return Err("missing the \\x93NUMPY magic".into());
    }
    let (major, minor) = (head[6], head[7]);
    if minor != 0 || !(1..=3).contains(&major) {
        return Err(format!("unsupported .npy format version {major}.{minor}"));
    }
    let (hlen, start) = if major == 1 {
        (u16::from_le_bytes([head[8], head[9]]) as usize, 10)
    } else {
        if head.len() < 12 {
            return Err("truncated header".into());
        }
        (
            u32::from_le_bytes([head[8], head[9], head[10], head[11]]) as usize,
            12,
        )
    };
    if hlen > MAX_HEADER {
        return Err(format!("header of {hlen} bytes is too large"));
    }
    let text = head.get(start..start + hlen).ok_or("truncated header")?;
    let text: String = if major == 3 {
        std::str::from_utf8(text)
            .map_err(|_| "header is not UTF-8")?
            .to_owned()
    } else {
        if !text.is_ascii() {
            return Err("header is not ASCII".into());
        }
        String::from_utf8_lossy(text).into_owned()
    };
    let (descr, fortran_order, shape) = parse_dict(&text)?;
    let dtype = NpyDtype::parse(&descr)?;
    let nbytes = nbytes(&shape, dtype.size).ok_or("array size overflows")?;
    Ok(NpyHeader {
        dtype,
        fortran_order,
        shape,
        data_offset: (start + hlen) as u64,
        nbytes,
    })
}

struct Lexer<'a> {
    s: &'a [u8],
    i: usize,
}

impl Lexer<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, c: u8) -> std::result::Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!(
                "expected {:?} at header byte {}",
                c as char, self.i
            ))
        }
    }
    fn string(&mut self) -> std::result::Result<String, String> {
        self.ws();
        let q = match self.s.get(self.i) {
            Some(&q @ (b'\'' | b'"')) => q,
            Some(b'[') => return Err("structured (record) dtypes are refused".into()),
            _ => return Err(format!("expected a string at header byte {}", self.i)),
        };
        self.i += 1;
        let start = self.i;
        while self.i < self.s.len() && self.s[self.i] != q {
            if self.s[self.i] == b'\\' {
                return Err("escapes in header strings are refused".into());
            }
            self.i += 1;
        }
        if self.i >= self.s.len() {
            return Err("unterminated string in header".into());
        }
        let out = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
        self.i += 1;
        Ok(out)
    }
    fn word(&mut self) -> &[u8] {
        self.ws();
        let start = self.i;
        while self.i < self.s.len() && self.s[self.i].is_ascii_alphanumeric() {
            self.i += 1;
        }
        &self.s[start..self.i]
    }
}

fn parse_dict(text: &str) -> std::result::Result<(String, bool, Vec<usize>), String> {
    let mut lx = Lexer {
        s: text.as_bytes(),
        i: 0,
    };
    lx.expect(b'{')?;
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    loop {
        if lx.eat(b'}') {
            break;
        }
        let key = lx.string()?;
        lx.expect(b':')?;
        let dup = || format!("header key {key:?} appears twice");
        match key.as_str() {
            "descr" => {
                if descr.replace(lx.string()?).is_some() {
                    return Err(dup());
                }
            }
            "fortran_order" => {
                let v = match lx.word() {
                    b"True" => true,
                    b"False" => false,
                    _ => return Err("fortran_order must be True or False".into()),
                };
                if fortran.replace(v).is_some() {
                    return Err(dup());
                }
            }
            "shape" => {
                lx.expect(b'(')?;
                let mut dims = Vec::new();
                loop {
                    if lx.eat(b')') {
                        break;
                    }
                    let w = lx.word();
                    let d: usize = std::str::from_utf8(w)
                        .ok()
                        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                        .and_then(|s| s.parse().ok())
                        .ok_or("shape must be a tuple of non-negative integers")?;
                    dims.push(d);
                    if dims.len() > 64 {
                        return Err("more than 64 dimensions".into());
                    }
                    if !lx.eat(b',') {
                        lx.expect(b')')?;
                        break;
                    }
                }
                if shape.replace(dims).is_some() {
                    return Err(dup());
                }
            }
            other => return Err(format!("unexpected header key {other:?}")),
        }
        if !lx.eat(b',') {
            lx.expect(b'}')?;
            break;
        }
    }
    lx.ws();
    if lx.i != lx.s.len() {
        return Err("trailing characters after the header dict".into());
    }
    match (descr, fortran, shape) {
        (Some(d), Some(f), Some(s)) => Ok((d, f, s)),
        _ => Err("header must have exactly the keys descr, fortran_order and shape".into()),
    }
}

/// A `.npy` header for a C-order little-endian array, padded to 64 bytes.
pub(crate) fn write_header(descr: &str, shape: &[usize]) -> Vec<u8> {
    let dims = match shape {
        [d] => format!("({d},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {dims}, }}");
    let v1 = (10 + dict.len() + 1).div_ceil(64) * 64 - 10 <= 65535;
    let prefix = if v1 { 10 } else { 12 };
    let total = (prefix + dict.len() + 1).div_ceil(64) * 64;
    while prefix + dict.len() + 1 < total {
        dict.push(' ');
    }
    dict.push('\n');
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(MAGIC);
    if v1 {
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&[2, 0]);
        out.extend_from_slice(&(dict.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(dict.as_bytes());
    out
}

/// Byte-swaps to little-endian and transposes Fortran order to C order.
pub(crate) fn to_c_order_le(data: &[u8], shape: &[usize], dt: &NpyDtype, fortran: bool) -> Vec<u8> {
    let mut out = if fortran && shape.len() > 1 {
        let es = dt.size as usize;
        let n: usize = shape.iter().product();
        let mut fstride = vec![0usize; shape.len()];
        let mut acc = es;
        for (k, s) in fstride.iter_mut().enumerate() {
            *s = acc;
            acc *= shape[k];
        }
        let mut out = Vec::with_capacity(n * es);
        let mut idx = vec![0usize; shape.len()];
        for _ in 0..n {
            let off: usize = idx.iter().zip(&fstride).map(|(i, s)| i * s).sum();
            out.extend_from_slice(data.get(off..off + es).unwrap_or(&[]));
            for k in (0..shape.len()).rev() {
                idx[k] += 1;
                if idx[k] < shape[k] {
                    break;
                }
                idx[k] = 0;
            }
        }
        out
    } else {
        data.to_vec()
    };
    if dt.big_endian {
        for c in out.chunks_exact_mut(dt.swap) {
            c.reverse();
        }
    }
    out
}

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

impl Source for NpySource {
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
