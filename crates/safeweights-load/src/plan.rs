//! A load plan: which bytes of which files become which tensors.
//!
//! The engine never reads "a file"; it reads the byte ranges of a plan. A
//! whole checkpoint, a subset of tensors, slices (tensor- or pipeline-parallel
//! shards) and hand-made ranges all become the same thing: per planned tensor,
//! an ordered list of file ranges whose concatenation is the tensor's bytes.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use safeweights::{Checkpoint, Dtype, SafeTensorsFile, SliceIndex, Source};

use crate::error::LoadError;

/// A file the plan reads from.
#[derive(Clone)]
pub struct PlanFile {
    name: String,
    path: Option<PathBuf>,
    source: Arc<dyn Source>,
    len: u64,
}

impl std::fmt::Debug for PlanFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlanFile")
            .field("name", &self.name)
            .field("len", &self.len)
            .finish()
    }
}

impl PlanFile {
    /// What the file is called in messages (its path, usually).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The path, when the source is a file. Files with a path are read with
    /// the engine's own descriptors (`pread`/`preadv`, `O_DIRECT`); others
    /// through [`Source::read_exact_at`].
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
    /// The source the plan was made from.
    pub fn source(&self) -> &Arc<dyn Source> {
        &self.source
    }
    /// The file's length when planned.
    pub fn len(&self) -> u64 {
        self.len
    }
    /// Whether the file was empty when planned.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// One tensor (or slice of one) to load.
#[derive(Debug, Clone)]
pub struct PlannedTensor {
    name: String,
    file: usize,
    dtype: Dtype,
    shape: Vec<usize>,
    ranges: Vec<Range<u64>>,
    len: u64,
}

impl PlannedTensor {
    /// The tensor's name (the source tensor's name for a slice).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Index into [`LoadPlan::files`].
    pub fn file(&self) -> usize {
        self.file
    }
    /// Element type.
    pub fn dtype(&self) -> Dtype {
        self.dtype
    }
    /// Shape of what is loaded (the slice's shape for a slice).
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    /// Absolute file ranges, in destination order.
    pub fn ranges(&self) -> &[Range<u64>] {
        &self.ranges
    }
    /// Number of bytes loaded.
    pub fn len(&self) -> u64 {
        self.len
    }
    /// Whether nothing is loaded (zero elements).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Which bytes of which files become which tensors.
#[derive(Debug, Clone, Default)]
pub struct LoadPlan {
    files: Vec<PlanFile>,
    tensors: Vec<PlannedTensor>,
}

impl LoadPlan {
    /// An empty plan.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every tensor of one file, in file order.
    pub fn for_file(file: &SafeTensorsFile) -> Self {
        let mut plan = Self::new();
        let f = plan.add_file(file);
        for info in file.header().tensors() {
            plan.push_whole(f, file, info);
        }
        plan
    }

    /// Every tensor of a (sharded) checkpoint, shard by shard in file order.
    pub fn for_checkpoint(checkpoint: &Checkpoint) -> Self {
        let mut plan = Self::new();
        let mut last: Option<(*const SafeTensorsFile, usize)> = None;
        for (file, info) in checkpoint.tensors() {
            let f = match last {
                Some((p, f)) if std::ptr::eq(p, file) => f,
                _ => {
                    let f = plan.add_file(file);
                    last = Some((file, f));
                    f
                }
            };
            plan.push_whole(f, file, info);
        }
        plan
    }

    /// Plans a whole tensor of registered file `f`: one range, its shape.
    fn push_whole(&mut self, f: usize, file: &SafeTensorsFile, info: &safeweights::TensorInfo) {
        let range = file.file_range(info);
        self.push(
            f,
            info.name.clone(),
            info.dtype,
            info.shape.clone(),
            vec![range],
        );
    }

    /// Registers a file (once; the same source is not added twice) and
    /// returns its index.
    pub fn add_file(&mut self, file: &SafeTensorsFile) -> usize {
        let source = file.source();
        if let Some(i) = self.files.iter().position(|f| {
            Arc::ptr_eq(&f.source, source)
                || (f.path.is_some() && f.path.as_deref() == source.path())
        }) {
            return i;
        }
        self.files.push(PlanFile {
            name: file.name().to_owned(),
            path: source.path().map(Path::to_owned),
            source: source.clone(),
            len: source.len(),
        });
        self.files.len() - 1
    }

    /// Plans a whole tensor; returns its index in [`tensors`](Self::tensors).
    pub fn add_tensor(&mut self, file: &SafeTensorsFile, name: &str) -> Result<usize, LoadError> {
        let info = file.info(name)?;
        let range = file.file_range(info);
        let f = self.add_file(file);
        Ok(self.push(
            f,
            info.name.clone(),
            info.dtype,
            info.shape.clone(),
            vec![range],
        ))
    }

    /// Plans a slice of a tensor (Python indexing rules): only the selected
    /// elements' bytes are read, and they land contiguously in row-major order.
    pub fn add_slice(
        &mut self,
        file: &SafeTensorsFile,
        name: &str,
        indices: &[SliceIndex],
    ) -> Result<usize, LoadError> {
        let info = file.info(name)?;
        let shape = file.resolve_slice(name, indices)?.shape().to_vec();
        let ranges = file.slice_file_ranges(name, indices)?;
        let f = self.add_file(file);
        Ok(self.push(f, info.name.clone(), info.dtype, shape, ranges))
    }

