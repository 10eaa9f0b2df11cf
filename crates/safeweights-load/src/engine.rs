//! The parallel read engine shared by the CPU and CUDA destinations: opening
//! files, choosing buffered or direct reads per chunk, reading a job, the
//! bookkeeping of which tensors are complete, buffer pools and the worker
//! runtime ([`run_workers`]). It knows no destination: host memory is
//! `host_io.rs` (and `uring.rs`), CUDA is `cuda.rs`.

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Condvar, Mutex};

use crate::error::LoadError;
use crate::options::{IoBackend, IoMode, LoadOptions};
use crate::plan::{build_jobs, Job, LoadPlan, Piece};
use crate::report::{FileMode, FileReport, LoadReport};
use crate::sys::{self, DIRECT_ALIGN, MAX_IOV};

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
            let (buffered, _) = fs_err::File::open(path).map_err(open_err)?.into_parts();
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

    /// Records the backend used and, when it is not the one asked for, why.
    pub fn set_backend(&self, used: IoBackend, why: Option<String>) {
        *self.backend.lock().unwrap_or_else(|p| p.into_inner()) = (used, why);
    }

    /// Whether the load has failed (workers stop taking jobs).
    pub fn has_failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    /// Counts the job's pieces done and sends each tensor that becomes complete.
    pub fn finish_job(&self, job: &Job, done: &Sender<usize>) {
        for p in self.job_pieces(job) {
            if self.finish_piece(p) {
                let _ = done.send(p.tensor as usize);
            }
        }
    }

    /// The report of this load onto `device` (`cpu` or `cuda:N`), which took `seconds`.
    pub fn report(&self, device: String, seconds: f64) -> LoadReport {
        let bytes = self.plan.total_bytes();
        let (io_backend, io_backend_fallback) = self.backend_used();
        LoadReport {
            device,
            tensors: self.plan.len(),
            bytes,
            seconds,
            gb_per_s: if seconds > 0.0 {
                bytes as f64 / seconds / 1e9
            } else {
                0.0
            },
            threads: self.threads,
            chunk_size: self.chunk,
            reads: self.jobs.len(),
            files: self.file_reports(),
            io_backend,
            io_backend_fallback,
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

pub(crate) fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}
