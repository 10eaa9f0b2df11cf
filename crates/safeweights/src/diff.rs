//! Comparing two checkpoints tensor by tensor.
//!
//! [`compare`] matches tensors by name, reports names found on one side only,
//! dtype and shape changes, and, for tensors with the same dtype and shape,
//! whether their bytes are equal. Bytes are streamed in chunks of [`CHUNK`]
//! bytes from both sides, so checkpoints larger than memory compare in
//! constant memory; a chunk that differs is decoded to count the differing
//! values and measure the largest difference.
//!
//! ```
//! use safeweights::{diff, write_file, Checkpoint, Dtype, TensorRef};
//!
//! let dir = tempfile::tempdir()?;
//! let (a, b) = (dir.path().join("a.safetensors"), dir.path().join("b.safetensors"));
//! let one: Vec<u8> = [1.0f32, 2.0].iter().flat_map(|x| x.to_le_bytes()).collect();
//! let two: Vec<u8> = [1.0f32, 2.5].iter().flat_map(|x| x.to_le_bytes()).collect();
//! write_file(&a, &[TensorRef { name: "w", dtype: Dtype::F32, shape: &[2], data: &one }], None)?;
//! write_file(&b, &[TensorRef { name: "w", dtype: Dtype::F32, shape: &[2], data: &two }], None)?;
//!
//! let c = diff::compare(&Checkpoint::open(&a)?, &Checkpoint::open(&b)?, &mut |_| {})?;
//! assert!(!c.equal);
//! assert_eq!(c.changed[0].differing_values, Some(1));
//! assert_eq!(c.changed[0].max_abs_diff, Some(0.5));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeSet;

use serde::{Serialize, Serializer};

use crate::{decode, Checkpoint, Dtype, DtypeKind, Metadata, Result, SafeTensorsFile, TensorInfo};

/// Bytes compared at a time: a multiple of every element group (1, 2, 3, 4, 8).
pub const CHUNK: usize = 3 << 20;

/// The result of [`compare`]. Serializes to the fields of the `diff --json`
/// document (see docs/cli.md), without the two labels.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// Whether everything (metadata, names, dtypes, shapes, bytes) is equal.
    pub equal: bool,
    /// The metadata of each side (first file's).
    pub metadata: MetadataDiff,
    /// Tensors only in A, sorted.
    pub only_in_a: Vec<String>,
    /// Tensors only in B, sorted.
    pub only_in_b: Vec<String>,
    /// Tensors in both.
    pub compared: usize,
    /// Tensors in both with the same dtype, shape and bytes.
    pub identical: usize,
    /// Tensors in both that differ, sorted by name.
    pub changed: Vec<TensorChange>,
}

/// Metadata on both sides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MetadataDiff {
    /// Whether it is the same.
    pub equal: bool,
    /// A's.
    pub a: Option<Metadata>,
    /// B's.
    pub b: Option<Metadata>,
}

/// What differs about a tensor found in both checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// The dtypes differ (shapes are equal).
    Dtype,
    /// The shapes differ (dtypes are equal).
    Shape,
    /// Both the dtypes and the shapes differ.
    DtypeAndShape,
    /// Same dtype and shape, different bytes.
    Values,
}

impl Change {
    /// The stable name: `dtype`, `shape`, `dtype_and_shape` or `values`.
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Dtype => "dtype",
            Change::Shape => "shape",
            Change::DtypeAndShape => "dtype_and_shape",
            Change::Values => "values",
        }
    }
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One tensor in both checkpoints that differs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TensorChange {
    /// Its name.
    pub name: String,
    /// What differs.
    pub change: Change,
    /// Dtype in A and in B (serialized as names).
    #[serde(serialize_with = "dtype_names")]
    pub dtype: [Dtype; 2],
    /// Shape in A and in B.
    pub shape: [Vec<usize>; 2],
    /// For [`Change::Values`]: how many decoded values differ (complex: per
    /// component; NaN equals NaN and -0 equals +0 here, so this can be 0 for
    /// bitwise different tensors).
    pub differing_values: Option<u64>,
    /// For [`Change::Values`] of float and complex dtypes: the largest
    /// |a - b| over values finite on both sides (`None` otherwise).
    pub max_abs_diff: Option<f64>,
    /// For [`Change::Values`] of float and complex dtypes: differing values
    /// where a side is inf or NaN.
    pub nonfinite_mismatches: Option<u64>,
}

