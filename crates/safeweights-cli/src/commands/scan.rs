//! `safeweights scan PATH...`: the scanner library renders; we print and
//! turn its verdict into the exit status.

use std::io::IsTerminal;

use anyhow::Context as _;
use safeweights_scan::{read_allowed_globals, HumanOptions, Limits, OutputFormat, ScanOptions};

use crate::cli::{Color, ScanArgs};
use crate::printer::Printer;
use crate::Status;

/// Scans the paths and prints the report in the chosen format.
pub fn run(args: &ScanArgs, printer: &mut Printer) -> anyhow::Result<Status> {
    let limits = Limits {
        max_depth: args.max_depth,
        max_members: args.max_members,
        max_expanded_bytes: args.max_expanded_bytes,
        ..Limits::default()
    };
    let mut options = ScanOptions::new()
        .fail_on(args.fail_on)
        .policy(args.policy)
        .allow_gguf(args.allow_gguf)
        .allow_onnx(args.allow_onnx)
        .limits(limits);
    let mut allowed = args.allow_global.clone();
    for file in &args.allow_globals_from {
        let text = fs_err::read_to_string(file)
            .with_context(|| format!("{}: cannot read the allowed globals", file.display()))?;
        allowed.extend(read_allowed_globals(&text).with_context(|| format!("{}", file.display()))?);
    }
    for global in &allowed {
        options = options.allow_global(global)?;
    }
    let report = safeweights_scan::scan_paths(&args.paths, &options);
    let format = if printer.is_json() {
        OutputFormat::Json
    } else {
        args.format.into()
    };
    let color = match args.color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    let human = HumanOptions {
        color,
        min_severity: args.min_severity,
    };
    let mut text = Vec::new();
    safeweights_scan::write_report(&report, format, &human, &mut text)?;
    printer.rendered(&String::from_utf8_lossy(&text))?;
    Ok(match options.exit_code(&report) {
        0 => Status::Success,
        1 => Status::Failure,
        _ => Status::Error,
    })
}
