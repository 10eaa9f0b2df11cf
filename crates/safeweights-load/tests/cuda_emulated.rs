//! The CUDA pipeline (`safeweights_load::cuda`) on machines without a GPU,
//! against `cudart_emu`: a host-memory CUDA runtime (tests/cudart_emu) whose
//! streams run their copies asynchronously after random delays, and which
//! counts every misuse a real GPU would punish by corrupting data: a pinned
//! buffer overwritten before its queued copy ran, memory freed or read while
//! copies still use it, copies into memory that is not the stream's
//! device's, pageable sources, leaked allocations, streams or events.
//!
//! It checks the pipeline's logic (ordering, ring reuse, completion, errors,
//! clean-up), not CUDA's speed or the driver: a GPU machine runs
//! `cuda_load_is_byte_identical_when_a_gpu_is_present` (tests/load.rs) and
//! bench/gpu for that.
#![allow(clippy::disallowed_methods)] // Tests, examples and benches use std::fs directly; the rule is for library code.

mod common;

mod cudart_emu;

use common::write;
use std::ffi::c_char;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use safeweights::{Checkpoint, Dtype, SafeTensorsFile, SliceIndex};
use safeweights_load::cuda::{load_to_cuda, load_to_device_pointers, Cuda, DEVICE_ALIGN};
use safeweights_load::{IoMode, LoadError, LoadOptions, LoadPlan};

#[repr(C)]
struct Stats {
    live_device: i64,
    live_pinned: i64,
    live_streams: i64,
    live_events: i64,
    violations: i64,
    async_calls: i64,
    copies_run: i64,
    pageable_copies: i64,
    bytes_copied: usize,
    device_bytes: usize,
    pinned_allocs: i64,
    last_violation: [c_char; 512],
}

impl Stats {
    fn last(&self) -> String {
        let bytes: Vec<u8> = self
            .last_violation
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// The built emulator; tests take it in turn (its state is global).
struct Emu {
    path: PathBuf,
    lib: libloading::Library,
}

/// Injected behaviour, per test.
#[derive(Clone, Copy)]
struct Setup {
    devices: i32,
    delay_us: u32,
    fail_async_call: i64,
    fail_copy: i64,
    max_device_bytes: usize,
}

const NORMAL: Setup = Setup {
    devices: 1,
    delay_us: 30,
    fail_async_call: 0,
    fail_copy: 0,
    max_device_bytes: 0,
};

fn emu() -> MutexGuard<'static, Emu> {
    static EMU: OnceLock<Mutex<Emu>> = OnceLock::new();
    EMU.get_or_init(|| {
        let path = cudart_emu::build();
        // SAFETY: the emulator has no initialisers.
        let lib = unsafe { libloading::Library::new(&path) }.unwrap();
        Mutex::new(Emu { path, lib })
    })
    .lock()
    .unwrap_or_else(|p| p.into_inner())
}

impl Emu {
    fn reset(&self, s: Setup) {
        // SAFETY: emu_reset's C signature.
        unsafe {
            let f: libloading::Symbol<'_, unsafe extern "C" fn(i32, u32, i64, i64, usize)> =
                self.lib.get(b"emu_reset\0").unwrap();
            f(
                s.devices,
                s.delay_us,
                s.fail_async_call,
                s.fail_copy,
                s.max_device_bytes,
            );
        }
    }

    fn stats(&self) -> Stats {
        // SAFETY: emu_stats fills the struct, laid out as in the C source.
        unsafe {
            let f: libloading::Symbol<'_, unsafe extern "C" fn(*mut Stats)> =
                self.lib.get(b"emu_stats\0").unwrap();
            let mut s = std::mem::zeroed::<Stats>();
            f(&mut s);
            s
        }
    }

    fn cuda(&self) -> Arc<Cuda> {
        Cuda::open(&self.path).unwrap()
    }

