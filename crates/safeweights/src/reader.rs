//! Reading safetensors files: open reads the header only; tensors come as
//! zero-copy views over a memory map, or by positioned reads.

use std::borrow::Cow;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::header::{parse_prefix, Header, ParseOptions, TensorInfo};
use crate::slice::{ResolvedSlice, SliceIndex};
use crate::source::{FileSource, MemorySource, MmapSource, Source};
use crate::Dtype;

/// How a file's bytes are reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Backend {
    /// Memory-map the file; tensors are zero-copy views. Chosen only through
    /// the `unsafe` [`OpenOptions::mmap`]: see [`MmapSource::open`].
    Mmap,
    /// Positioned reads (`pread`); each tensor is copied out (the default).
    /// Safe for files that others may change or truncate while they are read,
    /// and for network file systems where page faults are slow.
    #[default]
    Pread,
}

/// Options for opening a file: a builder.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    backend: Backend,
    parse: ParseOptions,
}

impl OpenOptions {
    /// Strict parsing, positioned reads.
    pub fn new() -> Self {
        Self::default()
    }

    /// Memory-maps the file: tensors become zero-copy views.
    ///
    /// # Safety
    ///
    /// As for [`MmapSource::open`]: the caller accepts that the file may be
    /// changed or truncated by others while it is mapped. Untrusted files
    /// (downloads, files others can write) should be read with positioned
    /// reads, the default.
    pub unsafe fn mmap(mut self) -> Self {
        self.backend = Backend::Mmap;
        self
    }

    /// Reads with positioned reads (the default).
    pub fn pread(mut self) -> Self {
        self.backend = Backend::Pread;
        self
    }

    /// The backend these options open files with.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Reads what the reference reads (no duplicate-key or name checks).
    pub fn lenient(mut self, lenient: bool) -> Self {
        self.parse = self.parse.with_strict(!lenient);
        self
    }

    /// Whether strict checks are on.
    pub fn is_strict(&self) -> bool {
        self.parse.is_strict()
    }

    /// Sets the parse options wholesale.
    pub fn parse_options(mut self, parse: ParseOptions) -> Self {
        self.parse = parse;
        self
    }

    /// Opens `path` with these options.
    pub fn open(&self, path: impl AsRef<Path>) -> Result<SafeTensorsFile> {
        let path = path.as_ref();
        let source: Arc<dyn Source> = match self.backend {
            // SAFETY: mapping was asked for through the unsafe `mmap`, whose
            // caller accepted the contract of `MmapSource::open`.
            Backend::Mmap => {
                Arc::new(unsafe { MmapSource::open(path) }.map_err(|e| Error::io(path, e))?)
            }
            Backend::Pread => Arc::new(FileSource::open(path).map_err(|e| Error::io(path, e))?),
        };
        SafeTensorsFile::from_source(source, &self.parse)
    }
}

/// A tensor's bytes with its description.
#[derive(Debug, Clone)]
pub struct TensorView<'a> {
    info: &'a TensorInfo,
    data: Cow<'a, [u8]>,
}

impl<'a> TensorView<'a> {
    /// The tensor's name.
    pub fn name(&self) -> &'a str {
        &self.info.name
    }
    /// Its dtype.
    pub fn dtype(&self) -> Dtype {
        self.info.dtype
    }
    /// Its shape.
    pub fn shape(&self) -> &'a [usize] {
        &self.info.shape
    }
    /// Its header entry.
    pub fn info(&self) -> &'a TensorInfo {
        self.info
    }
    /// Its bytes, little-endian, row-major.
    pub fn data(&self) -> &[u8] {
        &self.data
    }
    /// Whether the bytes are borrowed from the mapping (zero-copy).
    pub fn is_borrowed(&self) -> bool {
        matches!(self.data, Cow::Borrowed(_))
    }
    /// Takes the bytes.
    pub fn into_data(self) -> Cow<'a, [u8]> {
        self.data
    }
}

/// An open safetensors file: a validated header over a [`Source`].
#[derive(Clone)]
pub struct SafeTensorsFile {
    source: Arc<dyn Source>,
    header: Header,
    name: String,
}

