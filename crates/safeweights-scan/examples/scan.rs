//! Minimal driver for trying the scanner: `cargo run --example scan -- PATH... [--json|--sarif] [--safetensors-only]`.
#![allow(clippy::disallowed_methods)] // Tests, examples and benches use std::fs directly; the rule is for library code.
use std::io::Write;

fn main() {
    let mut cmd = safeweights_scan::ScanCommand::default();
    for a in std::env::args().skip(1) {
        match a.as_str() {
            "--json" => cmd.format = safeweights_scan::OutputFormat::Json,
            "--sarif" => cmd.format = safeweights_scan::OutputFormat::Sarif,
            "--safetensors-only" => {
                cmd.options = cmd
                    .options
                    .policy(safeweights_scan::Policy::SafetensorsOnly)
            }
            p => cmd.paths.push(p.into()),
        }
    }
    let mut out = std::io::stdout().lock();
    let code = safeweights_scan::run(&cmd, &mut out).unwrap_or(2);
    let _ = out.flush();
    std::process::exit(code);
}
