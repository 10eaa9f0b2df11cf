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
use crate::errors::NotSafetensors;
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

/// Opens a file, folder of shards, or index. A file that is not
/// safetensors but something else we recognise (a pickle, a torch zip) is
/// said to be that.
pub fn open_checkpoint(path: &Path, lenient: bool) -> anyhow::Result<Checkpoint> {
    Checkpoint::open_with(path, &OpenOptions::new().lenient(lenient))
        .map_err(|source| explain_open_error(path, source))
}

/// An error opening `path` as safetensors, said as "this is a pickle" (or
/// another format we recognise) when its first bytes say so.
pub fn explain_open_error(path: &Path, source: safeweights::Error) -> anyhow::Error {
    let foreign = matches!(source, safeweights::Error::Header { .. }) && path.is_file();
    match foreign
        .then(|| safeweights::sniff::foreign_format(path))
        .flatten()
    {
        Some(format) => NotSafetensors {
            path: path.to_path_buf(),
            format,
            source,
        }
        .into(),
        None => source.into(),
    }
}

/// The checkpoints to look at for `path`: the path itself, or, for a
/// diffusers pipeline folder without a checkpoint of its own, its component
/// folders that hold weights (`unet/`, `vae/`, `text_encoder/`, ...).
pub fn expand_pipeline(path: &Path) -> Vec<std::path::PathBuf> {
    if !path.is_dir() {
        return vec![path.to_path_buf()];
    }
    let own = safeweights::folder::checkpoints(path).is_ok_and(|c| !c.is_empty())
        || !safeweights::folder::pickle_weights(path).is_empty();
    let components: Vec<_> = safeweights::folder::pipeline_components(path)
        .into_iter()
        .filter(|c| {
            safeweights::folder::checkpoints(c).is_ok_and(|c| !c.is_empty())
                || !safeweights::folder::pickle_weights(c).is_empty()
        })
        .collect();
    if own || components.is_empty() {
        vec![path.to_path_buf()]
    } else {
        components
    }
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
