//! The io_uring backend of the CPU destination (Linux). Each reader thread
//! owns a ring and keeps up to `depth` jobs in flight: buffered jobs as one
//! `READV` straight into the destinations, direct jobs as one `READ` of the
//! aligned widening into a bounce buffer, copied out on completion. Short
//! reads are resubmitted for the remainder. No buffer is freed, and no worker
//! returns, while the kernel may still write into it: [`Worker`]'s `Drop`
//! waits for every submitted read, on success, error and unwinding alike.

use std::io;
use std::os::unix::io::AsRawFd;
use std::sync::mpsc::Sender;

use io_uring::{opcode, types, IoUring};

use crate::engine::{eof, JobMode, Pool, Prepared};
use crate::error::LoadError;
use crate::host_io::{copy_out, cpu_job, spans, HostDest};
use crate::sys::{AlignedBuf, DIRECT_ALIGN, MAX_IOV};

/// Largest single `READ` (aligned; Linux caps one read just under 2 GiB).
const MAX_READ: u64 = 1 << 30;

/// One ring of `depth` entries per thread, or why io_uring cannot be used
/// (old kernel, `io_uring_disabled`, seccomp, a size the kernel refuses).
pub(crate) fn rings(count: usize, depth: usize) -> io::Result<Vec<IoUring>> {
    let entries = u32::try_from(depth).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("queue depth {depth} does not fit a ring"),
        )
    })?;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let ring = IoUring::new(entries)?;
        if out.is_empty() {
            check_opcodes(&ring)?;
        }
        out.push(ring);
    }
    Ok(out)
}

/// `READ` needs Linux 5.6; a kernel without it must not see the request (its
/// `EINVAL` would read as an `O_DIRECT` refusal).
fn check_opcodes(ring: &IoUring) -> io::Result<()> {
    let mut probe = io_uring::Probe::new();
    ring.submitter().register_probe(&mut probe)?;
    for (code, name) in [(opcode::Read::CODE, "READ"), (opcode::Readv::CODE, "READV")] {
        if !probe.is_supported(code) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("the kernel lacks IORING_OP_{name}"),
            ));
        }
    }
    Ok(())
}

/// A read in flight.
enum Op {
    /// `READV` into the destinations: `iov[first..]` remain, after `done` bytes.
    Buffered {
        iov: Vec<libc::iovec>,
        first: usize,
        done: u64,
    },
    /// `READ` of `a_start..` (aligned) into `buf`: `got` bytes so far.
    Direct {
        buf: AlignedBuf,
        a_start: u64,
        got: u64,
    },
}

struct Slot {
    job: usize,
    op: Op,
}

/// What starting a job did.
enum Start {
    /// Submitted (or, for a non-file source, already read).
    Started,
    /// Not now: no bounce buffer free, or a synchronous read must wait until
    /// nothing is in flight. Retry after completions.
    Later,
}

/// A reader thread's ring and its reads in flight.
struct Worker<'a, 'p> {
    prep: &'a Prepared<'p>,
    dests: &'a [HostDest],
    bounce: &'a Pool<AlignedBuf>,
    done: &'a Sender<usize>,
    ring: IoUring,
    /// Indexed by the SQE's `user_data`.
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    /// SQEs pushed whose completion has not been reaped.
    inflight: usize,
    cqes: Vec<(u64, i32)>,
    /// Most bytes per `READ` (a multiple of `DIRECT_ALIGN`) and iovecs per `READV`.
    max_read: u64,
    max_iov: usize,
}

/// Runs jobs on `ring` until none are left or the load has failed.
///
/// # Safety
/// As `run_cpu` (in `cpu.rs`): each destination valid for writes of its length, pairwise
/// disjoint, not otherwise accessed until the load returns.
pub(crate) unsafe fn worker(
    prep: &Prepared<'_>,
    dests: &[HostDest],
    bounce: &Pool<AlignedBuf>,
    ring: IoUring,
    done: &Sender<usize>,
) {
    // SAFETY: forwarded.
    unsafe { worker_limited(prep, dests, bounce, ring, done, MAX_READ, MAX_IOV) }
}

/// [`worker`] with smaller reads, so tests see remainders resubmitted.
///
/// # Safety
/// As [`worker`].
unsafe fn worker_limited(
    prep: &Prepared<'_>,
    dests: &[HostDest],
    bounce: &Pool<AlignedBuf>,
    ring: IoUring,
    done: &Sender<usize>,
    max_read: u64,
    max_iov: usize,
) {
    let depth = prep.depth.max(1);
    let mut w = Worker {
        prep,
        dests,
        bounce,
        done,
        ring,
        slots: (0..depth).map(|_| None).collect(),
        free: (0..depth).rev().collect(),
        inflight: 0,
        cqes: Vec::with_capacity(depth),
        max_read: (max_read / DIRECT_ALIGN).max(1) * DIRECT_ALIGN,
        max_iov: max_iov.max(1),
    };
    if let Err(e) = w.run() {
        prep.fail(e);
    }
    // `w` drops here: waits for anything still in flight.
}

