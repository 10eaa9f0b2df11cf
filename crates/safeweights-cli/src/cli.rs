//! Command-line definitions (clap derive).

use std::path::PathBuf;
use std::str::FromStr;

use clap::{Args, Parser, Subcommand, ValueEnum};
use safeweights_load::Device;

use crate::printer::Mode;
use crate::Status;

/// One exit-code block per command, for its `--help` (docs/cli.md lists the
/// same codes).
macro_rules! exit_codes {
    ($($line:literal),* $(,)?) => {
        concat!(
            "Exit codes:\n",
            $($line, "\n",)*
            "A closed output pipe (e.g. `| head`) ends the command quietly."
        )
    };
}

const EXIT_CODES: &str = exit_codes!(
    "  0  success: every file valid, checkpoints equal, every demo check passed",
    "  1  negative answer: a file is invalid (validate, or the input of inspect,",
    "     reshard, merge or convert), the checkpoints differ (diff), a check failed",
    "     (demo, load --verify)",
    "  2  could not run: bad usage, a missing or unreadable file, an output that",
    "     cannot be written; for diff and load, also an input that is not valid",
    "     safetensors",
);
const INSPECT_EXIT_CODES: &str = exit_codes!(
    "  0  shown",
    "  1  the input breaks a format rule or is not safetensors (a pickle: see convert)",
    "  2  the input cannot be read (missing, a folder with no checkpoint or several), bad usage",
);
const VALIDATE_EXIT_CODES: &str = exit_codes!(
    "  0  every path is valid",
    "  1  some path is invalid",
    "  2  some path could not be read (wins over 1), bad usage",
);
const DIFF_EXIT_CODES: &str = exit_codes!(
    "  0  the checkpoints are equal",
    "  1  the checkpoints differ",
    "  2  a side cannot be read or is not valid safetensors, bad usage",
);
const WRITE_EXIT_CODES: &str = exit_codes!(
    "  0  written",
    "  1  the input breaks a format rule",
    "  2  the input cannot be read, the output exists (see --force) or cannot be written, bad usage",
);
const CONVERT_EXIT_CODES: &str = exit_codes!(
    "  0  converted and verified",
    "  1  the source breaks a format rule",
    "  2  refused or failed: unsafe global, TorchScript, unsupported dtype, the",
    "     destination exists (see --force), I/O, bad usage",
);
const LOAD_EXIT_CODES: &str = exit_codes!(
    "  0  loaded (and verified)",
    "  1  --verify found a tensor that differs from the file",
    "  2  the load failed: unreadable or invalid file, CUDA unavailable, a read or copy error",
);
const DEMO_EXIT_CODES: &str = exit_codes!(
    "  0  every check passed",
    "  1  a check failed",
    "  2  the folder cannot be created, bad usage",
);
const COMPLETIONS_EXIT_CODES: &str =
    exit_codes!("  0  printed", "  2  bad usage (an unknown shell)",);

/// Inspect, validate, compare, reshard and merge safetensors checkpoints.
///
/// PATH arguments take a `.safetensors` file, a folder of shards, or a
/// `*.safetensors.index.json`.
#[derive(Debug, Parser)]
#[command(name = "safeweights", version, after_help = EXIT_CODES)]
pub struct Cli {
    /// Print machine-readable JSON on stdout (schemas in docs/cli.md).
    #[arg(long, global = true)]
    pub json: bool,

