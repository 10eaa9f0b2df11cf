//! Operating-system pieces: positioned and scattered reads, `O_DIRECT`,
//! page-cache residency and eviction, page-aligned memory.

use std::fs::File;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::ptr::NonNull;

/// Alignment of direct reads: offsets, lengths and buffer addresses.
pub(crate) const DIRECT_ALIGN: u64 = 4096;

/// Most iovecs one `preadv` takes (`IOV_MAX` on Linux).
pub(crate) const MAX_IOV: usize = 1024;

/// Opens `path` for `O_DIRECT` reads, or says why not.
#[cfg(target_os = "linux")]
pub(crate) fn open_direct(path: &Path) -> io::Result<File> {
    // std, not fs_err: the caller tells EINVAL (no O_DIRECT on this file
    // system) from other errors by the raw OS error, and names the file.
    #[allow(clippy::disallowed_methods)]
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
}

/// Opens `path` for `O_DIRECT` reads, or says why not.
#[cfg(not(target_os = "linux"))]
pub(crate) fn open_direct(_path: &Path) -> io::Result<File> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "O_DIRECT is Linux-only here",
    ))
}

/// Reads into `buf` at `offset` until it is full or the file ends; returns
/// the bytes read. Retries on `EINTR`.
pub(crate) fn pread_some(file: &File, mut offset: u64, buf: &mut [u8]) -> io::Result<usize> {
    let mut done = 0usize;
    while done < buf.len() {
        let rest = &mut buf[done..];
        // SAFETY: `rest` is a valid writable buffer of `rest.len()` bytes for
        // the duration of the call, and the descriptor is open.
        let n = unsafe {
            libc::pread(
                file.as_raw_fd(),
                rest.as_mut_ptr().cast(),
                rest.len(),
                offset as libc::off_t,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            break;
        }
        done += n as usize;
        offset += n as u64;
    }
    Ok(done)
}

/// A destination span for a scattered read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Span {
    pub ptr: *mut u8,
    pub len: usize,
}

/// The non-empty spans as `iovec`s, for vectored reads.
pub(crate) fn iovecs(spans: &[Span]) -> Vec<libc::iovec> {
    spans
        .iter()
        .filter(|s| s.len > 0)
        .map(|s| libc::iovec {
            iov_base: s.ptr.cast(),
            iov_len: s.len,
        })
        .collect()
}

/// Reads `spans` in order from consecutive file bytes starting at `offset`
/// with `preadv`. On failure returns how many bytes were read before it.
///
/// # Safety
/// Every span must be valid for writes of its length, not aliased by any
/// other live reference, for the duration of the call.
pub(crate) unsafe fn preadv_all(
    file: &File,
    offset: u64,
    spans: &[Span],
) -> Result<(), (u64, io::Error)> {
    let mut iov = iovecs(spans);
    let mut first = 0usize;
    let mut done = 0u64;
    while first < iov.len() {
        let count = (iov.len() - first).min(MAX_IOV);
        // SAFETY: the iovecs point at spans the caller guarantees writable
        // and unaliased; `count` is within the vector.
        let n = unsafe {
            libc::preadv(
                file.as_raw_fd(),
                iov.as_ptr().add(first),
                count as libc::c_int,
                (offset + done) as libc::off_t,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err((done, e));
        }
        if n == 0 {
            return Err((
                done,
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file ended before the planned bytes (truncated after planning?)",
                ),
            ));
        }
        let mut n = n as usize;
        done += n as u64;
        while n > 0 && first < iov.len() {
            let v = &mut iov[first];
            if n >= v.iov_len {
                n -= v.iov_len;
                first += 1;
            } else {
                // SAFETY: advancing within the same span, `n < iov_len`.
                v.iov_base = unsafe { v.iov_base.cast::<u8>().add(n).cast() };
                v.iov_len -= n;
                n = 0;
            }
        }
    }
    Ok(())
}

