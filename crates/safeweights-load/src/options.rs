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

/// Options of a load.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    threads: usize,
    chunk: u64,
    budget: u64,
    mode: IoMode,
}

impl Default for LoadOptions {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
        LoadOptions {
            threads: cores.clamp(4, 16),
            chunk: 16 << 20,
            budget: 512 << 20,
            mode: IoMode::Auto,
        }
    }
}

impl LoadOptions {
    /// Defaults: one reader thread per core (4 to 16), 16 MiB chunks, a
    /// 512 MiB budget for staging buffers, [`IoMode::Auto`].
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
}
