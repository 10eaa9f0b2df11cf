//! The tour as data: its steps in order, the folder layout it works in, and
//! the parameters of the steps that need some.

use std::path::{Path, PathBuf};

use safeweights::{sharded, SliceIndex};

/// One step of the tour, in the order [`Step::ALL`] runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// Build the sample model with the streaming writer.
    Write,
    /// Inspect it.
    Inspect,
    /// Validate it (strict and lenient).
    Validate,
    /// Reshard it into shards with an index.
    Reshard,
    /// Open the shards and verify every tensor.
    Verify,
    /// Slice a tensor, reading only the bytes needed.
    Slice,
    /// Merge the shards back and diff.
    Merge,
    /// Corrupt copies and validate each.
    Corrupt,
    /// Scan a folder of incoming checkpoints.
    Scan,
    /// Convert the pickle checkpoint, and refuse the disguised one.
    Convert,
    /// Load the converted model with the I/O engine.
    Load,
}

impl Step {
    /// Every step, in order.
    pub const ALL: [Step; 11] = [
        Step::Write,
        Step::Inspect,
        Step::Validate,
        Step::Reshard,
        Step::Verify,
        Step::Slice,
        Step::Merge,
        Step::Corrupt,
        Step::Scan,
        Step::Convert,
        Step::Load,
    ];

    /// Short machine name (the `name` of the step in `demo --json`).
    pub fn name(self) -> &'static str {
        match self {
            Step::Write => "write",
            Step::Inspect => "inspect",
            Step::Validate => "validate",
            Step::Reshard => "reshard",
            Step::Verify => "verify",
            Step::Slice => "slice",
            Step::Merge => "merge",
            Step::Corrupt => "corrupt",
            Step::Scan => "scan",
            Step::Convert => "convert",
            Step::Load => "load",
        }
    }

    /// The heading printed.
    pub fn title(self) -> &'static str {
        match self {
            Step::Write => "Build a sample model and write it with the streaming writer",
            Step::Inspect => "Inspect it",
            Step::Validate => "Validate it against every rule (strict)",
            Step::Reshard => "Reshard it into 3 shards with an index",
            Step::Verify => "Open the sharded checkpoint and verify every tensor",
            Step::Slice => "Slice a tensor, reading only the bytes it needs",
            Step::Merge => "Merge the shards back into one file and diff",
            Step::Corrupt => "Corrupt copies and watch validate catch each one",
            Step::Scan => "Scan a folder of incoming checkpoints for code, by content",
            Step::Convert => "Convert the pickle checkpoint to safetensors, without running it",
            Step::Load => "Load the converted model with the parallel I/O engine",
        }
    }
}

/// Where the tour works: every file it writes, under one folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workdir {
    dir: PathBuf,
}

impl Workdir {
    /// The layout under `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Workdir { dir: dir.into() }
    }

    /// The folder itself.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A path under the folder.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// The sample model.
    pub fn original(&self) -> PathBuf {
        self.path("original/model.safetensors")
    }

    /// The folder of its shards.
    pub fn sharded(&self) -> PathBuf {
        self.path("sharded")
    }

    /// The shards merged back.
    pub fn merged(&self) -> PathBuf {
        self.path("merged/model.safetensors")
    }

    /// The folder of corrupted copies.
    pub fn corrupt(&self) -> PathBuf {
        self.path("corrupt")
    }

    /// The folder of incoming checkpoints to scan.
    pub fn incoming(&self) -> PathBuf {
        self.path("incoming")
    }

    /// The PyTorch checkpoint among the incoming.
    pub fn incoming_bin(&self) -> PathBuf {
        self.incoming().join("pytorch_model.bin")
    }

    /// The disguised pickle among the incoming.
    pub fn incoming_disguised(&self) -> PathBuf {
        self.incoming().join("adapter_model.safetensors")
    }

    /// The PyTorch checkpoint converted back to safetensors.
    pub fn converted(&self) -> PathBuf {
        self.path("converted/model.safetensors")
    }

    /// Where converting the disguised pickle would write (it must not).
    pub fn converted_refused(&self) -> PathBuf {
        self.path("converted/adapter_model.safetensors")
    }
}

/// Shards the reshard step asks for.
pub const SHARDS: usize = 3;

/// The smallest shard size limit for which [`sharded::plan_shards`] packs
/// tensors of `sizes` (in file order) into at most `max_shards` shards.
pub fn smallest_shard_limit(sizes: &[u64], max_shards: usize) -> u64 {
    let (mut lo, mut hi) = (1u64, sizes.iter().sum::<u64>().max(1));
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if sharded::plan_shards(sizes, mid).len() <= max_shards {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

/// The tensor the slice step reads from (F16, `[512, 256]`).
pub const SLICE_TENSOR: &str = "model.layers.0.mlp.up_proj.weight";

/// The slices the slice step reads: their label, as Python writes it, and
/// the index.
pub fn slice_cases() -> [(&'static str, Vec<SliceIndex>); 2] {
    [
        ("[100:200]", vec![SliceIndex::range(100, 200)]),
        (
            "[10:14, 64:128]",
            vec![SliceIndex::range(10, 14), SliceIndex::range(64, 128)],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_have_unique_names() {
        let mut names: Vec<&str> = Step::ALL.iter().map(|s| s.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Step::ALL.len());
    }

    #[test]
    fn shard_limit_is_the_smallest() {
        let sizes = [10, 20, 30, 40, 50];
        let limit = smallest_shard_limit(&sizes, 3);
        assert!(sharded::plan_shards(&sizes, limit).len() <= 3);
        assert!(sharded::plan_shards(&sizes, limit - 1).len() > 3);
        assert_eq!(smallest_shard_limit(&[], 3), 1);
    }
}
