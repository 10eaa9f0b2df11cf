//! Slicing like Python indexing, and the byte ranges a slice needs.

use std::ops::Range;

use crate::error::SliceError;
use crate::Dtype;

/// One index of a slicing expression, per dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SliceIndex {
    /// An integer: selects one position and drops the dimension (`t[3]`, `t[-1]`).
    Select(i64),
    /// `start:stop:step`, each optional, with Python's meaning (`t[1:-1]`, `t[::2]`, `t[::-1]`).
    Range {
        /// First index (default: the beginning, or the end for negative steps).
        start: Option<i64>,
        /// One past the last index (default: the end, or before the beginning for negative steps).
        stop: Option<i64>,
        /// Step, not zero (default 1).
        step: Option<i64>,
    },
}

impl SliceIndex {
    /// The whole dimension, `:`.
    pub const FULL: SliceIndex = SliceIndex::Range {
        start: None,
        stop: None,
        step: None,
    };

    /// `start..stop` with step 1.
    pub fn range(start: i64, stop: i64) -> SliceIndex {
        SliceIndex::Range {
            start: Some(start),
            stop: Some(stop),
            step: None,
        }
    }
}

/// A dimension's selection: `count` positions from `start`, `step` apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DimSelection {
    /// First position.
    pub start: usize,
    /// Distance between positions (negative walks backwards).
    pub step: i64,
    /// Number of positions.
    pub count: usize,
    /// Whether the dimension survives in the result (false for an integer index).
    pub keep: bool,
    /// Size of the source dimension.
    pub size: usize,
}

/// A slicing expression resolved against a shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedSlice {
    dims: Vec<DimSelection>,
    shape: Vec<usize>,
}

impl ResolvedSlice {
    /// Resolves `indices` against `shape` with Python's rules. Missing trailing
    /// indices select whole dimensions.
    pub fn new(shape: &[usize], indices: &[SliceIndex]) -> Result<Self, SliceError> {
        if indices.len() > shape.len() {
            return Err(SliceError::TooManyIndices {
                given: indices.len(),
                ndim: shape.len(),
            });
        }
        let mut dims = Vec::with_capacity(shape.len());
        for (dim, &size) in shape.iter().enumerate() {
            let index = indices.get(dim).copied().unwrap_or(SliceIndex::FULL);
            dims.push(resolve_dim(index, dim, size)?);
        }
        let shape = dims.iter().filter(|d| d.keep).map(|d| d.count).collect();
        Ok(ResolvedSlice { dims, shape })
    }

    /// The shape of the result.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Per-dimension selections.
    pub fn dims(&self) -> &[DimSelection] {
        &self.dims
    }

    /// Number of elements selected.
    pub fn element_count(&self) -> Option<usize> {
        self.dims
            .iter()
            .try_fold(1usize, |acc, d| acc.checked_mul(d.count))
    }

    /// The byte ranges, relative to the tensor's first byte, that hold the
    /// selected elements, in result order and coalesced where adjacent. Reading
    /// them one after the other yields the result's bytes.
    pub fn byte_ranges(&self, dtype: Dtype) -> Result<Vec<Range<usize>>, SliceError> {
        let bits = dtype.bits();
        let mut out: Vec<Range<usize>> = Vec::new();
        let mut bad_alignment = false;
        self.element_runs(|start, len| {
            let (Some(b0), Some(b1)) = (
                start.checked_mul(bits),
                start.checked_add(len).and_then(|e| e.checked_mul(bits)),
            ) else {
                return Err(SliceError::Overflow);
            };
            if b0 % 8 != 0 || b1 % 8 != 0 {
                bad_alignment = true;
            }
            let range = b0 / 8..b1 / 8;
            match out.last_mut() {
                Some(last) if last.end == range.start => last.end = range.end,
                _ => out.push(range),
            }
            Ok(())
        })?;
        if bad_alignment {
            return Err(SliceError::NotByteAligned { dtype });
        }
        Ok(out)
    }

