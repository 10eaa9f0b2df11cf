//! What a load did: a serializable report.

use serde::{Deserialize, Serialize};

use crate::options::IoBackend;

/// How a file's bytes were read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileMode {
    /// Through the page cache only.
    Buffered,
    /// With `O_DIRECT` only.
    Direct,
    /// Some chunks each way (partly cached file in [`IoMode::Auto`](crate::IoMode::Auto)).
    Mixed,
    /// Through a [`safeweights::Source`] that is not a file.
    Source,
}

/// Per file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileReport {
    /// The file.
    pub file: String,
    /// How it was read.
    pub mode: FileMode,
    /// Bytes read through the page cache.
    pub bytes_buffered: u64,
    /// Bytes read with `O_DIRECT` (the planned bytes, not the aligned widening).
    pub bytes_direct: u64,
    /// Share of the file's pages in the page cache before the load, when checked ([`IoMode::Auto`](crate::IoMode::Auto)).
    pub resident_fraction: Option<f64>,
    /// Why direct reads were not (all) used, when they were wanted.
    pub fallback: Option<String>,
}

/// What a load did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    /// `cpu` or `cuda:N`.
    pub device: String,
    /// Tensors loaded.
    pub tensors: usize,
    /// Bytes loaded.
    pub bytes: u64,
    /// Wall time of the load (planning excluded, opening files included).
    pub seconds: f64,
    /// `bytes / seconds / 1e9`.
    pub gb_per_s: f64,
    /// Reader threads used.
    pub threads: usize,
    /// Chunk size used.
    pub chunk_size: u64,
    /// Number of reads (jobs) issued.
    pub reads: usize,
    /// Per file.
    pub files: Vec<FileReport>,
    /// The I/O backend used: `threads` or `io_uring` (never `auto`).
    #[serde(default = "threads")]
    pub io_backend: IoBackend,
    /// Why the backend asked for was not used (io_uring unavailable).
    #[serde(default)]
    pub io_backend_fallback: Option<String>,
}

fn threads() -> IoBackend {
    IoBackend::Threads
}
