//! Loading checkpoints into CPU memory: safeweights-load against the
//! reference `safetensors` 0.8 `load_file` (numpy), in the same run, warm
//! (page cache) and cold (caches dropped, or the files' pages evicted with
//! `posix_fadvise(DONTNEED)` when that is not permitted), through both I/O
//! backends (threads, io_uring), each against the hardware limit measured
//! in the same run on the same files:
//!
//! * memcpy: the checkpoint's bytes copied by as many threads as the load
//!   uses, from a warm, already-faulted buffer into a freshly mapped arena of
//!   the load's shape (the best a loader from the page cache could do);
//! * disk: the files read cold with as many threads, each issuing aligned
//!   16 MiB `O_DIRECT` reads into one reused aligned buffer, nothing else.
//!
//! `cargo run --release -p safeweights-bench --bin load -- [--dir DIR] [--gb N] [--threads N] [--queue-depth N] [--runs N] [--no-peer]`
#![allow(clippy::disallowed_methods)] // Tests, examples and benches use std::fs directly; the rule is for library code.
#![allow(clippy::print_stdout)]

use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use safeweights::sharded::ShardIndex;
use safeweights::{Checkpoint, Dtype, OpenOptions, StreamingWriter, TensorSpec};
use safeweights_bench::{gbps, machine, row, run_peer};
use safeweights_load::{
    evict_from_page_cache, load_to_host, page_residency, HostBuffer, IoBackend, IoMode,
    LoadOptions, LoadPlan,
};

struct Args {
    dir: PathBuf,
    gb: f64,
    threads: Option<usize>,
    depth: Option<usize>,
    runs: usize,
    peer: bool,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        dir: std::env::temp_dir().join("safeweights-bench-load"),
        gb: 2.0,
        threads: None,
        depth: None,
        runs: 3,
        peer: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            "--dir" => a.dir = PathBuf::from(it.next().expect("--dir DIR")),
            "--gb" => a.gb = it.next().expect("--gb N").parse()?,
            "--threads" => a.threads = Some(it.next().expect("--threads N").parse()?),
            "--queue-depth" => a.depth = Some(it.next().expect("--queue-depth N").parse()?),
            "--runs" => a.runs = it.next().expect("--runs N").parse()?,
            "--no-peer" => a.peer = false,
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    Ok(a)
}

