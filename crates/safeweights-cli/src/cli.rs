//! Command-line definitions (clap derive).

use std::path::PathBuf;
use std::str::FromStr;

use clap::{Args, Parser, Subcommand};
use safeweights_load::Device;

use crate::printer::Mode;

const EXIT_CODES: &str = "\
Exit codes:
  0  success: every file valid, checkpoints equal, every demo check passed
  1  negative answer: a file is invalid (validate, or the input of inspect,
     reshard or merge), the checkpoints differ (diff), a demo check failed
  2  could not run: bad usage, a missing or unreadable file, an output that
     cannot be written; for diff, also an input that is not valid safetensors
A closed output pipe (e.g. `| head`) ends the command quietly.";

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
    #[command(after_help = EXIT_CODES)]
    Inspect(InspectArgs),
    /// Check files against every rule of the format (strict by default).
    #[command(after_help = EXIT_CODES)]
    Validate(ValidateArgs),
    /// Compare two checkpoints tensor by tensor (exit 0 equal, 1 different).
    #[command(after_help = EXIT_CODES)]
    Diff(DiffArgs),
    /// Rewrite a checkpoint as shards of at most a given size, with an index.
    #[command(after_help = EXIT_CODES)]
    Reshard(ReshardArgs),
    /// Merge a sharded checkpoint into one file.
    #[command(after_help = EXIT_CODES)]
    Merge(MergeArgs),
    /// Find model files that can run code (pickle, TorchScript, Keras Lambda,
    /// polyglots, archive tricks), by content; gate CI on a policy.
    #[command(after_help = SCAN_EXIT_CODES)]
    Scan(ScanArgs),
    /// Convert pickle (torch .bin/.pt/.pth/.ckpt) and NumPy (.npy/.npz)
    /// checkpoints and Hugging Face folders to safetensors, and back, without
    /// running any code from them; every tensor is verified after writing.
    #[command(after_help = EXIT_CODES)]
    Convert(ConvertArgs),
    /// Load a checkpoint into memory (or a GPU) with the parallel I/O engine
    /// and report the achieved GB/s, cold or warm.
    #[command(after_help = EXIT_CODES)]
    Load(LoadArgs),
    /// Build a small sample model and walk through the toolkit step by step.
    #[command(after_help = EXIT_CODES)]
    Demo(DemoArgs),
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
    /// Write even if the output folder already holds safetensors files.
    #[arg(long)]
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
    /// Replace the output file if it exists.
    #[arg(long)]
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
    #[arg(long, default_value = "human")]
    pub format: safeweights_scan::OutputFormat,
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
    #[arg(long, default_value = "auto", value_parser = ["auto", "always", "never"])]
    pub color: String,
    /// Deepest nesting of archives opened (zip in tar in zip...).
    #[arg(long, default_value_t = 8)]
    pub max_depth: usize,
    /// Most archive members opened in all.
    #[arg(long, default_value_t = 100_000)]
    pub max_members: usize,
    /// Most bytes decompressed in all (e.g. 1GB).
    #[arg(long, default_value = "1GiB", value_parser = parse_size)]
    pub max_expanded_bytes: u64,
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
    /// Replace an existing destination.
    #[arg(long)]
    pub overwrite: bool,
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
    #[arg(long, default_value = "auto", value_parser = ["auto", "buffered", "direct"])]
    pub io: String,
    /// How reads are issued on the CPU: auto (threads, as measured),
    /// threads (pread/preadv) or io-uring (Linux; falls back to threads, and
    /// says why, where a ring cannot be set up).
    #[arg(long, default_value = "auto", value_parser = ["auto", "threads", "io-uring"])]
    pub io_backend: String,
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
