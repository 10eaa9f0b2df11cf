//! `diff` and `merge`: `safeweights::diff::compare` and
//! `safeweights::sharded::merge` on checkpoints named by path, with the
//! results as dicts (the CLI's `diff --json` and `merge --json` documents).

use std::path::PathBuf;

use pyo3::exceptions::{PyFileExistsError, PyIsADirectoryError};
use pyo3::prelude::*;
use safeweights::diff::Comparison;
use safeweights::{Checkpoint, OpenOptions};
use serde::Serialize;

use crate::errors::{self, Context};

/// The dict returned by `diff`: the two paths, then the comparison.
#[derive(Serialize)]
struct DiffReport {
    a: String,
    b: String,
    #[serde(flatten)]
    comparison: Comparison,
}

/// The dict returned by `merge`.
#[derive(Serialize)]
struct MergeReport {
    source: String,
    output: String,
    shards: usize,
    tensors: usize,
    total_size: u64,
    file_bytes: u64,
}

/// Which step failed, for the exception raised.
enum Failure {
    Open(safeweights::Error),
    Read(safeweights::Error),
    Write(safeweights::Error),
}

impl Failure {
    fn into_py(self, py: Python<'_>) -> PyErr {
        match self {
            Failure::Open(e) => errors::to_py(py, e, Context::Open),
            Failure::Read(e) => errors::to_py(py, e, Context::Read),
            Failure::Write(e) => errors::to_py(py, e, Context::Serialize),
        }
    }
}

fn open(path: &PathBuf, lenient: bool) -> Result<Checkpoint, Failure> {
    Checkpoint::open_with(path, &OpenOptions::new().lenient(lenient)).map_err(Failure::Open)
}

/// Compares two checkpoints (files, folders of shards or index files) tensor
/// by tensor, streaming the bytes, and returns a dict: `a`, `b`, `equal`,
/// `metadata` (`equal`, `a`, `b`), `only_in_a`, `only_in_b`, `compared`,
/// `identical` and `changed` (dicts with `name`, `change` (`"dtype"`,
/// `"shape"`, `"dtype_and_shape"` or `"values"`), `dtype`, `shape`,
/// `differing_values`, `max_abs_diff`, `nonfinite_mismatches`).
#[pyfunction]
#[pyo3(signature = (a, b, *, lenient = false))]
pub fn diff(py: Python<'_>, a: PathBuf, b: PathBuf, lenient: bool) -> PyResult<PyObject> {
    let result = py.allow_threads(|| {
        let (ca, cb) = (open(&a, lenient)?, open(&b, lenient)?);
        safeweights::diff::compare(&ca, &cb, &mut |_| {}).map_err(Failure::Read)
    });
    let comparison = result.map_err(|f| f.into_py(py))?;
    let report = DiffReport {
        a: a.display().to_string(),
        b: b.display().to_string(),
        comparison,
    };
    crate::pyjson::serialize_to_py(py, &report)
}

/// Writes every tensor of a checkpoint (usually sharded: a folder or an
/// index) into one safetensors file at `output`, keeping the first shard's
/// metadata, atomically. Refuses to replace an existing file unless
/// `overwrite`. Returns a dict: `source`, `output`, `shards`, `tensors`,
/// `total_size`, `file_bytes`.
#[pyfunction]
#[pyo3(signature = (path, output, *, overwrite = false, lenient = false))]
pub fn merge(
    py: Python<'_>,
    path: PathBuf,
    output: PathBuf,
    overwrite: bool,
    lenient: bool,
) -> PyResult<PyObject> {
    if output.is_dir() {
        return Err(PyIsADirectoryError::new_err(format!(
            "{}: is a folder; give the file to write, e.g. {}",
            output.display(),
            output.join("model.safetensors").display()
        )));
    }
    if output.exists() && !overwrite {
        return Err(PyFileExistsError::new_err(format!(
            "{}: already exists; pass overwrite=True to replace it (it is replaced atomically)",
            output.display()
        )));
    }
    let result = py.allow_threads(|| {
        let src = open(&path, lenient)?;
        let options = safeweights::WriteOptions::new().replace(overwrite);
        let file_bytes = src
            .merge_into_with(&output, &options, &mut |_| {})
            .map_err(Failure::Write)?;
        Ok(MergeReport {
            source: path.display().to_string(),
            output: output.display().to_string(),
            shards: src.files().len(),
            tensors: src.len(),
            total_size: src.total_size(),
            file_bytes,
        })
    });
    let report = result.map_err(|f: Failure| f.into_py(py))?;
    crate::pyjson::serialize_to_py(py, &report)
}
