//! Scan options (builder).

use std::fmt;
use std::str::FromStr;

use crate::severity::Severity;

/// What else, beyond code-carrying content, is a finding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Policy {
    /// Only content findings.
    #[default]
    Default,
    /// Every weights file that is not safetensors (or GGUF/ONNX when
    /// allowed) is a `policy.not-safetensors` finding.
    SafetensorsOnly,
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Policy::Default => "default",
            Policy::SafetensorsOnly => "safetensors-only",
        })
    }
}

/// Error for an unknown policy name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown policy {0:?}: expected default or safetensors-only")]
pub struct UnknownPolicy(pub String);

impl FromStr for Policy {
    type Err = UnknownPolicy;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "default" | "none" => Ok(Policy::Default),
            "safetensors-only" => Ok(Policy::SafetensorsOnly),
            _ => Err(UnknownPolicy(s.to_string())),
        }
    }
}

/// Resource limits; hitting one is itself a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Deepest archive nesting opened (the file itself is depth 0). Default 8.
    pub max_depth: usize,
    /// Archive members looked at per top-level file. Default 100,000.
    pub max_members: usize,
    /// Bytes decompressed per top-level file. Default 1 GiB.
    pub max_expanded_bytes: u64,
    /// Bytes searched as text in HDF5 files and other carriers of Keras
    /// configs, and in 1-D byte tensors of safetensors files for stored zip
    /// archives. Default 256 MiB.
    pub max_search_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 8,
            max_members: 100_000,
            max_expanded_bytes: 1 << 30,
            max_search_bytes: 256 << 20,
        }
    }
}

/// Options for a scan. Build with [`ScanOptions::new`] and the setters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanOptions {
    pub(crate) fail_on: Severity,
    pub(crate) policy: Policy,
    pub(crate) allow_gguf: bool,
    pub(crate) allow_onnx: bool,
    pub(crate) limits: Limits,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            fail_on: Severity::Medium,
            policy: Policy::Default,
            allow_gguf: false,
            allow_onnx: false,
            limits: Limits::default(),
        }
    }
}

impl ScanOptions {
    /// Defaults: fail on medium, no policy, default limits.
    pub fn new() -> Self {
        Self::default()
    }
    /// Threshold for [`crate::exit_code`] via [`ScanOptions::exit_code`].
    pub fn fail_on(mut self, s: Severity) -> Self {
        self.fail_on = s;
        self
    }
    /// The policy.
    pub fn policy(mut self, p: Policy) -> Self {
        self.policy = p;
        self
    }
    /// Under `safetensors-only`, accept GGUF files.
    pub fn allow_gguf(mut self, yes: bool) -> Self {
        self.allow_gguf = yes;
        self
    }
    /// Under `safetensors-only`, accept ONNX files.
    pub fn allow_onnx(mut self, yes: bool) -> Self {
        self.allow_onnx = yes;
        self
    }
    /// Resource limits.
    pub fn limits(mut self, l: Limits) -> Self {
        self.limits = l;
        self
    }
    /// The fail threshold.
    pub fn fail_threshold(&self) -> Severity {
        self.fail_on
    }
    /// The policy in force.
    pub fn current_policy(&self) -> Policy {
        self.policy
    }
    /// The limits in force.
    pub fn current_limits(&self) -> Limits {
        self.limits
    }
    /// [`crate::exit_code`] with this threshold.
    pub fn exit_code(&self, report: &crate::Report) -> i32 {
        crate::exit_code(report, self.fail_on)
    }
}
