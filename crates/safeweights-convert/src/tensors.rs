//! The contract between readers and writers: a list of tensors ([`Entry`])
//! whose little-endian C-order bytes can be streamed ([`Source`]).

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
pub(crate) trait Source {
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
