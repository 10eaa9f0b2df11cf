//! One call for tools: load a checkpoint path onto a device and report.
//! This is what `safeweights load PATH --device cpu|cuda:N` runs.

use std::path::Path;

use safeweights::{Backend, Checkpoint, OpenOptions};

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
    let ckpt = Checkpoint::open_with(path, &OpenOptions::new().backend(Backend::Pread))?;
    let plan = LoadPlan::for_checkpoint(&ckpt);
    match device {
        Device::Cpu => Ok(crate::load_to_host(plan, options)?.report().clone()),
        Device::Cuda(n) => {
            let cuda = crate::cuda::Cuda::load()?;
            Ok(crate::cuda::load_to_cuda(&cuda, n, plan, options)?
                .report()
                .clone())
        }
    }
}
