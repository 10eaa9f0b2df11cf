//! Loading into NVIDIA GPU memory, with the CUDA runtime loaded at run time.
//!
//! No CUDA toolkit is needed to build: [`Cuda::load`] opens `libcudart`
//! (`$SAFEWEIGHTS_CUDART`, else `libcudart.so`, `.so.13`, `.so.12`,
//! `.so.11.0`) with `libloading`. Without a library or a device it returns
//! [`LoadError::CudaUnavailable`].
//!
//! The pipeline: reader threads take chunks of the plan; each reads its chunk
//! (buffered or `O_DIRECT`) into a pinned host buffer from a small ring
//! (`cudaHostAlloc`, sized by the memory budget) and queues asynchronous
//! host-to-device copies of its pieces on the thread's own stream
//! (`cudaMemcpyAsync`), then records an event and returns the buffer to the
//! ring. A buffer is reused only after its event has completed, so reading
//! the next chunk overlaps the copies of the previous ones. A tensor is
//! complete when the events after all its pieces' copies have completed.
//! The ring's buffers are kept in the [`Cuda`] value for the next load.
//!
//! Before returning, each thread waits for its stream, so no copy is still
//! in flight into the destinations, even after a failure.
//!
//! CI has no GPU: `tests/cuda_emulated.rs` runs this pipeline against an
//! emulated CUDA runtime that executes copies asynchronously and flags any
//! misuse (a pinned buffer refilled before its copies ran, memory freed or
//! read while copies use it); `bench/gpu/README.md` covers a real GPU.

use std::ffi::{c_char, c_int, c_uint, c_void, CStr};
use std::sync::Arc;
use std::time::Instant;

use crate::engine::{run_workers, Pool, Prepared};
use crate::error::LoadError;
use crate::options::LoadOptions;
use crate::plan::LoadPlan;
use crate::report::LoadReport;
use crate::verify::compare;
use std::sync::mpsc::Sender;

type Stream = *mut c_void;

type Event = *mut c_void;

const MEMCPY_HOST_TO_DEVICE: c_int = 1;
const MEMCPY_DEVICE_TO_HOST: c_int = 2;
const STREAM_NON_BLOCKING: c_uint = 1;
const EVENT_DISABLE_TIMING: c_uint = 2;
const HOST_ALLOC_PORTABLE: c_uint = 1;

struct Fns {
    get_device_count: unsafe extern "C" fn(*mut c_int) -> c_int,
    set_device: unsafe extern "C" fn(c_int) -> c_int,
    malloc: unsafe extern "C" fn(*mut *mut c_void, usize) -> c_int,
    free: unsafe extern "C" fn(*mut c_void) -> c_int,
    host_alloc: unsafe extern "C" fn(*mut *mut c_void, usize, c_uint) -> c_int,
    free_host: unsafe extern "C" fn(*mut c_void) -> c_int,
    stream_create: unsafe extern "C" fn(*mut Stream, c_uint) -> c_int,
    stream_destroy: unsafe extern "C" fn(Stream) -> c_int,
    stream_synchronize: unsafe extern "C" fn(Stream) -> c_int,
    memcpy_async: unsafe extern "C" fn(*mut c_void, *const c_void, usize, c_int, Stream) -> c_int,
    memcpy: unsafe extern "C" fn(*mut c_void, *const c_void, usize, c_int) -> c_int,
    event_create: unsafe extern "C" fn(*mut Event, c_uint) -> c_int,
    event_record: unsafe extern "C" fn(Event, Stream) -> c_int,
    event_synchronize: unsafe extern "C" fn(Event) -> c_int,
    event_destroy: unsafe extern "C" fn(Event) -> c_int,
    error_string: unsafe extern "C" fn(c_int) -> *const c_char,
}

/// The CUDA runtime, loaded at run time.
///
/// It keeps the pinned staging buffers of finished loads for the next one
/// (pinning memory is slow, and a sharded checkpoint is often loaded file
/// by file), at most one load's ring; [`Cuda::release_pinned`] or dropping
/// it frees them.
pub struct Cuda {
    f: Fns,
    path: String,
    /// Cached pinned buffers: (address, capacity).
    pinned: std::sync::Mutex<Vec<(usize, usize)>>,
    _lib: libloading::Library,
}

impl Drop for Cuda {
    fn drop(&mut self) {
        self.release_pinned();
    }
}

impl std::fmt::Debug for Cuda {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cuda").field("library", &self.path).finish()
    }
}