    /// Plans hand-made ranges of a file as one destination (for layouts the
    /// slicing rules do not express). Each range must lie in the file's data
    /// section; `shape` and `dtype` are recorded, not checked against the bytes.
    pub fn add_ranges(
        &mut self,
        file: &SafeTensorsFile,
        name: impl Into<String>,
        dtype: Dtype,
        shape: Vec<usize>,
        ranges: Vec<Range<u64>>,
    ) -> Result<usize, LoadError> {
        let name = name.into();
        let start = file.header().data_start();
        let end = start + file.header().data_len();
        if let Some(r) = ranges
            .iter()
            .find(|r| r.start > r.end || r.start < start || r.end > end)
        {
            return Err(LoadError::Plan {
                file: file.name().to_owned(),
                tensor: name,
                reason: format!(
                    "range {}..{} is outside the data section {start}..{end}",
                    r.start, r.end
                ),
            });
        }
        let f = self.add_file(file);
        Ok(self.push(f, name, dtype, shape, ranges))
    }

    fn push(
        &mut self,
        file: usize,
        name: String,
        dtype: Dtype,
        shape: Vec<usize>,
        ranges: Vec<Range<u64>>,
    ) -> usize {
        let ranges: Vec<Range<u64>> = ranges.into_iter().filter(|r| r.end > r.start).collect();
        let len = ranges.iter().map(|r| r.end - r.start).sum();
        self.tensors.push(PlannedTensor {
            name,
            file,
            dtype,
            shape,
            ranges,
            len,
        });
        self.tensors.len() - 1
    }

    /// The files read.
    pub fn files(&self) -> &[PlanFile] {
        &self.files
    }

    /// The planned tensors, in the order they were added.
    pub fn tensors(&self) -> &[PlannedTensor] {
        &self.tensors
    }

    /// An error unless `got` (of `what`: buffers, offsets, pointers) is one
    /// per planned tensor.
    pub(crate) fn check_count(&self, what: &str, got: usize) -> Result<(), LoadError> {
        if got == self.len() {
            return Ok(());
        }
        Err(LoadError::Destination {
            tensor: String::new(),
            reason: format!("{got} {what} for {} planned tensors", self.len()),
        })
    }

    /// Number of planned tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether nothing is planned.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// Total bytes loaded.
    pub fn total_bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.len).sum()
    }

    /// Offsets of each tensor in one arena, in plan order, each aligned to
    /// `align` (a power of two; 1 packs them), and the arena's size. When the
    /// plan follows file order and `align` divides the file's offsets, the
    /// arena mirrors the file and reads land in one piece.
    pub fn arena_offsets(&self, align: u64) -> (Vec<u64>, u64) {
        let align = align.max(1);
        let mut at = 0u64;
        let offsets = self
            .tensors
            .iter()
            .map(|t| {
                at = at.div_ceil(align) * align;
                let o = at;
                at += t.len;
                o
            })
            .collect();
        (offsets, at)
    }
}

/// A piece of a read: `len` bytes at `file_off` go to `dst_off` of `tensor`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Piece {
    pub tensor: u32,
    pub file_off: u64,
    pub len: u64,
    pub dst_off: u64,
}

/// One read: a contiguous file range of one file and the pieces it fills
/// (sorted by file offset, covering `start..end` exactly).
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub file: usize,
    pub start: u64,
    pub end: u64,
    pub pieces: Range<usize>,
}

/// Cuts the plan into reads: per file, ranges sorted and coalesced where
/// adjacent, then split at multiples of `chunk` (absolute file offsets, so
/// direct reads stay aligned) and after `max_pieces` pieces.
pub(crate) fn build_jobs(plan: &LoadPlan, chunk: u64, max_pieces: usize) -> (Vec<Job>, Vec<Piece>) {
    let mut all: Vec<Piece> = Vec::new();
    for (t, tensor) in plan.tensors.iter().enumerate() {
        let mut dst = 0u64;
        for r in &tensor.ranges {
            all.push(Piece {
                tensor: t as u32,
                file_off: r.start,
                len: r.end - r.start,
                dst_off: dst,
            });
            dst += r.end - r.start;
        }
    }
    all.sort_by_key(|p| (plan.tensors[p.tensor as usize].file, p.file_off));

    let mut jobs: Vec<Job> = Vec::new();
    let mut pieces: Vec<Piece> = Vec::with_capacity(all.len());
    let mut open: Option<Job> = None;
    for p in all {
        let file = plan.tensors[p.tensor as usize].file;
        let mut p = p;
        while p.len > 0 {
            let boundary = (p.file_off / chunk + 1) * chunk;
            let take = p.len.min(boundary - p.file_off);
            let part = Piece { len: take, ..p };
            let joins = open.as_ref().is_some_and(|j| {
                j.file == file
                    && j.end == part.file_off
                    && part.file_off % chunk != 0
                    && j.pieces.len() < max_pieces
            });
            if !joins {
                if let Some(j) = open.take() {
                    jobs.push(j);
                }
                open = Some(Job {
                    file,
                    start: part.file_off,
                    end: part.file_off,
                    pieces: pieces.len()..pieces.len(),
                });
            }
            let j = open.as_mut().expect("a job is open");
            j.end += take;
            pieces.push(part);
            j.pieces.end = pieces.len();
            p.file_off += take;
            p.dst_off += take;
            p.len -= take;
        }
    }
    jobs.extend(open);
    (jobs, pieces)
}
