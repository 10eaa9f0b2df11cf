//! CPU tests of the load engine: every loaded byte equals the file's, in every
//! I/O mode and through both I/O backends (threads, io_uring), for many
//! small, huge, unaligned, sharded and sliced plans; failed reads name the
//! file and tensor and never report a partial tensor.
#![allow(clippy::disallowed_methods)] // Tests, examples and benches use std::fs directly; the rule is for library code.

mod common;

use common::write;
use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use safeweights::{
    sharded::write_sharded, Checkpoint, Dtype, FileSource, ParseOptions, SafeTensorsFile,
    SliceIndex, Source,
};
use safeweights_load::{
    load_into, load_into_arena, load_into_with, load_to_host, stream, FileMode, IoBackend, IoMode,
    LoadError, LoadOptions, LoadPlan, LoadReport,
};

const MODES: [IoMode; 3] = [IoMode::Auto, IoMode::Buffered, IoMode::Direct];
const BACKENDS: [IoBackend; 2] = [IoBackend::Threads, IoBackend::IoUring];

/// Every backend with every mode.
fn every() -> impl Iterator<Item = (IoBackend, IoMode)> {
    BACKENDS.into_iter().flat_map(|b| MODES.map(|m| (b, m)))
}

/// Whether this machine lets a process set up an io_uring (kernel, sysctl
/// `kernel.io_uring_disabled`, seccomp): probed with a ring of our own.
fn uring_available() -> bool {
    #[cfg(target_os = "linux")]
    {
        io_uring::IoUring::new(8).is_ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

/// The report names the backend that really ran: io_uring wherever a ring
/// can be set up, else threads with the reason.
fn check_backend(report: &LoadReport, asked: IoBackend) {
    if asked == IoBackend::IoUring && uring_available() {
        assert_eq!(report.io_backend, IoBackend::IoUring, "{report:?}");
        assert_eq!(report.io_backend_fallback, None);
    } else {
        assert_eq!(report.io_backend, IoBackend::Threads, "{report:?}");
        assert_eq!(
            report.io_backend_fallback.is_some(),
            asked == IoBackend::IoUring,
            "{report:?}"
        );
    }
}

fn opts(mode: IoMode) -> LoadOptions {
    LoadOptions::new()
        .threads(4)
        .chunk_size(64 << 10)
        .memory_budget(256 << 10)
        .io_mode(mode)
}

fn opts_on(backend: IoBackend, mode: IoMode) -> LoadOptions {
    opts(mode).io_backend(backend)
}

/// Loads with `load_into` and checks every tensor against the core reader.
fn check_plan(plan: &LoadPlan, expected: &[Vec<u8>], options: &LoadOptions) {
    let mut bufs: Vec<Vec<u8>> = plan
        .tensors()
        .iter()
        .map(|t| vec![0xAA; t.len() as usize])
        .collect();
    let mut dests: Vec<&mut [u8]> = bufs.iter_mut().map(|b| b.as_mut_slice()).collect();
    let report = load_into(plan, &mut dests, options).unwrap();
    check_backend(&report, options.backend());
    assert_eq!(report.tensors, plan.len());
    assert_eq!(report.bytes, plan.total_bytes());
    for (i, (got, want)) in bufs.iter().zip(expected).enumerate() {
        assert!(
            got == want,
            "tensor {i} ({}) differs",
            plan.tensors()[i].name()
        );
    }
}

fn whole(file: &SafeTensorsFile) -> Vec<Vec<u8>> {
    file.header()
        .tensors()
        .iter()
        .map(|t| file.tensor(&t.name).unwrap().data().to_vec())
        .collect()
}

#[test]
fn ten_thousand_small_tensors_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("many.safetensors");
    let specs: Vec<_> = (0..10_000)
        .map(|i| {
            (
                format!("layers.{}.experts.{}.w", i / 100, i % 100),
                Dtype::BF16,
                vec![i % 7 + 1, 13],
            )
        })
        .collect();
    write(&path, &specs);
    let file = SafeTensorsFile::open(&path).unwrap();
    let plan = LoadPlan::for_file(&file);
    let expected = whole(&file);
    for (backend, mode) in every() {
        check_plan(&plan, &expected, &opts_on(backend, mode));
    }
    // Into one arena too, with the streaming callback seeing each tensor once.
    let (offsets, total) = plan.arena_offsets(1);
    let mut arena = vec![0u8; total as usize];
    for backend in BACKENDS {
        let mut seen = vec![0u32; plan.len()];
        let o = opts_on(backend, IoMode::Direct);
        let report = load_into_arena(&plan, &mut arena, &offsets, &o, |l| {
            assert_eq!(l.data, &expected[l.index][..]);
            seen[l.index] += 1;
        })
        .unwrap();
        check_backend(&report, backend);
        assert!(seen.iter().all(|&n| n == 1));
        // Packed arena mirrors the file: 10,000 tensors in a few reads.
        assert!(report.reads < 100, "{} reads", report.reads);
    }
}

#[test]
fn huge_tensors_split_across_workers_and_unaligned_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.safetensors");
    let specs = vec![
        ("a".to_owned(), Dtype::U8, vec![3]),
        ("big1".to_owned(), Dtype::F32, vec![1000, 1001]),
        ("b".to_owned(), Dtype::U8, vec![5]),
        ("big2".to_owned(), Dtype::BF16, vec![777, 1333]),
        ("c".to_owned(), Dtype::U8, vec![1]),
        ("empty".to_owned(), Dtype::F32, vec![0, 4]),
    ];
    write(&path, &specs);
    let file = SafeTensorsFile::open(&path).unwrap();
    let plan = LoadPlan::for_file(&file);
    let expected = whole(&file);
    for (backend, mode) in every() {
        for chunk in [4096u64, 64 << 10, 1 << 20] {
            let o = LoadOptions::new()
                .threads(3)
                .chunk_size(chunk)
                .io_mode(mode)
                .io_backend(backend);
            check_plan(&plan, &expected, &o);
        }
        // Tight budget: smaller than a chunk still works (chunk shrinks);
        // with io_uring, two bounce buffers for 2 x 8 reads in flight.
        for depth in [1, 8] {
            let o = LoadOptions::new()
                .threads(2)
                .chunk_size(1 << 20)
                .memory_budget(8192)
                .queue_depth(depth)
                .io_mode(mode)
                .io_backend(backend);
            check_plan(&plan, &expected, &o);
        }
    }
    let host = load_to_host(plan, &opts(IoMode::Auto)).unwrap();
    assert!(host.get("big2").unwrap() == file.tensor("big2").unwrap().data());
}

