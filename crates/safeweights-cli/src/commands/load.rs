//! `safeweights load PATH --device ...`: the load engine reads; we report.

use std::path::Path;

use anyhow::Context as _;
use safeweights_load::{
    evict_from_page_cache, load_to_host, Device, IoBackend, IoMode, LoadOptions, LoadPlan,
    LoadReport,
};

use crate::cli::LoadArgs;
use crate::printer::{human_bytes, Printer};
use crate::Status;

/// Loads the checkpoint and prints the engine's report.
pub fn run(args: &LoadArgs, printer: &mut Printer) -> anyhow::Result<Status> {
    let device: Device = args
        .device
        .parse()
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("--device {}: use cpu, cuda or cuda:N", args.device))?;
    let mut options = LoadOptions::new().io_mode(match args.io.as_str() {
        "buffered" => IoMode::Buffered,
        "direct" => IoMode::Direct,
        _ => IoMode::Auto,
    });
    options = options.io_backend(match args.io_backend.as_str() {
        "threads" => IoBackend::Threads,
        "io-uring" => IoBackend::IoUring,
        _ => IoBackend::Auto,
    });
    if let Some(t) = args.threads {
        options = options.threads(t);
    }
    if let Some(c) = args.chunk_size {
        options = options.chunk_size(c);
    }
    if let Some(m) = args.memory_budget {
        options = options.memory_budget(m);
    }
    // Headers by positioned reads: no mapping holds the files' pages, so
    // `--cold` can evict them.
    let open = safeweights::OpenOptions::new()
        .lenient(args.read.lenient)
        .backend(safeweights::Backend::Pread);
    let checkpoint = safeweights::Checkpoint::open_with(&args.path, &open)?;
    if args.cold {
        for f in checkpoint.files() {
            evict_from_page_cache(Path::new(f.name()))
                .with_context(|| format!("{}: cannot evict from the page cache", f.name()))?;
        }
    }
    let plan = LoadPlan::for_checkpoint(&checkpoint);
    let report = match device {
        Device::Cpu => load_to_host(plan, &options)?.report().clone(),
        _ => safeweights_load::load_path(&args.path, device, &options)?,
    };
    printer.json(&report)?;
    print_report(&report, printer)?;
    Ok(Status::Success)
}

/// The human lines of a load report (also used by the demo).
pub fn print_report(r: &LoadReport, p: &mut Printer) -> std::io::Result<()> {
    let via = match r.io_backend {
        IoBackend::IoUring => "io_uring",
        _ => "pread",
    };
    p.line(format!(
        "loaded {} tensors, {} to {} in {:.3}s: {:.2} GB/s ({} threads via {via}, {} reads of up to {})",
        r.tensors,
        human_bytes(r.bytes),
        r.device,
        r.seconds,
        r.gb_per_s,
        r.threads,
        r.reads,
        human_bytes(r.chunk_size)
    ))?;
    if let Some(why) = &r.io_backend_fallback {
        p.line(format!("  I/O backend fallback: {why}"))?;
    }
    for f in &r.files {
        let mode = serde_json::to_value(f.mode)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let cached = f
            .resident_fraction
            .map(|c| format!(", {:.0}% in the page cache before", c * 100.0))
            .unwrap_or_default();
        let fallback = f
            .fallback
            .as_deref()
            .map(|why| format!(" (fallback: {why})"))
            .unwrap_or_default();
        p.line(format!("  {}: {mode}{cached}{fallback}", f.file))?;
    }
    Ok(())
}
