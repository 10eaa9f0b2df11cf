//! The tour as data: its steps in order, the folder layout it works in, and
//! the parameters of the steps that need some.

use std::ops::Range;
use std::path::{Path, PathBuf};

use safeweights::{sharded, Checkpoint, SliceIndex};

use crate::{hostile, DemoError, Result};

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

/// One slice the slice step reads from a 2-D tensor: rows, and optionally a
/// column window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceCase {
    /// The slice as Python writes it, e.g. `[10:14, 64:128]`.
    pub label: &'static str,
    /// The rows.
    pub rows: Range<usize>,
    /// The columns (all of them when `None`).
    pub cols: Option<Range<usize>>,
}

impl SliceCase {
    /// The index to give the reader.
    pub fn index(&self) -> Vec<SliceIndex> {
        let mut index = vec![SliceIndex::range(
            self.rows.start as i64,
            self.rows.end as i64,
        )];
        if let Some(cols) = &self.cols {
            index.push(SliceIndex::range(cols.start as i64, cols.end as i64));
        }
        index
    }

    /// The naive oracle: the selected elements cut out of the whole
    /// row-major tensor `full` of `columns` columns and `elem`-byte elements,
    /// row by row. `None` when the case does not fit the tensor.
    pub fn cut(&self, full: &[u8], columns: usize, elem: usize) -> Option<Vec<u8>> {
        let row_bytes = columns.checked_mul(elem)?;
        let cols = self.cols.clone().unwrap_or(0..columns);
        let mut out = Vec::new();
        for row in self.rows.clone() {
            let start = row
                .checked_mul(row_bytes)?
                .checked_add(cols.start.checked_mul(elem)?)?;
            let end = row
                .checked_mul(row_bytes)?
                .checked_add(cols.end.checked_mul(elem)?)?;
            out.extend_from_slice(full.get(start..end)?);
        }
        Some(out)
    }
}

/// The slices the slice step reads from [`SLICE_TENSOR`]: a row range (one
/// contiguous read) and a 4-row column window (one read per row).
pub fn slice_cases() -> [SliceCase; 2] {
    [
        SliceCase {
            label: "[100:200]",
            rows: 100..200,
            cols: None,
        },
        SliceCase {
            label: "[10:14, 64:128]",
            rows: 10..14,
            cols: Some(64..128),
        },
    ]
}

/// Compares two checkpoints tensor by tensor, in memory: how many of `a`'s
/// tensors `b` holds with the same dtype, shape and bytes, and their bytes.
///
/// # Errors
/// A tensor of `a` that `b` lacks, or a read that fails.
pub fn bit_identical(a: &Checkpoint, b: &Checkpoint) -> Result<(usize, u64)> {
    let mut identical = 0usize;
    let mut bytes = 0u64;
    for name in a.names() {
        let (x, y) = (a.tensor(name)?, b.tensor(name)?);
        if x.dtype() == y.dtype() && x.shape() == y.shape() && x.data() == y.data() {
            identical += 1;
            bytes += x.data().len() as u64;
        }
    }
    Ok((identical, bytes))
}

/// Whether every tensor of the safetensors file at `path` is what `loaded`
/// returns for its name, and how many tensors the file has.
///
/// # Errors
/// The file cannot be read.
pub fn matches_file<'a>(
    path: &Path,
    loaded: impl Fn(&str) -> Option<&'a [u8]>,
) -> Result<(bool, usize)> {
    let reader = safeweights::SafeTensorsFile::open(path)?;
    let mut equal = true;
    for info in reader.header().tensors() {
        equal &= loaded(&info.name) == Some(reader.tensor(&info.name)?.data());
    }
    Ok((equal, reader.header().len()))
}

/// Writes every corruption of [`hostile::CORRUPTIONS`] of the sample into
/// [`Workdir::corrupt`], in order, with the path of each.
///
/// # Errors
/// A file cannot be read or written, or the sample is not one.
pub fn write_corruptions(work: &Workdir) -> Result<Vec<(&'static hostile::Corruption, PathBuf)>> {
    let original_path = work.original();
    let original = fs_err::read(&original_path).map_err(|e| DemoError::io(&original_path, e))?;
    let dir = work.corrupt();
    fs_err::create_dir_all(&dir).map_err(|e| DemoError::io(&dir, e))?;
    let mut written = Vec::new();
    for c in hostile::CORRUPTIONS {
        let path = dir.join(c.name);
        fs_err::write(&path, (c.apply)(&original)?).map_err(|e| DemoError::io(&path, e))?;
        written.push((c, path));
    }
    Ok(written)
}

/// Fills [`Workdir::incoming`] with what the scan step scans: a real PyTorch
/// checkpoint of the sample (the torch zip format, as `torch.save` writes it,
/// made by converting the safetensors file back) at
/// [`Workdir::incoming_bin`], and a look-alike whose pickle runs a shell
/// command when loaded, named like a harmless weights file, at
/// [`Workdir::incoming_disguised`].
///
/// # Errors
/// The conversion or a write fails.
pub fn write_incoming(work: &Workdir) -> Result<()> {
    let dir = work.incoming();
    fs_err::create_dir_all(&dir).map_err(|e| DemoError::io(&dir, e))?;
    safeweights_convert::convert(
        work.original(),
        work.incoming_bin(),
        &safeweights_convert::ConvertOptions::new().overwrite(true),
    )?;
    hostile::write_disguised_pickle_zip(&work.incoming_disguised())
}

/// Creates the folder that will hold `path`.
///
/// # Errors
/// It cannot be created.
pub fn create_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(parent) => fs_err::create_dir_all(parent).map_err(|e| DemoError::io(parent, e)),
        None => Ok(()),
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests build fixtures with std::fs.
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
    fn slice_oracle() {
        // A 4 x 3 tensor of 2-byte elements numbered 0..12.
        let full: Vec<u8> = (0u8..12).flat_map(|i| [i, 0]).collect();
        let case = SliceCase {
            label: "[1:3, 1:2]",
            rows: 1..3,
            cols: Some(1..2),
        };
        assert_eq!(case.cut(&full, 3, 2), Some(vec![4, 0, 7, 0]));
        assert_eq!(case.index().len(), 2);
        let rows = SliceCase {
            label: "[2:4]",
            rows: 2..4,
            cols: None,
        };
        assert_eq!(rows.cut(&full, 3, 2).map(|v| v.len()), Some(12));
        let past = SliceCase {
            label: "[3:5]",
            rows: 3..5,
            cols: None,
        };
        assert_eq!(past.cut(&full, 3, 2), None);
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
