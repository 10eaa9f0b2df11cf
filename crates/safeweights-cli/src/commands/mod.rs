//! One module per subcommand. Each takes its arguments and the printer, calls
//! the library, and returns the exit [`Status`].

pub mod completions;
pub mod convert;
pub mod demo;
pub mod diff;
pub mod inspect;
pub mod load;
pub mod merge;
pub mod reshard;
pub mod scan;
pub mod validate;

use std::path::Path;

use safeweights::{Checkpoint, OpenOptions};

use crate::cli::Command;
use crate::printer::Printer;
use crate::Status;

/// Runs a subcommand.
pub fn run(command: Command, printer: &mut Printer) -> anyhow::Result<Status> {
    match command {
        Command::Inspect(args) => inspect::run(&args, printer),
        Command::Validate(args) => validate::run(&args, printer),
        Command::Diff(args) => diff::run(&args, printer),
        Command::Reshard(args) => reshard::run(&args, printer),
        Command::Merge(args) => merge::run(&args, printer),
        Command::Scan(args) => scan::run(&args, printer),
        Command::Convert(args) => convert::run(&args, printer),
        Command::Load(args) => load::run(&args, printer),
        Command::Demo(args) => demo::run(&args, printer),
        Command::Completions(args) => completions::run(&args, printer),
    }
}

/// Opens a file, folder of shards, or index.
pub fn open_checkpoint(path: &Path, lenient: bool) -> safeweights::Result<Checkpoint> {
    Checkpoint::open_with(path, &OpenOptions::new().lenient(lenient))
}

/// A shard's name relative to its checkpoint: its file name.
pub fn file_label(name: &str) -> String {
    Path::new(name)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| name.to_owned())
}