#[test]
fn direct_and_buffered_are_reported_per_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    write(&path, &[("w".to_owned(), Dtype::F32, vec![256, 1024])]);
    let file = SafeTensorsFile::open(&path).unwrap();
    let plan = LoadPlan::for_file(&file);
    let expected = whole(&file);
    let host = load_to_host(plan.clone(), &opts(IoMode::Buffered)).unwrap();
    assert_eq!(host.report().files[0].mode, FileMode::Buffered);
    assert_eq!(host.data(0), &expected[0][..]);
    let host = load_to_host(plan.clone(), &opts(IoMode::Direct)).unwrap();
    let f = &host.report().files[0];
    // O_DIRECT works on ext4/xfs; on tmpfs the fallback is reported.
    assert!(
        (f.mode == FileMode::Direct && f.fallback.is_none())
            || (f.mode == FileMode::Buffered && f.fallback.is_some()),
        "{f:?}"
    );
    assert_eq!(host.data(0), &expected[0][..]);
    // Auto on a file just written (in the page cache): buffered.
    let host = load_to_host(plan, &opts(IoMode::Auto)).unwrap();
    let f = &host.report().files[0];
    if f.resident_fraction == Some(1.0) {
        assert_eq!(f.mode, FileMode::Buffered);
    }
    let json = serde_json::to_value(host.report()).unwrap();
    assert!(json["gb_per_s"].is_number());
    assert!(json["files"][0]["mode"].is_string());
}

