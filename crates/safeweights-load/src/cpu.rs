//! Loading into host memory: caller buffers, one arena, or owned buffers
//! streamed as each tensor completes; `run_cpu` runs the workers on threads
//! (`host_io.rs`) or on rings (`uring.rs`).

use std::sync::mpsc::{self, Sender};
use std::sync::Mutex;
use std::time::Instant;

use crate::engine::{panic_message, run_workers, Pool, Prepared};
use crate::error::LoadError;
use crate::host_io::{cpu_job, HostDest};
use crate::options::{IoBackend, LoadOptions};
use crate::plan::{LoadPlan, PlannedTensor};
use crate::report::LoadReport;
use crate::sys::{self, AlignedBuf, HostBuffer};
use crate::verify::compare;

/// A tensor that has just been loaded completely.
#[derive(Debug, Clone, Copy)]
pub struct Loaded<'a> {
    /// Index in [`LoadPlan::tensors`].
    pub index: usize,
    /// Its plan entry (name, dtype, shape).
    pub tensor: &'a PlannedTensor,
    /// Its bytes, identical to the file's.
    pub data: &'a [u8],
}

fn check_len(t: &PlannedTensor, got: usize) -> Result<(), LoadError> {
    if got as u64 != t.len() {
        return Err(LoadError::Destination {
            tensor: t.name().to_owned(),
            reason: format!("buffer of {got} bytes for {} planned bytes", t.len()),
        });
    }
    Ok(())
}

/// Loads the plan into one caller buffer per tensor (`dests[i]` for
/// `plan.tensors()[i]`, exactly its size). On error, the buffers hold
/// unspecified bytes.
pub fn load_into(
    plan: &LoadPlan,
    dests: &mut [&mut [u8]],
    options: &LoadOptions,
) -> Result<LoadReport, LoadError> {
    load_into_with(plan, dests, options, |_| {})
}