/// A CUDA call's status, as an error naming the call.
fn check(cuda: &Cuda, call: &'static str, code: c_int) -> Result<(), LoadError> {
    if code == 0 {
        return Ok(());
    }
    Err(LoadError::Cuda {
        file: String::new(),
        tensor: String::new(),
        call,
        code,
        message: cuda.error_string(code),
    })
}

impl Cuda {
    /// Loads `libcudart` and checks that a device is present: the library
    /// named by `$SAFEWEIGHTS_CUDART`, else the first of `libcudart.so`,
    /// `.so.13`, `.so.12`, `.so.11.0` the dynamic loader finds.
    pub fn load() -> Result<Arc<Cuda>, LoadError> {
        let mut names: Vec<String> = Vec::new();
        if let Ok(p) = std::env::var("SAFEWEIGHTS_CUDART") {
            names.push(p);
        }
        names.extend(
            [
                "libcudart.so",
                "libcudart.so.13",
                "libcudart.so.12",
                "libcudart.so.11.0",
            ]
            .map(str::to_owned),
        );
        let mut last = String::new();
        for name in &names {
            // SAFETY: loading the CUDA runtime runs its initialisers, which
            // have no preconditions on us.
            match unsafe { libloading::Library::new(name) } {
                Ok(lib) => return Self::init(lib, name.clone()),
                Err(e) => last = e.to_string(),
            }
        }
        Err(LoadError::CudaUnavailable(format!(
            "no CUDA runtime library found (tried {}; last error: {last}); set SAFEWEIGHTS_CUDART to libcudart's path",
            names.join(", ")
        )))
    }

    /// Loads the CUDA runtime from `library` (a path, or a name the dynamic
    /// loader searches for) and checks that a device is present.
    pub fn open(library: impl AsRef<std::ffi::OsStr>) -> Result<Arc<Cuda>, LoadError> {
        let library = library.as_ref();
        let name = library.to_string_lossy().into_owned();
        // SAFETY: loading the CUDA runtime runs its initialisers, which have
        // no preconditions on us.
        let lib = unsafe { libloading::Library::new(library) }
            .map_err(|e| LoadError::CudaUnavailable(format!("cannot load {name}: {e}")))?;
        Self::init(lib, name)
    }

    /// Binds the runtime's functions and checks that a device is present.
    fn init(lib: libloading::Library, name: String) -> Result<Arc<Cuda>, LoadError> {
        let cuda = Self::bind(lib, name.clone())
            .map_err(|e| LoadError::CudaUnavailable(format!("{name}: {e}")))?;
        let count = cuda
            .device_count()
            .map_err(|e| LoadError::CudaUnavailable(format!("{name}: no usable device: {e}")))?;
        if count == 0 {
            return Err(LoadError::CudaUnavailable(format!(
                "{name}: no CUDA device"
            )));
        }
        Ok(Arc::new(cuda))
    }

    fn bind(lib: libloading::Library, path: String) -> Result<Cuda, libloading::Error> {
        macro_rules! sym {
            ($name:literal) => {
                // SAFETY: the symbol is the CUDA runtime function of that name,
                // whose C signature matches the field's type (CUDA runtime API).
                *unsafe { lib.get(concat!($name, "\0").as_bytes())? }
            };
        }
        let f = Fns {
            get_device_count: sym!("cudaGetDeviceCount"),
            set_device: sym!("cudaSetDevice"),
            malloc: sym!("cudaMalloc"),
            free: sym!("cudaFree"),
            host_alloc: sym!("cudaHostAlloc"),
            free_host: sym!("cudaFreeHost"),
            stream_create: sym!("cudaStreamCreateWithFlags"),
            stream_destroy: sym!("cudaStreamDestroy"),
            stream_synchronize: sym!("cudaStreamSynchronize"),
            memcpy_async: sym!("cudaMemcpyAsync"),
            memcpy: sym!("cudaMemcpy"),
            event_create: sym!("cudaEventCreateWithFlags"),
            event_record: sym!("cudaEventRecord"),
            event_synchronize: sym!("cudaEventSynchronize"),
            event_destroy: sym!("cudaEventDestroy"),
            error_string: sym!("cudaGetErrorString"),
        };
        Ok(Cuda {
            f,
            path,
            pinned: std::sync::Mutex::new(Vec::new()),
            _lib: lib,
        })
    }

