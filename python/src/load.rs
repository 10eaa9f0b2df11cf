//! The parallel loader (`safeweights_load`) for `safeweights.torch`:
//! `_Plan` (which bytes of which files are which tensors), loads into
//! caller-allocated CPU or CUDA memory, at once or streamed as each tensor
//! completes. All I/O
//! runs without the GIL.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex, OnceLock};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyInt, PyString};
use safeweights::{Checkpoint, OpenOptions};
use safeweights_load::cuda::Cuda;
use safeweights_load::{DeviceError, DeviceName, LoadOptions, LoadPlan};

use crate::errors::{load_to_py, plain, to_py, Context};

/// `(name, dtype, shape, nbytes)` of a planned tensor.
type Entry = (String, &'static str, Vec<usize>, u64);

fn options(
    threads: Option<usize>,
    memory_budget: Option<&Bound<'_, PyAny>>,
) -> PyResult<LoadOptions> {
    let mut o = LoadOptions::new();
    if let Some(t) = threads {
        if t == 0 {
            return Err(PyValueError::new_err("threads must be at least 1"));
        }
        o = o.threads(t);
    }
    if let Some(b) = memory_budget.filter(|b| !b.is_none()) {
        o = o.memory_budget(crate::convert::parse_size(b, "memory_budget")?);
    }
    Ok(o)
}

/// Checks host destinations for a plan: one per tensor, non-null where the
/// tensor has bytes, pairwise disjoint.
fn check_host_dests(plan: &LoadPlan, ptrs: &[usize]) -> PyResult<()> {
    let tensors = plan.tensors();
    if ptrs.len() != tensors.len() {
        return Err(plain(format!(
            "{} destinations for {} planned tensors",
            ptrs.len(),
            tensors.len()
        )));
    }
    let mut regions: Vec<(usize, usize, usize)> = Vec::with_capacity(ptrs.len());
    for (i, (t, &p)) in tensors.iter().zip(ptrs).enumerate() {
        let len = usize::try_from(t.len()).map_err(|_| plain("tensor too large for memory"))?;
        if len == 0 {
            continue;
        }
        let end = p.checked_add(len).filter(|_| p != 0);
        let end =
            end.ok_or_else(|| plain(format!("invalid destination for tensor {:?}", t.name())))?;
        regions.push((p, end, i));
    }
    regions.sort_unstable();
    if let Some(w) = regions.windows(2).find(|w| w[1].0 < w[0].1) {
        return Err(plain(format!(
            "destinations of tensors {:?} and {:?} overlap",
            tensors[w[0].2].name(),
            tensors[w[1].2].name()
        )));
    }
    Ok(())
}

/// The destinations as slices.
///
/// # Safety
/// [`check_host_dests`] must have passed, and each non-empty destination
/// must be memory the caller owns and leaves untouched while the slices are
/// used (the contract of `load_cpu` / `stream_into`).
unsafe fn host_dests<'a>(plan: &LoadPlan, ptrs: &[usize]) -> Vec<&'a mut [u8]> {
    plan.tensors()
        .iter()
        .zip(ptrs)
        .map(|(t, &p)| {
            if t.is_empty() {
                &mut [][..]
            } else {
                // SAFETY: per this function's contract `p` is non-null and
                // holds `t.len()` writable bytes while the slices live, and
                // the regions are pairwise disjoint, so no two slices alias.
                unsafe { std::slice::from_raw_parts_mut(p as *mut u8, t.len() as usize) }
            }
        })
        .collect()
}

/// Which tensors of which files to load, in order.
#[pyclass(frozen, module = "safeweights._safeweights", name = "_Plan")]
pub struct Plan {
    plan: LoadPlan,
}

fn open_files(paths: &[PathBuf]) -> Result<LoadPlan, safeweights::Error> {
    let opts = OpenOptions::new().pread();
    if let [one] = paths {
        return Ok(LoadPlan::for_checkpoint(&Checkpoint::open_with(
            one, &opts,
        )?));
    }
    let mut plan = LoadPlan::new();
    let mut seen = HashSet::new();
    for p in paths {
        let file = opts.open(p)?;
        let mut infos: Vec<_> = file.header().tensors().iter().collect();
        infos.sort_by_key(|i| i.data_offsets);
        for info in infos {
            if !seen.insert(info.name.clone()) {
                return Err(safeweights::Error::Io {
                    file: file.name().to_owned(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("tensor {:?} is also in an earlier file", info.name),
                    ),
                });
            }
            plan.add_tensor(&file, &info.name).map_err(|e| match e {
                safeweights_load::LoadError::Format(e) => e,
                e => safeweights::Error::Io {
                    file: file.name().to_owned(),
                    source: std::io::Error::other(safeweights::Diagnostic::message(&e)),
                },
            })?;
        }
    }
    Ok(plan)
}

/// A `device=` argument (a device string, or an integer meaning CUDA
/// device N) normalised to a string such as `"cpu"` or `"cuda:1"`, parsed by
/// [`DeviceName`] with the reference's errors: `SafetensorError("device X
/// is invalid")` for what is no device, `ValueError` for a bad ordinal.
/// `None` and `torch.device` objects are handled by `safeweights._device`.
#[pyfunction]
pub fn _parse_device(device: &Bound<'_, PyAny>) -> PyResult<String> {
    let invalid =
        || -> PyResult<PyErr> { Ok(plain(format!("device {} is invalid", device.str()?))) };
    if device.is_instance_of::<PyBool>() {
        return Err(invalid()?);
    }
    if device.is_instance_of::<PyInt>() {
        return match device.extract::<u64>() {
            Ok(n) => Ok(DeviceName::cuda(n).to_string()),
            Err(_) => Err(invalid()?),
        };
    }
    let Ok(text) = device.downcast::<PyString>() else {
        return Err(invalid()?);
    };
    match text.to_cow()?.parse::<DeviceName>() {
        Ok(name) => Ok(name.to_string()),
        Err(DeviceError::InvalidOrdinal { .. }) => {
            Err(PyValueError::new_err("invalid digit found in string"))
        }
        Err(DeviceError::OrdinalTooLarge { .. }) => Err(PyValueError::new_err(
            "number too large to fit in target type",
        )),
        Err(_) => Err(invalid()?),
    }
}

/// The CUDA backend, loaded once per process; the reason when unusable.
fn cuda() -> Result<Arc<Cuda>, String> {
    static CUDA: OnceLock<Result<Arc<Cuda>, String>> = OnceLock::new();
    CUDA.get_or_init(|| {
        let cuda = Cuda::load().map_err(|e| e.to_string())?;
        match cuda.device_count() {
            Ok(n) if n > 0 => Ok(cuda),
            Ok(_) => Err("no CUDA device".to_owned()),
            Err(e) => Err(e.to_string()),
        }
    })
    .clone()
}

/// `(available, detail)`: whether the loader can copy straight to CUDA
/// devices (the runtime library loaded and a device is present), and the
/// library used or the reason it cannot.
#[pyfunction]
pub fn _cuda_status(py: Python<'_>) -> (bool, String) {
    match py.allow_threads(cuda) {
        Ok(c) => (true, c.library().to_owned()),
        Err(e) => (false, e),
    }
}

/// Frees the pinned staging buffers the CUDA loader keeps for the next
/// load; returns the bytes freed (0 when CUDA is unavailable).
#[pyfunction]
pub fn _cuda_release_pinned(py: Python<'_>) -> u64 {
    py.allow_threads(|| cuda().map_or(0, |c| c.release_pinned()))
}

#[pymethods]
impl Plan {
    /// Plans every tensor of a `.safetensors` file, an index
    /// (`*.safetensors.index.json`) or a folder (one path), or of several
    /// `.safetensors` files (a list: no name may repeat).
    #[staticmethod]
    fn open(py: Python<'_>, paths: Vec<PathBuf>) -> PyResult<Self> {
        if paths.is_empty() {
            return Err(PyValueError::new_err("no file to load"));
        }
        let plan = py
            .allow_threads(|| open_files(&paths))
            .map_err(|e| to_py(py, e, Context::Open))?;
        Ok(Plan { plan })
    }

    /// Plans tensors of an open `_File` (all in file order when `names` is None).
    #[staticmethod]
    #[pyo3(signature = (file, names = None))]
    fn for_file(
        py: Python<'_>,
        file: &crate::file::File,
        names: Option<Vec<String>>,
    ) -> PyResult<Self> {
        let plan = match names {
            None => LoadPlan::for_file(&file.inner),
            Some(names) => {
                let mut plan = LoadPlan::new();
                for n in &names {
                    plan.add_tensor(&file.inner, n)
                        .map_err(|e| load_to_py(py, e))?;
                }
                plan
            }
        };
        Ok(Plan { plan })
    }

    /// `(name, dtype, shape, nbytes)` of each planned tensor, in plan order.
    fn entries(&self) -> Vec<Entry> {
        self.plan
            .tensors()
            .iter()
            .map(|t| {
                (
                    t.name().to_owned(),
                    t.dtype().name(),
                    t.shape().to_vec(),
                    t.len(),
                )
            })
            .collect()
    }

    /// Number of planned tensors.
    fn __len__(&self) -> usize {
        self.plan.len()
    }

    /// Total bytes planned.
    fn total_bytes(&self) -> u64 {
        self.plan.total_bytes()
    }

    /// Loads tensor `i` into `ptrs[i]` (host memory holding exactly its
    /// `nbytes`, writable, owned by the caller and untouched during the
    /// call; regions must not overlap) with the GIL released. Returns the
    /// load report as a dict.
    #[pyo3(signature = (ptrs, threads = None, memory_budget = None))]
    fn load_cpu(
        &self,
        py: Python<'_>,
        ptrs: Vec<usize>,
        threads: Option<usize>,
        memory_budget: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyObject> {
        let opts = options(threads, memory_budget)?;
        check_host_dests(&self.plan, &ptrs)?;
        // SAFETY: checked above; the caller owns the memory for the call.
        let mut dests = unsafe { host_dests(&self.plan, &ptrs) };
        let plan = &self.plan;
        let report = py
            .allow_threads(|| safeweights_load::load_into(plan, &mut dests, &opts))
            .map_err(|e| load_to_py(py, e))?;
        crate::pyjson::serialize_to_py(py, &report)
    }

    /// Loads tensor `i` into CUDA memory at `ptrs[i]` on `device` (exactly
    /// its `nbytes`, owned by the caller, idle during the call; regions must
    /// not overlap) with the GIL released. Every copy is complete on return.
    #[pyo3(signature = (device, ptrs, threads = None, memory_budget = None))]
    fn load_cuda(
        &self,
        py: Python<'_>,
        device: i32,
        ptrs: Vec<u64>,
        threads: Option<usize>,
        memory_budget: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyObject> {
        let opts = options(threads, memory_budget)?;
        let cuda = cuda().map_err(|e| plain(format!("CUDA is unavailable: {e}")))?;
        let tensors = self.plan.tensors();
        if ptrs.len() != tensors.len() {
            return Err(plain(format!(
                "{} destinations for {} planned tensors",
                ptrs.len(),
                tensors.len()
            )));
        }
        let mut regions: Vec<(u64, u64)> = tensors
            .iter()
            .zip(&ptrs)
            .filter(|(t, _)| !t.is_empty())
            .map(|(t, &p)| (p, p.saturating_add(t.len())))
            .collect();
        regions.sort_unstable();
        if regions.iter().any(|r| r.0 == 0) || regions.windows(2).any(|w| w[1].0 < w[0].1) {
            return Err(plain("device destinations are null or overlap"));
        }
        let plan = &self.plan;
        // SAFETY: per this private method's contract, each pointer is device
        // memory on `device` of the tensor's size, idle during the call; the
        // regions were checked disjoint above.
        let report = py
            .allow_threads(|| unsafe {
                safeweights_load::cuda::load_to_device_pointers(
                    &cuda,
                    device,
                    plan,
                    &ptrs,
                    &opts,
                    |_| {},
                )
            })
            .map_err(|e| load_to_py(py, e))?;
        crate::pyjson::serialize_to_py(py, &report)
    }

    /// Starts loading tensor `i` into `ptrs[i]` (as for `load_cpu`) on a
    /// background thread; iterate the returned `_Completions` for the index
    /// of each tensor as it completes. `keepalive` (the objects owning the
    /// destinations) is held until the load has finished, even if the
    /// iterator is dropped first, so the memory stays valid.
    #[pyo3(signature = (ptrs, keepalive, threads = None, memory_budget = None))]
    fn stream_into(
        &self,
        ptrs: Vec<usize>,
        keepalive: PyObject,
        threads: Option<usize>,
        memory_budget: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Completions> {
        let opts = options(threads, memory_budget)?;
        check_host_dests(&self.plan, &ptrs)?;
        let plan = self.plan.clone();
        let (tx, rx) = mpsc::channel();
        let handle = std::thread::spawn(move || {
            let _owners = keepalive;
            // SAFETY: checked above; `_owners` keeps the memory alive until
            // the load returns, and the caller leaves it untouched except
            // for tensors already reported complete.
            let mut dests = unsafe { host_dests(&plan, &ptrs) };
            let done = tx.clone();
            let result = safeweights_load::load_into_with(&plan, &mut dests, &opts, |t| {
                let _ = done.send(Msg::Tensor(t.index));
            });
            let _ = tx.send(Msg::End(result));
        });
        Ok(Completions {
            rx: Mutex::new(rx),
            handle: Mutex::new(Some(handle)),
        })
    }
}

enum Msg {
    Tensor(usize),
    End(Result<safeweights_load::LoadReport, safeweights_load::LoadError>),
}

/// Indices of planned tensors as each finishes loading (completion order).
/// The load runs on a background thread; waiting releases the GIL. A load
/// error is raised after every index completed before it.
#[pyclass(frozen, module = "safeweights._safeweights", name = "_Completions")]
pub struct Completions {
    rx: Mutex<mpsc::Receiver<Msg>>,
    handle: Mutex<Option<std::thread::JoinHandle<()>>>,
}

#[pymethods]
impl Completions {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<usize>> {
        let msg = py.allow_threads(|| self.rx.lock().unwrap_or_else(|p| p.into_inner()).recv());
        let join = || {
            let handle = self.handle.lock().unwrap_or_else(|p| p.into_inner()).take();
            handle.map(|h| h.join())
        };
        match msg {
            Ok(Msg::Tensor(i)) => Ok(Some(i)),
            Ok(Msg::End(result)) => {
                py.allow_threads(join);
                result.map(|_| None).map_err(|e| load_to_py(py, e))
            }
            // Ended before (the channel is closed), or the thread panicked.
            Err(_) => match py.allow_threads(join) {
                Some(Err(_)) => Err(plain("the loader thread panicked")),
                _ => Ok(None),
            },
        }
    }
}