/// [`load_into`], calling `on_tensor` on this thread as each tensor
/// completes (in completion order). Only complete tensors are ever passed;
/// after an error, tensors not passed hold unspecified bytes.
pub fn load_into_with(
    plan: &LoadPlan,
    dests: &mut [&mut [u8]],
    options: &LoadOptions,
    mut on_tensor: impl FnMut(Loaded<'_>),
) -> Result<LoadReport, LoadError> {
    plan.check_count("buffers", dests.len())?;
    for (t, d) in plan.tensors().iter().zip(dests.iter()) {
        check_len(t, d.len())?;
    }
    let raw: Vec<HostDest> = dests
        .iter_mut()
        .map(|d| HostDest {
            ptr: d.as_mut_ptr(),
            len: d.len() as u64,
        })
        .collect();
    // SAFETY: each destination comes from a distinct `&mut [u8]` (so valid and
    // pairwise disjoint) that stays borrowed, unused, until `run` returns.
    unsafe { run(plan, &raw, options, &mut on_tensor) }
}

/// Loads the plan into one arena: tensor `i` at `offsets[i]` (see
/// [`LoadPlan::arena_offsets`]). Regions must not overlap.
pub fn load_into_arena(
    plan: &LoadPlan,
    arena: &mut [u8],
    offsets: &[u64],
    options: &LoadOptions,
    mut on_tensor: impl FnMut(Loaded<'_>),
) -> Result<LoadReport, LoadError> {
    plan.check_count("offsets", offsets.len())?;
    let mut regions: Vec<(u64, u64, usize)> = Vec::with_capacity(offsets.len());
    for (i, (t, &o)) in plan.tensors().iter().zip(offsets).enumerate() {
        let end = o.checked_add(t.len()).filter(|&e| e <= arena.len() as u64);
        let Some(end) = end else {
            return Err(LoadError::Destination {
                tensor: t.name().to_owned(),
                reason: format!(
                    "offset {o} + {} bytes is past the arena of {} bytes",
                    t.len(),
                    arena.len()
                ),
            });
        };
        if !t.is_empty() {
            regions.push((o, end, i));
        }
    }
    regions.sort_unstable();
    for w in regions.windows(2) {
        if w[1].0 < w[0].1 {
            return Err(LoadError::Destination {
                tensor: plan.tensors()[w[1].2].name().to_owned(),
                reason: format!(
                    "overlaps tensor {:?} in the arena",
                    plan.tensors()[w[0].2].name()
                ),
            });
        }
    }
    let base = arena.as_mut_ptr();
    let raw: Vec<HostDest> = plan
        .tensors()
        .iter()
        .zip(offsets)
        .map(|(t, &o)| HostDest {
            ptr: base.wrapping_add(o as usize),
            len: t.len(),
        })
        .collect();
    // SAFETY: every region lies inside `arena` (checked) and the non-empty
    // ones are pairwise disjoint (checked); `arena` stays mutably borrowed,
    // unused, until `run` returns.
    unsafe { run(plan, &raw, options, &mut on_tensor) }
}

/// # Safety
/// As [`run_cpu`]: destinations valid, disjoint, otherwise unused meanwhile.
unsafe fn run(
    plan: &LoadPlan,
    raw: &[HostDest],
    options: &LoadOptions,
    on_tensor: &mut dyn FnMut(Loaded<'_>),
) -> Result<LoadReport, LoadError> {
    let start = Instant::now();
    let prep = Prepared::new(plan, options)?;
    let mut on_done = |i: usize| {
        let d = raw[i];
        // SAFETY: tensor `i` is complete: every piece of it was written and
        // published (AcqRel on its counter) and no worker writes it again.
        let data = unsafe { std::slice::from_raw_parts(d.ptr, d.len as usize) };
        on_tensor(Loaded {
            index: i,
            tensor: &plan.tensors()[i],
            data,
        });
    };
    // SAFETY: forwarded from this function's contract.
    unsafe { run_cpu(&prep, raw, options.budget_bytes(), &mut on_done)? };
    Ok(prep.report("cpu".to_owned(), start.elapsed().as_secs_f64()))
}

/// Runs a CPU load: `dests[i]` receives tensor `i`; `on_done(i)` is called on
/// the calling thread as each tensor completes.
///
/// # Safety
/// Each destination must be valid for writes of its length, the
/// destinations pairwise disjoint, and not accessed elsewhere until this
/// returns (except tensor `i` read inside `on_done(i)`).
unsafe fn run_cpu(
    prep: &Prepared<'_>,
    dests: &[HostDest],
    budget: u64,
    on_done: &mut dyn FnMut(usize),
) -> Result<(), LoadError> {
    for d in dests {
        sys::advise_huge_pages(d.ptr, d.len as usize);
    }
    let mut rings = setup_rings(prep);
    let per_thread = if rings.is_empty() { 1 } else { prep.depth };
    let max_buffers = prep.threads.saturating_mul(per_thread);
    let bounce: Pool<AlignedBuf> = Pool::new(prep.buffer_count(budget, 1, max_buffers));
    let bounce = &bounce;
    run_workers(
        prep,
        || {
            let ring = rings.pop();
            move |tx: &Sender<usize>| {
                #[cfg(target_os = "linux")]
                if let Some(ring) = ring {
                    // SAFETY: forwarded from this function's contract.
                    return unsafe { crate::uring::worker(prep, dests, bounce, ring, tx) };
                }
                #[cfg(not(target_os = "linux"))]
                let _ = ring;
                while let Some(j) = prep.next_job() {
                    let job = &prep.jobs[j];
                    // SAFETY: forwarded from this function's contract.
                    match unsafe { cpu_job(prep, job, dests, bounce) } {
                        Ok(()) => prep.finish_job(job, tx),
                        Err(e) => prep.fail(e),
                    }
                }
            }
        },
        &|| bounce.close(),
        on_done,
    )
}

/// The rings of an io_uring load (one per thread), or none for threads; the
/// backend used is recorded in `prep` for the report.
#[cfg(target_os = "linux")]
fn setup_rings(prep: &Prepared<'_>) -> Vec<io_uring::IoUring> {
    // Auto: threads, by measurement (bench/README.md).
    if prep.backend_wanted != IoBackend::IoUring {
        prep.set_backend(IoBackend::Threads, None);
        return Vec::new();
    }
    match crate::uring::rings(prep.threads, prep.depth) {
        Ok(rings) => {
            prep.set_backend(IoBackend::IoUring, None);
            rings
        }
        Err(e) => {
            prep.set_backend(
                IoBackend::Threads,
                Some(format!("io_uring unavailable ({e}); threads")),
            );
            Vec::new()
        }
    }
}

/// No io_uring off Linux: threads, saying so when io_uring was asked for.
#[cfg(not(target_os = "linux"))]
fn setup_rings(prep: &Prepared<'_>) -> Vec<std::convert::Infallible> {
    let why = (prep.backend_wanted == IoBackend::IoUring)
        .then(|| "io_uring is Linux-only; threads".to_owned());
    prep.set_backend(IoBackend::Threads, why);
    Vec::new()
}

/// Tensors loaded into one page-aligned host arena.
#[derive(Debug)]
pub struct HostTensors {
    buffer: HostBuffer,
    offsets: Vec<u64>,
    plan: LoadPlan,
    report: LoadReport,
}

impl HostTensors {
    /// The plan loaded.
    pub fn plan(&self) -> &LoadPlan {
        &self.plan
    }
    /// Bytes of tensor `i` of the plan.
    pub fn data(&self, i: usize) -> &[u8] {
        let o = self.offsets[i] as usize;
        &self.buffer[o..o + self.plan.tensors()[i].len() as usize]
    }
    /// Bytes of the first planned tensor called `name`.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        let i = self.plan.tensors().iter().position(|t| t.name() == name)?;
        Some(self.data(i))
    }
    /// The whole arena and each tensor's offset in it.
    pub fn arena(&self) -> (&[u8], &[u64]) {
        (&self.buffer, &self.offsets)
    }
    /// What the load did.
    pub fn report(&self) -> &LoadReport {
        &self.report
    }
    /// Reads every tensor again from its file (one at a time) and compares
    /// it with what was loaded: the first difference is a
    /// [`LoadError::Mismatch`].
    pub fn verify(&self) -> Result<(), LoadError> {
        (0..self.plan.len()).try_for_each(|i| compare(&self.plan, i, self.data(i)))
    }
}

/// Loads the plan into a new host arena (fresh pages: no zeroing pass;
/// tensors packed in plan order, which mirrors the file for whole-file plans
/// so reads land in one piece).
pub fn load_to_host(plan: LoadPlan, options: &LoadOptions) -> Result<HostTensors, LoadError> {
    let (offsets, total) = plan.arena_offsets(1);
    let mut buffer = HostBuffer::zeroed(total as usize).map_err(|_| LoadError::Alloc {
        bytes: total,
        what: "host arena",
    })?;
    let report = load_into_arena(&plan, &mut buffer, &offsets, options, |_| {})?;
    Ok(HostTensors {
        buffer,
        offsets,
        plan,
        report,
    })
}

/// A tensor yielded by a [`TensorStream`]: owned bytes.
#[derive(Debug)]
pub struct StreamedTensor {
    /// Index in the plan.
    pub index: usize,
    /// Name.
    pub name: String,
    /// Element type.
    pub dtype: safeweights::Dtype,
    /// Shape.
    pub shape: Vec<usize>,
    /// Bytes, identical to the file's.
    pub data: Vec<u8>,
}

enum Msg {
    Tensor(StreamedTensor),
    Done(Result<LoadReport, LoadError>),
}

/// An iterator over tensors as they complete, loaded by background threads
/// (for Python's streaming iterator). Yields `Err` once if the load fails,
/// after every tensor that completed before the failure.
pub struct TensorStream {
    rx: mpsc::Receiver<Msg>,
    report: Option<LoadReport>,
    done: bool,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for TensorStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TensorStream")
            .field("done", &self.done)
            .finish()
    }
}

/// Starts loading the plan in the background; iterate to receive tensors in
/// completion order. Each tensor gets its own buffer; all are allocated up
/// front (lazily backed by the OS), each handed over as it completes.
pub fn stream(plan: LoadPlan, options: LoadOptions) -> TensorStream {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        let mut bufs: Vec<Vec<u8>> = plan
            .tensors()
            .iter()
            .map(|t| vec![0u8; t.len() as usize])
            .collect();
        let raw: Vec<HostDest> = bufs
            .iter_mut()
            .map(|b| HostDest {
                ptr: b.as_mut_ptr(),
                len: b.len() as u64,
            })
            .collect();
        // The heap blocks stay put when a `Vec` is moved out of its slot.
        let slots: Mutex<Vec<Option<Vec<u8>>>> = Mutex::new(bufs.into_iter().map(Some).collect());
        let mut on_tensor = |l: Loaded<'_>| {
            let data = slots.lock().unwrap_or_else(|p| p.into_inner())[l.index]
                .take()
                .unwrap_or_default();
            let _ = tx.send(Msg::Tensor(StreamedTensor {
                index: l.index,
                name: l.tensor.name().to_owned(),
                dtype: l.tensor.dtype(),
                shape: l.tensor.shape().to_vec(),
                data,
            }));
        };
        // SAFETY: each destination is a distinct `Vec`'s heap block, valid
        // and disjoint; a block is moved to the consumer only once its tensor
        // is complete and no worker writes it again; blocks not handed over
        // stay in `slots` until after `run` returns.
        let result = unsafe { run(&plan, &raw, &options, &mut on_tensor) };
        drop(slots);
        let _ = tx.send(Msg::Done(result));
    });
    TensorStream {
        rx,
        report: None,
        done: false,
        handle: Some(handle),
    }
}

impl TensorStream {
    /// The report, once the stream has ended successfully.
    pub fn report(&self) -> Option<&LoadReport> {
        self.report.as_ref()
    }
}

impl Iterator for TensorStream {
    type Item = Result<StreamedTensor, LoadError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let msg = self.rx.recv();
        match msg {
            Ok(Msg::Tensor(t)) => Some(Ok(t)),
            Ok(Msg::Done(r)) => {
                self.done = true;
                if let Some(h) = self.handle.take() {
                    let _ = h.join();
                }
                match r {
                    Ok(report) => {
                        self.report = Some(report);
                        None
                    }
                    Err(e) => Some(Err(e)),
                }
            }
            Err(_) => {
                self.done = true;
                let panic = self
                    .handle
                    .take()
                    .and_then(|h| h.join().err())
                    .map(panic_message)
                    .unwrap_or_else(|| "loader thread ended".to_owned());
                Some(Err(LoadError::Panic(panic)))
            }
        }
    }
}
