//! The parallel read engine shared by the CPU and CUDA destinations: opening
//! files, choosing buffered or direct reads per chunk, reading a job, and the
//! bookkeeping of which tensors are complete.

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Condvar, Mutex};

use crate::error::LoadError;
use crate::options::{IoBackend, IoMode, LoadOptions};
use crate::plan::{build_jobs, Job, LoadPlan, Piece};
use crate::report::{FileMode, FileReport};
use crate::sys::{self, AlignedBuf, Span, DIRECT_ALIGN, MAX_IOV};

/// Per file: descriptors and counters.
pub(crate) struct FileIo {
    pub buffered: Option<File>,
    pub direct: Option<File>,
    direct_disabled: AtomicBool,
    fallback: Mutex<Option<String>>,
    residency: Option<Vec<bool>>,
    bytes_buffered: AtomicU64,
    bytes_direct: AtomicU64,
}

/// How one job is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JobMode {
    Buffered,
    Direct,
    Source,
}

/// A plan cut into jobs with files opened: ready to run.
pub(crate) struct Prepared<'p> {
    pub plan: &'p LoadPlan,
    pub jobs: Vec<Job>,
    pub pieces: Vec<Piece>,
    pub files: Vec<FileIo>,
    pub chunk: u64,
    pub threads: usize,
    pub mode: IoMode,
    pub failed: AtomicBool,
    pub error: Mutex<Option<LoadError>>,
    pub next: AtomicUsize,
    pub remaining: Vec<AtomicU64>,
    /// The backend asked for and the io_uring queue depth per thread.
    pub backend_wanted: IoBackend,
    pub depth: usize,
    /// The backend used and why it is not the one asked for.
    backend: Mutex<(IoBackend, Option<String>)>,
}

impl<'p> Prepared<'p> {
    pub fn new(plan: &'p LoadPlan, options: &LoadOptions) -> Result<Self, LoadError> {
        let budget = options.budget_bytes();
        let chunk = options
            .chunk_bytes()
            .min(budget / DIRECT_ALIGN * DIRECT_ALIGN)
            .max(DIRECT_ALIGN);
        let (jobs, pieces) = build_jobs(plan, chunk, MAX_IOV);
        let mode = options.mode();
        let mut files = Vec::with_capacity(plan.files().len());
        for f in plan.files() {
            let Some(path) = f.path() else {
                files.push(FileIo::new(None, None, None, None));
                continue;
            };
            let open_err = |source| LoadError::Open {
                file: f.name().to_owned(),
                source,
            };
            let buffered = File::open(path).map_err(open_err)?;
            let mut residency = None;
            let mut direct = None;
            let mut fallback = None;
            if mode != IoMode::Buffered {
                if mode == IoMode::Auto {
                    residency = sys::page_residency(path).ok();
                }
                let all_warm = residency.as_ref().is_some_and(|r| r.iter().all(|&b| b));
                if !all_warm {
                    match sys::open_direct(path) {
                        Ok(file) => direct = Some(file),
                        Err(e) => fallback = Some(format!("O_DIRECT refused ({e}); buffered")),
                    }
                }
            }
            files.push(FileIo::new(Some(buffered), direct, residency, fallback));
        }
        let threads = options.thread_count().min(jobs.len()).max(1);
        let remaining = plan
            .tensors()
            .iter()
            .map(|t| AtomicU64::new(t.len()))
            .collect();
        Ok(Prepared {
            plan,
            jobs,
            pieces,
            files,
            chunk,
            threads,
            mode,
            failed: AtomicBool::new(false),
            error: Mutex::new(None),
            next: AtomicUsize::new(0),
            remaining,
            backend_wanted: options.backend(),
            depth: options.depth(),
            // Until a CPU load sets up rings: the CUDA destination reads with threads.
            backend: Mutex::new((
                IoBackend::Threads,
                (options.backend() == IoBackend::IoUring)
                    .then(|| "io_uring serves the CPU destination only; threads".to_owned()),
            )),
        })
    }

    /// How many direct-I/O bounce (or pinned) buffers the budget allows.
    pub fn buffer_count(&self, budget: u64, min: usize, max: usize) -> usize {
        ((budget / self.chunk) as usize).clamp(min, max.max(min))
    }