    /// Frees the pinned staging buffers kept from earlier loads; returns
    /// how many bytes were freed.
    pub fn release_pinned(&self) -> u64 {
        let bufs = std::mem::take(&mut *self.pinned.lock().unwrap_or_else(|p| p.into_inner()));
        let mut freed = 0;
        for (ptr, cap) in bufs {
            // SAFETY: allocated by cudaHostAlloc in `run`, cached only once
            // its copies completed, and no longer referenced.
            unsafe { (self.f.free_host)(ptr as *mut c_void) };
            freed += cap as u64;
        }
        freed
    }

    /// Bytes of pinned staging memory kept for the next load.
    pub fn pinned_bytes(&self) -> u64 {
        let bufs = self.pinned.lock().unwrap_or_else(|p| p.into_inner());
        bufs.iter().map(|&(_, cap)| cap as u64).sum()
    }

    /// A cached pinned buffer of at least `len` bytes.
    fn take_pinned(&self, len: usize) -> Option<(usize, usize)> {
        let mut bufs = self.pinned.lock().unwrap_or_else(|p| p.into_inner());
        let i = bufs.iter().position(|&(_, cap)| cap >= len)?;
        Some(bufs.swap_remove(i))
    }

    /// Keeps a pinned buffer for the next load while the cache holds less
    /// than `limit` bytes; frees it otherwise.
    fn keep_pinned(&self, ptr: usize, cap: usize, limit: u64) {
        let mut bufs = self.pinned.lock().unwrap_or_else(|p| p.into_inner());
        let held: u64 = bufs.iter().map(|&(_, c)| c as u64).sum();
        if held + cap as u64 <= limit {
            bufs.push((ptr, cap));
        } else {
            drop(bufs);
            // SAFETY: allocated by cudaHostAlloc, its copies complete.
            unsafe { (self.f.free_host)(ptr as *mut c_void) };
        }
    }

    /// The library loaded.
    pub fn library(&self) -> &str {
        &self.path
    }

