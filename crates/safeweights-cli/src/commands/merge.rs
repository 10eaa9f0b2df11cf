//! `safeweights merge PATH -o FILE`.

use serde::Serialize;

use super::open_checkpoint;
use crate::cli::MergeArgs;
use safeweights_convert::{copy_companion_files, Companions};

use super::convert::print_skipped;
use super::source_folder;
use crate::errors::hinted;
use crate::printer::{esc, esc_path, human_bytes, Printer};
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
    /// The source folder's other files (config, tokenizer ...) copied
    /// beside the output, and those left out with the reason.
    pub companions: Companions,
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
    // Without --force the output is created only if its name is still free
    // when it is complete: a concurrent writer's file is never replaced.
    let options = safeweights::WriteOptions::new().replace(args.force);
    let file_bytes = src.merge_into_with(&args.output, &options, &mut |n| bar.inc(n))?;
    bar.finish();
    // the folder's other files, so that `from_pretrained` loads the output
    let companions = match (source_folder(&args.path), args.output.parent()) {
        (Some(src), Some(parent)) => {
            let parent = if parent.as_os_str().is_empty() {
                std::path::Path::new(".")
            } else {
                parent
            };
            copy_companion_files(&src, parent, args.force)?
        }
        _ => Companions::default(),
    };
    let report = Report {
        source: args.path.display().to_string(),
        output: args.output.display().to_string(),
        shards: src.files().len(),
        tensors: src.len(),
        total_size: src.total_size(),
        file_bytes,
        companions,
    };
    printer.line(format_args!(
        "merged {} shard{} of {} ({} tensors, {}) into {} ({})",
        report.shards,
        if report.shards == 1 { "" } else { "s" },
        esc(&report.source),
        report.tensors,
        human_bytes(report.total_size),
        esc(&report.output),
        human_bytes(report.file_bytes)
    ))?;
    print_companions(&report.companions, printer)?;
    printer.json(&report)?;
    Ok(Status::Success)
}

/// The other files copied beside the weights, and those left out.
pub fn print_companions(c: &Companions, printer: &mut Printer) -> std::io::Result<()> {
    for f in &c.copied {
        printer.line(format!("  copied  {}", esc_path(f)))?;
    }
    print_skipped(&c.skipped, printer)
}
