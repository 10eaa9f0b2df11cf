//! `safeweights reshard PATH --max-shard-size 5GB -o DIR`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use safeweights::sharded::{self, ShardFile};
use safeweights::Checkpoint;
use serde::Serialize;

use safeweights_convert::{copy_companion_files, Companions};

use super::merge::print_companions;
use super::{file_label, open_checkpoint, source_folder};
use crate::cli::ReshardArgs;
use crate::errors::hinted;
use crate::printer::{esc, grouped, human_bytes, Align, Printer};
use crate::progress::Bar;
use crate::Status;

/// The JSON document of `reshard --json`.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The source, as given.
    pub source: String,
    /// The output folder, as given.
    pub output: String,
    /// The limit, in bytes.
    pub max_shard_size: u64,
    /// Each shard written, in order.
    pub shards: Vec<ShardFile>,
    /// The index file name, or null when everything fit in one file.
    pub index: Option<String>,
    /// Tensors written.
    pub tensors: usize,
    /// Tensor bytes written.
    pub total_size: u64,
    /// The source folder's other files (config, tokenizer ...) copied into
    /// the output folder, and those left out with the reason.
    pub companions: Companions,
}

/// Refuses to write into a folder that already holds a checkpoint.
pub fn check_output_dir(dir: &Path, force: bool) -> anyhow::Result<()> {
    if dir.is_file() {
        return Err(hinted(
            format!("{}: is a file", dir.display()),
            "give a folder for the shards (it is created if missing)",
        ));
    }
    if force || !dir.is_dir() {
        return Ok(());
    }
    let entries =
        fs_err::read_dir(dir).with_context(|| format!("{}: cannot list", dir.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".safetensors") || name.ends_with(".safetensors.index.json") {
            return Err(hinted(
                format!("{}: already holds {name}", dir.display()),
                "choose an empty folder, or pass --force (or --overwrite) to write over it",
            ));
        }
    }
    Ok(())
}

/// Reshards `src` into `out`: the paths written (index last) and a
/// description of each shard.
pub fn reshard(
    src: &Checkpoint,
    out: &Path,
    prefix: &str,
    max_shard_size: u64,
    progress: &mut dyn FnMut(u64),
) -> safeweights::Result<(Vec<PathBuf>, Vec<ShardFile>)> {
    let written = sharded::write_sharded(
        src,
        out,
        prefix,
        Some(max_shard_size),
        src.metadata(),
        progress,
    )?;
    let rows = sharded::describe_files(&written)?;
    Ok((written, rows))
}

/// `safeweights reshard`.
pub fn run(args: &ReshardArgs, printer: &mut Printer) -> anyhow::Result<Status> {
    let src = open_checkpoint(&args.path, args.read.lenient)?;
    check_output_dir(&args.output, args.force)?;
    let bar = Bar::new(printer.wants_progress(), src.total_size(), "resharding");
    let (written, shards) = reshard(
        &src,
        &args.output,
        &args.prefix,
        args.max_shard_size,
        &mut |n| bar.inc(n),
    )?;
    bar.finish();
    // the folder's other files, so that `from_pretrained` loads the output
    let companions = match source_folder(&args.path) {
        Some(src) => copy_companion_files(&src, &args.output, args.force)?,
        None => Companions::default(),
    };
    let index = written
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| file_label(&p.display().to_string()));
    let report = Report {
        source: args.path.display().to_string(),
        output: args.output.display().to_string(),
        max_shard_size: args.max_shard_size,
        tensors: shards.iter().map(|s| s.tensors).sum(),
        total_size: shards.iter().map(|s| s.bytes).sum(),
        shards,
        index,
        companions,
    };
    printer.line(format_args!(
        "resharded {} ({} tensors, {}) into {} with shards of at most {}:",
        esc(&report.source),
        report.tensors,
        human_bytes(report.total_size),
        esc(&report.output),
        human_bytes(report.max_shard_size)
    ))?;
    let rows: Vec<Vec<String>> = report
        .shards
        .iter()
        .map(|s| vec![s.file.clone(), s.tensors.to_string(), grouped(s.file_bytes)])
        .collect();
    printer.table(
        &["FILE", "TENSORS", "BYTES"],
        &[Align::Left, Align::Right, Align::Right],
        &rows,
    )?;
    match &report.index {
        Some(index) => printer.line(format_args!("index: {index}"))?,
        None => printer.line("everything fits in one file: no index written")?,
    }
    print_companions(&report.companions, printer)?;
    printer.json(&report)?;
    Ok(Status::Success)
}
