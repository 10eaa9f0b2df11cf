//! The catalogue of rule ids. Ids are stable: renaming one is a breaking
//! change of the JSON/SARIF output.

use crate::report::Severity;

/// A rule: its stable id, the severity its findings usually carry, and a title.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// Stable id.
    pub id: &'static str,
    /// Default severity of its findings.
    pub severity: Severity,
    /// One-line description.
    pub title: &'static str,
}

const fn r(id: &'static str, severity: Severity, title: &'static str) -> Rule {
    Rule {
        id,
        severity,
        title,
    }
}

use Severity::{Critical, High, Info, Low, Medium};

/// Every rule the scanner can report.
pub const RULES: &[Rule] = &[
    r(
        "pickle.global.critical",
        Critical,
        "pickle imports a code-execution, file, network or process primitive",
    ),
    r(
        "pickle.global.unknown",
        High,
        "pickle imports a global outside the checkpoint allowlist",
    ),
    r(
        "pickle.global.unresolved",
        High,
        "pickle imports a global whose name is computed and cannot be resolved",
    ),
    r(
        "pickle.call.unresolved",
        High,
        "pickle calls something that is not a named global",
    ),
    r(
        "pickle.build.global",
        High,
        "pickle BUILD sets attributes on a module or class (monkey-patching)",
    ),
    r(
        "pickle.ext",
        High,
        "pickle uses the copyreg extension registry (EXT1/2/4): the global cannot be judged",
    ),
    r(
        "pickle.malformed",
        Medium,
        "pickle stream cannot be fully parsed",
    ),
    r(
        "pickle.format",
        Info,
        "pickle-based weights with only allowlisted globals: convert to safetensors",
    ),
    r(
        "torchscript.code",
        High,
        "TorchScript archive contains a program",
    ),
    r(
        "npy.object-array",
        Low,
        "NumPy object array: the data is a pickle (loading needs allow_pickle=True)",
    ),
    r(
        "keras.lambda",
        High,
        "Keras model has a Lambda layer (serialized Python code)",
    ),
    r(
        "safetensors.trailing-bytes",
        High,
        "bytes after the declared safetensors buffer (polyglot file)",
    ),
    r(
        "safetensors.duplicate-key",
        High,
        "safetensors header has a duplicate key",
    ),
    r(
        "safetensors.invalid",
        Medium,
        "safetensors header fails validation",
    ),
    r(
        "onnx.external-data-escape",
        High,
        "ONNX external data location leaves the model folder",
    ),
    r(
        "zip.crc-mismatch",
        Medium,
        "zip member CRC does not match its content",
    ),
    r("zip.encrypted", Medium, "zip member is encrypted"),
    r(
        "zip.flags",
        Medium,
        "zip member has unexpected general-purpose flag bits",
    ),
    r(
        "zip.header-mismatch",
        Medium,
        "zip local header disagrees with the central directory",
    ),
    r(
        "zip.descriptor-mismatch",
        Medium,
        "zip data descriptor disagrees with the central directory",
    ),
    r(
        "zip.duplicate-name",
        Medium,
        "zip has two members with the same name",
    ),
    r("zip.overlap", Medium, "zip members overlap"),
    r(
        "zip.prefix-data",
        Medium,
        "bytes before the first zip member or between members",
    ),
    r(
        "zip.path-traversal",
        Medium,
        "archive member name is absolute or climbs out with '..'",
    ),
    r(
        "zip.unsupported-method",
        Medium,
        "zip member compression method cannot be inspected",
    ),
    r("zip.malformed", Medium, "zip structure is broken"),
    r("tar.malformed", Medium, "tar structure is broken"),
    r(
        "tar.path-traversal",
        Medium,
        "tar member or link target is absolute or climbs out with '..'",
    ),
    r("gzip.malformed", Medium, "gzip stream is broken"),
    r(
        "archive.cannot-inspect",
        Medium,
        "archive or compression format the scanner cannot open (7z, xz, bzip2, zstd)",
    ),
    r(
        "limit.depth",
        Medium,
        "nesting depth limit reached: deeper members not scanned",
    ),
    r(
        "limit.members",
        Medium,
        "member count limit reached: remaining members not scanned",
    ),
    r(
        "limit.expanded-size",
        Medium,
        "expanded-size limit reached (possible archive bomb)",
    ),
    r(
        "policy.not-safetensors",
        High,
        "weights file is not safetensors (safetensors-only policy)",
    ),
    r(
        "scan.partial",
        Info,
        "only part of a large file was searched",
    ),
];

/// Looks a rule up by id.
pub fn rule(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.id == id)
}