fn pattern(n: usize) -> Vec<u8> {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Writes a sharded checkpoint of `specs` (shards of at most `shard` bytes)
/// plus its index; returns the index path and the shard paths.
fn write_checkpoint(
    dir: &Path,
    specs: &[TensorSpec],
    shard: u64,
) -> anyhow::Result<(PathBuf, Vec<PathBuf>)> {
    std::fs::create_dir_all(dir)?;
    let max = specs
        .iter()
        .map(|s| s.byte_len().unwrap())
        .max()
        .unwrap_or(0);
    let data = pattern(max);
    let mut groups: Vec<Vec<TensorSpec>> = vec![Vec::new()];
    let mut size = 0u64;
    for s in specs {
        let n = s.byte_len().unwrap() as u64;
        if size + n > shard && !groups.last().unwrap().is_empty() {
            groups.push(Vec::new());
            size = 0;
        }
        size += n;
        groups.last_mut().unwrap().push(s.clone());
    }
    let count = groups.len();
    let mut index = ShardIndex {
        metadata: Default::default(),
        weight_map: Default::default(),
    };
    let total: u64 = specs.iter().map(|s| s.byte_len().unwrap() as u64).sum();
    index.metadata.insert("total_size".into(), total.into());
    let mut paths = Vec::new();
    for (i, group) in groups.into_iter().enumerate() {
        let name = format!("model-{:05}-of-{count:05}.safetensors", i + 1);
        let path = dir.join(&name);
        let mut w = StreamingWriter::create(&path, group.clone(), None)?;
        for s in &group {
            w.write(&s.name, &data[..s.byte_len().unwrap()])?;
            index.weight_map.insert(s.name.clone(), name.clone());
        }
        w.finish()?;
        paths.push(path);
    }
    let index_path = dir.join("model.safetensors.index.json");
    std::fs::write(&index_path, index.to_json())?;
    Ok((index_path, paths))
}

/// A Llama-like checkpoint of about `gb` GB in bf16 (7B-like dimensions).
fn llama_specs(gb: f64) -> Vec<TensorSpec> {
    let (h, ffn, vocab) = (4096usize, 11008usize, 32000usize);
    let mut specs = vec![
        TensorSpec::new("model.embed_tokens.weight", Dtype::BF16, vec![vocab, h]),
        TensorSpec::new("lm_head.weight", Dtype::BF16, vec![vocab, h]),
        TensorSpec::new("model.norm.weight", Dtype::BF16, vec![h]),
    ];
    let per_layer = (4 * h * h + 3 * h * ffn + 2 * h) * 2;
    let fixed = 2 * vocab * h * 2;
    let layers = (((gb * 1e9) as usize).saturating_sub(fixed) / per_layer).max(1);
    for l in 0..layers {
        let p = format!("model.layers.{l}");
        for n in ["q_proj", "k_proj", "v_proj", "o_proj"] {
            specs.push(TensorSpec::new(
                format!("{p}.self_attn.{n}.weight"),
                Dtype::BF16,
                vec![h, h],
            ));
        }
        specs.push(TensorSpec::new(
            format!("{p}.mlp.gate_proj.weight"),
            Dtype::BF16,
            vec![ffn, h],
        ));
        specs.push(TensorSpec::new(
            format!("{p}.mlp.up_proj.weight"),
            Dtype::BF16,
            vec![ffn, h],
        ));
        specs.push(TensorSpec::new(
            format!("{p}.mlp.down_proj.weight"),
            Dtype::BF16,
            vec![h, ffn],
        ));
        for n in ["input_layernorm", "post_attention_layernorm"] {
            specs.push(TensorSpec::new(
                format!("{p}.{n}.weight"),
                Dtype::BF16,
                vec![h],
            ));
        }
    }
    specs
}

/// 10,000 small expert tensors (MoE-like), about 0.33 GB.
fn moe_specs() -> Vec<TensorSpec> {
    (0..10_000)
        .map(|i| {
            TensorSpec::new(
                format!(
                    "model.layers.{}.mlp.experts.{}.w{}",
                    i / 300,
                    (i / 3) % 100,
                    i % 3 + 1
                ),
                Dtype::BF16,
                vec![128, 128],
            )
        })
        .collect()
}

fn evict(paths: &[PathBuf]) -> anyhow::Result<()> {
    // Try the real thing; in a container the write may "succeed" without
    // effect, so evict the files' pages as well (and the caller checks
    // residency with `mincore`).
    let _ = std::fs::write("/proc/sys/vm/drop_caches", "3");
    for p in paths {
        evict_from_page_cache(p)?;
    }
    Ok(())
}

fn resident(paths: &[PathBuf]) -> f64 {
    let (mut r, mut n) = (0usize, 0usize);
    for p in paths {
        if let Ok(v) = page_residency(p) {
            r += v.iter().filter(|&&b| b).count();
            n += v.len();
        }
    }
    r as f64 / n.max(1) as f64
}

fn warm(paths: &[PathBuf]) {
    for p in paths {
        let _ = std::fs::read(p).map(|v| std::hint::black_box(v.len()));
    }
}

/// Touches and frees `bytes` of fresh memory. On a VM whose host backs
/// guest memory lazily (free-page reporting), memory the guest has not
/// touched lately faults in far slower (the host zeroes it: 91% of a slow
/// warm load was `clear_page` under the destination's page faults). Every
/// timed run, baselines included, is preceded by this, so each maps
/// recently used memory and the figures measure the loader, not the host.
fn prime(bytes: u64) -> anyhow::Result<()> {
    let mut b = HostBuffer::zeroed(usize::try_from(bytes)?)?;
    for page in b.chunks_mut(4096) {
        page[0] = 1;
    }
    std::hint::black_box(b.last());
    Ok(())
}

/// One load: its time, the files' modes and the backend used.
fn load_once(ckpt: &Checkpoint, options: &LoadOptions) -> anyhow::Result<(Duration, String)> {
    let plan = LoadPlan::for_checkpoint(ckpt);
    prime(plan.total_bytes())?;
    let t = Instant::now();
    let host = load_to_host(plan, options)?;
    let elapsed = t.elapsed();
    let r = host.report();
    let mut m: Vec<String> = r
        .files
        .iter()
        .map(|f| format!("{:?}", f.mode).to_lowercase())
        .collect();
    m.dedup();
    let backend = serde_json::to_value(r.io_backend)?;
    let mut modes = format!("{}, {}", m.join("+"), backend.as_str().unwrap_or("?"));
    if let Some(why) = &r.io_backend_fallback {
        modes.push_str(&format!(": {why}"));
    }
    std::hint::black_box(host.data(0).first());
    Ok((elapsed, modes))
}

/// Median seconds of `runs` loads, after `prepare` before each.
fn time_ours(
    ckpt: &Checkpoint,
    options: &LoadOptions,
    runs: usize,
    mut prepare: impl FnMut(),
) -> anyhow::Result<Duration> {
    let mut times = Vec::new();
    for _ in 0..runs.max(1) {
        prepare();
        times.push(load_once(ckpt, options)?.0);
    }
    Ok(median(times))
}

/// io_uring's speed relative to threads, paired run by run (both ran in
/// the same round): the median ratio and the range (>1: io_uring faster).
fn paired(threads: &[Duration], uring: &[Duration]) -> String {
    let mut r: Vec<f64> = threads
        .iter()
        .zip(uring)
        .map(|(t, u)| t.as_secs_f64() / u.as_secs_f64())
        .collect();
    r.sort_by(f64::total_cmp);
    match (r.first(), r.get(r.len() / 2), r.last()) {
        (Some(lo), Some(mid), Some(hi)) => {
            format!("{mid:.2}x speed, paired by round (range {lo:.2}-{hi:.2}x)")
        }
        _ => "-".to_owned(),
    }
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times.get(times.len() / 2).copied().unwrap_or(Duration::MAX)
}

/// Runs `work(thread, i)` for every `i < items` on `threads` threads, each
/// taking the next item.
fn parallel(threads: usize, items: usize, work: impl Fn(usize, usize) + Sync) {
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 0..threads.max(1) {
            let (next, work) = (&next, &work);
            s.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= items {
                    break;
                }
                work(t, i);
            });
        }
    });
}

