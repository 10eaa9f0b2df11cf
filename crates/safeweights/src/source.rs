//! Where bytes come from: a memory map, positioned reads on a file, or memory.
//!
//! Readers only ever ask a [`Source`] for byte ranges, so a remote source
//! (HTTP range requests, object stores) can stand behind the same reader.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;

/// Random-access bytes.
pub trait Source: Send + Sync {
    /// Total length in bytes.
    fn len(&self) -> u64;

    /// Whether the source is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fills `buf` with the bytes at `offset..offset + buf.len()`.
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;

    /// The whole source as a slice, when it is mapped or in memory (zero-copy).
    fn as_bytes(&self) -> Option<&[u8]> {
        None
    }

    /// What to call this source in messages (a path, or `<memory>`).
    fn describe(&self) -> String;

    /// The file behind this source, if any.
    fn path(&self) -> Option<&Path> {
        None
    }

    /// Hints that `offset..offset + len` is about to be read in full (a
    /// mapping starts reading it ahead). The default does nothing.
    fn will_need(&self, offset: u64, len: u64) {
        let _ = (offset, len);
    }
}

fn range_error(offset: u64, len: usize, total: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("read of {len} bytes at offset {offset} past the end ({total} bytes)"),
    )
}

fn slice_at(bytes: &[u8], offset: u64, len: usize) -> io::Result<&[u8]> {
    let start = usize::try_from(offset).ok();
    start
        .and_then(|s| Some(s..s.checked_add(len)?))
        .and_then(|r| bytes.get(r))
        .ok_or_else(|| range_error(offset, len, bytes.len() as u64))
}

/// A read-only memory map of a file.
///
/// A memory map reflects the file: if another process truncates or rewrites the
/// file while it is mapped, reads may see new bytes or fault. Like every
/// mmap-based reader (the reference's included), we accept that risk for
/// weight files that are not modified while loaded; use [`FileSource`] to
/// avoid it.
pub struct MmapSource {
    map: Mmap,
    path: PathBuf,
}

impl MmapSource {
    /// Maps the file at `path`.
    pub fn open(path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref();
        let file = File::open(path)?;
        // SAFETY: the map is read-only and private to this process; the file
        // being changed underneath is the documented caveat of this type.
        let map = unsafe { Mmap::map(&file)? };
        // No speculative readahead around a touched page: reading one tensor
        // must not pull in its neighbours. Whole tensors are prefetched
        // explicitly by `will_need`. Advice is a hint; failure is harmless.
        #[cfg(unix)]
        let _ = map.advise(memmap2::Advice::Random);
        Ok(MmapSource {
            map,
            path: path.to_owned(),
        })
    }
}

impl Source for MmapSource {
    fn len(&self) -> u64 {
        self.map.len() as u64
    }
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        buf.copy_from_slice(slice_at(&self.map, offset, buf.len())?);
        Ok(())
    }
    fn as_bytes(&self) -> Option<&[u8]> {
        Some(&self.map)
    }
    fn describe(&self) -> String {
        self.path.display().to_string()
    }
    fn path(&self) -> Option<&Path> {
        Some(&self.path)
    }
    #[cfg(unix)]
    fn will_need(&self, offset: u64, len: u64) {
        // madvise wants a page-aligned start: widen down to the page.
        const PAGE: u64 = 4096;
        let start = offset - offset % PAGE;
        let end = offset.saturating_add(len).min(self.map.len() as u64);
        if end > start {
            let _ = self.map.advise_range(
                memmap2::Advice::WillNeed,
                start as usize,
                (end - start) as usize,
            );
        }
    }
}

/// Positioned reads (`pread`) on an open file: no mapping, each read a system
/// call. Better than mmap on network file systems where page faults are slow.
pub struct FileSource {
    file: File,
    len: u64,
    path: PathBuf,
}

impl FileSource {
    /// Opens the file at `path`.
    pub fn open(path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref();
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        Ok(FileSource {
            file,
            len,
            path: path.to_owned(),
        })
    }
}

impl Source for FileSource {
    fn len(&self) -> u64 {
        self.len
    }
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let end = offset.checked_add(buf.len() as u64);
        if end.is_none_or(|e| e > self.len) {
            return Err(range_error(offset, buf.len(), self.len));
        }
        read_exact_at(&self.file, offset, buf)
    }
    fn describe(&self) -> String {
        self.path.display().to_string()
    }
    fn path(&self) -> Option<&Path> {
        Some(&self.path)
    }
}

#[cfg(unix)]
fn read_exact_at(file: &File, offset: u64, buf: &mut [u8]) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut offset: u64, mut buf: &mut [u8]) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        let n = file.seek_read(buf, offset)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf = &mut buf[n..];
        offset += n as u64;
    }
    Ok(())
}

/// Bytes held in memory.
#[derive(Clone)]
pub struct MemorySource {
    bytes: Arc<[u8]>,
}

impl MemorySource {
    /// Wraps owned bytes.
    pub fn new(bytes: impl Into<Arc<[u8]>>) -> Self {
        MemorySource {
            bytes: bytes.into(),
        }
    }
}

impl Source for MemorySource {
    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        buf.copy_from_slice(slice_at(&self.bytes, offset, buf.len())?);
        Ok(())
    }
    fn as_bytes(&self) -> Option<&[u8]> {
        Some(&self.bytes)
    }
    fn describe(&self) -> String {
        "<memory>".to_owned()
    }
}
