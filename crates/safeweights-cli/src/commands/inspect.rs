//! `safeweights inspect PATH`.

use safeweights::summary::{Layout, Summary};
use serde::Serialize;

use super::{expand_pipeline, open_checkpoint};
use crate::cli::InspectArgs;
use crate::printer::{esc, grouped, human_bytes, human_count, Align, Printer};
use crate::Status;

/// The JSON document of `inspect --json` (documented in docs/cli.md): the
/// path as given, then the library's summary.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The path as given.
    pub path: String,
    /// The summary.
    #[serde(flatten)]
    pub summary: Summary,
}

/// Builds the report of an open checkpoint.
pub fn report(path: &str, ckpt: &safeweights::Checkpoint) -> Report {
    Report {
        path: path.to_owned(),
        summary: ckpt.summary(),
    }
}

/// Prints a report as text.
pub fn print_human(report: &Report, printer: &mut Printer) -> std::io::Result<()> {
    printer.line(format_args!("path: {}", esc(&report.path)))?;
    let report = &report.summary;
    let sharded = report.layout == Layout::Sharded;
    if sharded {
        printer.line(format_args!(
            "layout: sharded, {} files",
            report.files.len()
        ))?;
    } else {
        printer.line("layout: single file")?;
    }
    match &report.metadata {
        Some(m) if !m.is_empty() => {
            printer.line("metadata:")?;
            for (k, v) in m {
                printer.line(format_args!("  {}: {}", esc(k), esc(v)))?;
            }
        }
        _ => printer.line("metadata: (none)")?,
    }
    if let Some(m) = &report.index_metadata {
        let text = serde_json::to_string(m).unwrap_or_default();
        printer.line(format_args!("index metadata: {}", esc(&text)))?;
    }
    printer.blank()?;
    let mut header = vec!["NAME", "DTYPE", "SHAPE"];
    if sharded {
        header.push("FILE");
    }
    header.extend(["OFFSET", "BYTES"]);
    let mut align = vec![Align::Left, Align::Left, Align::Left];
    if sharded {
        align.push(Align::Left);
    }
    align.extend([Align::Right, Align::Right]);
    let rows: Vec<Vec<String>> = report
        .tensors
        .iter()
        .map(|t| {
            let mut row = vec![
                t.name.clone(),
                t.dtype.to_string(),
                format!("{:?}", t.shape),
            ];
            if sharded {
                row.push(t.file.clone());
            }
            row.push(grouped(t.offset));
            row.push(grouped(t.bytes));
            row
        })
        .collect();
    printer.table(&header, &align, &rows)?;
    printer.blank()?;
    let rows: Vec<Vec<String>> = report
        .dtypes
        .iter()
        .map(|d| {
            vec![
                d.dtype.to_string(),
                d.count.to_string(),
                grouped(d.params),
                grouped(d.bytes),
            ]
        })
        .collect();
    printer.table(
        &["DTYPE", "TENSORS", "PARAMS", "BYTES"],
        &[Align::Left, Align::Right, Align::Right, Align::Right],
        &rows,
    )?;
    printer.blank()?;
    let t = &report.total;
    printer.line(format_args!(
        "{} tensors, {} parameters ({}), {} bytes of tensors ({}), {} on disk in {} file{}",
        t.tensors,
        grouped(t.params),
        human_count(t.params),
        grouped(t.bytes),
        human_bytes(t.bytes),
        human_bytes(t.file_bytes),
        t.files,
        if t.files == 1 { "" } else { "s" }
    ))
}

/// `safeweights inspect`.
pub fn run(args: &InspectArgs, printer: &mut Printer) -> anyhow::Result<Status> {
    let paths = expand_pipeline(&args.path);
    if let [path] = paths.as_slice() {
        if *path == args.path {
            let ckpt = open_checkpoint(&args.path, args.read.lenient)?;
            let report = report(&args.path.display().to_string(), &ckpt);
            print_human(&report, printer)?;
            printer.json(&report)?;
            return Ok(Status::Success);
        }
    }
    // a pipeline folder: each component in turn
    let mut reports = Vec::new();
    printer.line(format_args!(
        "pipeline: {} ({} components with weights)",
        args.path.display(),
        paths.len()
    ))?;
    for path in &paths {
        let ckpt = open_checkpoint(path, args.read.lenient)?;
        let report = report(&path.display().to_string(), &ckpt);
        printer.blank()?;
        print_human(&report, printer)?;
        reports.push(report);
    }
    printer.json(&serde_json::json!({
        "path": args.path.display().to_string(),
        "components": reports,
    }))?;
    Ok(Status::Success)
}
