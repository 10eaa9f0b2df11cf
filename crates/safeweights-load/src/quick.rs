//! One call for tools: load a checkpoint path onto a device and report.
//! This is what `safeweights load PATH --device cpu|cuda:N` runs.

use std::path::Path;

use safeweights::{Checkpoint, OpenOptions};

use crate::device::Device;
use crate::error::LoadError;
use crate::options::LoadOptions;
use crate::plan::LoadPlan;
use crate::report::LoadReport;

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
            let host = crate::cpu::load_to_host(plan, options)?;
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
