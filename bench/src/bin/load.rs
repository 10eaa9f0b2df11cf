//! Loading checkpoints into CPU memory: safeweights-load against the
//! reference `safetensors` 0.8 `load_file` (numpy), in the same run, warm
//! (page cache) and cold (caches dropped, or the files' pages evicted with
//! `posix_fadvise(DONTNEED)` when that is not permitted).
//!
//! `cargo run --release -p safeweights-bench --bin load -- [--dir DIR] [--gb N] [--threads N] [--runs N] [--no-peer]`
#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use safeweights::sharded::ShardIndex;
use safeweights::{Backend, Checkpoint, Dtype, OpenOptions, StreamingWriter, TensorSpec};
use safeweights_bench::{gbps, machine, row, run_peer};
use safeweights_load::{
    evict_from_page_cache, load_to_host, page_residency, IoMode, LoadOptions, LoadPlan,
};

struct Args {
    dir: PathBuf,
    gb: f64,
    threads: Option<usize>,
    runs: usize,
    peer: bool,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        dir: std::env::temp_dir().join("safeweights-bench-load"),
        gb: 2.0,
        threads: None,
        runs: 3,
        peer: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            "--dir" => a.dir = PathBuf::from(it.next().expect("--dir DIR")),
            "--gb" => a.gb = it.next().expect("--gb N").parse()?,
            "--threads" => a.threads = Some(it.next().expect("--threads N").parse()?),
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

/// Median seconds of `runs` loads, after `prepare` before each.
fn time_ours(
    ckpt: &Checkpoint,
    options: &LoadOptions,
    runs: usize,
    mut prepare: impl FnMut(),
) -> anyhow::Result<(Duration, String)> {
    let mut times = Vec::new();
    let mut modes = String::new();
    for _ in 0..runs {
        prepare();
        let plan = LoadPlan::for_checkpoint(ckpt);
        let t = Instant::now();
        let host = load_to_host(plan, options)?;
        times.push(t.elapsed());
        let mut m: Vec<String> = host
            .report()
            .files
            .iter()
            .map(|f| format!("{:?}", f.mode).to_lowercase())
            .collect();
        m.dedup();
        modes = m.join("+");
        std::hint::black_box(host.data(0).first());
    }
    times.sort();
    Ok((times[times.len() / 2], modes))
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
        let pread = OpenOptions::new().backend(Backend::Pread);
        let ckpt = Checkpoint::open_with(&index, &pread)?;
        println!(
            "== {name}: {} tensors, {:.2} GB, {} shards, threads {}",
            ckpt.len(),
            total as f64 / 1e9,
            files.len(),
            opts.thread_count()
        );
        warm(&files);
        verify(&ckpt, &opts)?;

        // Warm.
        let (ours, modes) = time_ours(&ckpt, &opts, a.runs, || warm(&files))?;
        print!("warm  ours {:>6.2} GB/s [{modes}]", gbps(total, ours));
        if a.peer {
            let theirs = peer("warm", &files, a.runs)?;
            println!("   reference {:>6.2} GB/s", gbps(total, theirs));
            row(&format!("{name} warm"), ours, theirs, "reference");
        } else {
            println!();
        }

        // Cold.
        for (label, mode) in [
            ("auto", IoMode::Auto),
            ("buffered", IoMode::Buffered),
            ("direct", IoMode::Direct),
        ] {
            let o = opts.clone().io_mode(mode);
            let mut res = 1.0;
            let (ours, modes) = time_ours(&ckpt, &o, a.runs, || {
                let _ = evict(&files);
                res = resident(&files);
            })?;
            println!(
                "cold  ours {label:<8} {:>6.2} GB/s [{modes}] (resident before: {:.0}%; after: {:.0}%)",
                gbps(total, ours),
                res * 100.0,
                resident(&files) * 100.0
            );
            if label == "auto" && a.peer {
                let theirs = peer("cold", &files, a.runs)?;
                println!("cold  reference     {:>6.2} GB/s", gbps(total, theirs));
                row(&format!("{name} cold"), ours, theirs, "reference");
            }
        }
        println!();
    }
    Ok(())
}
