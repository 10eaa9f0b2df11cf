//! # safeweights-load
//!
//! A parallel I/O engine that loads safetensors tensors into host memory or
//! NVIDIA GPUs at the speed of the storage.
//!
//! The engine reads a [`LoadPlan`]: for each tensor (or slice of one, e.g. a
//! tensor-parallel rank's shard) the absolute file ranges whose concatenation
//! is its bytes, across one or many files (a sharded [`safeweights::Checkpoint`]).
//! It sorts and coalesces adjacent ranges per file, cuts them into chunks
//! that never cross a multiple of the chunk size, and keeps a pool of threads
//! reading:
//!
//! * buffered (`preadv` straight into the destinations) where the pages are
//!   in the page cache, or
//! * direct (`O_DIRECT` into aligned bounce buffers, then copied) where they
//!   are not, so a cold load does not fill the cache; buffered where the
//!   file system refuses `O_DIRECT` (tmpfs). See [`IoMode`].
//!
//! On the CPU destination the reads are issued by blocking calls, one per
//! thread at a time, or, with [`IoBackend::IoUring`] (Linux), through one
//! `io_uring` per thread that keeps [`LoadOptions::queue_depth`] reads in
//! flight. Where a ring cannot be set up (old kernel, `io_uring_disabled`,
//! seccomp) the load runs on threads and the [`LoadReport`] says why. The
//! default, [`IoBackend::Auto`], is threads: io_uring was not faster on the
//! machine measured (`bench/README.md`).
//!
//! A tensor is reported complete (to a callback, or yielded by a
//! [`TensorStream`]) only once all its bytes are in place; a failed read
//! fails the load with an error naming the file and the tensor.
//!
//! ```no_run
//! use safeweights::Checkpoint;
//! use safeweights_load::{load_to_host, LoadOptions, LoadPlan};
//!
//! let ckpt = Checkpoint::open("model/")?;
//! let loaded = load_to_host(LoadPlan::for_checkpoint(&ckpt), &LoadOptions::new().threads(8))?;
//! println!("{:.2} GB/s", loaded.report().gb_per_s);
//! let w = loaded.get("lm_head.weight");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The CUDA destination ([`cuda`]) loads `libcudart` at run time; without a
//! GPU it reports [`LoadError::CudaUnavailable`].
//!
//! Device strings are parsed here and nowhere else: [`Device`] (`cpu`,
//! `cuda`, `cuda:N`, or `N` for `cuda:N`) for where to load, [`DeviceName`]
//! for any device kind a framework names (`mps`, `xpu:1`, ...), as the
//! Python bindings need.
#![deny(missing_docs)]
#![cfg(unix)]

mod cpu;
pub mod cuda;
mod device;
mod engine;
mod error;
mod host_io;
mod options;
mod plan;
mod quick;
mod report;
mod sys;
#[cfg(target_os = "linux")]
mod uring;
mod verify;

pub use cpu::{
    load_into, load_into_arena, load_into_with, load_to_host, stream, HostTensors, Loaded,
    StreamedTensor, TensorStream,
};
pub use device::{Device, DeviceError, DeviceName, DEVICE_KINDS};
pub use error::LoadError;
pub use options::{IoBackend, IoMode, LoadOptions};
pub use plan::{LoadPlan, PlanFile, PlannedTensor};
pub use quick::{load_on, load_path, load_path_verified};
pub use report::{FileMode, FileReport, LoadReport};
pub use sys::{evict_from_page_cache, page_residency, page_size, HostBuffer};
