//! Writing safetensors: byte-identical to the reference layout, streaming,
//! and atomic (temp file in the target folder, fsync, rename).

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use crate::error::{Error, Result};
use crate::header::{check_metadata_text, check_name, Metadata, METADATA_KEY};
use crate::Dtype;

/// A tensor to be written: name, dtype and shape.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TensorSpec {
    /// The tensor's name.
    pub name: String,
    /// Its dtype.
    pub dtype: Dtype,
    /// Its shape.
    pub shape: Vec<usize>,
}

impl TensorSpec {
    /// A new spec.
    pub fn new(name: impl Into<String>, dtype: Dtype, shape: impl Into<Vec<usize>>) -> Self {
        TensorSpec {
            name: name.into(),
            dtype,
            shape: shape.into(),
        }
    }

    /// Byte size, or `None` on overflow or a partial byte.
    pub fn byte_len(&self) -> Option<usize> {
        self.dtype.byte_size(crate::element_count(&self.shape)?)
    }
}

/// How strictly to check what is written: a builder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOptions {
    strict: bool,
    replace: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            strict: true,
            replace: true,
        }
    }
}

impl WriteOptions {
    /// Strict (the default): tensor names with control characters, and
    /// metadata with control characters other than tab and line feed, are
    /// refused, so that every file written reads back under strict rules.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes whatever the reference writes (control characters in names
    /// and metadata allowed). A tensor named `__metadata__` is refused either way: no reader
    /// could read the file.
    pub fn lenient() -> Self {
        WriteOptions {
            strict: false,
            ..Self::default()
        }
    }

    /// Whether strict checks are on.
    pub fn is_strict(&self) -> bool {
        self.strict
    }

    /// Whether an existing file at the target is replaced (the default, as
    /// the reference's `save_file` does). With `false` the file is given its
    /// name only if the name is still free when it is complete: a file that
    /// appeared meanwhile (another writer's) is kept and the write fails
    /// with [`std::io::ErrorKind::AlreadyExists`].
    pub fn replace(mut self, replace: bool) -> Self {
        self.replace = replace;
        self
    }

    /// Whether an existing target is replaced.
    pub fn replaces(&self) -> bool {
        self.replace
    }
}

/// One tensor's place in a planned file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutEntry {
    /// What is written.
    pub spec: TensorSpec,
    /// Start and end of its bytes in the data buffer.
    pub data_offsets: (usize, usize),
}

/// The planned bytes of a file: header and where each tensor goes.
#[derive(Debug, Clone)]
pub struct Layout {
    header: Vec<u8>,
    entries: Vec<LayoutEntry>,
    by_name: HashMap<String, usize>,
    data_len: u64,
}

impl Layout {
    /// Plans a file as the reference does: tensors ordered by dtype
    /// (descending) then name, compact JSON with `__metadata__` first, the
    /// header padded with spaces to a multiple of 8. Metadata keys are sorted.
    pub fn new(
        specs: Vec<TensorSpec>,
        metadata: Option<&Metadata>,
    ) -> std::result::Result<Layout, String> {
        Self::with_options(specs, metadata, &WriteOptions::default())
    }

