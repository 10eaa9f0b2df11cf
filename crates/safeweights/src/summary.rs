//! What a checkpoint holds, in numbers: its files, every tensor with its
//! place in its file, totals per dtype and overall. The data behind
//! `safeweights inspect`.
//!
//! ```
//! use safeweights::{write_file, Checkpoint, Dtype, TensorRef};
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("model.safetensors");
//! let data = [0u8; 24];
//! write_file(&path, &[
//!     TensorRef { name: "w", dtype: Dtype::F32, shape: &[2, 2], data: &data[..16] },
//!     TensorRef { name: "b", dtype: Dtype::BF16, shape: &[4], data: &data[16..] },
//! ], None)?;
//! let s = Checkpoint::open(&path)?.summary();
//! assert_eq!((s.total.tensors, s.total.params, s.total.bytes), (2, 8, 24));
//! assert_eq!(s.dtypes[0].dtype, Dtype::BF16);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Serialize, Serializer};

use crate::{Checkpoint, Dtype, Metadata};

/// The summary of a checkpoint. Serializes to the fields of the
/// `inspect --json` document (see docs/cli.md), without the path.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// One file, or several (an index, or a folder of files).
    pub layout: Layout,
    /// The `__metadata__` of the (first) file.
    pub metadata: Option<Metadata>,
    /// The index's `metadata` object; `None` without an index.
    pub index_metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// Every file of the checkpoint.
    pub files: Vec<FileSummary>,
    /// Every tensor, file by file, in file order.
    pub tensors: Vec<TensorSummary>,
    /// Totals per dtype, sorted by dtype name.
    pub dtypes: Vec<DtypeTotals>,
    /// Totals.
    pub total: Totals,
}

/// How a checkpoint is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// One `.safetensors` file.
    File,
    /// An index, or a folder of several files.
    Sharded,
}

/// One file of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileSummary {
    /// File name (without its folder).
    pub file: String,
    /// Header JSON length (the N of the prefix).
    pub header_bytes: u64,
    /// Data buffer length.
    pub data_bytes: u64,
    /// Whole file length: 8 + header + data.
    pub file_bytes: u64,
    /// Number of tensors.
    pub tensors: usize,
}

/// One tensor and where it lies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TensorSummary {
    /// Name.
    pub name: String,
    /// Dtype (serialized as its name).
    #[serde(serialize_with = "dtype_name")]
    pub dtype: Dtype,
    /// Shape.
    pub shape: Vec<usize>,
    /// The file holding it (file name).
    pub file: String,
    /// Absolute offset of its first byte in the file.
    pub offset: u64,
    /// `data_offsets` as in the header (relative to the data buffer).
    pub data_offsets: [usize; 2],
    /// Byte size.
    pub bytes: u64,
    /// Element count.
    pub params: u64,
}

/// Totals for one dtype.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DtypeTotals {
    /// The dtype (serialized as its name).
    #[serde(serialize_with = "dtype_name")]
    pub dtype: Dtype,
    /// Tensors of this dtype.
    pub count: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Their elements.
    pub params: u64,
}

/// Totals of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Files.
    pub files: usize,
    /// Tensors.
    pub tensors: usize,
    /// Elements of every tensor.
    pub params: u64,
    /// Tensor bytes.
    pub bytes: u64,
    /// Bytes on disk, headers included.
    pub file_bytes: u64,
}

fn dtype_name<S: Serializer>(dtype: &Dtype, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(dtype.name())
}

/// A file's name without its folder (the whole name when it has none).
fn file_label(name: &str) -> String {
    Path::new(name)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| name.to_owned())
}

