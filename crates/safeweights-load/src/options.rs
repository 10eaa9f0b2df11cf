//! Options of a load: a builder over private fields.

use crate::sys::DIRECT_ALIGN;

/// How file bytes are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IoMode {
    /// Per chunk: buffered when its pages are mostly in the page cache
    /// (`mincore`), direct otherwise, so a warm cache is used and a cold read
    /// does not fill it. Buffered where the file system refuses `O_DIRECT`.
    #[default]
    Auto,
    /// Always through the page cache (`pread`/`preadv`).
    Buffered,
    /// Always `O_DIRECT` into aligned bounce buffers, falling back to
    /// buffered where the file system refuses it (tmpfs, some FUSE).
    Direct,
}

/// How reads are issued on the CPU destination (the CUDA destination always
/// uses threads).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IoBackend {
    /// The measured default for this engine: [`Threads`](Self::Threads)
    /// (io_uring was not faster on the machines measured; see
    /// `bench/README.md`).
    #[default]
    Auto,
    /// Each reader thread issues one blocking `pread`/`preadv` at a time.
    Threads,
    /// Linux `io_uring`: each reader thread owns a ring and keeps
    /// [`LoadOptions::queue_depth`] reads in flight. Where a ring cannot be
    /// set up (old kernel, seccomp, `io_uring_disabled`) the load uses
    /// threads and the report says why.
    #[serde(alias = "io-uring", alias = "iouring")]
    IoUring,
}

/// Options of a load.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    threads: usize,
    chunk: u64,
    budget: u64,
    mode: IoMode,
    backend: IoBackend,
    depth: usize,
}

impl Default for LoadOptions {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
        LoadOptions {
            threads: cores.clamp(4, 16),
            chunk: 16 << 20,
            budget: 512 << 20,
            mode: IoMode::Auto,
            backend: IoBackend::Auto,
            depth: 4,
        }
    }
}

impl LoadOptions {
    /// Defaults: one reader thread per core (4 to 16), 16 MiB chunks, a
    /// 512 MiB budget for staging buffers, [`IoMode::Auto`],
    /// [`IoBackend::Auto`], 4 reads in flight per io_uring thread.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of reader threads (at least 1).
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// Largest single read, rounded up to a multiple of 4 KiB. Reads never
    /// cross a multiple of the chunk size in the file, so direct reads stay
    /// aligned.
    pub fn chunk_size(mut self, bytes: u64) -> Self {
        self.chunk = bytes.max(1).div_ceil(DIRECT_ALIGN) * DIRECT_ALIGN;
        self
    }

    /// Bytes of staging memory the loader may hold at once: direct-I/O
    /// bounce buffers on the CPU path, pinned buffers on the CUDA path (at
    /// least two chunks there). Destinations are not counted. The chunk size
    /// shrinks to fit a budget smaller than one chunk.
    pub fn memory_budget(mut self, bytes: u64) -> Self {
        self.budget = bytes.max(DIRECT_ALIGN);
        self
    }

    /// How to read (default [`IoMode::Auto`]).
    pub fn io_mode(mut self, mode: IoMode) -> Self {
        self.mode = mode;
        self
    }

    /// How reads are issued (default [`IoBackend::Auto`]).
    pub fn io_backend(mut self, backend: IoBackend) -> Self {
        self.backend = backend;
        self
    }

    /// Reads in flight per thread with [`IoBackend::IoUring`] (at least 1;
    /// default 4); also the ring's size. A size the kernel refuses (over
    /// 32768 entries) makes the load fall back to threads, reported.
    pub fn queue_depth(mut self, depth: usize) -> Self {
        self.depth = depth.max(1);
        self
    }

    /// The number of reader threads.
    pub fn thread_count(&self) -> usize {
        self.threads
    }

    /// The chunk size in bytes.
    pub fn chunk_bytes(&self) -> u64 {
        self.chunk
    }

    /// The memory budget in bytes.
    pub fn budget_bytes(&self) -> u64 {
        self.budget
    }

    /// The I/O mode.
    pub fn mode(&self) -> IoMode {
        self.mode
    }

    /// The I/O backend asked for.
    pub fn backend(&self) -> IoBackend {
        self.backend
    }

    /// The io_uring queue depth per thread.
    pub fn depth(&self) -> usize {
        self.depth
    }
}
