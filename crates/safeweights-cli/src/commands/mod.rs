//! One module per subcommand. Each takes its arguments and the printer, calls
//! the library, and returns the exit [`Status`].

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
    }
}

/// Opens a file, folder of shards, or index.
pub fn open_checkpoint(path: &Path, lenient: bool) -> safeweights::Result<Checkpoint> {
    Checkpoint::open_with(path, &OpenOptions::new().lenient(lenient))
}

/// The model folder of a checkpoint given as a folder or an index file,
/// whose other files (config, tokenizer ...) go with rewritten weights;
/// `None` for a single file.
pub fn source_folder(path: &Path) -> Option<std::path::PathBuf> {
    if path.is_dir() {
        Some(path.to_path_buf())
    } else if path.to_string_lossy().ends_with(".index.json") {
        match path.parent() {
            Some(p) if p.as_os_str().is_empty() => Some(".".into()),
            p => p.map(Path::to_path_buf),
        }
    } else {
        None
    }
}

/// A shard's name relative to its checkpoint: its file name.
pub fn file_label(name: &str) -> String {
    Path::new(name)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| name.to_owned())
}