fn retryable(errno: i32) -> bool {
    errno == libc::EINTR || errno == libc::EAGAIN
}

impl Worker<'_, '_> {
    fn run(&mut self) -> Result<(), LoadError> {
        let mut pending: Option<usize> = None;
        loop {
            while !self.free.is_empty() && !self.prep.has_failed() {
                let Some(j) = pending.take().or_else(|| self.prep.next_job()) else {
                    break;
                };
                if let Start::Later = self.start(j)? {
                    pending = Some(j);
                    break;
                }
            }
            if self.inflight == 0 {
                if pending.is_some() && !self.prep.has_failed() {
                    continue; // Nothing in flight: it can start now.
                }
                return Ok(());
            }
            if let Err(e) = self.submit_and_wait() {
                let job = &self.prep.jobs[self.any_inflight_job()];
                return Err(self.prep.read_error(job, job.start, e));
            }
            self.reap()?;
        }
    }

    /// Starts job `j` in a free slot.
    fn start(&mut self, j: usize) -> Result<Start, LoadError> {
        let prep = self.prep;
        let job = &prep.jobs[j];
        match prep.job_mode(job) {
            JobMode::Source => {
                // A synchronous read that may block on the bounce pool, which
                // is deadlock-free only with none of ours in flight.
                if self.inflight > 0 {
                    return Ok(Start::Later);
                }
                // SAFETY: forwarded from `worker`'s contract; the job is ours.
                unsafe { cpu_job(prep, job, self.dests, self.bounce) }?;
                prep.finish_job(job, self.done);
                Ok(Start::Started)
            }
            JobMode::Buffered => {
                let iov = crate::sys::iovecs(&spans(prep, job, self.dests));
                let op = Op::Buffered {
                    iov,
                    first: 0,
                    done: 0,
                };
                self.submit(Slot { job: j, op });
                Ok(Start::Started)
            }
            JobMode::Direct => {
                let chunk = prep.chunk as usize;
                let make = || {
                    AlignedBuf::new(chunk).ok_or(LoadError::Alloc {
                        bytes: chunk as u64,
                        what: "direct-I/O bounce buffer",
                    })
                };
                // Never block on the pool with reads in flight: every worker
                // could be waiting for buffers that only its own completions
                // would return.
                let buf = if self.inflight > 0 {
                    match self.bounce.try_get(make)? {
                        Some(b) => b,
                        None => return Ok(Start::Later),
                    }
                } else {
                    self.bounce.get(make)?
                };
                let a_start = job.start / DIRECT_ALIGN * DIRECT_ALIGN;
                let op = Op::Direct {
                    buf,
                    a_start,
                    got: 0,
                };
                self.submit(Slot { job: j, op });
                Ok(Start::Started)
            }
        }
    }

    /// Pushes the SQE for the rest of `slot`'s read.
    fn submit(&mut self, mut slot: Slot) {
        let Some(s) = self.free.pop() else {
            // Callers start jobs only with a free slot.
            unreachable!("no free io_uring slot");
        };
        let prep = self.prep;
        let job = &prep.jobs[slot.job];
        let file = &prep.files[job.file];
        let entry = match &mut slot.op {
            Op::Buffered { iov, first, done } => {
                let fd = file.buffered.as_ref().expect("buffered descriptor");
                let rest = &iov[*first..];
                let count = rest.len().min(self.max_iov) as u32;
                opcode::Readv::new(types::Fd(fd.as_raw_fd()), rest.as_ptr(), count)
                    .offset(job.start + *done)
                    .build()
            }
            Op::Direct { buf, a_start, got } => {
                let fd = file.direct.as_ref().expect("direct descriptor");
                let a_end = job.end.div_ceil(DIRECT_ALIGN) * DIRECT_ALIGN;
                // Jobs never cross a chunk boundary and chunks are aligned, so
                // the widening fits the chunk-sized buffer.
                let len = (a_end - *a_start - *got).min(self.max_read) as u32;
                let at = buf.as_mut_slice()[*got as usize..].as_mut_ptr();
                opcode::Read::new(types::Fd(fd.as_raw_fd()), at, len)
                    .offset(*a_start + *got)
                    .build()
            }
        };
        let entry = entry.user_data(s as u64);
        self.slots[s] = Some(slot);
        // SAFETY: the SQE points at the slot's iovecs (heap, kept in the slot)
        // and at this job's destinations or the slot's bounce buffer, all of
        // which stay valid until its completion is reaped (`Drop` waits).
        // The ring has at least `depth` entries and at most `depth` are ours.
        while unsafe { self.ring.submission().push(&entry) }.is_err() {
            // Full (not expected): hand what is queued to the kernel.
            let _ = self.ring.submit();
        }
        self.inflight += 1;
    }