const PIECE: usize = 16 << 20;

/// The memcpy limit: the checkpoint's bytes copied by the load's thread
/// count in 16 MiB pieces from a warm, faulted source into a freshly mapped
/// arena of the same size (what `load_to_host` fills), timing the mapping
/// and the copy, page faults included.
struct Memcpy {
    src: HostBuffer,
    threads: usize,
}

impl Memcpy {
    fn new(total: u64, threads: usize) -> anyhow::Result<Self> {
        let n = usize::try_from(total)?;
        let mut src = HostBuffer::zeroed(n)?;
        let pat = pattern(PIECE.min(n).max(1));
        for c in src.chunks_mut(pat.len()) {
            c.copy_from_slice(&pat[..c.len()]);
        }
        Ok(Memcpy { src, threads })
    }

    fn once(&self) -> anyhow::Result<Duration> {
        let n = self.src.len();
        prime(n as u64)?;
        let t = Instant::now();
        let mut dst = HostBuffer::zeroed(n)?;
        let base = dst.as_mut_ptr() as usize;
        let src = &self.src;
        parallel(self.threads, n.div_ceil(PIECE), |_, i| {
            let at = i * PIECE;
            let len = PIECE.min(n - at);
            // SAFETY: each piece `at..at + len` of the destination mapping is
            // written by exactly one thread, and the mapping outlives the scope.
            let d = unsafe { std::slice::from_raw_parts_mut((base + at) as *mut u8, len) };
            d.copy_from_slice(&src[at..at + len]);
        });
        let elapsed = t.elapsed();
        std::hint::black_box(dst.last());
        Ok(elapsed)
    }
}

/// The disk limit: the files, evicted, read whole by the load's thread count,
/// each thread issuing aligned 16 MiB `O_DIRECT` reads into one reused
/// aligned buffer, nothing else.
struct Disk {
    files: Vec<PathBuf>,
    opened: Vec<(File, u64)>,
    pieces: Vec<(usize, u64)>,
    bufs: Vec<std::sync::Mutex<HostBuffer>>,
}

impl Disk {
    fn new(files: &[PathBuf], threads: usize) -> anyhow::Result<Self> {
        let opened: Vec<(File, u64)> = files
            .iter()
            .map(|p| {
                let f = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_DIRECT)
                    .open(p)?;
                let len = f.metadata()?.len();
                Ok((f, len))
            })
            .collect::<anyhow::Result<_>>()?;
        let pieces = opened
            .iter()
            .enumerate()
            .flat_map(|(i, (_, len))| (0..*len).step_by(PIECE).map(move |o| (i, o)))
            .collect();
        let bufs = (0..threads.max(1))
            .map(|_| {
                let mut b = HostBuffer::zeroed(PIECE)?;
                b.fill(1); // faulted before timing
                Ok(std::sync::Mutex::new(b))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Disk {
            files: files.to_vec(),
            opened,
            pieces,
            bufs,
        })
    }