    /// Print nothing on stdout; the exit code tells the result.
    #[arg(short, long, global = true, conflicts_with = "json")]
    pub quiet: bool,

    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The output mode the flags ask for.
    pub fn mode(&self) -> Mode {
        if self.json {
            Mode::Json
        } else if self.quiet {
            Mode::Quiet
        } else {
            Mode::Human
        }
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show metadata, every tensor, totals by dtype, parameter count and size.
    #[command(after_help = INSPECT_EXIT_CODES)]
    Inspect(InspectArgs),
    /// Check files against every rule of the format (strict by default).
    #[command(after_help = VALIDATE_EXIT_CODES)]
    Validate(ValidateArgs),
    /// Compare two checkpoints tensor by tensor (exit 0 equal, 1 different).
    #[command(after_help = DIFF_EXIT_CODES)]
    Diff(DiffArgs),
    /// Rewrite a checkpoint as shards of at most a given size, with an index.
    #[command(after_help = WRITE_EXIT_CODES)]
    Reshard(ReshardArgs),
    /// Merge a sharded checkpoint into one file.
    #[command(after_help = WRITE_EXIT_CODES)]
    Merge(MergeArgs),
    /// Find model files that can run code (pickle, TorchScript, Keras Lambda,
    /// polyglots, archive tricks), by content; gate CI on a policy.
    #[command(after_help = SCAN_EXIT_CODES)]
    Scan(ScanArgs),
    /// Convert pickle (torch .bin/.pt/.pth/.ckpt) and NumPy (.npy/.npz)
    /// checkpoints and Hugging Face folders to safetensors, and back, without
    /// running any code from them; every tensor is verified after writing.
    #[command(after_help = CONVERT_EXIT_CODES)]
    Convert(ConvertArgs),
    /// Load a checkpoint into memory (or a GPU) with the parallel I/O engine
    /// and report the achieved GB/s, cold or warm.
    #[command(after_help = LOAD_EXIT_CODES)]
    Load(LoadArgs),
    /// Build a small sample model and walk through the toolkit step by step.
    #[command(after_help = DEMO_EXIT_CODES)]
    Demo(DemoArgs),
    /// Print a shell completion script: bash, zsh or fish (also elvish,
    /// powershell). E.g. `safeweights completions bash > ~/.local/share/bash-completion/completions/safeweights`.
    #[command(after_help = COMPLETIONS_EXIT_CODES)]
    Completions(CompletionsArgs),
}

/// `safeweights completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to write a completion script for.
    pub shell: clap_complete::Shell,
}

impl Command {
    /// The exit status when the input is not valid safetensors: 1 (a
    /// negative answer) except where 1 means something else: `diff`
    /// (different) and `load` (`--verify` found a difference).
    pub fn invalid_input_status(&self) -> Status {
        match self {
            Command::Diff(_) | Command::Load(_) => Status::Error,
            _ => Status::Failure,
        }
    }
}

/// Reading options shared by the commands that open checkpoints.
#[derive(Debug, Clone, Copy, Args)]
pub struct ReadArgs {
    /// Read exactly what the reference implementation reads: allow duplicate
    /// keys, reserved or control-character names, and shard tensors missing
    /// from the index.
    #[arg(long)]
    pub lenient: bool,
}

/// `safeweights inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A .safetensors file, a folder of shards, or a *.safetensors.index.json.
    pub path: PathBuf,
    #[command(flatten)]
    pub read: ReadArgs,
}

/// `safeweights validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Files, shard folders or index files to check.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub read: ReadArgs,
}

/// `safeweights diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The first checkpoint.
    pub a: PathBuf,
    /// The second checkpoint.
    pub b: PathBuf,
    #[command(flatten)]
    pub read: ReadArgs,
}

/// `safeweights reshard`.
#[derive(Debug, Args)]
pub struct ReshardArgs {
    /// The checkpoint to reshard.
    pub path: PathBuf,
    /// Largest shard, in bytes or with a unit: 5GB (= 5e9), 500MB, 2GiB.
    #[arg(long, default_value = "5GB", value_parser = parse_size)]
    pub max_shard_size: u64,
    /// Output folder (created if missing).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Shard file name prefix: PREFIX-00001-of-00003.safetensors.
    #[arg(long, default_value = "model", value_parser = parse_prefix)]
    pub prefix: String,
    /// Write even if the output folder already holds safetensors files (and
    /// replace its copies of the source folder's other files; `--overwrite`
    /// is the same).
    #[arg(long, visible_alias = "overwrite")]
    pub force: bool,
    #[command(flatten)]
    pub read: ReadArgs,
}

/// `safeweights merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The sharded checkpoint (folder or index) to merge.
    pub path: PathBuf,
    /// The file to write.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Replace the output file if it exists (never one of the inputs), and
    /// the copies of the source folder's other files beside it
    /// (`--overwrite` is the same).
    #[arg(long, visible_alias = "overwrite")]
    pub force: bool,
    #[command(flatten)]
    pub read: ReadArgs,
}

const SCAN_EXIT_CODES: &str = "\
Exit codes:
  0  no finding at or above --fail-on (default: medium)
  1  findings at or above --fail-on
  2  a path could not be scanned (missing, unreadable), or bad usage
A closed output pipe (e.g. `| head`) ends the command quietly.";