    /// Submits what is queued and waits for one completion (retrying `EINTR`).
    fn submit_and_wait(&mut self) -> io::Result<()> {
        loop {
            match self.ring.submit_and_wait(1) {
                Ok(_) => return Ok(()),
                Err(e)
                    if e.raw_os_error()
                        .is_some_and(|n| retryable(n) || n == libc::EBUSY) =>
                {
                    if !self.ring.completion().is_empty() {
                        return Ok(());
                    }
                    if e.raw_os_error() != Some(libc::EINTR) {
                        std::thread::yield_now();
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn any_inflight_job(&self) -> usize {
        self.slots
            .iter()
            .flatten()
            .map(|s| s.job)
            .next()
            .unwrap_or(0)
    }

    /// Handles every completion available.
    fn reap(&mut self) -> Result<(), LoadError> {
        let mut cqes = std::mem::take(&mut self.cqes);
        cqes.clear();
        cqes.extend(self.ring.completion().map(|c| (c.user_data(), c.result())));
        // Every reaped read leaves the in-flight count before any is
        // handled, so that a panic while handling one leaves `Drop` waiting
        // only for reads the kernel still owns.
        let mut done: Vec<(Slot, i32)> = Vec::with_capacity(cqes.len());
        for &(s, res) in &cqes {
            if let Some(slot) = self.slots.get_mut(s as usize).and_then(Option::take) {
                self.inflight -= 1;
                self.free.push(s as usize);
                done.push((slot, res));
            }
        }
        self.cqes = cqes;
        let mut first_err = None;
        for (slot, res) in done {
            if let Err(e) = self.complete(slot, res) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// One completion of `slot`'s read (the slot is already free).
    fn complete(&mut self, mut slot: Slot, res: i32) -> Result<(), LoadError> {
        let prep = self.prep;
        let job = &prep.jobs[slot.job];
        if prep.has_failed() {
            self.release(slot);
            return Ok(());
        }
        if res < 0 {
            let errno = -res;
            if retryable(errno) {
                self.submit(slot);
                return Ok(());
            }
            let err = io::Error::from_raw_os_error(errno);
            let at = match &slot.op {
                Op::Buffered { done, .. } => job.start + done,
                Op::Direct { a_start, got, .. } => (a_start + got).max(job.start),
            };
            if errno == libc::EINVAL && matches!(slot.op, Op::Direct { .. }) {
                // The file system refuses O_DIRECT here: buffered for this
                // file from now on, this job included.
                prep.disable_direct(job.file, &err);
                let j = slot.job;
                self.release(slot);
                return self.start(j).map(|_| ());
            }
            self.release(slot);
            return Err(prep.read_error(job, at, err));
        }
        let n = res as u64;
        // Ok(true): complete; Ok(false): resubmit the rest; Err(at): file ended.
        let outcome = match &mut slot.op {
            Op::Buffered { iov, first, done } => {
                if n == 0 {
                    Err(job.start + *done)
                } else {
                    *done += n;
                    let mut left = n as usize;
                    while left > 0 && *first < iov.len() {
                        let v = &mut iov[*first];
                        if left >= v.iov_len {
                            left -= v.iov_len;
                            *first += 1;
                        } else {
                            // SAFETY: advancing within the same span, `left < iov_len`.
                            v.iov_base = unsafe { v.iov_base.cast::<u8>().add(left).cast() };
                            v.iov_len -= left;
                            left = 0;
                        }
                    }
                    let complete = *first == iov.len();
                    if complete {
                        prep.count(job, JobMode::Buffered);
                    }
                    Ok(complete)
                }
            }
            Op::Direct { buf, a_start, got } => {
                *got += n;
                let reached = *a_start + *got;
                if reached >= job.end {
                    let lead = (job.start - *a_start) as usize;
                    // SAFETY: forwarded from `worker`'s contract; the job is
                    // ours and the buffer holds `lead` + the job's bytes.
                    unsafe { copy_out(prep, job, self.dests, buf.as_mut_slice(), lead) };
                    prep.count(job, JobMode::Direct);
                    Ok(true)
                } else if n == 0 || *got % DIRECT_ALIGN != 0 {
                    // An unaligned short read is the end of the file.
                    Err(reached.max(job.start))
                } else {
                    Ok(false)
                }
            }
        };
        match outcome {
            Ok(false) => {
                self.submit(slot);
                Ok(())
            }
            Ok(true) => {
                self.release(slot);
                prep.finish_job(job, self.done);
                Ok(())
            }
            Err(at) => {
                self.release(slot);
                Err(prep.read_error(job, at, eof()))
            }
        }
    }

    /// Returns a finished slot's bounce buffer to the pool.
    fn release(&self, slot: Slot) {
        if let Op::Direct { buf, .. } = slot.op {
            self.bounce.put(buf);
        }
    }
}

impl Drop for Worker<'_, '_> {
    /// Waits until the kernel is done with every SQE submitted, so no
    /// destination or bounce buffer is written after this returns.
    fn drop(&mut self) {
        while self.inflight > 0 {
            // Entries the kernel has not consumed will never be read (no
            // SQPOLL): they need no waiting.
            let unconsumed = self.ring.submission().len();
            if self.inflight <= unconsumed {
                break;
            }
            if let Err(e) = self.ring.submit_and_wait(1) {
                if e.raw_os_error() != Some(libc::EINTR) {
                    // Completions still arrive in the queue without entering.
                    std::thread::sleep(std::time::Duration::from_micros(200));
                }
            }
            let reaped: Vec<u64> = self.ring.completion().map(|c| c.user_data()).collect();
            for s in reaped {
                if let Some(slot) = self.slots.get_mut(s as usize).and_then(Option::take) {
                    self.inflight -= 1;
                    self.release(slot);
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests build fixtures with std::fs.
mod tests {
    use std::collections::HashMap;

    use safeweights::{Dtype, SafeTensorsFile, TensorRef};

    use super::*;
    use crate::{IoBackend, IoMode, LoadOptions, LoadPlan};

    /// 300 tensors of 1 byte to 40 KiB, so 64 KiB jobs hold many pieces and
    /// most tensors start unaligned.
    fn fixture(path: &std::path::Path) -> Vec<Vec<u8>> {
        let datas: Vec<Vec<u8>> = (0..300usize)
            .map(|i| {
                (0..(i * 137) % 40_000 + 1)
                    .map(|k| (k * 31 + i) as u8)
                    .collect()
            })
            .collect();
        let names: Vec<String> = (0..datas.len()).map(|i| format!("t{i:03}")).collect();
        let shapes: Vec<[usize; 1]> = datas.iter().map(|d| [d.len()]).collect();
        let refs: Vec<TensorRef<'_>> = names
            .iter()
            .zip(&datas)
            .zip(&shapes)
            .map(|((name, data), shape)| TensorRef {
                name,
                dtype: Dtype::U8,
                shape,
                data,
            })
            .collect();
        safeweights::write_file(path, &refs, None).unwrap();
        datas
    }

    /// Every read is cut short (3 pages per `READ`, 2 iovecs per `READV`):
    /// each job is finished by resubmitting its remainder, in both modes.
    #[test]
    fn remainders_are_resubmitted_until_each_job_is_complete() {
        let Ok(mut rings) = rings(1, 3) else {
            return; // No io_uring here (kernel, sysctl or seccomp).
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("many.safetensors");
        let datas = fixture(&path);
        let file = SafeTensorsFile::open(&path).unwrap();
        for mode in [IoMode::Buffered, IoMode::Direct] {
            let plan = LoadPlan::for_file(&file);
            let options = LoadOptions::new()
                .threads(1)
                .chunk_size(64 << 10)
                .io_mode(mode)
                .io_backend(IoBackend::IoUring)
                .queue_depth(3);
            let prep = Prepared::new(&plan, &options).unwrap();
            let mut bufs: Vec<Vec<u8>> = plan
                .tensors()
                .iter()
                .map(|t| vec![0xAA; t.len() as usize])
                .collect();
            let dests: Vec<HostDest> = bufs
                .iter_mut()
                .map(|b| HostDest {
                    ptr: b.as_mut_ptr(),
                    len: b.len() as u64,
                })
                .collect();
            let bounce = Pool::new(2);
            let (tx, rx) = std::sync::mpsc::channel();
            let ring = rings.pop().unwrap_or_else(|| IoUring::new(3).unwrap());
            // SAFETY: each destination is a distinct live `Vec`, untouched
            // until the worker returns.
            unsafe { worker_limited(&prep, &dests, &bounce, ring, &tx, 3 * DIRECT_ALIGN, 2) };
            drop(tx);
            assert!(prep.take_error().is_none(), "{mode:?}");
            let mut seen: HashMap<usize, u32> = HashMap::new();
            for i in rx {
                *seen.entry(i).or_default() += 1;
            }
            assert_eq!(seen.len(), plan.len(), "{mode:?}: every tensor reported");
            assert!(seen.values().all(|&n| n == 1), "{mode:?}: reported once");
            for (i, (got, want)) in bufs.iter().zip(&datas).enumerate() {
                assert!(got == want, "{mode:?}: tensor {i} differs");
            }
            let f = &prep.file_reports()[0];
            if mode == IoMode::Direct && f.fallback.is_none() {
                assert_eq!(f.bytes_buffered, 0, "{f:?}");
            }
        }
    }
}
