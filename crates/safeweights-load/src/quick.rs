//! One call for tools: load a checkpoint path onto a device and report.
//! This is what `safeweights load PATH --device cpu|cuda:N` runs.

use std::path::Path;

use safeweights::{Checkpoint, OpenOptions};

use crate::error::LoadError;
use crate::options::LoadOptions;
use crate::plan::LoadPlan;
use crate::report::LoadReport;

/// Where to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    /// Host memory.
    Cpu,
    /// A CUDA device ordinal.
    Cuda(i32),
}

impl std::str::FromStr for Device {
    type Err = String;
    /// `cpu`, `cuda` (device 0) or `cuda:N`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .filter(|&n: &i32| n >= 0)
                .map(Device::Cuda)
                .ok_or_else(|| format!("unknown device {s:?}: expected cpu, cuda or cuda:N")),
        }
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// Opens a `.safetensors` file, an index or a folder (headers only, with
/// positioned reads: no mapping), loads every tensor onto `device` and
/// returns the report. The loaded tensors are dropped: this measures and
/// checks that the checkpoint loads.
pub fn load_path(
    path: impl AsRef<Path>,
    device: Device,
    options: &LoadOptions,
) -> Result<LoadReport, LoadError> {
    load(path.as_ref(), device, options, false)
}

/// As [`load_path`], then reads every tensor again through the format core
/// (positioned reads, one tensor at a time; not timed) and compares it with
/// what was loaded, copied back from the device for CUDA. The first
/// difference is a [`LoadError::Mismatch`].
pub fn load_path_verified(
    path: impl AsRef<Path>,
    device: Device,
    options: &LoadOptions,
) -> Result<LoadReport, LoadError> {
    load(path.as_ref(), device, options, true)
}

fn load(
    path: &Path,
    device: Device,
    options: &LoadOptions,
    verify: bool,
) -> Result<LoadReport, LoadError> {
    let ckpt = Checkpoint::open_with(path, &OpenOptions::new().pread())?;
    let (report, verified) = load_on(LoadPlan::for_checkpoint(&ckpt), device, options, verify)?;
    verified.map(|()| report)
}

/// Loads a plan onto `device` (the tensors are then dropped) and, with
/// `verify`, reads every tensor again from its file and compares it with
/// what was loaded (copied back from the device for CUDA; not timed).
/// Returns the report and the check's outcome: `Ok(())` when it passed or
/// was not asked for, else its first failure (a [`LoadError::Mismatch`], or
/// a failed re-read). A failed load is the outer error.
pub fn load_on(
    plan: LoadPlan,
    device: Device,
    options: &LoadOptions,
    verify: bool,
) -> Result<(LoadReport, Result<(), LoadError>), LoadError> {
    match device {
        Device::Cpu => {
            let host = crate::load_to_host(plan, options)?;
            let verified = if verify { host.verify() } else { Ok(()) };
            Ok((host.report().clone(), verified))
        }
        Device::Cuda(n) => {
            let cuda = crate::cuda::Cuda::load()?;
            let loaded = crate::cuda::load_to_cuda(&cuda, n, plan, options)?;
            let verified = if verify { loaded.verify() } else { Ok(()) };
            Ok((loaded.report().clone(), verified))
        }
    }
}

/// Compares tensor `i` as loaded with its bytes read from its file.
pub(crate) fn compare(plan: &LoadPlan, i: usize, got: &[u8]) -> Result<(), LoadError> {
    let t = &plan.tensors()[i];
    let file = &plan.files()[t.file()];
    let mismatch = |offset: u64| LoadError::Mismatch {
        file: file.name().to_owned(),
        tensor: t.name().to_owned(),
        offset,
    };
    if got.len() as u64 != t.len() {
        return Err(mismatch(got.len().min(t.len() as usize) as u64));
    }
    let mut at = 0usize;
    let mut want = Vec::new();
    for r in t.ranges() {
        // Ranges were checked against the file when planned.
        let len = (r.end - r.start) as usize;
        want.resize(len, 0);
        file.source()
            .read_exact_at(r.start, &mut want)
            .map_err(|source| LoadError::Read {
                file: file.name().to_owned(),
                tensor: t.name().to_owned(),
                offset: r.start,
                source,
            })?;
        let part = &got[at..at + len];
        if let Some(k) = part.iter().zip(&want).position(|(a, b)| a != b) {
            return Err(mismatch((at + k) as u64));
        }
        at += len;
    }
    Ok(())
}
