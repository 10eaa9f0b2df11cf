//! `safeweights load PATH --device ...`: the load engine reads; we report.

use std::path::Path;

use anyhow::Context as _;
use safeweights_load::{
    evict_from_page_cache, load_on, IoBackend, LoadError, LoadOptions, LoadPlan, LoadReport,
};
use serde_json::{json, Value};

use crate::cli::LoadArgs;
use crate::printer::{count, esc, human_bytes, Printer};
use crate::Status;

/// Loads the checkpoint and prints the engine's report.
pub fn run(args: &LoadArgs, printer: &mut Printer) -> anyhow::Result<Status> {
    let device = args.device;
    let mut options = LoadOptions::new()
        .io_mode(args.io.into())
        .io_backend(args.io_backend.into());
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
        .pread();
    let checkpoint = safeweights::Checkpoint::open_with(&args.path, &open)
        .map_err(|e| super::explain_open_error(&args.path, e))?;
    if args.cold {
        for f in checkpoint.files() {
            evict_from_page_cache(Path::new(f.name()))
                .with_context(|| format!("{}: cannot evict from the page cache", f.name()))?;
        }
    }
    let plan = LoadPlan::for_checkpoint(&checkpoint);
    let (report, checked) = load_on(plan, device, &options, args.verify)?;
    let mismatch = match checked {
        Err(LoadError::Mismatch {
            file,
            tensor,
            offset,
        }) => Some(json!({ "file": file, "tensor": tensor, "offset": offset })),
        Err(other) => return Err(other.into()),
        Ok(()) => None,
    };
    let mut out = serde_json::to_value(&report)?;
    if args.verify {
        out["verified"] = json!(mismatch.is_none());
        out["mismatch"] = mismatch.clone().unwrap_or(Value::Null);
    }
    printer.json(&out)?;
    print_report(&report, printer)?;
    match mismatch {
        None if args.verify => {
            printer.line("verified: every tensor equals the file's bytes")?;
            Ok(Status::Success)
        }
        None => Ok(Status::Success),
        Some(m) => {
            printer.line(format!(
                "MISMATCH: {}: tensor {}: loaded bytes differ from the file's, first at byte {} of the tensor",
                esc(m["file"].as_str().unwrap_or_default()),
                m["tensor"],
                m["offset"]
            ))?;
            Ok(Status::Failure)
        }
    }
}

/// The human lines of a load report (also used by the demo).
pub fn print_report(r: &LoadReport, p: &mut Printer) -> std::io::Result<()> {
    let via = match r.io_backend {
        IoBackend::IoUring => "io_uring",
        _ => "pread",
    };
    p.line(format!(
        "loaded {}, {} to {} in {:.3}s: {:.2} GB/s ({} via {via}, {} of up to {})",
        count(r.tensors as u64, "tensor"),
        human_bytes(r.bytes),
        r.device,
        r.seconds,
        r.gb_per_s,
        count(r.threads as u64, "thread"),
        count(r.reads as u64, "read"),
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
        p.line(format!("  {}: {mode}{cached}{fallback}", esc(&f.file)))?;
    }
    Ok(())
}