fn sharded_fixture(dir: &Path) -> PathBuf {
    let single = dir.join("single.safetensors");
    let specs: Vec<_> = (0..40)
        .map(|i| (format!("model.layers.{i}.w"), Dtype::F16, vec![64 + i, 33]))
        .collect();
    write(&single, &specs);
    let out = dir.join("sharded");
    std::fs::create_dir_all(&out).unwrap();
    let src = Checkpoint::open(&single).unwrap();
    let written = write_sharded(&src, &out, "model", Some(40_000), None, &mut |_| {}).unwrap();
    assert!(written.len() > 3, "several shards and an index");
    out
}

#[test]
fn sharded_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let out = sharded_fixture(dir.path());
    let ckpt = Checkpoint::open(&out).unwrap();
    assert!(ckpt.files().len() > 2);
    let plan = LoadPlan::for_checkpoint(&ckpt);
    assert_eq!(plan.files().len(), ckpt.files().len());
    let expected: Vec<Vec<u8>> = plan
        .tensors()
        .iter()
        .map(|t| ckpt.tensor(t.name()).unwrap().data().to_vec())
        .collect();
    for (backend, mode) in every() {
        check_plan(&plan, &expected, &opts_on(backend, mode));
    }
    let host = load_to_host(plan, &opts(IoMode::Auto)).unwrap();
    assert_eq!(host.report().files.len(), ckpt.files().len());
}

/// Tensor parallelism: each of 4 ranks loads a column shard of the
/// "column-parallel" weights and a row shard of the "row-parallel" ones;
/// each shard equals the core's slice, and the union is the whole tensor.
#[test]
fn tensor_parallel_plans_union_to_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tp.safetensors");
    let specs: Vec<_> = (0..12)
        .map(|i| {
            (
                format!(
                    "layers.{i}.{}",
                    if i % 2 == 0 { "q_proj" } else { "o_proj" }
                ),
                Dtype::BF16,
                vec![96 + 8 * i, 128],
            )
        })
        .collect();
    write(&path, &specs);
    let file = SafeTensorsFile::open(&path).unwrap();
    let ranks = 4i64;
    let mut union: Vec<Vec<u8>> = specs
        .iter()
        .map(|(_, d, s)| vec![0u8; d.byte_size(s.iter().product()).unwrap()])
        .collect();
    for (backend, mode) in every() {
        for rank in 0..ranks {
            let mut plan = LoadPlan::new();
            let mut expected = Vec::new();
            for (name, _, shape) in &specs {
                let (rows, cols) = (shape[0] as i64, shape[1] as i64);
                let idx = if name.ends_with("q_proj") {
                    // Column shard: [:, r*c/4 .. (r+1)*c/4].
                    let w = cols / ranks;
                    vec![
                        SliceIndex::FULL,
                        SliceIndex::range(rank * w, (rank + 1) * w),
                    ]
                } else {
                    let h = rows / ranks;
                    vec![SliceIndex::range(rank * h, (rank + 1) * h)]
                };
                plan.add_slice(&file, name, &idx).unwrap();
                expected.push(file.read_slice(name, &idx).unwrap().1);
            }
            check_plan(&plan, &expected, &opts_on(backend, mode));
            // Scatter this rank's shards into the union.
            for (t, ((name, _, shape), shard)) in specs.iter().zip(&expected).enumerate() {
                let (rows, cols) = (shape[0], shape[1]);
                let r = rank as usize;
                if name.ends_with("q_proj") {
                    let w = cols / ranks as usize;
                    for row in 0..rows {
                        let dst = (row * cols + r * w) * 2;
                        let src = row * w * 2;
                        union[t][dst..dst + w * 2].copy_from_slice(&shard[src..src + w * 2]);
                    }
                } else {
                    let h = rows / ranks as usize;
                    let dst = r * h * cols * 2;
                    union[t][dst..dst + shard.len()].copy_from_slice(shard);
                }
            }
        }
        for ((name, _, _), u) in specs.iter().zip(&union) {
            assert!(
                u == file.tensor(name).unwrap().data(),
                "union of the shards of {name} is the tensor"
            );
        }
    }
}

