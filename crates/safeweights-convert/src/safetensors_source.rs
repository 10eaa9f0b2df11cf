//! One or more safetensors files as a tensor source (read back after a
//! conversion, or converted to another format).

use std::io::Write;
use std::path::{Path, PathBuf};

use safeweights::SafeTensorsFile;

use crate::error::{ConvertError, Result};
use crate::source::{check_unique, Entry, TensorSource};

/// One or more safetensors files.
pub(crate) struct SafetensorsSource {
    files: Vec<SafeTensorsFile>,
    paths: Vec<PathBuf>,
    entries: Vec<Entry>,
    /// (file index, byte range in the file)
    loc: Vec<(usize, std::ops::Range<u64>)>,
}

impl SafetensorsSource {
    pub fn open(paths: &[PathBuf]) -> Result<Self> {
        let mut files = Vec::new();
        let mut entries = Vec::new();
        let mut loc = Vec::new();
        for (fi, p) in paths.iter().enumerate() {
            // positioned reads, not a memory map: resident memory stays small
            let f = safeweights::OpenOptions::new().pread().open(p)?;
            let mut infos: Vec<_> = f.header().tensors().to_vec();
            infos.sort_by_key(|t| t.data_offsets.0);
            for t in infos {
                loc.push((fi, f.file_range(&t)));
                entries.push(Entry {
                    bytes: t.byte_len() as u64,
                    name: t.name,
                    dtype: t.dtype,
                    shape: t.shape,
                });
            }
            files.push(f);
        }
        if let Some(p) = paths.first() {
            check_unique(p, &entries)?;
        }
        Ok(SafetensorsSource {
            files,
            paths: paths.to_vec(),
            entries,
            loc,
        })
    }

    pub fn metadata(&self) -> Option<&safeweights::Metadata> {
        self.files.first().and_then(|f| f.header().metadata())
    }
}

const CHUNK: usize = 8 << 20;

impl TensorSource for SafetensorsSource {
    fn entries(&self) -> &[Entry] {
        &self.entries
    }

    fn copy_to(&self, i: usize, w: &mut dyn Write) -> Result<u64> {
        let (fi, range) = self.loc[i].clone();
        let mut buf = vec![0u8; CHUNK.min((range.end - range.start) as usize)];
        let mut at = range.start;
        while at < range.end {
            let n = ((range.end - at) as usize).min(buf.len());
            self.files[fi].read_at(at, &mut buf[..n])?;
            w.write_all(&buf[..n])
                .map_err(crate::error::io_err(&self.paths[fi]))?;
            at += n as u64;
        }
        Ok(range.end - range.start)
    }

    fn read_at(&self, i: usize, offset: u64, buf: &mut [u8]) -> Result<()> {
        let (fi, range) = &self.loc[i];
        if offset + buf.len() as u64 > range.end - range.start {
            return Err(ConvertError::Verification {
                file: self.paths[*fi].clone(),
                tensor: self.entries[i].name.clone(),
                reason: "read past the end of the tensor".into(),
            });
        }
        Ok(self.files[*fi].read_at(range.start + offset, buf)?)
    }

    fn file(&self, i: usize) -> &Path {
        &self.paths[self.loc[i].0]
    }
}
