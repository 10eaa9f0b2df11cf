//! Renderers: human text, JSON (schema in `SCHEMA.md`), SARIF 2.1.0.
//! Nothing here prints: every renderer returns a `String` or writes to a
//! `&mut dyn Write`.

use std::io::{self, Write};
use std::str::FromStr;

use safeweights::escape_control;
use serde_json::{json, Value};

use crate::report::Report;
use crate::rules::{rule, RULES};
use crate::severity::Severity;

/// Output formats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OutputFormat {
    /// One line per finding, then a summary.
    #[default]
    Human,
    /// JSON, see `SCHEMA.md`.
    Json,
    /// SARIF 2.1.0.
    Sarif,
}

/// Error for an unknown output format name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown output format {0:?}: expected human, json or sarif")]
pub struct UnknownOutputFormat(pub String);

impl safeweights::Diagnostic for UnknownOutputFormat {
    fn kind(&self) -> &'static str {
        "unknown_output_format"
    }

    fn class(&self) -> safeweights::ErrorClass {
        safeweights::ErrorClass::Usage
    }
}

impl FromStr for OutputFormat {
    type Err = UnknownOutputFormat;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "human" | "text" => Ok(OutputFormat::Human),
            "json" => Ok(OutputFormat::Json),
            "sarif" => Ok(OutputFormat::Sarif),
            _ => Err(UnknownOutputFormat(s.to_string())),
        }
    }
}

/// Options of the human renderer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HumanOptions {
    /// ANSI colors.
    pub color: bool,
    /// Hide findings below this severity (the summary still counts them).
    pub min_severity: Option<Severity>,
}

fn color(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "\x1b[1;31m",
        Severity::High => "\x1b[31m",
        Severity::Medium => "\x1b[33m",
        Severity::Low => "\x1b[36m",
        Severity::Info => "\x1b[2m",
    }
}

/// Human-readable rendering: one line per finding (plus an indented `why`
/// and `fix` line), then a summary line.
pub fn write_human(report: &Report, opts: &HumanOptions, w: &mut dyn Write) -> io::Result<()> {
    for f in &report.findings {
        if opts.min_severity.is_some_and(|m| f.severity < m) {
            continue;
        }
        let sev = f.severity.as_str().to_uppercase();
        let at = f.offset.map(|o| format!(" @{o}")).unwrap_or_default();
        if opts.color {
            write!(w, "{}{sev:<8}\x1b[0m", color(f.severity))?;
        } else {
            write!(w, "{sev:<8}")?;
        }
        // File names, member names and what was found come from the
        // scanned files: escaped, so they cannot act on the terminal.
        writeln!(
            w,
            " {} {}{at}: {}",
            f.rule,
            escape_control(&f.location()),
            escape_control(&f.what)
        )?;
        writeln!(w, "         why: {}", escape_control(&f.why))?;
        if let Some(fix) = &f.fix {
            writeln!(w, "         fix: {}", escape_control(fix))?;
        }
    }
    for e in &report.errors {
        writeln!(
            w,
            "ERROR    {}: {}",
            escape_control(&e.file),
            escape_control(&e.message)
        )?;
    }
    let c = report.summary.findings;
    let highest = report.summary.highest.map(|s| s.as_str()).unwrap_or("none");
    writeln!(
        w,
        "scanned {} file(s), {} object(s): {} critical, {} high, {} medium, {} low, {} info; highest: {highest}{}",
        report.summary.files,
        report.summary.objects,
        c.critical,
        c.high,
        c.medium,
        c.low,
        c.info,
        if report.errors.is_empty() {
            String::new()
        } else {
            format!("; {} file(s) could not be scanned", report.errors.len())
        }
    )
}

/// [`write_human`] into a `String`.
pub fn render_human(report: &Report, opts: &HumanOptions) -> String {
    let mut v = Vec::new();
    let _ = write_human(report, opts, &mut v);
    String::from_utf8_lossy(&v).into_owned()
}