/// Summarizes an open checkpoint (headers only: no tensor bytes are read).
pub fn summarize(ckpt: &Checkpoint) -> Summary {
    let files: Vec<FileSummary> = ckpt
        .files()
        .iter()
        .map(|f| {
            let h = f.header();
            FileSummary {
                file: file_label(f.name()),
                header_bytes: h.header_len(),
                data_bytes: h.data_len(),
                file_bytes: h.data_start() + h.data_len(),
                tensors: h.len(),
            }
        })
        .collect();
    let tensors: Vec<TensorSummary> = ckpt
        .tensors()
        .map(|(f, t)| TensorSummary {
            name: t.name.clone(),
            dtype: t.dtype,
            shape: t.shape.clone(),
            file: file_label(f.name()),
            offset: f.file_range(t).start,
            data_offsets: [t.data_offsets.0, t.data_offsets.1],
            bytes: t.byte_len() as u64,
            params: t.element_count() as u64,
        })
        .collect();
    let mut by_dtype: BTreeMap<&'static str, DtypeTotals> = BTreeMap::new();
    for t in &tensors {
        let row = by_dtype.entry(t.dtype.name()).or_insert(DtypeTotals {
            dtype: t.dtype,
            count: 0,
            bytes: 0,
            params: 0,
        });
        row.count += 1;
        row.bytes += t.bytes;
        row.params += t.params;
    }
    let total = Totals {
        files: files.len(),
        tensors: tensors.len(),
        params: tensors.iter().map(|t| t.params).sum(),
        bytes: tensors.iter().map(|t| t.bytes).sum(),
        file_bytes: files.iter().map(|f| f.file_bytes).sum(),
    };
    let sharded = ckpt.index().is_some() || ckpt.files().len() > 1;
    Summary {
        layout: if sharded {
            Layout::Sharded
        } else {
            Layout::File
        },
        metadata: ckpt.metadata().cloned(),
        index_metadata: ckpt.index().map(|i| i.metadata.clone()),
        files,
        tensors,
        dtypes: by_dtype.into_values().collect(),
        total,
    }
}

impl Checkpoint {
    /// Its [`Summary`]: files, tensors, totals per dtype and overall.
    pub fn summary(&self) -> Summary {
        summarize(self)
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests build fixtures with std::fs.
mod tests {
    use super::*;
    use crate::{sharded, write_file, TensorRef};

    #[test]
    fn file_and_shards() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        let data = [0u8; 64];
        let meta: Metadata = [("format".to_owned(), "pt".to_owned())].into();
        write_file(
            &path,
            &[
                TensorRef {
                    name: "a",
                    dtype: Dtype::F32,
                    shape: &[2, 4],
                    data: &data[..32],
                },
                TensorRef {
                    name: "b",
                    dtype: Dtype::I64,
                    shape: &[2],
                    data: &data[..16],
                },
                TensorRef {
                    name: "c",
                    dtype: Dtype::F32,
                    shape: &[4],
                    data: &data[..16],
                },
            ],
            Some(&meta),
        )
        .unwrap();
        let one = Checkpoint::open(&path).unwrap();
        let s = one.summary();
        assert_eq!(s.layout, Layout::File);
        assert_eq!(s.metadata.as_ref(), Some(&meta));
        assert_eq!(s.index_metadata, None);
        assert_eq!(s.files.len(), 1);
        assert_eq!(s.files[0].file, "model.safetensors");
        assert_eq!(
            s.files[0].file_bytes,
            std::fs::metadata(&path).unwrap().len()
        );
        let names: Vec<&str> = s.tensors.iter().map(|t| t.name.as_str()).collect();
        // File order: by dtype alignment, then name.
        assert_eq!(names.len(), 3);
        for t in &s.tensors {
            assert_eq!(
                t.offset,
                s.files[0].header_bytes + 8 + t.data_offsets[0] as u64
            );
            assert_eq!(t.bytes, (t.data_offsets[1] - t.data_offsets[0]) as u64);
        }
        let f32s = s.dtypes.iter().find(|d| d.dtype == Dtype::F32).unwrap();
        assert_eq!((f32s.count, f32s.params, f32s.bytes), (2, 12, 48));
        assert_eq!(
            (
                s.total.files,
                s.total.tensors,
                s.total.params,
                s.total.bytes
            ),
            (1, 3, 14, 64)
        );
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["layout"], "file");
        assert_eq!(json["dtypes"][0]["dtype"], "F32");
        assert_eq!(json["dtypes"][1]["dtype"], "I64");

        let out = dir.path().join("shards");
        sharded::write_sharded(&one, &out, "model", Some(48), one.metadata(), &mut |_| {}).unwrap();
        let s = Checkpoint::open(&out).unwrap().summary();
        assert_eq!(s.layout, Layout::Sharded);
        assert_eq!(s.total.files, 2);
        assert_eq!(s.index_metadata.unwrap()["total_size"], 64);
        assert_eq!(s.files[0].file, "model-00001-of-00002.safetensors");
    }
}