    fn once(&self) -> anyhow::Result<Duration> {
        evict(&self.files)?;
        let failed = std::sync::Mutex::new(None);
        let t = Instant::now();
        parallel(self.bufs.len(), self.pieces.len(), |thread, i| {
            let (f, at) = self.pieces[i];
            let (file, len) = &self.opened[f];
            let want = (len - at).min(PIECE as u64) as usize;
            let mut buf = self.bufs[thread].lock().unwrap_or_else(|p| p.into_inner());
            let mut got = 0usize;
            while got < want {
                // The whole aligned piece is asked for; the file's end
                // shortens the last read.
                match file.read_at(&mut buf[got..], at + got as u64) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(e) => {
                        let mut slot = failed.lock().unwrap_or_else(|p| p.into_inner());
                        slot.get_or_insert(e);
                        break;
                    }
                }
            }
        });
        let elapsed = t.elapsed();
        if let Some(e) = failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
            anyhow::bail!("O_DIRECT read failed: {e}");
        }
        Ok(elapsed)
    }
}

/// `/proc/loadavg`'s first three fields: other work on the machine.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn verify(ckpt: &Checkpoint, options: &LoadOptions) -> anyhow::Result<()> {
    let host = load_to_host(LoadPlan::for_checkpoint(ckpt), options)?;
    for (i, t) in host.plan().tensors().iter().enumerate() {
        anyhow::ensure!(
            host.data(i) == ckpt.tensor(t.name())?.data(),
            "tensor {} differs",
            t.name()
        );
    }
    Ok(())
}

fn memcpy_gbps(threads: usize) -> f64 {
    let n = 1usize << 30;
    let src = vec![1u8; n];
    let mut dst = vec![0u8; n];
    dst.copy_from_slice(&src); // fault the pages in
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        std::thread::scope(|s| {
            let part = n / threads;
            for (d, s2) in dst.chunks_mut(part).zip(src.chunks(part)) {
                s.spawn(move || d.copy_from_slice(s2));
            }
        });
        best = best.min(t.elapsed());
    }
    gbps(n as u64, best)
}

fn peer(mode: &str, files: &[PathBuf], runs: usize) -> anyhow::Result<Duration> {
    let mut args = vec![mode.to_owned(), runs.to_string()];
    args.extend(files.iter().map(|p| p.display().to_string()));
    let v = run_peer("reference_load.py", &args)?;
    Ok(Duration::from_secs_f64(
        v["seconds"].as_f64().unwrap_or(f64::NAN),
    ))
}

