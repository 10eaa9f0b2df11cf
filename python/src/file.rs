//! `_File`: an open safetensors file (the core's `SafeTensorsFile`), with the
//! primitives the Python `safe_open` builds framework tensors from. All reads
//! run without the GIL.

use std::collections::BTreeMap;
use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::PyByteArray;
use safeweights::{OpenOptions, ParseOptions, SafeTensorsFile, TensorInfo};

use crate::errors::{plain, to_py, Context};
use crate::index;

/// `(name, dtype, shape, start, stop)`: a tensor and its absolute byte range.
type Entry = (String, &'static str, Vec<usize>, u64, u64);

/// An open safetensors file: validated header, bytes behind a memory map or
/// positioned reads. Thread-safe; reads release the GIL.
#[pyclass(frozen, module = "safeweights._safeweights", name = "_File")]
pub struct File {
    pub(crate) inner: SafeTensorsFile,
}

/// The first bytes of an image of `len` bytes: enough to parse its header.
struct HeaderOnly {
    prefix: Vec<u8>,
    len: u64,
}

impl safeweights::Source for HeaderOnly {
    fn len(&self) -> u64 {
        self.len
    }
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let start = usize::try_from(offset).map_err(std::io::Error::other)?;
        let src = start
            .checked_add(buf.len())
            .and_then(|end| self.prefix.get(start..end))
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "only the header of this image is held",
                )
            })?;
        buf.copy_from_slice(src);
        Ok(())
    }
    fn describe(&self) -> String {
        "<memory>".to_owned()
    }
}

fn parse_options(strict: bool) -> ParseOptions {
    if strict {
        ParseOptions::strict()
    } else {
        ParseOptions::lenient()
    }
}

impl File {
    fn entry_of(&self, info: &TensorInfo) -> Entry {
        let range = self.inner.file_range(info);
        (
            info.name.clone(),
            info.dtype.name(),
            info.shape.clone(),
            range.start,
            range.end,
        )
    }
}

#[pymethods]
impl File {
    /// Opens and validates `filename`; `backend` is `"mmap"` or `"pread"`.
    #[new]
    #[pyo3(signature = (filename, backend = "mmap", strict = true))]
    fn new(py: Python<'_>, filename: PathBuf, backend: &str, strict: bool) -> PyResult<Self> {
        let options = OpenOptions::new().parse_options(parse_options(strict));
        let options = match backend {
            // SAFETY: memory-mapping is the reference's default, and the
            // documented contract of `safe_open`: a file changed while it is
            // open may change the tensors read from it, and one truncated
            // reads zeros and fails (see python/README.md); `backend="pread"`
            // is the choice for files others may write.
            "mmap" => unsafe { options.mmap() },
            "pread" => options.pread(),
            other => {
                return Err(plain(format!(
                    "backend {other:?} is invalid (expected one of: \"mmap\", \"pread\")"
                )))
            }
        };
        let inner = py
            .allow_threads(|| options.open(&filename))
            .map_err(|e| to_py(py, e, Context::Open))?;
        Ok(File { inner })
    }

    /// Parses a file image held in a `bytes` or `bytearray` (copied).
    #[staticmethod]
    #[pyo3(signature = (data, strict = true))]
    fn from_bytes(py: Python<'_>, data: &Bound<'_, PyAny>, strict: bool) -> PyResult<Self> {
        let buf = crate::serialize::buffer(data)?;
        let owned: Vec<u8> = buf.as_slice().to_vec();
        let inner = py
            .allow_threads(|| SafeTensorsFile::from_bytes(owned, &parse_options(strict)))
            .map_err(|e| to_py(py, e, Context::Deserialize))?;
        Ok(File { inner })
    }

    /// Parses and validates the header of a file image of `total_len` bytes
    /// from its first bytes only (`prefix`: the 8-byte length and the
    /// header), so that a caller holding the whole image copies it at most
    /// once. Tensor bytes cannot be read from the result.
    #[staticmethod]
    #[pyo3(signature = (prefix, total_len, strict = true))]
    fn header_of(
        py: Python<'_>,
        prefix: &Bound<'_, PyAny>,
        total_len: u64,
        strict: bool,
    ) -> PyResult<Self> {
        let buf = crate::serialize::buffer(prefix)?;
        let source = HeaderOnly {
            prefix: buf.as_slice().to_vec(),
            len: total_len,
        };
        let inner = py
            .allow_threads(|| {
                SafeTensorsFile::from_source(std::sync::Arc::new(source), &parse_options(strict))
            })
            .map_err(|e| to_py(py, e, Context::Deserialize))?;
        Ok(File { inner })
    }

    /// Tensor names, sorted.
    fn keys(&self) -> Vec<String> {
        self.inner.names().into_iter().map(str::to_owned).collect()
    }