/// A source that fails reads touching `fail_at`.
struct Failing {
    inner: FileSource,
    fail_at: u64,
}

impl Source for Failing {
    fn len(&self) -> u64 {
        self.inner.len()
    }
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        if offset <= self.fail_at && self.fail_at < offset + buf.len() as u64 {
            return Err(io::Error::other("injected failure"));
        }
        self.inner.read_exact_at(offset, buf)
    }
    fn describe(&self) -> String {
        "failing.safetensors".to_owned()
    }
}

fn eight_tensors(dir: &Path) -> PathBuf {
    let path = dir.join("eight.safetensors");
    let specs: Vec<_> = (0..8)
        .map(|i| (format!("t{i}"), Dtype::F32, vec![100, 300]))
        .collect();
    write(&path, &specs);
    path
}

#[test]
fn injected_read_failure_names_file_and_tensor_and_reports_no_partial_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let path = eight_tensors(dir.path());
    let plain = SafeTensorsFile::open(&path).unwrap();
    let expected = whole(&plain);
    let victim = plain.info("t5").unwrap();
    let fail_at = plain.file_range(victim).start + 1000;
    let source = Arc::new(Failing {
        inner: FileSource::open(&path).unwrap(),
        fail_at,
    });
    let file = SafeTensorsFile::from_source(source, &ParseOptions::default()).unwrap();
    let plan = LoadPlan::for_file(&file);
    // A source that is not a file: io_uring workers read it synchronously.
    for backend in BACKENDS {
        let mut bufs: Vec<Vec<u8>> = plan
            .tensors()
            .iter()
            .map(|t| vec![0; t.len() as usize])
            .collect();
        let mut dests: Vec<&mut [u8]> = bufs.iter_mut().map(|b| b.as_mut_slice()).collect();
        let mut completed = HashSet::new();
        let o = opts_on(backend, IoMode::Auto);
        let err = load_into_with(&plan, &mut dests, &o, |l| {
            assert_eq!(
                l.data,
                &expected[l.index][..],
                "a reported tensor is complete"
            );
            completed.insert(l.tensor.name().to_owned());
        })
        .unwrap_err();
        match &err {
            LoadError::Read { file, tensor, .. } => {
                assert_eq!(file, "failing.safetensors");
                assert_eq!(tensor, "t5");
            }
            other => panic!("unexpected {other:?}"),
        }
        let msg = err.to_string();
        assert!(
            msg.contains("failing.safetensors") && msg.contains("t5"),
            "{msg}"
        );
        assert!(!completed.contains("t5"));
    }

    // The streaming iterator: only complete tensors, then the error.
    let mut yielded = Vec::new();
    let mut failed = None;
    for item in stream(plan, opts(IoMode::Auto)) {
        match item {
            Ok(t) => {
                assert_eq!(t.data, expected[t.index]);
                yielded.push(t.name);
            }
            Err(e) => failed = Some(e),
        }
    }
    assert!(matches!(failed, Some(LoadError::Read { ref tensor, .. }) if tensor == "t5"));
    assert!(!yielded.contains(&"t5".to_owned()));
}

