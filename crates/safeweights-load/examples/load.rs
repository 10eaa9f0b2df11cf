//! `cargo run --release -p safeweights-load --example load -- PATH [--device cpu|cuda:N] [--threads N] [--chunk-mib N] [--io auto|buffered|direct] [--io-backend auto|threads|io-uring] [--queue-depth N] [--cold]`
//!
//! Loads a checkpoint and prints the JSON report (what `safeweights load
//! --json` would print). `--cold` evicts the files' pages first.
#![allow(clippy::disallowed_methods)] // Tests, examples and benches use std::fs directly; the rule is for library code.
#![allow(clippy::print_stdout)]

use safeweights::Checkpoint;
use safeweights_load::{evict_from_page_cache, load_path, Device, IoBackend, IoMode, LoadOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut it = std::env::args().skip(1);
    let path = it.next().ok_or(
        "usage: load PATH [--device D] [--threads N] [--chunk-mib N] [--io MODE] [--io-backend B] [--queue-depth N] [--cold]",
    )?;
    let (mut device, mut opts, mut cold) = (Device::Cpu, LoadOptions::new(), false);
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--device" => device = val()?.parse()?,
            "--threads" => opts = opts.threads(val()?.parse()?),
            "--chunk-mib" => opts = opts.chunk_size(val()?.parse::<u64>()? << 20),
            "--io" => {
                opts = opts.io_mode(match val()?.as_str() {
                    "auto" => IoMode::Auto,
                    "buffered" => IoMode::Buffered,
                    "direct" => IoMode::Direct,
                    m => return Err(format!("unknown io mode {m}").into()),
                })
            }
            "--io-backend" => {
                opts = opts.io_backend(match val()?.as_str() {
                    "auto" => IoBackend::Auto,
                    "threads" => IoBackend::Threads,
                    "io-uring" | "io_uring" => IoBackend::IoUring,
                    b => return Err(format!("unknown io backend {b}").into()),
                })
            }
            "--queue-depth" => opts = opts.queue_depth(val()?.parse()?),
            "--cold" => cold = true,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if cold {
        let ckpt = Checkpoint::open(&path)?;
        for f in ckpt.files() {
            evict_from_page_cache(std::path::Path::new(f.name()))?;
        }
    }
    let report = load_path(&path, device, &opts)?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