impl std::fmt::Debug for SafeTensorsFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SafeTensorsFile")
            .field("source", &self.name)
            .field("tensors", &self.header.len())
            .finish()
    }
}

impl SafeTensorsFile {
    /// Opens a file with the default options (strict, positioned reads).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        OpenOptions::new().open(path)
    }

    /// Parses a file image held in memory.
    pub fn from_bytes(bytes: impl Into<Arc<[u8]>>, options: &ParseOptions) -> Result<Self> {
        Self::from_source(Arc::new(MemorySource::new(bytes)), options)
    }

    /// Reads and validates the header of any source. Reads only the header.
    pub fn from_source(source: Arc<dyn Source>, options: &ParseOptions) -> Result<Self> {
        let name = source.describe();
        let header_err = |source| Error::Header {
            file: name.clone(),
            source,
        };
        let io_err = |e| Error::Io {
            file: name.clone(),
            source: e,
        };
        let file_len = source.len();
        let mut prefix = [0u8; 8];
        let prefix_len = file_len.min(8) as usize;
        source
            .read_exact_at(0, &mut prefix[..prefix_len])
            .map_err(io_err)?;
        let n = parse_prefix(&prefix[..prefix_len], file_len, options).map_err(header_err)?;
        let data_len = file_len - 8 - n;
        let header = match source.as_bytes() {
            Some(bytes) => {
                let json = bytes.get(8..8 + n as usize).unwrap_or_default();
                Header::parse(json, data_len, options)
            }
            None => {
                let mut json = vec![0u8; n as usize];
                source.read_exact_at(8, &mut json).map_err(io_err)?;
                Header::parse(&json, data_len, options)
            }
        }
        .map_err(header_err)?;
        Ok(SafeTensorsFile {
            source,
            header,
            name,
        })
    }

    /// The validated header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// What the source is called in messages (usually its path).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The source.
    pub fn source(&self) -> &Arc<dyn Source> {
        &self.source
    }

    /// Tensor names sorted alphabetically.
    pub fn names(&self) -> Vec<&str> {
        self.header.sorted_names()
    }

    /// Looks up a tensor's entry.
    pub fn info(&self, name: &str) -> Result<&TensorInfo> {
        self.header.get(name).ok_or_else(|| Error::TensorNotFound {
            file: self.name.clone(),
            tensor: name.to_owned(),
        })
    }

    /// The absolute file range holding a tensor's bytes.
    pub fn file_range(&self, info: &TensorInfo) -> Range<u64> {
        let start = self.header.data_start();
        start + info.data_offsets.0 as u64..start + info.data_offsets.1 as u64
    }

    /// A tensor: borrowed from the mapping when the source is mapped (only
    /// that tensor's pages are touched), read otherwise.
    pub fn tensor(&self, name: &str) -> Result<TensorView<'_>> {
        let info = self.info(name)?;
        let range = self.file_range(info);
        let data = match self.source.as_bytes() {
            Some(bytes) => {
                self.source.will_need(range.start, range.end - range.start);
                Cow::Borrowed(
                    bytes
                        .get(range.start as usize..range.end as usize)
                        .unwrap_or_default(),
                )
            }
            None => {
                let mut buf = vec![0u8; info.byte_len()];
                self.read_at(range.start, &mut buf)?;
                Cow::Owned(buf)
            }
        };
        Ok(TensorView { info, data })
    }

    /// Copies a tensor's bytes into `buf`, which must be exactly its size.
    pub fn read_tensor_into(&self, name: &str, buf: &mut [u8]) -> Result<()> {
        let info = self.info(name)?;
        if buf.len() != info.byte_len() {
            return Err(Error::InvalidWrite {
                file: self.name.clone(),
                reason: format!(
                    "buffer of {} bytes for tensor {name:?} of {} bytes",
                    buf.len(),
                    info.byte_len()
                ),
            });
        }
        self.read_at(self.file_range(info).start, buf)
    }

    /// Reads bytes at an absolute file offset.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.source
            .read_exact_at(offset, buf)
            .map_err(|e| Error::Io {
                file: self.name.clone(),
                source: e,
            })
    }

    /// Resolves a slice of a tensor, checking it against the shape.
    pub fn resolve_slice(&self, name: &str, indices: &[SliceIndex]) -> Result<ResolvedSlice> {
        let info = self.info(name)?;
        ResolvedSlice::new(&info.shape, indices).map_err(|source| Error::Slice {
            file: self.name.clone(),
            tensor: name.to_owned(),
            source,
        })
    }

    /// The absolute file byte ranges a slice needs, coalesced, in result order.
    pub fn slice_file_ranges(&self, name: &str, indices: &[SliceIndex]) -> Result<Vec<Range<u64>>> {
        let slice = self.resolve_slice(name, indices)?;
        self.file_ranges_of(name, &slice)
    }

    /// The absolute file byte ranges of an already resolved slice.
    fn file_ranges_of(&self, name: &str, slice: &ResolvedSlice) -> Result<Vec<Range<u64>>> {
        let info = self.info(name)?;
        let start = self.file_range(info).start;
        let ranges = slice
            .byte_ranges(info.dtype)
            .map_err(|source| Error::Slice {
                file: self.name.clone(),
                tensor: name.to_owned(),
                source,
            })?;
        Ok(ranges
            .into_iter()
            .map(|r| start + r.start as u64..start + r.end as u64)
            .collect())
    }

    /// Reads a slice of a tensor: its shape and bytes. Only the bytes of the
    /// selected elements are read.
    pub fn read_slice(&self, name: &str, indices: &[SliceIndex]) -> Result<(Vec<usize>, Vec<u8>)> {
        let slice = self.resolve_slice(name, indices)?;
        let ranges = self.file_ranges_of(name, &slice)?;
        let shape = slice.shape().to_vec();
        let total: u64 = ranges.iter().map(|r| r.end - r.start).sum();
        let mut out = vec![0u8; total as usize];
        let mut at = 0usize;
        for r in ranges {
            let len = (r.end - r.start) as usize;
            let dst = out.get_mut(at..at + len).unwrap_or_default();
            self.read_at(r.start, dst)?;
            at += len;
        }
        Ok((shape, out))
    }
}