#[test]
fn file_truncated_after_planning_fails_with_file_and_tensor() {
    // Through io_uring: a short READ/READV is resubmitted, then the end of
    // the file is reported as with threads.
    for (backend, mode) in every() {
        let dir = tempfile::tempdir().unwrap();
        let path = eight_tensors(dir.path());
        let file = SafeTensorsFile::open_with_pread(&path);
        let expected = whole(&file);
        let cut = file.file_range(file.info("t6").unwrap()).start + 4097;
        let plan = LoadPlan::for_file(&file);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(cut)
            .unwrap();
        let mut bufs: Vec<Vec<u8>> = plan
            .tensors()
            .iter()
            .map(|t| vec![0; t.len() as usize])
            .collect();
        let mut dests: Vec<&mut [u8]> = bufs.iter_mut().map(|b| b.as_mut_slice()).collect();
        let mut completed = HashSet::new();
        let err = load_into_with(&plan, &mut dests, &opts_on(backend, mode), |l| {
            assert_eq!(l.data, &expected[l.index][..]);
            completed.insert(l.tensor.name().to_owned());
        })
        .unwrap_err();
        let LoadError::Read {
            file: f,
            tensor,
            source,
            ..
        } = &err
        else {
            panic!("unexpected {err:?}");
        };
        assert!(f.ends_with("eight.safetensors"), "{f}");
        assert!(
            tensor == "t6" || tensor == "t7",
            "{backend:?} {mode:?}: {tensor}"
        );
        assert_eq!(source.kind(), io::ErrorKind::UnexpectedEof);
        assert!(
            !completed.contains("t6") && !completed.contains("t7"),
            "{backend:?} {mode:?}"
        );
    }
}

/// A real OS error through the ring: one shard of a sharded checkpoint is
/// replaced by a folder after planning, so its reads fail with `EISDIR`
/// (its `O_DIRECT` open is refused first, which reads buffered). The error
/// names that shard and one of its tensors; none of its tensors is reported
/// complete; every tensor reported is byte-identical.
#[test]
fn os_error_in_one_shard_names_file_and_tensor_through_io_uring() {
    for (backend, mode) in every() {
        let dir = tempfile::tempdir().unwrap();
        let out = sharded_fixture(dir.path());
        let ckpt = Checkpoint::open_with(&out, &safeweights::OpenOptions::new().pread()).unwrap();
        let plan = LoadPlan::for_checkpoint(&ckpt);
        let expected: Vec<Vec<u8>> = plan
            .tensors()
            .iter()
            .map(|t| ckpt.tensor(t.name()).unwrap().data().to_vec())
            .collect();
        let broken = plan.files()[1].name().to_owned();
        let in_broken: HashSet<String> = plan
            .tensors()
            .iter()
            .filter(|t| t.file() == 1)
            .map(|t| t.name().to_owned())
            .collect();
        assert!(!in_broken.is_empty());
        std::fs::remove_file(&broken).unwrap();
        std::fs::create_dir(&broken).unwrap();
        let mut bufs: Vec<Vec<u8>> = plan
            .tensors()
            .iter()
            .map(|t| vec![0; t.len() as usize])
            .collect();
        let mut dests: Vec<&mut [u8]> = bufs.iter_mut().map(|b| b.as_mut_slice()).collect();
        let mut completed = HashSet::new();
        let err = load_into_with(&plan, &mut dests, &opts_on(backend, mode), |l| {
            assert_eq!(l.data, &expected[l.index][..]);
            completed.insert(l.tensor.name().to_owned());
        })
        .unwrap_err();
        let LoadError::Read {
            file,
            tensor,
            source,
            ..
        } = &err
        else {
            panic!("{backend:?} {mode:?}: unexpected {err:?}");
        };
        assert_eq!(file, &broken, "{backend:?} {mode:?}");
        assert!(in_broken.contains(tensor), "{backend:?} {mode:?}: {tensor}");
        assert_eq!(source.raw_os_error(), Some(libc_eisdir()), "{source}");
        assert!(
            completed.is_disjoint(&in_broken),
            "{backend:?} {mode:?}: a tensor of the broken shard was reported"
        );
    }
}

