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

impl safeweights::Diagnostic for UnknownPolicy {
    fn kind(&self) -> &'static str {
        "unknown_policy"
    }

    fn class(&self) -> safeweights::ErrorClass {
        safeweights::ErrorClass::Usage
    }
}

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
    pub(crate) allowed_globals: std::sync::Arc<AllowedGlobals>,
}

/// A team's own globals, judged safe in pickles: exact `module.Name`s, and
/// `module.*` for every name of a module. They never override the critical
/// list (`os.system` stays critical whatever is allowed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedGlobals {
    exact: std::collections::BTreeSet<String>,
    modules: std::collections::BTreeSet<String>,
}

impl AllowedGlobals {
    /// Whether `module.name` is allowed.
    pub fn allows(&self, module: &str, name: &str) -> bool {
        if self.modules.contains(module) {
            return true;
        }
        !self.exact.is_empty() && self.exact.contains(&format!("{module}.{name}"))
    }

    /// Whether nothing is allowed.
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.modules.is_empty()
    }
}

/// A name given to [`ScanOptions::allow_global`] that is not `module.Name`
/// or `module.*`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a global: write MODULE.NAME (e.g. mylib.layers.Block) or MODULE.* (every name of a module)")]
pub struct InvalidGlobal(pub String);

/// Checks `MODULE.NAME`: dot-separated Python identifiers, at least two;
/// the last may be `*`.
fn parse_global(text: &str) -> Result<(String, Option<String>), InvalidGlobal> {
    let bad = || InvalidGlobal(text.to_owned());
    let (module, name) = text.rsplit_once('.').ok_or_else(bad)?;
    let ident = |s: &str| {
        let mut c = s.chars();
        c.next().is_some_and(|f| f.is_alphabetic() || f == '_')
            && c.all(|ch| ch.is_alphanumeric() || ch == '_')
    };
    if !module.split('.').all(ident) {
        return Err(bad());
    }
    match name {
        "*" => Ok((module.to_owned(), None)),
        n if ident(n) => Ok((module.to_owned(), Some(n.to_owned()))),
        _ => Err(bad()),
    }
}

/// Reads an allow-list file: one `MODULE.NAME` (or `MODULE.*`) a line;
/// blank lines and `#` comments ignored. Errors name the line.
pub fn read_allowed_globals(text: &str) -> Result<Vec<String>, InvalidGlobal> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        parse_global(line)?;
        out.push(line.to_owned());
    }
    Ok(out)
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            fail_on: Severity::Medium,
            policy: Policy::Default,
            allow_gguf: false,
            allow_onnx: false,
            limits: Limits::default(),
            allowed_globals: Default::default(),
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
    /// Judges the pickle global `MODULE.NAME` safe (a team's own class),
    /// or every name of a module with `MODULE.*`. Critical globals stay
    /// critical.
    pub fn allow_global(mut self, global: &str) -> Result<Self, InvalidGlobal> {
        let (module, name) = parse_global(global)?;
        let allowed = std::sync::Arc::make_mut(&mut self.allowed_globals);
        match name {
            Some(n) => allowed.exact.insert(format!("{module}.{n}")),
            None => allowed.modules.insert(module),
        };
        Ok(self)
    }
    /// The globals allowed on top of the built-in allow-list.
    pub fn allowed_globals(&self) -> &AllowedGlobals {
        &self.allowed_globals
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

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests build fixtures with std::fs.
mod tests {
    use super::*;

    #[test]
    fn allowed_globals() {
        let opts = ScanOptions::new()
            .allow_global("mylib.layers.Block")
            .and_then(|o| o.allow_global("team.*"))
            .unwrap();
        let a = opts.allowed_globals();
        assert!(a.allows("mylib.layers", "Block"));
        assert!(!a.allows("mylib.layers", "Other"));
        assert!(a.allows("team", "Anything"));
        assert!(!a.allows("team.sub", "X"));
        for bad in ["Block", "a..b", "1a.b", "a.b c", ".x", "a.*b"] {
            assert_eq!(
                ScanOptions::new().allow_global(bad).unwrap_err(),
                InvalidGlobal(bad.into())
            );
        }
        assert_eq!(
            read_allowed_globals("# c\n a.B \n\nc.* # all\n").unwrap(),
            ["a.B", "c.*"]
        );
        assert!(read_allowed_globals("ok.X\nnot-ok\n").is_err());
    }
}
