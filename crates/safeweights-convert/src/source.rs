//! Tensor sources: anything whose tensors can be listed and streamed (the
//! [`TensorSource`] trait), and several sources seen as one. The sources
//! themselves: `torch_source.rs` (PyTorch checkpoints), `npy_source.rs`
//! (`.npy`/`.npz`), `safetensors_source.rs`.

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

use safeweights::Dtype;

use crate::error::{ConvertError, Result};

/// One tensor of a source, as it will be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub bytes: u64,
}

/// A list of tensors whose little-endian C-order bytes can be streamed.
pub(crate) trait TensorSource {
    fn entries(&self) -> &[Entry];
    /// Writes tensor `i`'s bytes to `w`; returns the count.
    fn copy_to(&self, i: usize, w: &mut dyn Write) -> Result<u64>;
    /// Reads `buf.len()` bytes of tensor `i` from byte `offset`.
    fn read_at(&self, i: usize, offset: u64, buf: &mut [u8]) -> Result<()>;
    /// The file tensor `i` comes from.
    fn file(&self, i: usize) -> &Path;
}

pub(crate) fn check_unique(file: &Path, entries: &[Entry]) -> Result<()> {
    let mut seen = HashSet::new();
    for e in entries {
        if !seen.insert(e.name.as_str()) {
            return Err(ConvertError::DuplicateName {
                file: file.to_path_buf(),
                name: e.name.clone(),
            });
        }
    }
    Ok(())
}

/// Several sources seen as one (the shards of a model folder).
pub(crate) struct MultiSource<S> {
    pub parts: Vec<S>,
    entries: Vec<Entry>,
    map: Vec<(usize, usize)>,
}

impl<S: TensorSource> MultiSource<S> {
    pub fn new(parts: Vec<S>, folder: &Path) -> Result<Self> {
        let mut entries = Vec::new();
        let mut map = Vec::new();
        for (p, s) in parts.iter().enumerate() {
            for (i, e) in s.entries().iter().enumerate() {
                entries.push(e.clone());
                map.push((p, i));
            }
        }
        check_unique(folder, &entries)?;
        Ok(MultiSource {
            parts,
            entries,
            map,
        })
    }

    /// Index range of the entries of part `p`.
    pub fn part_range(&self, p: usize) -> Vec<usize> {
        (0..self.map.len())
            .filter(|&i| self.map[i].0 == p)
            .collect()
    }
}

impl<S: TensorSource> TensorSource for MultiSource<S> {
    fn entries(&self) -> &[Entry] {
        &self.entries
    }
    fn copy_to(&self, i: usize, w: &mut dyn Write) -> Result<u64> {
        let (p, j) = self.map[i];
        self.parts[p].copy_to(j, w)
    }
    fn read_at(&self, i: usize, offset: u64, buf: &mut [u8]) -> Result<()> {
        let (p, j) = self.map[i];
        self.parts[p].read_at(j, offset, buf)
    }
    fn file(&self, i: usize) -> &Path {
        let (p, j) = self.map[i];
        self.parts[p].file(j)
    }
}
