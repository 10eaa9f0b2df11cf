//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::process::Command;

use safeweights::{Dtype, TensorRef};

/// An owned tensor for tests.
#[derive(Debug, Clone)]
pub struct Owned {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

impl Owned {
    pub fn new(name: &str, dtype: Dtype, shape: &[usize], data: Vec<u8>) -> Self {
        Owned {
            name: name.to_owned(),
            dtype,
            shape: shape.to_vec(),
            data,
        }
    }

    /// A tensor filled with a counting byte pattern.
    pub fn counting(name: &str, dtype: Dtype, shape: &[usize]) -> Self {
        let n = safeweights::element_count(shape).unwrap();
        let len = dtype.byte_size(n).unwrap();
        let data = (0..len).map(|i| (i * 7 + name.len()) as u8).collect();
        Owned::new(name, dtype, shape, data)
    }

    pub fn as_ref(&self) -> TensorRef<'_> {
        TensorRef {
            name: &self.name,
            dtype: self.dtype,
            shape: &self.shape,
            data: &self.data,
        }
    }
}

pub fn refs(tensors: &[Owned]) -> Vec<TensorRef<'_>> {
    tensors.iter().map(Owned::as_ref).collect()
}

/// Builds a file image from a raw JSON header and a data buffer, without any
/// validation (for malformed files).
pub fn raw_file(json: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(json.as_bytes());
    out.extend_from_slice(data);
    out
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_owned()
}

/// The Python interpreter with the reference `safetensors` installed, or
/// `None` (the test is skipped) unless `SAFEWEIGHTS_REQUIRE_PYTHON=1`, in which
/// case a missing reference fails the test.
pub fn reference_python() -> Option<PathBuf> {
    let candidate = std::env::var_os("SAFEWEIGHTS_PYTHON")
        .map(PathBuf::from)
        .or_else(|| {
            let venv = workspace_root().join(".venv/bin/python");
            venv.exists().then_some(venv)
        })
        .unwrap_or_else(|| PathBuf::from("python3"));
    let ok = Command::new(&candidate)
        .args(["-c", "import safetensors, sys; sys.exit(0 if safetensors.__version__.startswith('0.8') else 1)"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if ok {
        return Some(candidate);
    }
    if std::env::var("SAFEWEIGHTS_REQUIRE_PYTHON").as_deref() == Ok("1") {
        panic!(
            "SAFEWEIGHTS_REQUIRE_PYTHON=1 but {} has no safetensors 0.8",
            candidate.display()
        );
    }
    eprintln!("skipping: no Python with safetensors 0.8 (set SAFEWEIGHTS_PYTHON)");
    None
}

pub fn reference_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/crosscheck.py")
}