fn dtype_names<S: Serializer>(dtypes: &[Dtype; 2], s: S) -> std::result::Result<S::Ok, S::Error> {
    [dtypes[0].name(), dtypes[1].name()].serialize(s)
}

#[derive(Default)]
struct ValueStats {
    differing: u64,
    max_abs: f64,
    nonfinite: u64,
}

/// Compares two checkpoints, streaming each common tensor in chunks.
/// `progress` receives the bytes read from each side (both sides counted).
///
/// # Errors
/// A read of either checkpoint that fails.
pub fn compare(
    a: &Checkpoint,
    b: &Checkpoint,
    progress: &mut dyn FnMut(u64),
) -> Result<Comparison> {
    let names_a: BTreeSet<&str> = a.names().collect();
    let names_b: BTreeSet<&str> = b.names().collect();
    let only_in_a: Vec<String> = names_a
        .difference(&names_b)
        .map(|s| s.to_string())
        .collect();
    let only_in_b: Vec<String> = names_b
        .difference(&names_a)
        .map(|s| s.to_string())
        .collect();
    let mut changed = Vec::new();
    let mut compared = 0;
    let mut identical = 0;
    for name in names_a.intersection(&names_b) {
        compared += 1;
        let (fa, ia) = (a.file_of(name)?, a.info(name)?);
        let (fb, ib) = (b.file_of(name)?, b.info(name)?);
        let change = match (ia.dtype == ib.dtype, ia.shape == ib.shape) {
            (false, false) => Some(Change::DtypeAndShape),
            (false, true) => Some(Change::Dtype),
            (true, false) => Some(Change::Shape),
            (true, true) => None,
        };
        let mut row = TensorChange {
            name: name.to_string(),
            change: change.unwrap_or(Change::Values),
            dtype: [ia.dtype, ib.dtype],
            shape: [ia.shape.clone(), ib.shape.clone()],
            differing_values: None,
            max_abs_diff: None,
            nonfinite_mismatches: None,
        };
        if change.is_some() {
            changed.push(row);
            continue;
        }
        match compare_values(fa, ia, fb, ib, progress)? {
            None => identical += 1,
            Some(stats) => {
                row.differing_values = Some(stats.differing);
                if matches!(ia.dtype.kind(), DtypeKind::Float | DtypeKind::Complex) {
                    row.max_abs_diff = Some(stats.max_abs);
                    row.nonfinite_mismatches = Some(stats.nonfinite);
                }
                changed.push(row);
            }
        }
    }
    let metadata = MetadataDiff {
        equal: a.metadata() == b.metadata(),
        a: a.metadata().cloned(),
        b: b.metadata().cloned(),
    };
    Ok(Comparison {
        equal: metadata.equal && only_in_a.is_empty() && only_in_b.is_empty() && changed.is_empty(),
        metadata,
        only_in_a,
        only_in_b,
        compared,
        identical,
        changed,
    })
}