fn libc_eisdir() -> i32 {
    io::Error::from(io::ErrorKind::IsADirectory)
        .raw_os_error()
        .unwrap_or(21)
}

/// A ring size the kernel refuses (over its 32768 entries) makes ring setup
/// fail for real; the load falls back to threads, says why, and is correct.
#[test]
fn io_uring_setup_failure_falls_back_to_threads_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let path = eight_tensors(dir.path());
    let file = SafeTensorsFile::open(&path).unwrap();
    let plan = LoadPlan::for_file(&file);
    let expected = whole(&file);
    for mode in MODES {
        let o = opts_on(IoBackend::IoUring, mode).queue_depth(1 << 16);
        let host = load_to_host(plan.clone(), &o).unwrap();
        let r = host.report();
        assert_eq!(r.io_backend, IoBackend::Threads);
        let why = r.io_backend_fallback.as_deref().expect("a fallback reason");
        assert!(why.contains("io_uring unavailable"), "{why}");
        if uring_available() {
            // The kernel's own refusal (EINVAL), not a flag of ours.
            assert!(why.contains("os error 22"), "{why}");
        }
        for (i, want) in expected.iter().enumerate() {
            assert_eq!(host.data(i), &want[..]);
        }
        let json = serde_json::to_value(r).unwrap();
        assert_eq!(json["io_backend"], "threads");
        assert!(json["io_backend_fallback"].is_string());
    }
    // The largest ring the kernel takes works.
    let o = opts_on(IoBackend::IoUring, IoMode::Auto).queue_depth(32768);
    let host = load_to_host(plan.clone(), &o).unwrap();
    check_backend(host.report(), IoBackend::IoUring);
    // Auto is threads (measured: bench/README.md), with nothing to explain.
    let host = load_to_host(plan, &opts(IoMode::Auto)).unwrap();
    assert_eq!(host.report().io_backend, IoBackend::Threads);
    assert_eq!(host.report().io_backend_fallback, None);
    let json = serde_json::to_value(host.report()).unwrap();
    assert_eq!(json["io_backend"], "threads");
    assert_eq!(json["io_backend_fallback"], serde_json::Value::Null);
}

/// The report's JSON names the backend, and old reports (without it) still parse.
#[test]
fn report_json_names_the_backend() {
    let dir = tempfile::tempdir().unwrap();
    let path = eight_tensors(dir.path());
    let file = SafeTensorsFile::open(&path).unwrap();
    let o = opts_on(IoBackend::IoUring, IoMode::Auto);
    let host = load_to_host(LoadPlan::for_file(&file), &o).unwrap();
    let mut json = serde_json::to_value(host.report()).unwrap();
    let want = if uring_available() {
        "io_uring"
    } else {
        "threads"
    };
    assert_eq!(json["io_backend"], want);
    let obj = json.as_object_mut().unwrap();
    obj.remove("io_backend");
    obj.remove("io_backend_fallback");
    let old: LoadReport = serde_json::from_value(json).unwrap();
    assert_eq!(old.io_backend, IoBackend::Threads);
    for (text, b) in [
        ("\"auto\"", IoBackend::Auto),
        ("\"threads\"", IoBackend::Threads),
        ("\"io_uring\"", IoBackend::IoUring),
        ("\"io-uring\"", IoBackend::IoUring),
    ] {
        assert_eq!(serde_json::from_str::<IoBackend>(text).unwrap(), b);
    }
}

trait OpenPread {
    fn open_with_pread(path: &Path) -> SafeTensorsFile;
}
impl OpenPread for SafeTensorsFile {
    fn open_with_pread(path: &Path) -> SafeTensorsFile {
        safeweights::OpenOptions::new().pread().open(path).unwrap()
    }
}

