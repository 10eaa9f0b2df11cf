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

    /// Fails when bytes handed out earlier (through [`Source::as_bytes`]) may
    /// not have been the file's, because the file changed under a mapping.
    /// Readers of [`Source::as_bytes`] call it when they are done.
    fn check(&self) -> io::Result<()> {
        Ok(())
    }

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
/// A memory map reflects the file: if another process rewrites the file while
/// it is mapped, reads see the new bytes, and if it truncates the file, a read
/// past the new end faults. On Linux every map is registered with a `SIGBUS`
/// guard: such a fault reads zeros instead of ending the process, and the map
/// reports it ([`MmapSource::check`], and as an error from
/// [`Source::read_exact_at`] and [`Source::check`]). Files that are not under
/// your control are better read with [`FileSource`] (positioned reads), which
/// is what [`crate::OpenOptions`] does unless mapping is asked for.
pub struct MmapSource {
    map: Mmap,
    path: PathBuf,
    #[cfg(target_os = "linux")]
    guard: Option<crate::sigbus::Guard>,
}

impl MmapSource {
    /// Maps the file at `path`.
    ///
    /// # Safety
    ///
    /// The bytes of a mapping change when the file changes: Rust assumes the
    /// slices [`Source::as_bytes`] returns do not. The caller accepts that the
    /// file may be modified or truncated by others while it is mapped (the
    /// reference implementation makes the same choice for weight files that
    /// are not written while loaded). Truncation is caught on Linux (see the
    /// type's docs); elsewhere it ends the process with `SIGBUS`.
    pub unsafe fn open(path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref();
        let file = open_regular(path)?;
        // SAFETY: the map is read-only and private to this process; the file
        // being changed underneath is the caller's contract (see # Safety).
        let map = unsafe { Mmap::map(&file)? };
        // No speculative readahead around a touched page: reading one tensor
        // must not pull in its neighbours. Whole tensors are prefetched
        // explicitly by `will_need`. Advice is a hint; failure is harmless.
        #[cfg(unix)]
        let _ = map.advise(memmap2::Advice::Random);
        #[cfg(target_os = "linux")]
        let guard = if map.is_empty() {
            None
        } else {
            // Without a free slot the map stays unguarded, as the caller's
            // contract allows.
            crate::sigbus::Guard::register(map.as_ptr(), map.len()).ok()
        };
        Ok(MmapSource {
            map,
            path: path.to_owned(),
            #[cfg(target_os = "linux")]
            guard,
        })
    }

    /// Fails when a read of the map faulted because the file shrank after it
    /// was mapped: bytes read since then may be zeros, not the file's.
    pub fn check(&self) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        if self.guard.as_ref().is_some_and(|g| g.faulted()) {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file was truncated while it was being read",
            ));
        }
        Ok(())
    }
}

/// Opens `path` for reading if it is a regular file. A FIFO or device is
/// refused before it can block the open or the reads.
pub(crate) fn open_regular(path: &Path) -> io::Result<File> {
    let mut options = fs_err::OpenOptions::new();
    options.read(true);
    // Opening a FIFO for reading waits for a writer: O_NONBLOCK returns at
    // once, and the type check below refuses it.
    #[cfg(unix)]
    fs_err::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
    let (file, _) = options.open(path)?.into_parts();
    let meta = file.metadata()?;
    if meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::IsADirectory,
            "a directory: give a regular file",
        ));
    }
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file: give a regular file",
        ));
    }
    Ok(file)
}

impl Source for MmapSource {
    fn len(&self) -> u64 {
        self.map.len() as u64
    }
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        buf.copy_from_slice(slice_at(&self.map, offset, buf.len())?);
        self.check()
    }
    fn as_bytes(&self) -> Option<&[u8]> {
        Some(&self.map)
    }
    fn check(&self) -> io::Result<()> {
        MmapSource::check(self)
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
    ///
    /// A FIFO, device or directory is refused (a FIFO would block).
    pub fn open(path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref();
        let file = open_regular(path)?;
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
