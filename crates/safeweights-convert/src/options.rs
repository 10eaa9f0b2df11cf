//! Options, progress events and the summary of a conversion.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

/// What a conversion is doing when it reports progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Phase {
    /// Writing tensors.
    Writing,
    /// Reading the output back and comparing it with the source.
    Verifying,
    /// Copying the other files of a model folder.
    Copying,
}

/// One progress report: sent at least once per tensor and every few
/// megabytes inside large tensors.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Progress<'a> {
    /// What is being done.
    pub phase: Phase,
    /// The tensor (or copied file) in hand.
    pub item: &'a str,
    /// Bytes done in this phase so far.
    pub bytes_done: u64,
    /// Bytes this phase handles in all.
    pub bytes_total: u64,
}

/// A progress callback.
pub type ProgressFn = Arc<dyn Fn(&Progress<'_>) + Send + Sync>;

/// How to convert: a builder.
///
/// ```
/// use safeweights_convert::ConvertOptions;
/// let opts = ConvertOptions::new().keep_shared(true).max_shard_size(Some(5_000_000_000));
/// assert!(opts.is_keep_shared());
/// ```
#[derive(Clone, Default)]
pub struct ConvertOptions {
    pub(crate) keep_shared: bool,
    pub(crate) metadata_leaves: bool,
    pub(crate) max_shard_size: Option<u64>,
    pub(crate) overwrite: bool,
    pub(crate) allow_zip_anomalies: bool,
    pub(crate) progress: Option<ProgressFn>,
}

impl fmt::Debug for ConvertOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConvertOptions")
            .field("keep_shared", &self.keep_shared)
            .field("metadata_leaves", &self.metadata_leaves)
            .field("max_shard_size", &self.max_shard_size)
            .field("overwrite", &self.overwrite)
            .field("allow_zip_anomalies", &self.allow_zip_anomalies)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

impl ConvertOptions {
    /// Defaults: shared tensors deduplicated, leaves only reported, one
    /// output file (or the source's shard grouping), no overwriting.
    pub fn new() -> Self {
        Self::default()
    }

    /// Write tensors that share a storage as separate copies instead of
    /// keeping one name and recording the others as aliases in metadata.
    pub fn keep_shared(mut self, yes: bool) -> Self {
        self.keep_shared = yes;
        self
    }

    /// Keep non-tensor values (epoch, step, config ...) as JSON in the
    /// safetensors `__metadata__` under the key [`LEAVES_METADATA_KEY`](crate::LEAVES_METADATA_KEY).
    /// They are always listed in the summary.
    pub fn metadata_leaves(mut self, yes: bool) -> Self {
        self.metadata_leaves = yes;
        self
    }

    /// Split safetensors output into shards of at most this many bytes
    /// (`None`: one file, or for a model folder the source's own grouping).
    pub fn max_shard_size(mut self, bytes: Option<u64>) -> Self {
        self.max_shard_size = bytes;
        self
    }

    /// Replace an existing destination. A destination folder is replaced
    /// only when it holds nothing but what the conversion writes (an earlier
    /// output); one that holds the source is always refused.
    pub fn overwrite(mut self, yes: bool) -> Self {
        self.overwrite = yes;
        self
    }

    /// Convert a zip-based source (PyTorch zip, `.npz`) even when the
    /// scanner reports zip anomalies at medium or above (duplicate or
    /// case-twin members, overlaps, prefixed data ...). Off by default: such
    /// an archive reads differently in different readers, so the converted
    /// tensors may not be what PyTorch would load.
    pub fn allow_zip_anomalies(mut self, yes: bool) -> Self {
        self.allow_zip_anomalies = yes;
        self
    }

    /// Whether zip anomalies are accepted.
    pub fn is_allow_zip_anomalies(&self) -> bool {
        self.allow_zip_anomalies
    }

    /// Receive progress reports.
    pub fn progress(mut self, f: impl Fn(&Progress<'_>) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(f));
        self
    }

    /// Whether shared tensors are written as copies.
    pub fn is_keep_shared(&self) -> bool {
        self.keep_shared
    }

    /// Whether non-tensor leaves go into metadata.
    pub fn is_metadata_leaves(&self) -> bool {
        self.metadata_leaves
    }

    /// The shard size limit.
    pub fn get_max_shard_size(&self) -> Option<u64> {
        self.max_shard_size
    }

    /// Whether an existing destination is replaced.
    pub fn is_overwrite(&self) -> bool {
        self.overwrite
    }

    pub(crate) fn report(&self, phase: Phase, item: &str, bytes_done: u64, bytes_total: u64) {
        if let Some(p) = &self.progress {
            p(&Progress {
                phase,
                item,
                bytes_done,
                bytes_total,
            });
        }
    }
}

/// A tensor name that was not written because it is an exact alias of a
/// kept tensor (same storage, offset, shape, strides and dtype).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DroppedAlias {
    /// The dropped name.
    pub name: String,
    /// The name that was written and that it aliases.
    pub kept: String,
}

/// A non-tensor value found in the checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Leaf {
    /// Its dotted name.
    pub name: String,
    /// Its value as JSON.
    pub value: serde_json::Value,
}

/// A file of a model folder that was neither converted nor copied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedFile {
    /// The source path.
    pub path: PathBuf,
    /// Why it was skipped.
    pub reason: String,
}

/// What a conversion did; serializable for a CLI's `--json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ConvertSummary {
    /// The source.
    pub source: PathBuf,
    /// The destination.
    pub destination: PathBuf,
    /// Detected source format (`torch-zip`, `torch-legacy`, `torch-legacy-tar`, `npy`, `npz`,
    /// `safetensors`, `hf-folder`).
    pub source_format: String,
    /// Target format (`safetensors`, `torch-zip`, `npz`, `hf-folder`).
    pub target_format: String,
    /// Files written (tensor files and indexes), in order.
    pub files_written: Vec<PathBuf>,
    /// Other files of a model folder copied unchanged.
    pub files_copied: Vec<PathBuf>,
    /// Files of a model folder left out (refused symlinks, pickles, files
    /// the scanner judged unsafe ...), with the reason.
    pub files_skipped: Vec<SkippedFile>,
    /// Files of an existing destination folder that the output replaced
    /// (with overwriting: it held only what a conversion writes).
    pub files_removed: Vec<PathBuf>,
    /// Tensors written.
    pub tensors: usize,
    /// Tensor bytes written.
    pub bytes: u64,
    /// Names not written because they alias a written tensor.
    pub dropped_aliases: Vec<DroppedAlias>,
    /// Tensors that share a storage with another written tensor but are a
    /// different view of it: each was written as its own contiguous copy.
    pub shared_copies: Vec<String>,
    /// Non-tensor values of the checkpoint.
    pub non_tensor_leaves: Vec<Leaf>,
    /// Whether the leaves were stored in `__metadata__`.
    pub leaves_in_metadata: bool,
    /// Every written tensor was read back and equals the source bit for bit.
    pub verified: bool,
    /// Wall-clock seconds.
    pub seconds: f64,
}
