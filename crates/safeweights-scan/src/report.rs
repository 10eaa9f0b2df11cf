//! Findings, reports and detected formats.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::rules::RuleId;
use crate::severity::Severity;

/// A file format, identified from the bytes (never from the extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Format {
    /// A bare pickle stream (any protocol).
    Pickle,
    /// `torch.save` zip format (`<prefix>/data.pkl` + `data/`).
    PytorchZip,
    /// `torch.save` legacy (pre-1.6) format: a sequence of pickles plus raw storages.
    PytorchLegacy,
    /// TorchScript archive (`code/` entries).
    Torchscript,
    /// NumPy `.npy`.
    Npy,
    /// NumPy `.npz` (zip of `.npy`).
    Npz,
    /// joblib pickle (with `NumpyArrayWrapper`).
    Joblib,
    /// Keras v3 `.keras` (zip with `config.json`).
    Keras,
    /// HDF5 (Keras `.h5`).
    Hdf5,
    /// safetensors.
    Safetensors,
    /// GGUF.
    Gguf,
    /// ONNX (protobuf `ModelProto`).
    Onnx,
    /// TensorFlow SavedModel (`saved_model.pb`) or frozen `GraphDef`.
    SavedModel,
    /// Any other zip archive.
    Zip,
    /// tar archive.
    Tar,
    /// gzip stream.
    Gzip,
    /// 7z archive (detected, not inspected).
    SevenZip,
    /// zlib, bzip2, xz, legacy `.lzma` stream or joblib `ZF` file (opened),
    /// or zstd stream (detected, not inspected).
    Compressed,
    /// Nothing recognised.
    Unknown,
}

impl Format {
    /// The kebab-case name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Pickle => "pickle",
            Format::PytorchZip => "pytorch-zip",
            Format::PytorchLegacy => "pytorch-legacy",
            Format::Torchscript => "torchscript",
            Format::Npy => "npy",
            Format::Npz => "npz",
            Format::Joblib => "joblib",
            Format::Keras => "keras",
            Format::Hdf5 => "hdf5",
            Format::Safetensors => "safetensors",
            Format::Gguf => "gguf",
            Format::Onnx => "onnx",
            Format::SavedModel => "saved-model",
            Format::Zip => "zip",
            Format::Tar => "tar",
            Format::Gzip => "gzip",
            Format::SevenZip => "7z",
            Format::Compressed => "compressed",
            Format::Unknown => "unknown",
        }
    }

    /// Whether files of this format hold model weights (for the
    /// `safetensors-only` policy). Plain containers are not weight formats;
    /// their members are judged.
    pub fn is_weights(self) -> bool {
        matches!(
            self,
            Format::Pickle
                | Format::PytorchZip
                | Format::PytorchLegacy
                | Format::Torchscript
                | Format::Npy
                | Format::Npz
                | Format::Joblib
                | Format::Keras
                | Format::Hdf5
                | Format::Safetensors
                | Format::Gguf
                | Format::Onnx
                | Format::SavedModel
        )
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// How bad it is.
    pub severity: Severity,
    /// Rule id; serialised as its stable string, e.g. `pickle.global.critical` (see [`crate::RULES`]).
    pub rule: RuleId,
    /// The scanned file, as given (path on disk or the name passed to `scan_bytes`).
    pub file: String,
    /// Path of the member inside archives, `!`-separated for nested ones
    /// (`archive/data.pkl`, `inner.tar!model.pt!archive/data.pkl`); `None` for the file itself.
    pub member: Option<String>,
    /// What was found (one line).
    pub what: String,
    /// Why it matters (one line).
    pub why: String,
    /// Byte offset inside the file or member, where there is one.
    pub offset: Option<u64>,
    /// A command or action that fixes it, where there is one.
    pub fix: Option<String>,
}

impl Finding {
    /// `file` or `file!member`.
    pub fn location(&self) -> String {
        match &self.member {
            Some(m) => format!("{}!{}", self.file, m),
            None => self.file.clone(),
        }
    }
}