#[test]
fn stream_yields_every_tensor_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = eight_tensors(dir.path());
    let file = SafeTensorsFile::open(&path).unwrap();
    let expected = whole(&file);
    let mut s = stream(LoadPlan::for_file(&file), opts(IoMode::Direct));
    let mut seen = HashSet::new();
    for t in s.by_ref() {
        let t = t.unwrap();
        assert_eq!(t.data, expected[t.index]);
        assert_eq!(t.shape, vec![100, 300]);
        assert!(seen.insert(t.index));
    }
    assert_eq!(seen.len(), 8);
    assert_eq!(s.report().unwrap().tensors, 8);
}

#[test]
fn destinations_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = eight_tensors(dir.path());
    let file = SafeTensorsFile::open(&path).unwrap();
    let plan = LoadPlan::for_file(&file);
    let mut bufs: Vec<Vec<u8>> = plan
        .tensors()
        .iter()
        .map(|t| vec![0; t.len() as usize])
        .collect();
    bufs[3].pop();
    let mut dests: Vec<&mut [u8]> = bufs.iter_mut().map(|b| b.as_mut_slice()).collect();
    let err = load_into(&plan, &mut dests, &LoadOptions::new()).unwrap_err();
    assert!(matches!(err, LoadError::Destination { ref tensor, .. } if tensor == "t3"));
    let (mut offsets, total) = plan.arena_offsets(1);
    offsets[2] = offsets[1] + 10;
    let mut arena = vec![0u8; total as usize];
    let err =
        load_into_arena(&plan, &mut arena, &offsets, &LoadOptions::new(), |_| {}).unwrap_err();
    assert!(matches!(err, LoadError::Destination { .. }), "{err}");
    let err = plan_outside(&file);
    assert!(matches!(err, LoadError::Plan { .. }), "{err}");
}

fn plan_outside(file: &SafeTensorsFile) -> LoadError {
    let mut plan = LoadPlan::new();
    plan.add_ranges(
        file,
        "x",
        Dtype::U8,
        vec![4],
        std::iter::once(0..4).collect(),
    )
    .unwrap_err()
}

#[test]
fn cuda_unavailable_is_a_clean_error() {
    match safeweights_load::cuda::Cuda::load() {
        Ok(cuda) => {
            // A GPU machine: bench/gpu/README.md runs the GPU tests.
            assert!(cuda.device_count().unwrap_or(0) >= 0);
        }
        Err(e) => {
            assert!(matches!(e, LoadError::CudaUnavailable(_)), "{e}");
            assert!(e.to_string().contains("CUDA is unavailable"));
        }
    }
}

/// Runs only where a GPU and libcudart are present (see bench/gpu/README.md).
#[test]
fn cuda_load_is_byte_identical_when_a_gpu_is_present() {
    let Ok(cuda) = safeweights_load::cuda::Cuda::load() else {
        return; // No GPU here: skipped.
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("many.safetensors");
    let specs: Vec<_> = (0..3000)
        .map(|i| (format!("t{i}"), Dtype::BF16, vec![i % 13 + 1, 77]))
        .chain([("big".to_owned(), Dtype::F32, vec![1500, 1001])])
        .collect();
    write(&path, &specs);
    let file = SafeTensorsFile::open(&path).unwrap();
    for mode in MODES {
        let plan = LoadPlan::for_file(&file);
        let loaded = safeweights_load::cuda::load_to_cuda(&cuda, 0, plan, &opts(mode)).unwrap();
        for (i, t) in loaded.plan().tensors().iter().enumerate() {
            assert!(loaded.to_host(i).unwrap() == file.tensor(t.name()).unwrap().data());
        }
    }
    // A tensor-parallel slice plan onto the device.
    let mut plan = LoadPlan::new();
    let idx = [SliceIndex::FULL, SliceIndex::range(250, 500)];
    plan.add_slice(&file, "big", &idx).unwrap();
    let loaded =
        safeweights_load::cuda::load_to_cuda(&cuda, 0, plan, &opts(IoMode::Direct)).unwrap();
    assert_eq!(
        loaded.to_host(0).unwrap(),
        file.read_slice("big", &idx).unwrap().1
    );
}
