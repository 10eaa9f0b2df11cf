//! A guard that turns a fault in a truncated memory map into an error.
//!
//! Reading a page of a mapped file that another process has truncated raises
//! `SIGBUS`, which ends the process. Scanners read files other people control,
//! so a file shrinking under them must be an error, not a crash. While a
//! mapping is registered here, a `SIGBUS` at an address inside it is answered
//! by mapping a page of zeros over the faulting page and marking the mapping
//! as faulted; the read continues on zeros, and [`Guard::faulted`] tells the
//! reader to discard what it read. A fault anywhere else is handed to the
//! handler that was installed before ours (Rust's own stack-overflow handler,
//! Python's faulthandler, or the default action).
//!
//! The table of guarded regions is a fixed array of atomics, so the handler
//! allocates nothing and takes no lock; `mmap` is async-signal-safe on Linux.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;

/// How many mappings can be guarded at once.
const SLOTS: usize = 256;

struct Slot {
    claimed: AtomicBool,
    start: AtomicUsize,
    len: AtomicUsize,
    faulted: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Slot = Slot {
    claimed: AtomicBool::new(false),
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    faulted: AtomicBool::new(false),
};

static TABLE: [Slot; SLOTS] = [EMPTY; SLOTS];
static PAGE: AtomicUsize = AtomicUsize::new(4096);
/// The handler that was in place before ours, as `sigaction` reported it.
static PREVIOUS: OnceLock<Result<libc::sigaction, i32>> = OnceLock::new();

/// A registered region; unregisters itself when dropped.
pub(crate) struct Guard {
    slot: usize,
}

impl Guard {
    /// Guards `len` bytes at `start` (the address of a mapping). Fails when the
    /// handler cannot be installed or every slot is in use.
    pub(crate) fn register(start: *const u8, len: usize) -> io::Result<Guard> {
        install()?;
        for (i, slot) in TABLE.iter().enumerate() {
            if slot
                .claimed
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                slot.faulted.store(false, Ordering::Relaxed);
                slot.len.store(len, Ordering::Relaxed);
                // Published last: the handler matches a slot only once its
                // start is visible, and by then its length is too.
                slot.start.store(start as usize, Ordering::Release);
                return Ok(Guard { slot: i });
            }
        }
        Err(io::Error::other(format!(
            "more than {SLOTS} files are mapped at once; cannot guard another"
        )))
    }

    /// Whether a read in the region faulted (the file shrank under it): what
    /// was read from it since may be zeros instead of the file's bytes.
    pub(crate) fn faulted(&self) -> bool {
        TABLE[self.slot].faulted.load(Ordering::Acquire)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let slot = &TABLE[self.slot];
        slot.start.store(0, Ordering::Release);
        slot.len.store(0, Ordering::Relaxed);
        slot.claimed.store(false, Ordering::Release);
    }
}

fn install() -> io::Result<()> {
    let previous = PREVIOUS.get_or_init(|| {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if page > 0 {
            PAGE.store(page as usize, Ordering::Relaxed);
        }
        // SAFETY: a zeroed sigaction is a valid "no handler" value; we fill in
        // the handler, flags and an empty mask before installing it, and
        // `old` is written by the kernel.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = handler as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut action.sa_mask);
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGBUS, &action, &mut old) == 0 {
                Ok(old)
            } else {
                Err(io::Error::last_os_error().raw_os_error().unwrap_or(0))
            }
        }
    });
    match previous {
        Ok(_) => Ok(()),
        Err(code) => Err(io::Error::from_raw_os_error(*code)),
    }
}

extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for an SA_SIGINFO handler.
    let addr = unsafe { (*info).si_addr() } as usize;
    let page = PAGE.load(Ordering::Relaxed);
    for slot in &TABLE {
        let start = slot.start.load(Ordering::Acquire);
        if start == 0 {
            continue;
        }
        let len = slot.len.load(Ordering::Relaxed);
        if addr >= start && addr - start < len {
            let base = addr & !(page - 1);
            // SAFETY: the page lies inside a mapping this process owns and
            // keeps alive while it is registered; replacing it with an
            // anonymous read-only page of zeros is what makes the faulting
            // read able to complete.
            let p = unsafe {
                libc::mmap(
                    base as *mut libc::c_void,
                    page,
                    libc::PROT_READ,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                )
            };
            if p != libc::MAP_FAILED {
                slot.faulted.store(true, Ordering::Release);
                return;
            }
            break;
        }
    }
    chain(sig, info, ctx);
}

/// Hands a fault that is not ours to the handler installed before us.
fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let Some(Ok(old)) = PREVIOUS.get() else {
        return restore_default(sig);
    };
    let h = old.sa_sigaction;
    if h == libc::SIG_DFL || h == libc::SIG_IGN {
        // Put the old disposition back and return: the faulting instruction
        // runs again and the signal takes its default course.
        // SAFETY: `old` is the disposition sigaction gave us.
        unsafe { libc::sigaction(sig, old, std::ptr::null_mut()) };
    } else if old.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous handler was installed with SA_SIGINFO, so it
        // has this signature.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(h) };
        f(sig, info, ctx);
    } else {
        // SAFETY: without SA_SIGINFO the previous handler takes the signal only.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(h) };
        f(sig);
    }
}

fn restore_default(sig: libc::c_int) {
    // SAFETY: resetting a signal to its default action has no preconditions.
    unsafe { libc::signal(sig, libc::SIG_DFL) };
}