/// `safeweights scan`.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Files or folders to scan (folders recursively; archives are opened).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Output format; `--json` is the same as `--format json`.
    #[arg(long, default_value = "human", value_parser = parse_format)]
    pub format: Format,
    /// Exit 1 when a finding is at or above this severity:
    /// info, low, medium, high, critical.
    #[arg(long, default_value = "medium")]
    pub fail_on: safeweights_scan::Severity,
    /// `safetensors-only`: every weights file that is not safetensors is a
    /// finding, with the `safeweights convert` command that fixes it.
    #[arg(long, default_value = "default")]
    pub policy: safeweights_scan::Policy,
    /// With `--policy safetensors-only`, also accept GGUF files.
    #[arg(long)]
    pub allow_gguf: bool,
    /// With `--policy safetensors-only`, also accept ONNX files.
    #[arg(long)]
    pub allow_onnx: bool,
    /// Hide findings below this severity in human output (still counted).
    #[arg(long)]
    pub min_severity: Option<safeweights_scan::Severity>,
    /// Colors in human output: auto (when stdout is a terminal), always, never.
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    pub color: Color,
    /// Deepest nesting of archives opened (zip in tar in zip...).
    #[arg(long, default_value_t = 8)]
    pub max_depth: usize,
    /// Most archive members opened in all.
    #[arg(long, default_value_t = 100_000)]
    pub max_members: usize,
    /// Most bytes decompressed in all (e.g. 1GB).
    #[arg(long, default_value = "1GiB", value_parser = parse_size)]
    pub max_expanded_bytes: u64,
    /// Judge the pickle global MODULE.NAME safe (a team's own class), or
    /// every name of a module with MODULE.*; repeatable. Critical globals
    /// (os.system, eval, ...) stay critical.
    #[arg(long, value_name = "MODULE.NAME")]
    pub allow_global: Vec<String>,
    /// Read more --allow-global names from FILE: one a line, `#` comments.
    #[arg(long, value_name = "FILE")]
    pub allow_globals_from: Vec<PathBuf>,
}

/// `safeweights convert`.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// .bin/.pt/.pth/.ckpt (zip or legacy), .npy/.npz, .safetensors, or a
    /// Hugging Face model folder. Identified by content, never modified.
    pub src: PathBuf,
    /// .safetensors, .bin/.pt/.pth/.ckpt (a torch zip that
    /// `torch.load(weights_only=True)` reads), .npz, or an output folder.
    pub dst: PathBuf,
    /// Write tensors sharing a storage as separate copies instead of keeping
    /// one name and recording the aliases in metadata.
    #[arg(long)]
    pub keep_shared: bool,
    /// Keep non-tensor values (epoch, step, config...) as JSON in `__metadata__`.
    #[arg(long)]
    pub metadata_leaves: bool,
    /// Split the output into shards of at most this size (e.g. 5GB).
    #[arg(long, value_parser = parse_size)]
    pub max_shard_size: Option<u64>,
    /// Replace an existing destination: a file, or a folder that holds only
    /// what a conversion writes (an earlier output); the files removed are
    /// listed. A folder holding other files, or the source, is refused
    /// (`--overwrite` is the same).
    #[arg(long, visible_alias = "overwrite")]
    pub force: bool,
    /// Convert a zip-based source (torch zip, .npz) even when `safeweights
    /// scan` reports zip anomalies at medium or above (duplicate or
    /// case-twin members, overlaps ...); readers may disagree on its content.
    #[arg(long)]
    pub allow_zip_anomalies: bool,
}

/// `safeweights load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// A .safetensors file, a folder of shards, or a *.safetensors.index.json.
    pub path: PathBuf,
    /// Where to: `cpu`, `cuda`, `cuda:N` or `N` (CUDA device N; CUDA is
    /// found at run time).
    #[arg(long, default_value = "cpu", value_parser = Device::from_str)]
    pub device: Device,
    /// Reader threads (default: cores, at least 4, at most 16).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Size of each read, e.g. 16MiB.
    #[arg(long, value_parser = parse_size)]
    pub chunk_size: Option<u64>,
    /// Most memory for bounce and pinned buffers, e.g. 512MiB.
    #[arg(long, value_parser = parse_size)]
    pub memory_budget: Option<u64>,
    /// auto (buffered when the file is in the page cache, direct I/O when
    /// not), buffered or direct.
    #[arg(long, value_enum, default_value_t = Io::Auto)]
    pub io: Io,
    /// How reads are issued on the CPU: auto (threads, as measured),
    /// threads (pread/preadv) or io-uring (Linux; falls back to threads, and
    /// says why, where a ring cannot be set up).
    #[arg(long, value_enum, default_value_t = IoBackend::Auto)]
    pub io_backend: IoBackend,
    /// Evict the files from the page cache first, to measure a cold load.
    #[arg(long)]
    pub cold: bool,
    /// After the (timed) load, read every tensor again from the files and
    /// compare it with what was loaded (copied back from the GPU for CUDA);
    /// a difference exits with 1.
    #[arg(long)]
    pub verify: bool,
    #[command(flatten)]
    pub read: ReadArgs,
}

/// `safeweights demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Work in this folder and keep the files (default: a temporary folder,
    /// removed at the end).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

