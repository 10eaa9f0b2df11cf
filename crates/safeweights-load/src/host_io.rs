//! Reading jobs into host memory, shared by the two CPU back ends (blocking
//! reads on threads, and `io_uring` in `uring.rs`): the destinations, their
//! spans for vectored reads, the copy out of a bounce buffer, and one job
//! read with blocking calls.

use crate::engine::{JobMode, Pool, Prepared};
use crate::error::LoadError;
use crate::plan::Job;
use crate::sys::{self, AlignedBuf, Span};

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
/// As `run_cpu` (in `cpu.rs`); the job's pieces are written by this call only, and `src`
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
/// As `run_cpu` (in `cpu.rs`); the job's pieces are written by this call only.
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