/// A file or archive member that was looked at, with its detected format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScannedFile {
    /// The file on disk (or the name given to `scan_bytes`).
    pub file: String,
    /// Member path inside archives, `None` for the file itself.
    pub member: Option<String>,
    /// Format identified from the content.
    pub format: Format,
    /// Size in bytes (uncompressed size for members).
    pub size: u64,
}

/// A file that could not be scanned (I/O error, not a regular file...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanError {
    /// The path.
    pub file: String,
    /// What went wrong.
    pub message: String,
}

impl fmt::Display for ScanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file, self.message)
    }
}

impl std::error::Error for ScanError {}

impl safeweights::Diagnostic for ScanError {
    fn kind(&self) -> &'static str {
        "unscannable"
    }

    fn class(&self) -> safeweights::ErrorClass {
        safeweights::ErrorClass::Io
    }

    fn file(&self) -> Option<&std::path::Path> {
        Some(std::path::Path::new(&self.file))
    }
}

/// Counts per severity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Info findings.
    pub info: usize,
    /// Low findings.
    pub low: usize,
    /// Medium findings.
    pub medium: usize,
    /// High findings.
    pub high: usize,
    /// Critical findings.
    pub critical: usize,
}

impl Counts {
    /// The count for one severity.
    pub fn get(&self, s: Severity) -> usize {
        match s {
            Severity::Info => self.info,
            Severity::Low => self.low,
            Severity::Medium => self.medium,
            Severity::High => self.high,
            Severity::Critical => self.critical,
        }
    }
    fn bump(&mut self, s: Severity) {
        match s {
            Severity::Info => self.info += 1,
            Severity::Low => self.low += 1,
            Severity::Medium => self.medium += 1,
            Severity::High => self.high += 1,
            Severity::Critical => self.critical += 1,
        }
    }
}

/// Summary of a report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Top-level files scanned (archive members not counted).
    pub files: usize,
    /// Files and members whose format was identified.
    pub objects: usize,
    /// Findings per severity.
    pub findings: Counts,
    /// Highest severity found, if any.
    pub highest: Option<Severity>,
    /// Files that could not be scanned.
    pub errors: usize,
}

/// The result of a scan. Serialises to the JSON schema in `SCHEMA.md`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Schema version of the JSON rendering (bumped on incompatible changes).
    pub schema_version: u32,
    /// Files and members with their detected formats, in scan order.
    pub files: Vec<ScannedFile>,
    /// Findings, in scan order.
    pub findings: Vec<Finding>,
    /// Files that could not be scanned.
    pub errors: Vec<ScanError>,
    /// Counts.
    pub summary: Summary,
}

/// Current JSON schema version.
pub const SCHEMA_VERSION: u32 = 1;

impl Report {
    /// An empty report.
    pub fn new() -> Self {
        Report {
            schema_version: SCHEMA_VERSION,
            ..Default::default()
        }
    }

    /// Recomputes [`Report::summary`] from the lists.
    pub fn finish(&mut self) {
        let mut counts = Counts::default();
        for f in &self.findings {
            counts.bump(f.severity);
        }
        self.summary.findings = counts;
        self.summary.highest = self.findings.iter().map(|f| f.severity).max();
        self.summary.objects = self.files.len();
        self.summary.errors = self.errors.len();
    }

    /// Highest severity among the findings.
    pub fn highest(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }

    /// Findings at or above a severity.
    pub fn at_or_above(&self, threshold: Severity) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(move |f| f.severity >= threshold)
    }

    /// Appends another report (for scanning several paths).
    pub fn merge(&mut self, other: Report) {
        self.files.extend(other.files);
        self.findings.extend(other.findings);
        self.errors.extend(other.errors);
        self.summary.files += other.summary.files;
        self.finish();
    }
}

/// Process exit code for CI: `2` if some file could not be scanned (the
/// report is incomplete), else `1` if a finding is at or above `threshold`,
/// else `0`.
pub fn exit_code(report: &Report, threshold: Severity) -> i32 {
    if !report.errors.is_empty() {
        2
    } else if report.findings.iter().any(|f| f.severity >= threshold) {
        1
    } else {
        0
    }
}