    /// Plans a file with explicit write options.
    pub fn with_options(
        specs: Vec<TensorSpec>,
        metadata: Option<&Metadata>,
        options: &WriteOptions,
    ) -> std::result::Result<Layout, String> {
        let mut specs = specs;
        specs.sort_by(|a, b| b.dtype.cmp(&a.dtype).then_with(|| a.name.cmp(&b.name)));
        let mut json = String::from("{");
        if let Some(metadata) = metadata {
            json.push_str(&quote(METADATA_KEY));
            json.push_str(":{");
            for (i, (k, v)) in metadata.iter().enumerate() {
                if options.strict {
                    check_metadata_text(k, k).map_err(|e| e.to_string())?;
                    check_metadata_text(k, v).map_err(|e| e.to_string())?;
                }
                if i > 0 {
                    json.push(',');
                }
                json.push_str(&quote(k));
                json.push(':');
                json.push_str(&quote(v));
            }
            json.push('}');
        }
        let mut entries = Vec::with_capacity(specs.len());
        let mut by_name = HashMap::with_capacity(specs.len());
        let mut offset = 0usize;
        for spec in specs {
            if options.strict {
                check_name(&spec.name).map_err(|e| e.to_string())?;
            } else if spec.name == METADATA_KEY {
                return Err("a tensor may not be named \"__metadata__\"".to_owned());
            }
            let len = spec.byte_len().ok_or_else(|| {
                format!(
                    "tensor {:?}: {} {:?} overflows or is not a whole number of bytes",
                    spec.name, spec.dtype, spec.shape
                )
            })?;
            let end = offset
                .checked_add(len)
                .ok_or_else(|| "total size overflows".to_owned())?;
            if by_name.insert(spec.name.clone(), entries.len()).is_some() {
                return Err(format!("tensor {:?} is given twice", spec.name));
            }
            if json.len() > 1 {
                json.push(',');
            }
            json.push_str(&quote(&spec.name));
            json.push_str(":{\"dtype\":");
            json.push_str(&quote(spec.dtype.name()));
            json.push_str(",\"shape\":[");
            for (i, d) in spec.shape.iter().enumerate() {
                if i > 0 {
                    json.push(',');
                }
                json.push_str(&d.to_string());
            }
            json.push_str(&format!("],\"data_offsets\":[{offset},{end}]}}"));
            entries.push(LayoutEntry {
                spec,
                data_offsets: (offset, end),
            });
            offset = end;
        }
        json.push('}');
        let padded = json.len().div_ceil(8) * 8;
        let mut header = Vec::with_capacity(8 + padded);
        header.extend_from_slice(&(padded as u64).to_le_bytes());
        header.extend_from_slice(json.as_bytes());
        header.resize(8 + padded, b' ');
        if padded as u64 > crate::MAX_HEADER_LEN {
            return Err(format!(
                "header of {padded} bytes exceeds the {} byte limit",
                crate::MAX_HEADER_LEN
            ));
        }
        Ok(Layout {
            header,
            entries,
            by_name,
            data_len: offset as u64,
        })
    }

    /// The header bytes, including the 8-byte length prefix.
    pub fn header_bytes(&self) -> &[u8] {
        &self.header
    }

    /// Tensors in file order.
    pub fn entries(&self) -> &[LayoutEntry] {
        &self.entries
    }

    /// A tensor's entry.
    pub fn get(&self, name: &str) -> Option<&LayoutEntry> {
        self.by_name.get(name).and_then(|&i| self.entries.get(i))
    }

    /// Size of the data buffer.
    pub fn data_len(&self) -> u64 {
        self.data_len
    }

    /// Size of the whole file.
    pub fn file_len(&self) -> u64 {
        self.header.len() as u64 + self.data_len
    }
}

fn quote(s: &str) -> String {
    // serde_json's escaping is the reference's.
    serde_json::to_string(s).unwrap_or_default()
}

/// A tensor's bytes for [`serialize`] and [`write_file`].
#[derive(Debug, Clone, Copy)]
pub struct TensorRef<'a> {
    /// The tensor's name.
    pub name: &'a str,
    /// Its dtype.
    pub dtype: Dtype,
    /// Its shape.
    pub shape: &'a [usize],
    /// Its bytes, little-endian, row-major.
    pub data: &'a [u8],
}

