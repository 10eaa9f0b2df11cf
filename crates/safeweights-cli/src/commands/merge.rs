//! `safeweights merge PATH -o FILE`.

use serde::Serialize;

use super::open_checkpoint;
use crate::cli::MergeArgs;
use crate::errors::hinted;
use crate::printer::{human_bytes, Printer};
use crate::progress::Bar;
use crate::Status;

/// The JSON document of `merge --json`.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The source, as given.
    pub source: String,
    /// The file written, as given.
    pub output: String,
    /// Shards read.
    pub shards: usize,
    /// Tensors written.
    pub tensors: usize,
    /// Tensor bytes written.
    pub total_size: u64,
    /// Size of the file written.
    pub file_bytes: u64,
}

/// `safeweights merge`.
pub fn run(args: &MergeArgs, printer: &mut Printer) -> anyhow::Result<Status> {
    let src = open_checkpoint(&args.path, args.read.lenient)?;
    if args.output.is_dir() {
        return Err(hinted(
            format!("{}: is a folder", args.output.display()),
            format!(
                "give the file to write, e.g. {}",
                args.output.join("model.safetensors").display()
            ),
        ));
    }
    if args.output.exists() && !args.force {
        return Err(hinted(
            format!("{}: already exists", args.output.display()),
            "pass --force (or --overwrite) to replace it (it is replaced atomically)",
        ));
    }
    let bar = Bar::new(printer.wants_progress(), src.total_size(), "merging");
    let file_bytes = src.merge_into(&args.output, &mut |n| bar.inc(n))?;
    bar.finish();
    let report = Report {
        source: args.path.display().to_string(),
        output: args.output.display().to_string(),
        shards: src.files().len(),
        tensors: src.len(),
        total_size: src.total_size(),
        file_bytes,
    };
    printer.line(format_args!(
        "merged {} shard{} of {} ({} tensors, {}) into {} ({})",
        report.shards,
        if report.shards == 1 { "" } else { "s" },
        report.source,
        report.tensors,
        human_bytes(report.total_size),
        report.output,
        human_bytes(report.file_bytes)
    ))?;
    printer.json(&report)?;
    Ok(Status::Success)
}
