//! `safeweights diff A B`: tensor by tensor, streamed in chunks.

use safeweights::diff::{self, Change, Comparison};
use safeweights::Metadata;
use serde::Serialize;

use super::open_checkpoint;
use crate::cli::DiffArgs;
use crate::printer::{esc, grouped, significant, Printer};
use crate::progress::Bar;
use crate::Status;

/// The JSON document of `diff --json`: the two labels, then the comparison.
#[derive(Debug, Serialize)]
pub struct Report {
    /// First checkpoint, as given.
    pub a: String,
    /// Second checkpoint, as given.
    pub b: String,
    /// The library's comparison.
    #[serde(flatten)]
    pub comparison: Comparison,
}

/// Prints a report as text.
pub fn print_human(report: &Report, printer: &mut Printer) -> std::io::Result<()> {
    printer.line(format_args!("a: {}", esc(&report.a)))?;
    printer.line(format_args!("b: {}", esc(&report.b)))?;
    let report = &report.comparison;
    if !report.metadata.equal {
        let show = |m: &Option<Metadata>| esc(&serde_json::to_string(m).unwrap_or_default());
        printer.line(format_args!(
            "metadata differs: a {} | b {}",
            show(&report.metadata.a),
            show(&report.metadata.b)
        ))?;
    }
    for name in &report.only_in_a {
        printer.line(format_args!("only in a  {}", esc(name)))?;
    }
    for name in &report.only_in_b {
        printer.line(format_args!("only in b  {}", esc(name)))?;
    }
    for c in &report.changed {
        let name = esc(&c.name);
        let text = match c.change {
            Change::Dtype => format!("dtype      {name}: {} -> {}", c.dtype[0], c.dtype[1]),
            Change::Shape => format!("shape      {name}: {:?} -> {:?}", c.shape[0], c.shape[1]),
            Change::DtypeAndShape => format!(
                "dtype+shape {name}: {} {:?} -> {} {:?}",
                c.dtype[0], c.shape[0], c.dtype[1], c.shape[1]
            ),
            Change::Values => {
                let differing = c.differing_values.unwrap_or(0);
                let mut text = if differing == 0 {
                    format!(
                        "values     {name}: bitwise different, numerically equal (signed zeros or NaN payloads)"
                    )
                } else {
                    let noun = if differing == 1 {
                        "value differs"
                    } else {
                        "values differ"
                    };
                    format!("values     {name}: {} {noun}", grouped(differing))
                };
                if let (Some(max), true) = (c.max_abs_diff, differing > 0) {
                    text.push_str(&format!(", max |a-b| = {}", significant(max)));
                }
                if let Some(n) = c.nonfinite_mismatches.filter(|&n| n > 0) {
                    text.push_str(&format!(", {n} involving inf or NaN"));
                }
                text
            }
        };
        printer.line(text)?;
    }
    printer.line(format_args!(
        "{} tensors in both: {} identical, {} different; {} only in a, {} only in b",
        report.compared,
        report.identical,
        report.changed.len(),
        report.only_in_a.len(),
        report.only_in_b.len()
    ))?;
    printer.line(if report.equal { "equal" } else { "different" })
}

/// `safeweights diff`.
pub fn run(args: &DiffArgs, printer: &mut Printer) -> anyhow::Result<Status> {
    // Any failure to read an input is exit 2 here: 1 means "different".
    let opened = open_checkpoint(&args.a, args.read.lenient)
        .and_then(|a| Ok((a, open_checkpoint(&args.b, args.read.lenient)?)));
    let (a, b) = match opened {
        Ok(pair) => pair,
        Err(err) => {
            printer.error(&err);
            return Ok(Status::Error);
        }
    };
    let total = 2 * a.total_size().min(b.total_size());
    let bar = Bar::new(printer.wants_progress(), total, "comparing");
    let result = diff::compare(&a, &b, &mut |n| bar.inc(n));
    bar.finish();
    let report = match result {
        Ok(comparison) => Report {
            a: args.a.display().to_string(),
            b: args.b.display().to_string(),
            comparison,
        },
        Err(err) => {
            printer.error(&err.into());
            return Ok(Status::Error);
        }
    };
    print_human(&report, printer)?;
    printer.json(&report)?;
    Ok(if report.comparison.equal {
        Status::Success
    } else {
        Status::Failure
    })
}