    /// Calls `emit(first_element, element_count)` for each run of contiguous
    /// elements, in result order (element offsets in the source tensor).
    fn element_runs(
        &self,
        mut emit: impl FnMut(usize, usize) -> Result<(), SliceError>,
    ) -> Result<(), SliceError> {
        let dims = &self.dims;
        if dims.iter().any(|d| d.count == 0) {
            return Ok(());
        }
        // Row-major strides, in elements, of the source.
        let mut strides = vec![1usize; dims.len()];
        for i in (0..dims.len().saturating_sub(1)).rev() {
            let size = dims[i + 1].size;
            strides[i] = strides[i + 1]
                .checked_mul(size)
                .ok_or(SliceError::Overflow)?;
        }
        // The innermost dimensions taken whole form one block; the first
        // partial dimension with step 1 extends it.
        let mut k = dims.len();
        let mut run = 1usize;
        while k > 0 && dims[k - 1].is_whole() {
            run = run
                .checked_mul(dims[k - 1].count)
                .ok_or(SliceError::Overflow)?;
            k -= 1;
        }
        let mut base = 0usize;
        if k > 0 && dims[k - 1].step == 1 {
            run = run
                .checked_mul(dims[k - 1].count)
                .ok_or(SliceError::Overflow)?;
            base = dims[k - 1]
                .start
                .checked_mul(strides[k - 1])
                .ok_or(SliceError::Overflow)?;
            k -= 1;
        }
        let outer = &dims[..k];
        let mut counter = vec![0usize; k];
        loop {
            let mut offset = base;
            for ((d, &i), &stride) in outer.iter().zip(&counter).zip(&strides) {
                let pos = d.position(i).ok_or(SliceError::Overflow)?;
                offset = pos
                    .checked_mul(stride)
                    .and_then(|p| p.checked_add(offset))
                    .ok_or(SliceError::Overflow)?;
            }
            emit(offset, run)?;
            // Advance the odometer, innermost first.
            let mut d = k;
            loop {
                if d == 0 {
                    return Ok(());
                }
                d -= 1;
                counter[d] += 1;
                if counter[d] < outer[d].count {
                    break;
                }
                counter[d] = 0;
            }
        }
    }
}

impl DimSelection {
    fn new(start: usize, step: i64, count: usize, keep: bool, size: usize) -> Self {
        DimSelection {
            start,
            step,
            count,
            keep,
            size,
        }
    }

    fn is_whole(&self) -> bool {
        self.start == 0 && self.step == 1 && self.count == self.size
    }

    fn position(&self, i: usize) -> Option<usize> {
        let delta = (i as i128).checked_mul(self.step as i128)?;
        usize::try_from(self.start as i128 + delta).ok()
    }
}

fn resolve_dim(index: SliceIndex, dim: usize, size: usize) -> Result<DimSelection, SliceError> {
    let len = size as i128;
    match index {
        SliceIndex::Select(i) => {
            let pos = if i < 0 { i as i128 + len } else { i as i128 };
            if pos < 0 || pos >= len {
                return Err(SliceError::IndexOutOfRange {
                    index: i,
                    dim,
                    size,
                });
            }
            Ok(DimSelection::new(pos as usize, 1, 1, false, size))
        }
        SliceIndex::Range { start, stop, step } => {
            let step = step.unwrap_or(1);
            if step == 0 {
                return Err(SliceError::ZeroStep { dim });
            }
            let step_w = step as i128;
            // CPython's PySlice_AdjustIndices.
            let adjust = |v: Option<i64>, default: i128| -> i128 {
                match v {
                    None => default,
                    Some(v) => {
                        let mut v = v as i128;
                        if v < 0 {
                            v += len;
                            if v < 0 {
                                v = if step < 0 { -1 } else { 0 };
                            }
                        } else if v >= len {
                            v = if step < 0 { len - 1 } else { len };
                        }
                        v
                    }
                }
            };
            let (start, stop) = if step > 0 {
                (adjust(start, 0), adjust(stop, len))
            } else {
                (adjust(start, len - 1), adjust(stop, -1))
            };
            let count = if step > 0 {
                if stop > start {
                    (stop - start - 1) / step_w + 1
                } else {
                    0
                }
            } else if start > stop {
                (start - stop - 1) / (-step_w) + 1
            } else {
                0
            };
            let first = if count == 0 { 0 } else { start as usize };
            Ok(DimSelection::new(first, step, count as usize, true, size))
        }
    }
}