    /// No misuse so far, and (after the load's values and the `Cuda`, which
    /// keeps pinned buffers, are dropped) nothing left allocated.
    fn assert_clean(&self) {
        let s = self.stats();
        assert_eq!(s.violations, 0, "emulator saw misuse: {}", s.last());
        assert_eq!(s.pageable_copies, 0, "copies from pageable memory");
        assert_eq!(
            (s.live_device, s.live_pinned, s.live_streams, s.live_events),
            (0, 0, 0, 0),
            "leaked (device, pinned, streams, events)"
        );
    }
}

/// 2,000 small tensors (odd sizes, so offsets are unaligned) and a 6 MB one.
fn many(dir: &Path) -> PathBuf {
    let path = dir.join("many.safetensors");
    let specs: Vec<_> = (0..2000)
        .map(|i| (format!("t{i}"), Dtype::BF16, vec![i % 13 + 1, 77]))
        .chain([("big".to_owned(), Dtype::F32, vec![1500, 1001])])
        .collect();
    write(&path, &specs);
    path
}

fn opts(mode: IoMode) -> LoadOptions {
    LoadOptions::new()
        .threads(4)
        .chunk_size(256 << 10)
        .memory_budget(2 << 20)
        .io_mode(mode)
}

fn expected(file: &SafeTensorsFile, plan: &LoadPlan) -> Vec<Vec<u8>> {
    plan.tensors()
        .iter()
        .map(|t| file.tensor(t.name()).unwrap().data().to_vec())
        .collect()
}

#[test]
fn every_io_mode_copies_every_byte_to_the_device() {
    let emu = emu();
    emu.reset(NORMAL);
    let cuda = emu.cuda();
    let dir = tempfile::tempdir().unwrap();
    let file = SafeTensorsFile::open(many(dir.path())).unwrap();
    for mode in [IoMode::Auto, IoMode::Buffered, IoMode::Direct] {
        let plan = LoadPlan::for_file(&file);
        let want = expected(&file, &plan);
        let loaded = load_to_cuda(&cuda, 0, plan, &opts(mode)).unwrap();
        assert_eq!(loaded.report().tensors, want.len());
        assert!((0..want.len()).all(|i| loaded.ptr(i) % DEVICE_ALIGN == 0));
        for (i, w) in want.iter().enumerate() {
            assert!(
                loaded.to_host(i).unwrap() == *w,
                "{mode:?}: tensor {i} differs"
            );
        }
    }
    // The ring's buffers were pinned by the first load, reused by the others.
    let stats = emu.stats();
    assert!(stats.pinned_allocs > 0 && cuda.pinned_bytes() > 0);
    assert_eq!(stats.live_pinned, stats.pinned_allocs, "kept, not freed");
    let ring = stats.pinned_allocs as u64 * (256 << 10);
    assert_eq!((cuda.pinned_bytes(), cuda.release_pinned()), (ring, ring));
    assert_eq!(cuda.pinned_bytes(), 0);
    emu.assert_clean();
    let total = LoadPlan::for_file(&file).total_bytes();
    assert_eq!(stats.bytes_copied as u64, 3 * total);
}

/// Two pinned buffers shared by eight threads, with slow copies: a buffer is
/// refilled only after its copies ran (the emulator hashes each copy's
/// source when queued and when run).
#[test]
fn a_small_ring_is_reused_only_after_its_copies_ran() {
    let emu = emu();
    emu.reset(Setup {
        delay_us: 300,
        ..NORMAL
    });
    let cuda = emu.cuda();
    let dir = tempfile::tempdir().unwrap();
    let file = SafeTensorsFile::open(many(dir.path())).unwrap();
    let plan = LoadPlan::for_file(&file);
    let want = expected(&file, &plan);
    let options = LoadOptions::new()
        .threads(8)
        .chunk_size(64 << 10)
        .memory_budget(128 << 10)
        .io_mode(IoMode::Direct);
    let loaded = load_to_cuda(&cuda, 0, plan, &options).unwrap();
    for (i, w) in want.iter().enumerate() {
        assert!(loaded.to_host(i).unwrap() == *w, "tensor {i} differs");
    }
    drop((loaded, cuda));
    emu.assert_clean();
}

/// Sharded checkpoint into caller-provided device memory: each tensor is
/// reported once, and when it is reported its bytes are on the device (the
/// emulator flags a read of memory that queued copies still write).
#[test]
fn a_tensor_is_reported_once_its_copies_are_complete() {
    let emu = emu();
    emu.reset(Setup {
        delay_us: 200,
        ..NORMAL
    });
    let cuda = emu.cuda();
    let dir = tempfile::tempdir().unwrap();
    let single = dir.path().join("single.safetensors");
    let specs: Vec<_> = (0..40)
        .map(|i| (format!("model.layers.{i}.w"), Dtype::F16, vec![640 + i, 33]))
        .collect();
    write(&single, &specs);
    let out = dir.path().join("sharded");
    std::fs::create_dir_all(&out).unwrap();
    let src = Checkpoint::open(&single).unwrap();
    safeweights::sharded::write_sharded(&src, &out, "model", Some(400_000), None, &mut |_| {})
        .unwrap();
    let ckpt = Checkpoint::open(&out).unwrap();
    assert!(ckpt.files().len() > 2);
    let plan = LoadPlan::for_checkpoint(&ckpt);
    let total = plan.total_bytes() as usize;
    let device = cuda.alloc(0, total).unwrap();
    let mut ptrs = Vec::new();
    let mut at = device.ptr();
    for t in plan.tensors() {
        ptrs.push(at);
        at += t.len();
    }
    let mut seen = vec![0u32; plan.len()];
    // SAFETY: the pointers are disjoint ranges of one fresh allocation.
    let report = unsafe {
        load_to_device_pointers(&cuda, 0, &plan, &ptrs, &opts(IoMode::Auto), |i| {
            seen[i] += 1;
            let t = &plan.tensors()[i];
            let mut host = vec![0u8; t.len() as usize];
            cuda.copy_to_host(ptrs[i], &mut host).unwrap();
            assert!(
                host == ckpt.tensor(t.name()).unwrap().data(),
                "{} reported before its bytes arrived",
                t.name()
            );
        })
    }
    .unwrap();
    assert!(seen.iter().all(|&n| n == 1), "each tensor reported once");
    assert_eq!(report.tensors, plan.len());
    drop((device, cuda));
    emu.assert_clean();
}

/// A tensor-parallel rank's column shard, onto a second device.
#[test]
fn a_slice_plan_loads_onto_the_device_it_names() {
    let emu = emu();
    emu.reset(Setup {
        devices: 2,
        ..NORMAL
    });
    let cuda = emu.cuda();
    let dir = tempfile::tempdir().unwrap();
    let file = SafeTensorsFile::open(many(dir.path())).unwrap();
    let idx = [SliceIndex::FULL, SliceIndex::range(250, 500)];
    let mut plan = LoadPlan::new();
    plan.add_slice(&file, "big", &idx).unwrap();
    plan.add_slice(&file, "t5", &[SliceIndex::range(1, 3)])
        .unwrap();
    let loaded = load_to_cuda(&cuda, 1, plan, &opts(IoMode::Direct)).unwrap();
    assert_eq!(loaded.buffers()[0].device(), 1);
    assert_eq!(
        loaded.to_host(0).unwrap(),
        file.read_slice("big", &idx).unwrap().1
    );
    assert_eq!(
        loaded.to_host(1).unwrap(),
        file.read_slice("t5", &[SliceIndex::range(1, 3)]).unwrap().1
    );
    drop(loaded);
    // A device that does not exist.
    let plan = LoadPlan::for_file(&file);
    match load_to_cuda(&cuda, 2, plan, &opts(IoMode::Auto)) {
        Err(LoadError::Cuda { call, code, .. }) => {
            assert_eq!((call, code), ("cudaSetDevice", 101));
        }
        other => panic!("expected an invalid-device error, got {other:?}"),
    }
    drop(cuda);
    emu.assert_clean();
}

/// The 400th `cudaMemcpyAsync` (in the second chunk) is refused: the error names the file and the
/// tensor; tensors reported before it are whole; nothing is left queued on
/// a freed buffer, nothing leaks.
#[test]
fn a_refused_copy_names_file_and_tensor_and_leaves_nothing_behind() {
    let emu = emu();
    emu.reset(Setup {
        fail_async_call: 400,
        delay_us: 400,
        ..NORMAL
    });
    let cuda = emu.cuda();
    let dir = tempfile::tempdir().unwrap();
    let file = SafeTensorsFile::open(many(dir.path())).unwrap();
    let plan = LoadPlan::for_file(&file);
    // Tensors placed in reverse order with gaps: every piece is its own
    // copy, so the refused one follows slow queued copies of the same chunk
    // (one thread, so the count is deterministic).
    let n = plan.len() as u64;
    let device = cuda
        .alloc(0, (plan.total_bytes() + 64 * n) as usize)
        .unwrap();
    let mut ptrs = vec![0; plan.len()];
    let mut at = device.ptr();
    for (i, t) in plan.tensors().iter().enumerate().rev() {
        ptrs[i] = at;
        at += t.len() + 64;
    }
    let mut reported = Vec::new();
    // SAFETY: disjoint ranges of one fresh allocation.
    let err = unsafe {
        load_to_device_pointers(
            &cuda,
            0,
            &plan,
            &ptrs,
            &opts(IoMode::Auto).threads(1),
            |i| {
                let mut host = vec![0u8; plan.tensors()[i].len() as usize];
                cuda.copy_to_host(ptrs[i], &mut host).unwrap();
                assert!(host == file.tensor(plan.tensors()[i].name()).unwrap().data());
                reported.push(i);
            },
        )
    }
    .unwrap_err();
    match &err {
        LoadError::Cuda {
            file: f,
            tensor,
            call,
            ..
        } => {
            assert_eq!(*call, "cudaMemcpyAsync");
            assert!(f.ends_with("many.safetensors"), "{err}");
            let failed = plan.tensors().iter().position(|t| t.name() == tensor);
            let failed = failed.unwrap_or_else(|| panic!("names a planned tensor: {err}"));
            assert!(
                !reported.contains(&failed),
                "the failed tensor was reported"
            );
        }
        other => panic!("expected a CUDA error, got {other}"),
    }
    assert!(
        err.to_string().contains("many.safetensors: tensor"),
        "{err}"
    );
    drop((device, cuda));
    emu.assert_clean();
}

/// A copy that fails on the device (a sticky error, seen at the next
/// synchronisation) fails the load naming the tensor whose copy it was.
#[test]
fn an_asynchronous_copy_failure_names_the_tensor() {
    let emu = emu();
    emu.reset(Setup {
        fail_copy: 3,
        ..NORMAL
    });
    let cuda = emu.cuda();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("eight.safetensors");
    let specs: Vec<_> = (0..8)
        .map(|i| (format!("t{i}"), Dtype::F32, vec![256, 256]))
        .collect();
    write(&path, &specs);
    let file = SafeTensorsFile::open(&path).unwrap();
    // One thread; 256 KiB chunks that never cross a multiple of 256 KiB in
    // the file, and 256 KiB tensors after the header: the third copy carries
    // the end of t1 and the start of t2, and the error names its first.
    let options = LoadOptions::new()
        .threads(1)
        .chunk_size(256 << 10)
        .memory_budget(1 << 20);
    let err = load_to_cuda(&cuda, 0, LoadPlan::for_file(&file), &options).unwrap_err();
    match &err {
        LoadError::Cuda {
            tensor, code, call, ..
        } => {
            assert_eq!(*code, 719, "{err}");
            assert_eq!(*call, "cudaEventSynchronize", "{err}");
            assert_eq!(tensor, "t1", "{err}");
        }
        other => panic!("expected a CUDA error, got {other}"),
    }
    drop(cuda);
    emu.assert_clean();
}

#[test]
fn out_of_device_memory_and_no_device_are_clean_errors() {
    let emu = emu();
    emu.reset(Setup {
        max_device_bytes: 4 << 20,
        ..NORMAL
    });
    let cuda = emu.cuda();
    let dir = tempfile::tempdir().unwrap();
    let file = SafeTensorsFile::open(many(dir.path())).unwrap();
    match load_to_cuda(&cuda, 0, LoadPlan::for_file(&file), &opts(IoMode::Auto)) {
        Err(LoadError::Cuda { call, code, .. }) => assert_eq!((call, code), ("cudaMalloc", 2)),
        other => panic!("expected out of memory, got {other:?}"),
    }
    drop(cuda);
    emu.assert_clean();
    emu.reset(Setup {
        devices: 0,
        ..NORMAL
    });
    match Cuda::open(&emu.path) {
        Err(LoadError::CudaUnavailable(why)) => assert!(why.contains("no usable device"), "{why}"),
        other => panic!("expected unavailable, got {other:?}"),
    }
    match Cuda::open(emu.path.with_file_name("no-such-libcudart.so")) {
        Err(LoadError::CudaUnavailable(why)) => assert!(why.contains("cannot load"), "{why}"),
        other => panic!("expected unavailable, got {other:?}"),
    }
}