    fn error_string(&self, code: c_int) -> String {
        // SAFETY: cudaGetErrorString returns a static NUL-terminated string
        // (or null) for any code.
        let p = unsafe { (self.f.error_string)(code) };
        if p.is_null() {
            return format!("CUDA error {code}");
        }
        // SAFETY: non-null, static and NUL-terminated per the CUDA docs.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }

    /// Number of visible devices.
    pub fn device_count(&self) -> Result<i32, LoadError> {
        let mut n: c_int = 0;
        // SAFETY: `n` is a valid out-pointer.
        check(self, "cudaGetDeviceCount", unsafe {
            (self.f.get_device_count)(&mut n)
        })?;
        Ok(n)
    }

    fn set_device(&self, device: i32) -> Result<(), LoadError> {
        // SAFETY: plain call; an invalid ordinal is reported as an error.
        check(self, "cudaSetDevice", unsafe {
            (self.f.set_device)(device)
        })
    }

    /// Allocates `bytes` on `device`.
    pub fn alloc(self: &Arc<Self>, device: i32, bytes: usize) -> Result<DeviceBuffer, LoadError> {
        self.set_device(device)?;
        let mut p: *mut c_void = std::ptr::null_mut();
        // SAFETY: `p` is a valid out-pointer.
        check(self, "cudaMalloc", unsafe {
            (self.f.malloc)(&mut p, bytes.max(1))
        })?;
        Ok(DeviceBuffer {
            cuda: self.clone(),
            device,
            ptr: p as u64,
            len: bytes,
        })
    }

    /// Copies `dst.len()` bytes from device address `src` to host memory
    /// (synchronous; for checks and tests).
    ///
    /// # Safety
    /// `src..src + dst.len()` must be allocated device memory.
    pub unsafe fn copy_to_host(&self, src: u64, dst: &mut [u8]) -> Result<(), LoadError> {
        // SAFETY: `dst` is writable host memory; `src` per this fn's contract.
        let code = unsafe {
            (self.f.memcpy)(
                dst.as_mut_ptr().cast(),
                src as *const c_void,
                dst.len(),
                MEMCPY_DEVICE_TO_HOST,
            )
        };
        check(self, "cudaMemcpy", code)
    }
}

/// A device allocation, freed on drop.
#[derive(Debug)]
pub struct DeviceBuffer {
    cuda: Arc<Cuda>,
    device: i32,
    ptr: u64,
    len: usize,
}

impl DeviceBuffer {
    /// Device address.
    pub fn ptr(&self) -> u64 {
        self.ptr
    }
    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The device ordinal.
    pub fn device(&self) -> i32 {
        self.device
    }
    /// Copies the contents back to the host.
    pub fn to_host(&self) -> Result<Vec<u8>, LoadError> {
        let mut v = vec![0u8; self.len];
        // SAFETY: the allocation holds `len` bytes.
        unsafe { self.cuda.copy_to_host(self.ptr, &mut v)? };
        Ok(v)
    }
}

impl Drop for DeviceBuffer {
    fn drop(&mut self) {
        // SAFETY: freeing the allocation made in `Cuda::alloc`, once.
        unsafe { (self.cuda.f.free)(self.ptr as *mut c_void) };
    }
}

/// Tensors loaded into device memory: one allocation per file, tensors at
/// offsets in plan order, each aligned to [`DEVICE_ALIGN`] bytes.
#[derive(Debug)]
pub struct DeviceTensors {
    buffers: Vec<DeviceBuffer>,
    ptrs: Vec<u64>,
    plan: LoadPlan,
    report: LoadReport,
}

impl DeviceTensors {
    /// Device address of tensor `i` of the plan.
    pub fn ptr(&self, i: usize) -> u64 {
        self.ptrs[i]
    }
    /// The allocations, one per file of the plan.
    pub fn buffers(&self) -> &[DeviceBuffer] {
        &self.buffers
    }
    /// The plan loaded.
    pub fn plan(&self) -> &LoadPlan {
        &self.plan
    }
    /// What the load did.
    pub fn report(&self) -> &LoadReport {
        &self.report
    }
    /// Copies every tensor back from the device and compares it with its
    /// bytes read again from its file (one tensor at a time): the first
    /// difference is a [`LoadError::Mismatch`].
    pub fn verify(&self) -> Result<(), LoadError> {
        (0..self.plan.len()).try_for_each(|i| compare(&self.plan, i, &self.to_host(i)?))
    }
    /// Copies tensor `i` back to the host (for checks).
    pub fn to_host(&self, i: usize) -> Result<Vec<u8>, LoadError> {
        let mut v = vec![0u8; self.plan.tensors()[i].len() as usize];
        let cuda = &self.buffers[0].cuda;
        // SAFETY: tensor `i` lies inside its file's allocation.
        unsafe { cuda.copy_to_host(self.ptrs[i], &mut v)? };
        Ok(v)
    }
}

/// Where each tensor of a [`DeviceTensors`] starts, relative to a multiple
/// of this: the alignment of `cudaMalloc`, enough for any dtype and for
/// vectorised kernels.
pub const DEVICE_ALIGN: u64 = 256;

/// Loads the plan onto `device`: one allocation per file of the plan, each
/// tensor at a multiple of [`DEVICE_ALIGN`].
pub fn load_to_cuda(
    cuda: &Arc<Cuda>,
    device: i32,
    plan: LoadPlan,
    options: &LoadOptions,
) -> Result<DeviceTensors, LoadError> {
    let mut sizes = vec![0u64; plan.files().len()];
    let mut offsets = Vec::with_capacity(plan.len());
    let too_big = || LoadError::Alloc {
        bytes: u64::MAX,
        what: "device memory (the plan's size overflows)",
    };
    for t in plan.tensors() {
        let at = sizes[t.file()]
            .checked_next_multiple_of(DEVICE_ALIGN)
            .ok_or_else(too_big)?;
        offsets.push(at);
        sizes[t.file()] = at.checked_add(t.len()).ok_or_else(too_big)?;
    }
    let buffers = sizes
        .iter()
        .map(|&s| {
            let s = usize::try_from(s).map_err(|_| too_big())?;
            cuda.alloc(device, s)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let ptrs: Vec<u64> = plan
        .tensors()
        .iter()
        .zip(&offsets)
        .map(|(t, &o)| buffers[t.file()].ptr() + o)
        .collect();
    // SAFETY: each pointer is inside its file's fresh allocation, the
    // tensors of a file packed without overlap.
    let report = unsafe { load_to_device_pointers(cuda, device, &plan, &ptrs, options, |_| {})? };
    Ok(DeviceTensors {
        buffers,
        ptrs,
        plan,
        report,
    })
}

/// Loads the plan into caller-provided device memory: tensor `i` at
/// `ptrs[i]`. `on_tensor(i)` runs on this thread once tensor `i` is on the
/// device (its copies complete).
///
/// # Safety
/// Each `ptrs[i]..ptrs[i] + plan.tensors()[i].len()` must be device memory
/// on `device` that nothing else uses during the call, the ranges pairwise
/// disjoint.
pub unsafe fn load_to_device_pointers(
    cuda: &Arc<Cuda>,
    device: i32,
    plan: &LoadPlan,
    ptrs: &[u64],
    options: &LoadOptions,
    mut on_tensor: impl FnMut(usize),
) -> Result<LoadReport, LoadError> {
    plan.check_count("device pointers", ptrs.len())?;
    let start = Instant::now();
    cuda.set_device(device)?;
    let prep = Prepared::new(plan, options)?;
    run(
        cuda,
        device,
        &prep,
        ptrs,
        options.budget_bytes(),
        &mut on_tensor,
    )?;
    Ok(prep.report(format!("cuda:{device}"), start.elapsed().as_secs_f64()))
}

/// A pinned staging buffer, its event, and the pieces whose copies the
/// event follows (not yet counted as done).
struct Slot {
    ptr: *mut u8,
    cap: usize,
    event: Event,
    pending: Vec<(u32, u64)>,
}

// SAFETY: pinned host memory and a CUDA event are usable from any thread;
// the slot is owned by one thread at a time through the pool.
unsafe impl Send for Slot {}

fn run(
    cuda: &Arc<Cuda>,
    device: i32,
    prep: &Prepared<'_>,
    ptrs: &[u64],
    budget: u64,
    on_done: &mut dyn FnMut(usize),
) -> Result<(), LoadError> {
    let count = prep.buffer_count(budget, 2, 2 * prep.threads);
    let pool: Pool<Slot> = Pool::new(count);
    let chunk = prep.chunk as usize;
    let ring_bytes = (count as u64).saturating_mul(prep.chunk);
    let make = || -> Result<Slot, LoadError> {
        let (p, cap) = match cuda.take_pinned(chunk) {
            Some((p, cap)) => (p as *mut c_void, cap),
            None => {
                let mut p: *mut c_void = std::ptr::null_mut();
                // SAFETY: valid out-pointer; the size is non-zero.
                check(cuda, "cudaHostAlloc", unsafe {
                    (cuda.f.host_alloc)(&mut p, chunk, HOST_ALLOC_PORTABLE)
                })?;
                (p, chunk)
            }
        };
        let mut event: Event = std::ptr::null_mut();
        // SAFETY: valid out-pointer.
        let code = unsafe { (cuda.f.event_create)(&mut event, EVENT_DISABLE_TIMING) };
        if let Err(e) = check(cuda, "cudaEventCreateWithFlags", code) {
            cuda.keep_pinned(p as usize, cap, ring_bytes);
            return Err(e);
        }
        Ok(Slot {
            ptr: p.cast(),
            cap,
            event,
            pending: Vec::new(),
        })
    };
    // Completes the pieces a slot's event follows, once the event is done.
    let settle = |slot: &mut Slot, tx: &dyn Fn(usize)| -> Result<(), LoadError> {
        if slot.pending.is_empty() {
            return Ok(());
        }
        // SAFETY: the event was created by `make` and recorded on a stream.
        let code = unsafe { (cuda.f.event_synchronize)(slot.event) };
        if code != 0 {
            // An asynchronous copy failed: name the first tensor it may have been.
            let t = slot.pending[0].0 as usize;
            return Err(tensor_error(cuda, prep, t, "cudaEventSynchronize", code));
        }
        for (t, len) in slot.pending.drain(..) {
            let piece = crate::plan::Piece {
                tensor: t,
                file_off: 0,
                len,
                dst_off: 0,
            };
            if prep.finish_piece(&piece) {
                tx(t as usize);
            }
        }
        Ok(())
    };
    let (pool_ref, make, settle) = (&pool, &make, &settle);
    let result = run_workers(
        prep,
        || {
            move |tx: &Sender<usize>| {
                let send = |i: usize| {
                    let _ = tx.send(i);
                };
                if let Err(e) = cuda.set_device(device) {
                    return prep.fail(e);
                }
                let mut stream: Stream = std::ptr::null_mut();
                // SAFETY: valid out-pointer.
                let code = unsafe { (cuda.f.stream_create)(&mut stream, STREAM_NON_BLOCKING) };
                if let Err(e) = check(cuda, "cudaStreamCreateWithFlags", code) {
                    return prep.fail(e);
                }
                while let Some(j) = prep.next_job() {
                    let job = &prep.jobs[j];
                    let mut slot = match pool_ref.get(make) {
                        Ok(s) => s,
                        Err(e) => {
                            prep.fail(e);
                            break;
                        }
                    };
                    let r = settle(&mut slot, &send)
                        .and_then(|()| copy_job(cuda, prep, job, &mut slot, ptrs, stream));
                    pool_ref.put(slot);
                    if let Err(e) = r {
                        prep.fail(e);
                        break;
                    }
                }
                // Every copy queued from the ring is done before the ring is
                // reused or freed, even those of a job that failed midway.
                // SAFETY: the stream is this thread's, live.
                let code = unsafe { (cuda.f.stream_synchronize)(stream) };
                if let Err(e) = check(cuda, "cudaStreamSynchronize", code) {
                    prep.fail(e);
                }
                // SAFETY: destroying this thread's stream, now idle.
                unsafe { (cuda.f.stream_destroy)(stream) };
            }
        },
        &|| pool_ref.close(),
        on_done,
    );
    // Settle every slot; keep its buffer for the next load.
    let mut first_error = result.err();
    let done = std::cell::RefCell::new(Vec::new());
    for mut slot in pool.drain() {
        if let Err(e) = settle(&mut slot, &|i| done.borrow_mut().push(i)) {
            first_error.get_or_insert(e);
        }
        // SAFETY: the event was made by `make`; every stream was
        // synchronised, so no copy still reads the buffer.
        unsafe { (cuda.f.event_destroy)(slot.event) };
        cuda.keep_pinned(slot.ptr as usize, slot.cap, ring_bytes);
    }
    // Tensors completed before a failure are still whole: report them.
    done.into_inner().into_iter().for_each(on_done);
    first_error.map_or(Ok(()), Err)
}

/// A failed CUDA call while copying tensor `t`, naming it and its file.
fn tensor_error(
    cuda: &Cuda,
    prep: &Prepared<'_>,
    t: usize,
    call: &'static str,
    code: c_int,
) -> LoadError {
    let tensor = &prep.plan.tensors()[t];
    LoadError::Cuda {
        file: prep.plan.files()[tensor.file()].name().to_owned(),
        tensor: tensor.name().to_owned(),
        call,
        code,
        message: cuda.error_string(code),
    }
}

/// Reads a job into the slot's pinned buffer and queues its copies.
fn copy_job(
    cuda: &Cuda,
    prep: &Prepared<'_>,
    job: &crate::plan::Job,
    slot: &mut Slot,
    ptrs: &[u64],
    stream: Stream,
) -> Result<(), LoadError> {
    // SAFETY: the slot owns `cap` bytes of pinned host memory, no copy from
    // it is pending (settled before), and this thread holds the slot.
    let buf = unsafe { std::slice::from_raw_parts_mut(slot.ptr, slot.cap) };
    let (mode, lead) = prep.read_contiguous(job, buf)?;
    let pieces = prep.job_pieces(job);
    let mut i = 0;
    while i < pieces.len() {
        // Merge pieces whose device destinations are contiguous.
        let first = pieces[i];
        let dst = ptrs[first.tensor as usize] + first.dst_off;
        let mut len = first.len;
        let mut k = i + 1;
        while k < pieces.len() && ptrs[pieces[k].tensor as usize] + pieces[k].dst_off == dst + len {
            len += pieces[k].len;
            k += 1;
        }
        let src = lead + (first.file_off - job.start) as usize;
        // SAFETY: source inside the pinned buffer just filled; destination
        // inside the tensor's device range per the caller's contract.
        let code = unsafe {
            (cuda.f.memcpy_async)(
                dst as *mut c_void,
                buf.as_ptr().add(src).cast(),
                len as usize,
                MEMCPY_HOST_TO_DEVICE,
                stream,
            )
        };
        if code != 0 {
            return Err(tensor_error(
                cuda,
                prep,
                first.tensor as usize,
                "cudaMemcpyAsync",
                code,
            ));
        }
        i = k;
    }
    // SAFETY: event and stream are live.
    check(cuda, "cudaEventRecord", unsafe {
        (cuda.f.event_record)(slot.event, stream)
    })?;
    slot.pending
        .extend(pieces.iter().map(|p| (p.tensor, p.len)));
    prep.count(job, mode);
    Ok(())
}