fn plan<'a>(
    tensors: &[TensorRef<'a>],
    metadata: Option<&Metadata>,
    file: &str,
    options: &WriteOptions,
) -> Result<(Layout, HashMap<&'a str, &'a [u8]>)> {
    let invalid = |reason| Error::InvalidWrite {
        file: file.to_owned(),
        reason,
    };
    let specs = tensors
        .iter()
        .map(|t| TensorSpec::new(t.name, t.dtype, t.shape))
        .collect();
    let layout = Layout::with_options(specs, metadata, options).map_err(invalid)?;
    let mut data = HashMap::with_capacity(tensors.len());
    for t in tensors {
        let expected = layout
            .get(t.name)
            .map(|e| e.data_offsets.1 - e.data_offsets.0);
        if expected != Some(t.data.len()) {
            return Err(invalid(format!(
                "tensor {:?}: {} {:?} needs {} bytes but {} were given",
                t.name,
                t.dtype,
                t.shape,
                expected.unwrap_or(0),
                t.data.len()
            )));
        }
        data.insert(t.name, t.data);
    }
    Ok((layout, data))
}

/// Serializes tensors to an in-memory safetensors image.
pub fn serialize(tensors: &[TensorRef<'_>], metadata: Option<&Metadata>) -> Result<Vec<u8>> {
    serialize_with(tensors, metadata, &WriteOptions::default())
}

/// [`serialize`] with explicit write options.
pub fn serialize_with(
    tensors: &[TensorRef<'_>],
    metadata: Option<&Metadata>,
    options: &WriteOptions,
) -> Result<Vec<u8>> {
    let (layout, data) = plan(tensors, metadata, "<memory>", options)?;
    let mut out = Vec::with_capacity(layout.file_len() as usize);
    out.extend_from_slice(layout.header_bytes());
    for entry in layout.entries() {
        out.extend_from_slice(
            data.get(entry.spec.name.as_str())
                .copied()
                .unwrap_or_default(),
        );
    }
    Ok(out)
}

/// Writes tensors to `path` atomically.
pub fn write_file(
    path: impl AsRef<Path>,
    tensors: &[TensorRef<'_>],
    metadata: Option<&Metadata>,
) -> Result<()> {
    write_file_with(path, tensors, metadata, &WriteOptions::default())
}

/// [`write_file`] with explicit write options.
pub fn write_file_with(
    path: impl AsRef<Path>,
    tensors: &[TensorRef<'_>],
    metadata: Option<&Metadata>,
    options: &WriteOptions,
) -> Result<()> {
    let path = path.as_ref();
    let (layout, data) = plan(tensors, metadata, &path.display().to_string(), options)?;
    let atomic = AtomicFile::create(path)?;
    let io_err = |e| Error::io(path, e);
    {
        let mut out = BufWriter::with_capacity(1 << 22, atomic.file());
        out.write_all(layout.header_bytes()).map_err(io_err)?;
        for entry in layout.entries() {
            let bytes = data
                .get(entry.spec.name.as_str())
                .copied()
                .unwrap_or_default();
            out.write_all(bytes).map_err(io_err)?;
        }
        out.flush().map_err(io_err)?;
    }
    atomic.commit()
}

pub use crate::atomic::AtomicFile;

const PENDING_CAP: usize = 4 << 20;

/// Writes a file whose tensors are declared up front and whose bytes arrive
/// afterwards, tensor by tensor, in chunks of any size and in any order.
/// Peak memory is a small buffer, not the model.
pub struct StreamingWriter {
    layout: Layout,
    file: AtomicFile,
    written: Vec<usize>,
    pending: Vec<u8>,
    pending_at: u64,
}

impl StreamingWriter {
    /// Plans the file and writes its header.
    pub fn create(
        path: impl AsRef<Path>,
        specs: Vec<TensorSpec>,
        metadata: Option<&Metadata>,
    ) -> Result<Self> {
        Self::create_with(path, specs, metadata, &WriteOptions::default())
    }

    /// [`create`](Self::create) with explicit write options.
    pub fn create_with(
        path: impl AsRef<Path>,
        specs: Vec<TensorSpec>,
        metadata: Option<&Metadata>,
        options: &WriteOptions,
    ) -> Result<Self> {
        let path = path.as_ref();
        let layout = Layout::with_options(specs, metadata, options).map_err(|reason| {
            Error::InvalidWrite {
                file: path.display().to_string(),
                reason,
            }
        })?;
        let file = if options.replaces() {
            AtomicFile::create(path)?
        } else {
            AtomicFile::create_new(path)?
        };
        let written = vec![0; layout.entries().len()];
        let mut writer = StreamingWriter {
            layout,
            file,
            written,
            pending: Vec::new(),
            pending_at: 0,
        };
        let header = writer.layout.header.clone();
        writer.write_at(0, &header)?;
        Ok(writer)
    }

    /// The planned layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Appends `chunk` to the bytes written so far for tensor `name`.
    pub fn write(&mut self, name: &str, chunk: &[u8]) -> Result<()> {
        let Some(&index) = self.layout.by_name.get(name) else {
            return Err(self.invalid(format!("tensor {name:?} was not declared")));
        };
        let entry = &self.layout.entries[index];
        let (start, end) = entry.data_offsets;
        let done = self.written[index];
        if chunk.len() > end - start - done {
            return Err(self.invalid(format!(
                "tensor {name:?}: {} bytes written, more than its {} bytes",
                done + chunk.len(),
                end - start
            )));
        }
        let at = self.layout.header.len() as u64 + (start + done) as u64;
        self.write_at(at, chunk)?;
        self.written[index] += chunk.len();
        Ok(())
    }

    /// An [`io::Write`] that appends to tensor `name`.
    pub fn tensor_writer<'w>(&'w mut self, name: &'w str) -> TensorWriter<'w> {
        TensorWriter { writer: self, name }
    }

    /// Checks that every tensor is complete, syncs and renames into place.
    pub fn finish(mut self) -> Result<()> {
        for (entry, &done) in self.layout.entries.iter().zip(&self.written) {
            let len = entry.data_offsets.1 - entry.data_offsets.0;
            if done != len {
                return Err(self.invalid(format!(
                    "tensor {:?}: {done} of {len} bytes written",
                    entry.spec.name
                )));
            }
        }
        self.flush_pending()?;
        let len = self.layout.file_len();
        self.file
            .file()
            .set_len(len)
            .map_err(|e| Error::io(self.file.target(), e))?;
        self.file.commit()
    }

    fn invalid(&self, reason: String) -> Error {
        Error::InvalidWrite {
            file: self.file.target().display().to_string(),
            reason,
        }
    }

    fn write_at(&mut self, at: u64, bytes: &[u8]) -> Result<()> {
        let pending_end = self.pending_at + self.pending.len() as u64;
        if at == pending_end && self.pending.len() + bytes.len() <= PENDING_CAP {
            self.pending.extend_from_slice(bytes);
            return Ok(());
        }
        self.flush_pending()?;
        if bytes.len() >= PENDING_CAP {
            return self.pwrite(at, bytes);
        }
        self.pending_at = at;
        self.pending.extend_from_slice(bytes);
        Ok(())
    }

    fn flush_pending(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let result = self.pwrite(self.pending_at, &pending);
        self.pending = pending;
        self.pending.clear();
        result
    }

    fn pwrite(&self, at: u64, bytes: &[u8]) -> Result<()> {
        write_all_at(self.file.file(), at, bytes).map_err(|e| Error::io(self.file.target(), e))
    }
}

/// Appends to one tensor of a [`StreamingWriter`].
pub struct TensorWriter<'w> {
    writer: &'w mut StreamingWriter,
    name: &'w str,
}

impl Write for TensorWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer
            .write(self.name, buf)
            .map_err(io::Error::other)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(unix)]
fn write_all_at(file: &File, at: u64, bytes: &[u8]) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, bytes, at)
}

#[cfg(windows)]
fn write_all_at(file: &File, mut at: u64, mut bytes: &[u8]) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !bytes.is_empty() {
        let n = file.seek_write(bytes, at)?;
        bytes = &bytes[n..];
        at += n as u64;
    }
    Ok(())
}