/// `None` when bitwise equal; otherwise statistics over decoded values.
fn compare_values(
    fa: &SafeTensorsFile,
    ia: &TensorInfo,
    fb: &SafeTensorsFile,
    ib: &TensorInfo,
    progress: &mut dyn FnMut(u64),
) -> Result<Option<ValueStats>> {
    let (ra, rb) = (fa.file_range(ia), fb.file_range(ib));
    // Same dtype and shape, so both ranges have this length.
    let len = ra.end.saturating_sub(ra.start);
    let size = usize::try_from(len).map_or(CHUNK, |len| len.min(CHUNK));
    let (mut buf_a, mut buf_b) = (vec![0u8; size], vec![0u8; size]);
    let (mut va, mut vb) = (Vec::new(), Vec::new());
    let mut stats: Option<ValueStats> = None;
    let mut at = 0u64;
    while at < len {
        // `size` bounds n, so it fits in usize.
        let n = usize::try_from(len - at).map_or(size, |left| left.min(size));
        let (Some(ca), Some(cb)) = (buf_a.get_mut(..n), buf_b.get_mut(..n)) else {
            break;
        };
        fa.read_at(ra.start + at, ca)?;
        fb.read_at(rb.start + at, cb)?;
        progress(2 * n as u64);
        at += n as u64;
        if ca == cb {
            continue;
        }
        let stats = stats.get_or_insert_with(ValueStats::default);
        va.clear();
        vb.clear();
        // Chunks are whole element groups, so decoding cannot fail; if it
        // somehow did, the tensor is still reported as different.
        if decode::decode_into(ia.dtype, ca, &mut va).is_err()
            || decode::decode_into(ia.dtype, cb, &mut vb).is_err()
        {
            continue;
        }
        for (&x, &y) in va.iter().zip(&vb) {
            if x == y || (x.is_nan() && y.is_nan()) {
                continue;
            }
            stats.differing += 1;
            if x.is_finite() && y.is_finite() {
                stats.max_abs = stats.max_abs.max((x - y).abs());
            } else {
                stats.nonfinite += 1;
            }
        }
    }
    Ok(stats)
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests build fixtures with std::fs.
mod tests {
    use std::path::Path;

    use super::*;
    use crate::{write_file, TensorRef};

    fn f32s(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    fn write(path: &Path, tensors: &[(&str, Dtype, &[usize], Vec<u8>)], meta: Option<&Metadata>) {
        let refs: Vec<TensorRef<'_>> = tensors
            .iter()
            .map(|(name, dtype, shape, data)| TensorRef {
                name,
                dtype: *dtype,
                shape,
                data,
            })
            .collect();
        write_file(path, &refs, meta).unwrap();
    }

    fn pair(
        a: &[(&str, Dtype, &[usize], Vec<u8>)],
        b: &[(&str, Dtype, &[usize], Vec<u8>)],
    ) -> Comparison {
        let dir = tempfile::tempdir().unwrap();
        let (pa, pb) = (
            dir.path().join("a.safetensors"),
            dir.path().join("b.safetensors"),
        );
        write(&pa, a, None);
        write(&pb, b, None);
        let (ca, cb) = (
            Checkpoint::open(&pa).unwrap(),
            Checkpoint::open(&pb).unwrap(),
        );
        let mut read = 0;
        let c = compare(&ca, &cb, &mut |n| read += n).unwrap();
        // Every byte of every tensor compared on both sides is counted.
        assert!(read <= 2 * ca.total_size().min(cb.total_size()));
        c
    }

    #[test]
    fn equal_checkpoints() {
        let t = [("w", Dtype::F32, &[2][..], f32s(&[1.0, 2.0]))];
        let c = pair(&t, &t);
        assert!(c.equal);
        assert_eq!((c.compared, c.identical), (1, 1));
        assert!(c.changed.is_empty() && c.only_in_a.is_empty() && c.only_in_b.is_empty());
    }

    #[test]
    fn names_dtypes_shapes() {
        let a = [
            ("only_a", Dtype::F32, &[1][..], f32s(&[0.0])),
            ("d", Dtype::F32, &[1][..], f32s(&[0.0])),
            ("s", Dtype::F32, &[2][..], f32s(&[0.0, 0.0])),
            ("ds", Dtype::F32, &[2][..], f32s(&[0.0, 0.0])),
        ];
        let b = [
            ("d", Dtype::I32, &[1][..], vec![0; 4]),
            ("s", Dtype::F32, &[1, 2][..], f32s(&[0.0, 0.0])),
            ("ds", Dtype::I32, &[1][..], vec![0; 4]),
            ("only_b", Dtype::F32, &[1][..], f32s(&[0.0])),
        ];
        let c = pair(&a, &b);
        assert!(!c.equal);
        assert_eq!(c.only_in_a, ["only_a"]);
        assert_eq!(c.only_in_b, ["only_b"]);
        assert_eq!((c.compared, c.identical), (3, 0));
        let kinds: Vec<(&str, Change)> = c
            .changed
            .iter()
            .map(|t| (t.name.as_str(), t.change))
            .collect();
        assert_eq!(
            kinds,
            [
                ("d", Change::Dtype),
                ("ds", Change::DtypeAndShape),
                ("s", Change::Shape)
            ]
        );
        assert_eq!(c.changed[0].dtype, [Dtype::F32, Dtype::I32]);
        let json = serde_json::to_value(&c.changed[0]).unwrap();
        assert_eq!(json["dtype"], serde_json::json!(["F32", "I32"]));
        assert_eq!(json["change"], "dtype");
        assert_eq!(c.changed[0].differing_values, None);
    }

    #[test]
    fn value_statistics() {
        let a = [
            (
                "f",
                Dtype::F32,
                &[5][..],
                f32s(&[1.0, 2.0, 0.0, f32::NAN, f32::INFINITY]),
            ),
            (
                "i",
                Dtype::I32,
                &[2][..],
                [1i32, 2].iter().flat_map(|x| x.to_le_bytes()).collect(),
            ),
            ("z", Dtype::F32, &[1][..], f32s(&[0.0])),
        ];
        let b = [
            (
                "f",
                Dtype::F32,
                &[5][..],
                f32s(&[1.0, 4.5, -0.0, f32::NAN, 3.0]),
            ),
            (
                "i",
                Dtype::I32,
                &[2][..],
                [1i32, 7].iter().flat_map(|x| x.to_le_bytes()).collect(),
            ),
            ("z", Dtype::F32, &[1][..], f32s(&[-0.0])),
        ];
        let c = pair(&a, &b);
        let f = &c.changed[0];
        assert_eq!(f.change, Change::Values);
        // 2.0 vs 4.5 (finite) and inf vs 3.0 (non-finite); -0 == +0, NaN == NaN.
        assert_eq!(f.differing_values, Some(2));
        assert_eq!(f.max_abs_diff, Some(2.5));
        assert_eq!(f.nonfinite_mismatches, Some(1));
        // Integers: a count, no float statistics.
        let i = &c.changed[1];
        assert_eq!(
            (i.differing_values, i.max_abs_diff, i.nonfinite_mismatches),
            (Some(1), None, None)
        );
        // Bitwise different, numerically equal.
        assert_eq!(c.changed[2].differing_values, Some(0));
        assert_eq!(c.identical, 0);
    }

    #[test]
    fn streams_across_chunks() {
        // Larger than one chunk; one value differs in the second chunk.
        let n = CHUNK / 4 + 10;
        let mut x = vec![0.5f32; n];
        let a = [("big", Dtype::F32, &[n][..], f32s(&x))];
        x[n - 1] = 1.5;
        let b = [("big", Dtype::F32, &[n][..], f32s(&x))];
        let c = pair(&a, &b);
        assert_eq!(c.changed[0].differing_values, Some(1));
        assert_eq!(c.changed[0].max_abs_diff, Some(1.0));
    }

    #[test]
    fn metadata_and_json() {
        let dir = tempfile::tempdir().unwrap();
        let (pa, pb) = (
            dir.path().join("a.safetensors"),
            dir.path().join("b.safetensors"),
        );
        let t = [("w", Dtype::BF16, &[1][..], vec![0x80, 0x3f])];
        let meta: Metadata = [("format".to_owned(), "pt".to_owned())].into();
        write(&pa, &t, Some(&meta));
        write(&pb, &t, None);
        let c = compare(
            &Checkpoint::open(&pa).unwrap(),
            &Checkpoint::open(&pb).unwrap(),
            &mut |_| {},
        )
        .unwrap();
        assert!(!c.equal && !c.metadata.equal);
        assert_eq!(c.metadata.a.as_ref(), Some(&meta));
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["metadata"]["a"]["format"], "pt");
        assert_eq!(json["metadata"]["b"], serde_json::Value::Null);
        assert_eq!(Change::DtypeAndShape.to_string(), "dtype_and_shape");
        assert_eq!(
            serde_json::to_value(Change::DtypeAndShape).unwrap(),
            "dtype_and_shape"
        );
    }
}