/// A direct-I/O bounce buffer: page-aligned anonymous memory, on transparent
/// huge pages from 4 MiB. Huge pages matter for `O_DIRECT`: a block device
/// takes a bounded number of segments per request (254 on virtio-blk), so a
/// 16 MiB read into 4 KiB pages is cut into 1 MiB requests, into 2 MiB pages
/// into requests of the device's largest size (measured: about twice the
/// cold throughput on a virtio disk).
pub(crate) struct AlignedBuf(HostBuffer);

impl AlignedBuf {
    pub(crate) fn new(len: usize) -> Option<Self> {
        HostBuffer::zeroed(len.max(1)).ok().map(AlignedBuf)
    }
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

/// Zero-filled anonymous memory, page-aligned, that the kernel populates on
/// first touch (no up-front zeroing pass); transparent huge pages are
/// requested for large sizes. Dereferences to `[u8]`.
pub struct HostBuffer {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: owned anonymous memory, accessed through &/&mut self.
unsafe impl Send for HostBuffer {}
// SAFETY: shared access only reads.
unsafe impl Sync for HostBuffer {}

/// Asks for transparent huge pages on the 2 MiB-aligned part of a
/// destination of 4 MiB or more, before it is first written: one fault per
/// 2 MiB instead of per 4 KiB. Advisory (errors ignored); the memory's
/// contents and ownership are unchanged.
pub(crate) fn advise_huge_pages(ptr: *mut u8, len: usize) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        if len < 2 * HUGE {
            return;
        }
        let start = (ptr as usize).next_multiple_of(HUGE);
        let end = (ptr as usize).saturating_add(len) / HUGE * HUGE;
        if end > start {
            // SAFETY: advisory only, on whole pages inside memory the caller
            // handed us for writing.
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (ptr, len);
}

impl HostBuffer {
    /// Maps `len` zero bytes.
    pub fn zeroed(len: usize) -> io::Result<Self> {
        if len == 0 {
            return Ok(HostBuffer {
                ptr: NonNull::dangling(),
                len: 0,
            });
        }
        // SAFETY: anonymous private mapping with no address hint; checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        advise_huge_pages(p.cast(), len);
        let ptr = NonNull::new(p.cast()).ok_or_else(io::Error::last_os_error)?;
        Ok(HostBuffer { ptr, len })
    }
}

impl std::ops::Deref for HostBuffer {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr` maps `len` readable bytes (or is dangling with len 0).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl std::ops::DerefMut for HostBuffer {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`, and `&mut self` is unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl std::fmt::Debug for HostBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostBuffer")
            .field("len", &self.len)
            .finish()
    }
}

impl Drop for HostBuffer {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: unmapping exactly the mapping made in `zeroed`.
            unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
        }
    }
}

/// Which pages of a file are in the page cache: one bool per page of
/// `page_size()` bytes (`mincore` on a temporary mapping).
pub fn page_residency(path: &Path) -> io::Result<Vec<bool>> {
    let file = fs_err::File::open(path)?;
    let len = file.metadata()?.len() as usize;
    if len == 0 {
        return Ok(Vec::new());
    }
    // SAFETY: a read-only shared mapping of an open file; only `mincore`
    // inspects it and it is unmapped before returning (no page is touched).
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let page = page_size();
    let mut vec = vec![0u8; len.div_ceil(page)];
    // SAFETY: `vec` has one byte per page of the mapping.
    let rc = unsafe { libc::mincore(p, len, vec.as_mut_ptr().cast()) };
    let err = io::Error::last_os_error();
    // SAFETY: unmapping the mapping made above.
    unsafe { libc::munmap(p, len) };
    if rc != 0 {
        return Err(err);
    }
    Ok(vec.into_iter().map(|b| b & 1 == 1).collect())
}

/// The page size.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as usize
    } else {
        4096
    }
}

/// Asks the kernel to drop a file's clean pages from the page cache
/// (`posix_fadvise(POSIX_FADV_DONTNEED)`): the unprivileged way to make a
/// file "cold" for a benchmark. Pages mapped by a process stay.
pub fn evict_from_page_cache(path: &Path) -> io::Result<()> {
    let file = fs_err::File::open(path)?;
    #[cfg(target_os = "linux")]
    {
        // SAFETY: advisory call on an open descriptor.
        let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
    }
    drop(file);
    Ok(())
}