/// JSON rendering (pretty-printed), schema in `SCHEMA.md`.
pub fn render_json(report: &Report) -> String {
    serde_json::to_string_pretty(report).unwrap_or_else(|_| "{}".into())
}

/// [`render_json`] to a writer, with a trailing newline.
pub fn write_json(report: &Report, w: &mut dyn Write) -> io::Result<()> {
    writeln!(w, "{}", render_json(report))
}

fn sarif_level(s: Severity) -> &'static str {
    match s {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Info => "note",
    }
}

fn security_severity(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "9.5",
        Severity::High => "8.0",
        Severity::Medium => "5.0",
        Severity::Low => "3.0",
        Severity::Info => "0.0",
    }
}

/// A file path as a SARIF `uri` (an RFC 3986 relative reference): every
/// byte but unreserved characters and `/` percent-encoded, so spaces,
/// `%`, `#`, `?`, `:` and control characters in file names cannot change
/// what the URI means.
pub fn uri_of(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for &b in path.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// SARIF 2.1.0 as a JSON value.
pub fn sarif_value(report: &Report) -> Value {
    let rules: Vec<Value> = RULES
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "name": r.id,
                "shortDescription": { "text": r.title },
                "defaultConfiguration": { "level": sarif_level(r.severity) },
                "properties": {
                    "security-severity": security_severity(r.severity),
                    "tags": ["security"],
                },
            })
        })
        .collect();
    let results: Vec<Value> = report
        .findings
        .iter()
        .map(|f| {
            let mut physical = json!({ "artifactLocation": { "uri": uri_of(&f.file) } });
            if f.member.is_none() {
                if let Some(o) = f.offset {
                    physical["region"] = json!({ "byteOffset": o });
                }
            }
            let mut loc = json!({ "physicalLocation": physical });
            if let Some(m) = &f.member {
                loc["logicalLocations"] = json!([{ "fullyQualifiedName": m, "kind": "member" }]);
            }
            let mut text = format!("{} ({})", f.what, f.why);
            if let Some(fix) = &f.fix {
                text.push_str(&format!(" Fix: {fix}"));
            }
            json!({
                "ruleId": f.rule,
                "ruleIndex": RULES.iter().position(|r| r.id == f.rule),
                "level": sarif_level(f.severity),
                "message": { "text": text },
                "locations": [loc],
                "properties": {
                    "severity": f.severity,
                    "member": f.member,
                    "offset": f.offset,
                    "security-severity": security_severity(f.severity),
                },
            })
        })
        .collect();
    let _ = rule;
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "safeweights-scan",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://github.com/safeweights/safeweights",
                "rules": rules,
            }},
            "results": results,
            "invocations": [{
                "executionSuccessful": report.errors.is_empty(),
                "toolExecutionNotifications": report.errors.iter().map(|e| json!({
                    "level": "error",
                    "message": { "text": format!("{}: {}", e.file, e.message) },
                })).collect::<Vec<_>>(),
            }],
        }],
    })
}

/// SARIF 2.1.0 rendering (pretty-printed).
pub fn render_sarif(report: &Report) -> String {
    serde_json::to_string_pretty(&sarif_value(report)).unwrap_or_else(|_| "{}".into())
}

/// [`render_sarif`] to a writer, with a trailing newline.
pub fn write_sarif(report: &Report, w: &mut dyn Write) -> io::Result<()> {
    writeln!(w, "{}", render_sarif(report))
}

/// Renders in the chosen format.
pub fn write_report(
    report: &Report,
    format: OutputFormat,
    human: &HumanOptions,
    w: &mut dyn Write,
) -> io::Result<()> {
    match format {
        OutputFormat::Human => write_human(report, human, w),
        OutputFormat::Json => write_json(report, w),
        OutputFormat::Sarif => write_sarif(report, w),
    }
}