    /// Tensor names in the order of their bytes in the file.
    fn offset_keys(&self) -> Vec<String> {
        let mut infos: Vec<&TensorInfo> = self.inner.header().tensors().iter().collect();
        infos.sort_by_key(|i| i.data_offsets);
        infos.into_iter().map(|i| i.name.clone()).collect()
    }

    /// The `__metadata__` map, or `None`.
    fn metadata(&self) -> Option<BTreeMap<String, String>> {
        self.inner.header().metadata().cloned()
    }

    /// The file's path as given, or `<memory>`.
    #[getter]
    fn name(&self) -> String {
        self.inner.name().to_owned()
    }

    /// Total length of the source in bytes.
    fn file_len(&self) -> u64 {
        self.inner.source().len()
    }

    /// Whether the bytes are memory-mapped or in memory (as opposed to `pread`).
    fn is_mapped(&self) -> bool {
        self.inner.source().as_bytes().is_some()
    }

    /// `(name, dtype, shape, start, stop)` of one tensor, absolute file offsets.
    fn entry(&self, py: Python<'_>, name: &str) -> PyResult<Entry> {
        let info = self
            .inner
            .info(name)
            .map_err(|e| to_py(py, e, Context::Read))?;
        Ok(self.entry_of(info))
    }

    /// Every tensor's entry, in file order.
    fn entries(&self) -> Vec<Entry> {
        let mut infos: Vec<&TensorInfo> = self.inner.header().tensors().iter().collect();
        infos.sort_by_key(|i| i.data_offsets);
        infos.into_iter().map(|i| self.entry_of(i)).collect()
    }

    /// Copies a tensor's bytes to `ptr`, which must hold `len` writable bytes,
    /// `len` being the tensor's size.
    ///
    /// The caller owns the memory at `ptr` (e.g. a freshly allocated tensor)
    /// and keeps it alive during the call.
    fn read_into(&self, py: Python<'_>, name: &str, ptr: usize, len: usize) -> PyResult<()> {
        if len == 0 {
            return self.entry(py, name).map(|_| ());
        }
        if ptr == 0 {
            return Err(plain("read_into: null destination"));
        }
        // SAFETY: the caller hands over `len` writable bytes at `ptr` for the
        // duration of the call (this is a private helper of the package).
        let buf = unsafe { std::slice::from_raw_parts_mut(ptr as *mut u8, len) };
        py.allow_threads(|| self.inner.read_tensor_into(name, buf))
            .map_err(|e| to_py(py, e, Context::Read))
    }

    /// A tensor's bytes as a new `bytearray`.
    fn read_bytearray<'py>(
        &self,
        py: Python<'py>,
        name: &str,
    ) -> PyResult<Bound<'py, PyByteArray>> {
        let info = self
            .inner
            .info(name)
            .map_err(|e| to_py(py, e, Context::Read))?;
        let len = info.byte_len();
        let mut result = Ok(());
        let out = PyByteArray::new_with(py, len, |buf: &mut [u8]| {
            result = py.allow_threads(|| self.inner.read_tensor_into(name, buf));
            Ok(())
        })?;
        result.map_err(|e| to_py(py, e, Context::Read))?;
        Ok(out)
    }

    /// Reads the part of a tensor that `index` selects (ints, slices with
    /// steps, negative indices, one Ellipsis): its shape and its bytes, reading
    /// only the selected bytes.
    fn read_slice<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        index: &Bound<'py, PyAny>,
    ) -> PyResult<(Vec<usize>, Bound<'py, PyByteArray>)> {
        let info = self
            .inner
            .info(name)
            .map_err(|e| to_py(py, e, Context::Read))?;
        let indices = index::parse(index, info.shape.len())?;
        let slice = self
            .inner
            .resolve_slice(name, &indices)
            .map_err(|e| to_py(py, e, Context::Read))?;
        let ranges = self
            .inner
            .slice_file_ranges(name, &indices)
            .map_err(|e| to_py(py, e, Context::Read))?;
        let total: u64 = ranges.iter().map(|r| r.end - r.start).sum();
        let total = usize::try_from(total).map_err(|_| plain("slice too large for memory"))?;
        let mut result = Ok(());
        let out = PyByteArray::new_with(py, total, |buf: &mut [u8]| {
            result = py.allow_threads(|| {
                let mut at = 0usize;
                for r in &ranges {
                    let len = (r.end - r.start) as usize;
                    self.inner.read_at(r.start, &mut buf[at..at + len])?;
                    at += len;
                }
                Ok(())
            });
            Ok(())
        })?;
        result.map_err(|e| to_py(py, e, Context::Read))?;
        Ok((slice.shape().to_vec(), out))
    }
}
