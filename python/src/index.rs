//! Python indexing expressions (`t[1, ::2, -1]`, `t[..., 0]`) as the core's
//! `SliceIndex` list.

use pyo3::exceptions::PyIndexError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyEllipsis, PyFloat, PySlice, PyTuple};
use safeweights::SliceIndex;

enum Item {
    Index(SliceIndex),
    Ellipsis,
}

fn opt_index(obj: Bound<'_, PyAny>) -> PyResult<Option<i64>> {
    if obj.is_none() {
        Ok(None)
    } else {
        Ok(Some(obj.extract::<i64>()?))
    }
}

fn item(obj: &Bound<'_, PyAny>) -> PyResult<Item> {
    if obj.is(PyEllipsis::get(obj.py())) {
        return Ok(Item::Ellipsis);
    }
    if let Ok(slice) = obj.downcast::<PySlice>() {
        return Ok(Item::Index(SliceIndex::Range {
            start: opt_index(slice.getattr("start")?)?,
            stop: opt_index(slice.getattr("stop")?)?,
            step: opt_index(slice.getattr("step")?)?,
        }));
    }
    let integer_like = !obj.is_none()
        && !obj.is_instance_of::<PyFloat>()
        && !obj.is_instance_of::<PyBool>()
        && obj.hasattr("__index__")?;
    if integer_like {
        return Ok(Item::Index(SliceIndex::Select(obj.extract::<i64>()?)));
    }
    Err(PyIndexError::new_err(format!(
        "only integers, slices (`:`) and ellipsis (`...`) are valid indices (got {})",
        obj.get_type().name()?
    )))
}

/// Converts an index expression for a tensor of `ndim` dimensions.
pub fn parse(index: &Bound<'_, PyAny>, ndim: usize) -> PyResult<Vec<SliceIndex>> {
    let items: Vec<Item> = match index.downcast::<PyTuple>() {
        Ok(tuple) => tuple.iter().map(|o| item(&o)).collect::<PyResult<_>>()?,
        Err(_) => vec![item(index)?],
    };
    let ellipses = items.iter().filter(|i| matches!(i, Item::Ellipsis)).count();
    if ellipses > 1 {
        return Err(PyIndexError::new_err(
            "an index can only have a single ellipsis ('...')",
        ));
    }
    let given = items.len() - ellipses;
    let mut out = Vec::with_capacity(ndim.max(given));
    for it in items {
        match it {
            Item::Index(i) => out.push(i),
            Item::Ellipsis => out.extend(std::iter::repeat_n(
                SliceIndex::FULL,
                ndim.saturating_sub(given),
            )),
        }
    }
    Ok(out)
}