fn main() -> anyhow::Result<()> {
    let a = args()?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("machine: {}", machine());
    println!("load average: {}", loadavg());
    println!("folder:  {}", a.dir.display());
    println!(
        "memcpy:  {:.2} GB/s (1 thread), {:.2} GB/s ({cores} threads)\n",
        memcpy_gbps(1),
        memcpy_gbps(cores)
    );
    let mut opts = LoadOptions::new();
    if let Some(t) = a.threads {
        opts = opts.threads(t);
    }
    if let Some(d) = a.depth {
        opts = opts.queue_depth(d);
    }
    let backends = [
        ("threads", IoBackend::Threads),
        ("io_uring", IoBackend::IoUring),
    ];
    let sets = [
        ("llama", llama_specs(a.gb), 1_000_000_000u64),
        ("moe-10k", moe_specs(), 200_000_000u64),
    ];
    for (name, specs, shard) in sets {
        let dir = a.dir.join(format!(
            "{name}-{}",
            if name == "llama" {
                format!("{}gb", a.gb)
            } else {
                "x".into()
            }
        ));
        let total: u64 = specs.iter().map(|s| s.byte_len().unwrap() as u64).sum();
        let index = dir.join("model.safetensors.index.json");
        let files: Vec<PathBuf> = if index.exists() {
            let c = Checkpoint::open(&index)?;
            c.files().iter().map(|f| PathBuf::from(f.name())).collect()
        } else {
            let t = Instant::now();
            let (_, files) = write_checkpoint(&dir, &specs, shard)?;
            println!(
                "wrote {name}: {:.2} GB in {:.1} s",
                total as f64 / 1e9,
                t.elapsed().as_secs_f64()
            );
            files
        };
        // Positioned reads, not a memory map: pages mapped by this process
        // could not be evicted for the cold runs.
        let pread = OpenOptions::new().pread();
        let ckpt = Checkpoint::open_with(&index, &pread)?;
        let threads = opts.thread_count();
        println!(
            "== {name}: {} tensors, {:.2} GB, {} shards, threads {threads}, io_uring queue depth {}",
            ckpt.len(),
            total as f64 / 1e9,
            files.len(),
            opts.depth()
        );
        warm(&files);
        for (_, backend) in backends {
            verify(&ckpt, &opts.clone().io_backend(backend))?;
        }

        // Warm, against memcpy; the baseline and every row take turns,
        // round after round, so drift on a shared machine hits them alike.
        let copy = Memcpy::new(total, threads)?;
        let cfgs: Vec<LoadOptions> = backends
            .iter()
            .map(|&(_, b)| opts.clone().io_backend(b))
            .collect();
        let mut t_copy = Vec::new();
        let mut t_rows = vec![Vec::new(); cfgs.len()];
        let mut m_rows = vec![String::new(); cfgs.len()];
        for _ in 0..a.runs.max(1) {
            t_copy.push(copy.once()?);
            for (i, o) in cfgs.iter().enumerate() {
                warm(&files);
                let (t, m) = load_once(&ckpt, o)?;
                t_rows[i].push(t);
                m_rows[i] = m;
            }
        }
        drop(copy);
        let copy = gbps(total, median(t_copy));
        println!(
            "warm  memcpy limit        {copy:>6.2} GB/s ({threads} threads into a fresh arena)"
        );
        for (((label, _), t), m) in backends.iter().zip(&t_rows).zip(&m_rows) {
            let g = gbps(total, median(t.clone()));
            println!(
                "warm  ours {label:<8}       {g:>6.2} GB/s = {:>3.0}% of memcpy [{m}]",
                100.0 * g / copy
            );
        }
        println!(
            "warm  io_uring vs threads {}",
            paired(&t_rows[0], &t_rows[1])
        );
        if a.peer {
            let ours = time_ours(&ckpt, &opts, a.runs, || warm(&files))?;
            let theirs = peer("warm", &files, a.runs)?;
            println!(
                "warm  reference           {:>6.2} GB/s",
                gbps(total, theirs)
            );
            row(&format!("{name} warm"), ours, theirs, "reference");
        }

        // Cold, against the disk, in turns likewise.
        let disk = Disk::new(&files, threads)?;
        let mut cfgs: Vec<(String, LoadOptions)> = Vec::new();
        for (blabel, backend) in backends {
            for (label, mode) in [
                ("auto", IoMode::Auto),
                ("buffered", IoMode::Buffered),
                ("direct", IoMode::Direct),
            ] {
                let o = opts.clone().io_mode(mode).io_backend(backend);
                cfgs.push((format!("{blabel:<8} {label:<8}"), o));
            }
        }
        let mut t_disk = Vec::new();
        let mut t_rows = vec![Vec::new(); cfgs.len()];
        let mut m_rows = vec![String::new(); cfgs.len()];
        let mut res = vec![(0.0, 0.0); cfgs.len()];
        for _ in 0..a.runs.max(1) {
            t_disk.push(disk.once()?);
            for (i, (_, o)) in cfgs.iter().enumerate() {
                evict(&files)?;
                let before = resident(&files);
                let (t, m) = load_once(&ckpt, o)?;
                t_rows[i].push(t);
                m_rows[i] = m;
                res[i] = (before, resident(&files));
            }
        }
        drop(disk);
        let disk = gbps(total, median(t_disk));
        println!(
            "cold  disk limit          {disk:>6.2} GB/s ({threads} threads x 16 MiB O_DIRECT reads)"
        );
        for ((((label, _), t), m), (before, after)) in
            cfgs.iter().zip(&t_rows).zip(&m_rows).zip(&res)
        {
            let g = gbps(total, median(t.clone()));
            println!(
                "cold  ours {label} {g:>6.2} GB/s = {:>3.0}% of disk [{m}] (resident before: {:.0}%; after: {:.0}%)",
                100.0 * g / disk,
                before * 100.0,
                after * 100.0
            );
        }
        let half = cfgs.len() / 2;
        for (i, mode) in ["auto", "buffered", "direct"].iter().enumerate().take(half) {
            println!(
                "cold  io_uring vs threads {mode:<8} {}",
                paired(&t_rows[i], &t_rows[half + i])
            );
        }
        if a.peer {
            let ours = time_ours(&ckpt, &opts, a.runs, || {
                let _ = evict(&files);
            })?;
            let theirs = peer("cold", &files, a.runs)?;
            println!(
                "cold  reference           {:>6.2} GB/s",
                gbps(total, theirs)
            );
            row(&format!("{name} cold"), ours, theirs, "reference");
        }
        println!("load average: {}", loadavg());
        println!();
    }
    Ok(())
}