/// A safetensors image borrowed from memory, for zero-copy parsing of bytes
/// you already hold.
#[derive(Debug, Clone)]
pub struct SafeTensors<'a> {
    header: Header,
    data: &'a [u8],
}

impl<'a> SafeTensors<'a> {
    /// Parses and validates `bytes` (strict).
    pub fn deserialize(bytes: &'a [u8]) -> Result<Self> {
        Self::deserialize_with(bytes, &ParseOptions::default())
    }

    /// Parses and validates `bytes` with options.
    pub fn deserialize_with(bytes: &'a [u8], options: &ParseOptions) -> Result<Self> {
        let header = Header::parse_file_bytes(bytes, options).map_err(|source| Error::Header {
            file: "<memory>".to_owned(),
            source,
        })?;
        let data = bytes
            .get(header.data_start() as usize..)
            .unwrap_or_default();
        Ok(SafeTensors { header, data })
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// A tensor as a borrowed view.
    pub fn tensor(&self, name: &str) -> Result<TensorView<'_>> {
        let info = self.header.get(name).ok_or_else(|| Error::TensorNotFound {
            file: "<memory>".to_owned(),
            tensor: name.to_owned(),
        })?;
        let data = self
            .data
            .get(info.data_offsets.0..info.data_offsets.1)
            .unwrap_or_default();
        Ok(TensorView {
            info,
            data: Cow::Borrowed(data),
        })
    }

    /// All tensors in file order.
    pub fn tensors(&self) -> impl Iterator<Item = TensorView<'_>> {
        self.header.tensors().iter().map(|info| TensorView {
            info,
            data: Cow::Borrowed(
                self.data
                    .get(info.data_offsets.0..info.data_offsets.1)
                    .unwrap_or_default(),
            ),
        })
    }
}