    /// Takes the next job, unless the load has failed or all are taken.
    pub fn next_job(&self) -> Option<usize> {
        if self.failed.load(Ordering::Relaxed) {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        (i < self.jobs.len()).then_some(i)
    }

    pub fn job_pieces(&self, job: &Job) -> &[Piece] {
        &self.pieces[job.pieces.clone()]
    }

    /// How to read job `i`.
    pub fn job_mode(&self, job: &Job) -> JobMode {
        let f = &self.files[job.file];
        if f.buffered.is_none() {
            return JobMode::Source;
        }
        if f.direct.is_none() || f.direct_disabled.load(Ordering::Relaxed) {
            return JobMode::Buffered;
        }
        match self.mode {
            IoMode::Buffered => JobMode::Buffered,
            IoMode::Direct => JobMode::Direct,
            IoMode::Auto => {
                let Some(res) = &f.residency else {
                    return JobMode::Direct;
                };
                let page = sys::page_size() as u64;
                let (a, b) = (job.start / page, job.end.div_ceil(page));
                let pages = (b - a).max(1);
                let warm = (a..b)
                    .filter(|&p| res.get(p as usize).copied().unwrap_or(false))
                    .count() as u64;
                if warm * 2 >= pages {
                    JobMode::Buffered
                } else {
                    JobMode::Direct
                }
            }
        }
    }

    /// Records the first error and stops the other workers.
    pub fn fail(&self, e: LoadError) {
        self.failed.store(true, Ordering::Relaxed);
        let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
        slot.get_or_insert(e);
    }

    /// The error naming the tensor that holds `offset` in `job`.
    pub fn read_error(&self, job: &Job, offset: u64, source: io::Error) -> LoadError {
        let pieces = self.job_pieces(job);
        let piece = pieces
            .iter()
            .find(|p| p.file_off <= offset && offset < p.file_off + p.len)
            .or(pieces.last());
        let tensor = piece
            .map(|p| self.plan.tensors()[p.tensor as usize].name().to_owned())
            .unwrap_or_default();
        LoadError::Read {
            file: self.plan.files()[job.file].name().to_owned(),
            tensor,
            offset,
            source,
        }
    }

    /// Counts `piece` done; returns whether its tensor just became complete.
    pub fn finish_piece(&self, piece: &Piece) -> bool {
        let prev = self.remaining[piece.tensor as usize].fetch_sub(piece.len, Ordering::AcqRel);
        prev == piece.len
    }

    /// Counts bytes read in a mode.
    pub fn count(&self, job: &Job, mode: JobMode) {
        let f = &self.files[job.file];
        let n = job.end - job.start;
        match mode {
            JobMode::Direct => f.bytes_direct.fetch_add(n, Ordering::Relaxed),
            _ => f.bytes_buffered.fetch_add(n, Ordering::Relaxed),
        };
    }

    /// Reads job bytes contiguously into `buf` (which must hold `chunk`
    /// bytes and be `DIRECT_ALIGN`-aligned for direct reads). Returns the
    /// mode used and where `job.start` landed in `buf`.
    pub fn read_contiguous(
        &self,
        job: &Job,
        buf: &mut [u8],
    ) -> Result<(JobMode, usize), LoadError> {
        let mode = self.job_mode(job);
        let f = &self.files[job.file];
        let len = (job.end - job.start) as usize;
        match mode {
            JobMode::Direct => {
                let file = f.direct.as_ref().expect("direct descriptor");
                match read_direct(file, job.start, job.end, buf) {
                    Ok(lead) => return Ok((mode, lead)),
                    Err((_, e)) if e.raw_os_error() == Some(libc::EINVAL) => {
                        self.disable_direct(job.file, &e);
                    }
                    Err((off, e)) => return Err(self.read_error(job, off, e)),
                }
                self.read_contiguous(job, buf)
            }
            JobMode::Buffered => {
                let file = f.buffered.as_ref().expect("buffered descriptor");
                let got = sys::pread_some(file, job.start, &mut buf[..len])
                    .map_err(|e| self.read_error(job, job.start, e))?;
                if got < len {
                    return Err(self.read_error(job, job.start + got as u64, eof()));
                }
                Ok((mode, 0))
            }
            JobMode::Source => {
                let source = self.plan.files()[job.file].source();
                // Piece by piece so a failure names the right tensor.
                for p in self.job_pieces(job) {
                    let at = (p.file_off - job.start) as usize;
                    source
                        .read_exact_at(p.file_off, &mut buf[at..at + p.len as usize])
                        .map_err(|e| self.read_error(job, p.file_off, e))?;
                }
                Ok((mode, 0))
            }
        }
    }

    pub fn disable_direct(&self, file: usize, e: &io::Error) {
        let f = &self.files[file];
        f.direct_disabled.store(true, Ordering::Relaxed);
        let mut slot = f.fallback.lock().unwrap_or_else(|p| p.into_inner());
        slot.get_or_insert_with(|| format!("O_DIRECT read refused ({e}); buffered"));
    }

    pub fn file_reports(&self) -> Vec<FileReport> {
        self.plan
            .files()
            .iter()
            .zip(&self.files)
            .map(|(pf, f)| {
                let b = f.bytes_buffered.load(Ordering::Relaxed);
                let d = f.bytes_direct.load(Ordering::Relaxed);
                let mode = if f.buffered.is_none() {
                    FileMode::Source
                } else if d == 0 {
                    FileMode::Buffered
                } else if b == 0 {
                    FileMode::Direct
                } else {
                    FileMode::Mixed
                };
                let resident_fraction = f
                    .residency
                    .as_ref()
                    .filter(|r| !r.is_empty())
                    .map(|r| r.iter().filter(|&&x| x).count() as f64 / r.len() as f64);
                FileReport {
                    file: pf.name().to_owned(),
                    mode,
                    bytes_buffered: b,
                    bytes_direct: d,
                    resident_fraction,
                    fallback: f.fallback.lock().unwrap_or_else(|p| p.into_inner()).clone(),
                }
            })
            .collect()
    }

    /// The backend used and, when it is not the one asked for, why.
    pub fn backend_used(&self) -> (IoBackend, Option<String>) {
        self.backend
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_backend(&self, used: IoBackend, why: Option<String>) {
        *self.backend.lock().unwrap_or_else(|p| p.into_inner()) = (used, why);
    }

    /// Whether the load has failed (workers stop taking jobs).
    pub fn has_failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    /// Counts the job's pieces done and sends each tensor that becomes complete.
    pub fn finish_job(&self, job: &Job, done: &std::sync::mpsc::Sender<usize>) {
        for p in self.job_pieces(job) {
            if self.finish_piece(p) {
                let _ = done.send(p.tensor as usize);
            }
        }
    }

    pub fn take_error(&self) -> Option<LoadError> {
        self.error.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

impl FileIo {
    fn new(
        buffered: Option<File>,
        direct: Option<File>,
        residency: Option<Vec<bool>>,
        fallback: Option<String>,
    ) -> Self {
        FileIo {
            buffered,
            direct,
            direct_disabled: AtomicBool::new(false),
            fallback: Mutex::new(fallback),
            residency,
            bytes_buffered: AtomicU64::new(0),
            bytes_direct: AtomicU64::new(0),
        }
    }
}

pub(crate) fn eof() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "file ended before the planned bytes (truncated after planning?)",
    )
}

/// Reads the aligned widening of `start..end` into `buf` with `O_DIRECT`;
/// returns where `start` landed. On failure, the offset reached and the error.
fn read_direct(
    file: &File,
    start: u64,
    end: u64,
    buf: &mut [u8],
) -> Result<usize, (u64, io::Error)> {
    let a_start = start / DIRECT_ALIGN * DIRECT_ALIGN;
    let a_end = end.div_ceil(DIRECT_ALIGN) * DIRECT_ALIGN;
    let need = (a_end - a_start) as usize;
    let got = sys::pread_some(file, a_start, &mut buf[..need]).map_err(|e| (a_start, e))?;
    if a_start + (got as u64) < end {
        return Err((a_start + got as u64, eof()));
    }
    Ok((start - a_start) as usize)
}

/// A pool of reusable buffers, created lazily up to `max`.
pub(crate) struct Pool<B> {
    free: Mutex<(Vec<B>, usize)>,
    cv: Condvar,
    max: usize,
    closed: AtomicBool,
}

impl<B> Pool<B> {
    pub fn new(max: usize) -> Self {
        Pool {
            free: Mutex::new((Vec::new(), 0)),
            cv: Condvar::new(),
            max: max.max(1),
            closed: AtomicBool::new(false),
        }
    }

    /// A free buffer, a new one from `make` while under `max`, else `None`.
    pub fn try_get(
        &self,
        make: impl FnOnce() -> Result<B, LoadError>,
    ) -> Result<Option<B>, LoadError> {
        let mut g = self.free.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = g.0.pop() {
            return Ok(Some(b));
        }
        if g.1 < self.max {
            g.1 += 1;
            drop(g);
            return make().map(Some).inspect_err(|_| {
                self.free.lock().unwrap_or_else(|p| p.into_inner()).1 -= 1;
            });
        }
        Ok(None)
    }

    /// A free buffer, a new one from `make` while under `max`, else waits.
    pub fn get(&self, make: impl FnOnce() -> Result<B, LoadError>) -> Result<B, LoadError> {
        let mut g = self.free.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(b) = g.0.pop() {
                return Ok(b);
            }
            if g.1 < self.max {
                g.1 += 1;
                drop(g);
                return make().inspect_err(|_| {
                    self.free.lock().unwrap_or_else(|p| p.into_inner()).1 -= 1;
                });
            }
            if self.closed.load(Ordering::Relaxed) {
                return Err(LoadError::Panic("a loader thread panicked".to_owned()));
            }
            g = self.cv.wait(g).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Wakes and fails every waiter, now and later: a panicking thread may
    /// have dropped buffers that would never come back.
    pub fn close(&self) {
        let _g = self.free.lock().unwrap_or_else(|p| p.into_inner());
        self.closed.store(true, Ordering::Relaxed);
        self.cv.notify_all();
    }

    pub fn put(&self, b: B) {
        self.free
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .push(b);
        self.cv.notify_one();
    }

    pub fn drain(&self) -> Vec<B> {
        std::mem::take(&mut self.free.lock().unwrap_or_else(|p| p.into_inner()).0)
    }
}

/// A tensor's destination in host memory, shared across workers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HostDest {
    pub ptr: *mut u8,
    pub len: u64,
}

// SAFETY: workers write only the disjoint byte ranges of distinct pieces; the
// destinations themselves are checked disjoint when built.
unsafe impl Send for HostDest {}
// SAFETY: as above.
unsafe impl Sync for HostDest {}

/// Runs a CPU load: `dests[i]` receives tensor `i`; `on_done(i)` is called on
/// the calling thread as each tensor completes.
///
/// # Safety
/// Each destination must be valid for writes of its length, the
/// destinations pairwise disjoint, and not accessed elsewhere until this
/// returns (except tensor `i` read inside `on_done(i)`).
pub(crate) unsafe fn run_cpu(
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

/// Reports the plan's empty tensors (complete with no read), then runs
/// `prep.threads` workers, each made by `make` on this thread, then run
/// with a sender of completed tensor indices, which reach `on_done` here as
/// they arrive. A panicking worker fails the load and calls `wake`, so the
/// others stop instead of waiting forever for buffers it held. Returns the
/// load's first error.
pub(crate) fn run_workers<W>(
    prep: &Prepared<'_>,
    mut make: impl FnMut() -> W,
    wake: &(dyn Fn() + Sync),
    on_done: &mut dyn FnMut(usize),
) -> Result<(), LoadError>
where
    W: FnOnce(&Sender<usize>) + Send,
{
    for (i, t) in prep.plan.tensors().iter().enumerate() {
        if t.is_empty() {
            on_done(i);
        }
    }
    let (tx, rx) = std::sync::mpsc::channel::<usize>();
    let panicked = std::thread::scope(|s| {
        let handles: Vec<_> = (0..prep.threads)
            .map(|_| {
                let tx = tx.clone();
                let work = make();
                s.spawn(move || {
                    let run = std::panic::AssertUnwindSafe(|| work(&tx));
                    if let Err(p) = std::panic::catch_unwind(run) {
                        prep.fail(LoadError::Panic(panic_message(p)));
                        wake();
                    }
                })
            })
            .collect();
        drop(tx);
        for i in rx {
            on_done(i);
        }
        handles
            .into_iter()
            .filter_map(|h| h.join().err())
            .map(panic_message)
            .next()
    });
    if let Some(p) = panicked {
        return Err(LoadError::Panic(p));
    }
    match prep.take_error() {
        Some(e) => Err(e),
        None => Ok(()),
    }
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

pub(crate) fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

/// Spans of the job's destinations, merged where contiguous.
pub(crate) fn spans(prep: &Prepared<'_>, job: &Job, dests: &[HostDest]) -> Vec<Span> {
    let mut out: Vec<Span> = Vec::new();
    for p in prep.job_pieces(job) {
        // SAFETY-relevant arithmetic only: `dst_off + len <= dest.len` by plan
        // construction, checked against the destination length on entry.
        let ptr = dests[p.tensor as usize]
            .ptr
            .wrapping_add(p.dst_off as usize);
        match out.last_mut() {
            Some(last) if last.ptr.wrapping_add(last.len) == ptr => last.len += p.len as usize,
            _ => out.push(Span {
                ptr,
                len: p.len as usize,
            }),
        }
    }
    out
}

/// Copies a job's pieces out of `src`, where `job.start` lies at `lead`.
///
/// # Safety
/// As [`run_cpu`]; the job's pieces are written by this call only, and `src`
/// holds `lead + (job.end - job.start)` bytes.
pub(crate) unsafe fn copy_out(
    prep: &Prepared<'_>,
    job: &Job,
    dests: &[HostDest],
    src: &[u8],
    lead: usize,
) {
    for p in prep.job_pieces(job) {
        let from = lead + (p.file_off - job.start) as usize;
        let d = dests[p.tensor as usize];
        // SAFETY: `p.dst_off + p.len <= d.len` by plan construction; the
        // range is this piece's, written by no one else; `src` holds it
        // (the slice index panics otherwise, before any write).
        unsafe {
            std::ptr::copy_nonoverlapping(
                src[from..from + p.len as usize].as_ptr(),
                d.ptr.add(p.dst_off as usize),
                p.len as usize,
            )
        };
    }
}

/// Reads one job into the host destinations.
///
/// # Safety
/// As [`run_cpu`]; the job's pieces are written by this call only.
pub(crate) unsafe fn cpu_job(
    prep: &Prepared<'_>,
    job: &Job,
    dests: &[HostDest],
    bounce: &Pool<AlignedBuf>,
) -> Result<(), LoadError> {
    let mode = prep.job_mode(job);
    if mode == JobMode::Buffered {
        let file = prep.files[job.file].buffered.as_ref().expect("descriptor");
        let spans = spans(prep, job, dests);
        // SAFETY: the spans are this job's pieces of the caller's disjoint,
        // writable destinations; no other worker writes them.
        return match unsafe { sys::preadv_all(file, job.start, &spans) } {
            Ok(()) => {
                prep.count(job, mode);
                Ok(())
            }
            Err((done, e)) => Err(prep.read_error(job, job.start + done, e)),
        };
    }
    let chunk = prep.chunk as usize;
    let mut buf = bounce.get(|| {
        AlignedBuf::new(chunk).ok_or(LoadError::Alloc {
            bytes: chunk as u64,
            what: "direct-I/O bounce buffer",
        })
    })?;
    let result = prep.read_contiguous(job, buf.as_mut_slice());
    if let Ok((used, lead)) = result {
        // SAFETY: forwarded; `read_contiguous` put the job at `lead` in `buf`.
        unsafe { copy_out(prep, job, dests, buf.as_mut_slice(), lead) };
        prep.count(job, used);
    }
    bounce.put(buf);
    result.map(|_| ())
}