// The value enums below carry plain comments, not doc comments: clap would
// print doc comments as a description of each value in `--help`.

/// `scan --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    // One line per finding, then a summary; `text` is accepted too.
    #[value(alias = "text")]
    Human,
    // JSON.
    Json,
    // SARIF 2.1.0.
    Sarif,
}

impl From<Format> for safeweights_scan::OutputFormat {
    fn from(format: Format) -> Self {
        match format {
            Format::Human => safeweights_scan::OutputFormat::Human,
            Format::Json => safeweights_scan::OutputFormat::Json,
            Format::Sarif => safeweights_scan::OutputFormat::Sarif,
        }
    }
}

/// `scan --color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Color {
    // When stdout is a terminal and NO_COLOR is not set.
    Auto,
    // Always.
    Always,
    // Never.
    Never,
}

/// `load --io`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Io {
    // Buffered when the file is in the page cache, direct I/O when not.
    Auto,
    // Through the page cache.
    Buffered,
    // O_DIRECT.
    Direct,
}

impl From<Io> for safeweights_load::IoMode {
    fn from(io: Io) -> Self {
        match io {
            Io::Auto => safeweights_load::IoMode::Auto,
            Io::Buffered => safeweights_load::IoMode::Buffered,
            Io::Direct => safeweights_load::IoMode::Direct,
        }
    }
}

/// `load --io-backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IoBackend {
    // Threads, as measured.
    Auto,
    // pread/preadv on worker threads.
    Threads,
    // io_uring (Linux), falling back to threads.
    IoUring,
}

impl From<IoBackend> for safeweights_load::IoBackend {
    fn from(backend: IoBackend) -> Self {
        match backend {
            IoBackend::Auto => safeweights_load::IoBackend::Auto,
            IoBackend::Threads => safeweights_load::IoBackend::Threads,
            IoBackend::IoUring => safeweights_load::IoBackend::IoUring,
        }
    }
}

/// `--format`: the value enum's names (and `text`), with the scanner's
/// message for an unknown one.
fn parse_format(text: &str) -> Result<Format, String> {
    Format::from_str(text, false)
        .map_err(|_| safeweights_scan::UnknownOutputFormat(text.to_owned()).to_string())
}

fn parse_size(text: &str) -> Result<u64, String> {
    safeweights::sharded::parse_size(text).ok_or_else(|| {
        format!("{text:?} is not a size: use bytes or a number with a unit, e.g. 5GB, 500MB, 2GiB")
    })
}

fn parse_prefix(text: &str) -> Result<String, String> {
    let ok = !text.is_empty()
        && !text.contains(['/', '\\'])
        && text != "."
        && text != ".."
        && !text.chars().any(char::is_control);
    if ok {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "{text:?} is not a file name prefix: use a plain name such as `model`, without slashes"
        ))
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests build fixtures with std::fs.
mod tests {
    use clap::Parser;

    use super::*;

    fn parse(args: &[&str]) -> Result<Command, String> {
        let argv = std::iter::once("safeweights").chain(args.iter().copied());
        Cli::try_parse_from(argv)
            .map(|cli| cli.command)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn enumerated_flags() {
        let Ok(Command::Load(load)) =
            parse(&["load", "m", "--io", "direct", "--io-backend", "io-uring"])
        else {
            panic!("load does not parse");
        };
        assert_eq!((load.io, load.io_backend), (Io::Direct, IoBackend::IoUring));
        let Ok(Command::Load(load)) = parse(&["load", "m"]) else {
            panic!("load does not parse");
        };
        assert_eq!((load.io, load.io_backend), (Io::Auto, IoBackend::Auto));
        for (given, format) in [
            ("human", Format::Human),
            ("text", Format::Human),
            ("json", Format::Json),
            ("sarif", Format::Sarif),
        ] {
            let Ok(Command::Scan(scan)) = parse(&["scan", "p", "--format", given]) else {
                panic!("scan --format {given} does not parse");
            };
            assert_eq!(scan.format, format);
            assert_eq!(scan.color, Color::Auto);
        }
        let err = parse(&["scan", "p", "--format", "xml"]).unwrap_err();
        assert!(
            err.contains("unknown output format \"xml\": expected human, json or sarif"),
            "{err}"
        );
        let err = parse(&["scan", "p", "--color", "sometimes"]).unwrap_err();
        assert!(
            err.contains("[possible values: auto, always, never]"),
            "{err}"
        );
        let err = parse(&["load", "m", "--io-backend", "aio"]).unwrap_err();
        assert!(
            err.contains("[possible values: auto, threads, io-uring]"),
            "{err}"
        );
    }
}
