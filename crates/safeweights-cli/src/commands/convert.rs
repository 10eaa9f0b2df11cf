//! `safeweights convert SRC DST`: the converter library does the work and
//! the verification; we show progress and the summary.

use safeweights_convert::{convert, ConvertOptions, ConvertSummary};

use crate::cli::ConvertArgs;
use crate::printer::{esc, esc_path, human_bytes, Printer};
use crate::progress::Bar;

// The bar's total is only known once the converter reports it.
use crate::Status;

/// Converts and prints what was written, dropped and verified.
pub fn run(args: &ConvertArgs, printer: &mut Printer) -> anyhow::Result<Status> {
    let bar = Bar::new(printer.wants_progress(), 0, "converting");
    let mut options = ConvertOptions::new()
        .keep_shared(args.keep_shared)
        .metadata_leaves(args.metadata_leaves)
        .max_shard_size(args.max_shard_size)
        .overwrite(args.force)
        .allow_zip_anomalies(args.allow_zip_anomalies);
    if let Some(handle) = bar.handle() {
        options = options.progress(move |p| {
            handle.set_total(p.bytes_total);
            handle.set_position(p.bytes_done);
            handle.set_phase(&format!("{:?}", p.phase).to_lowercase());
        });
    }
    let summary = convert(&args.src, &args.dst, &options)?;
    bar.finish();
    printer.json(&summary)?;
    print_summary(&summary, printer)?;
    Ok(Status::Success)
}

/// The human summary of a conversion (also used by the demo).
pub fn print_summary(s: &ConvertSummary, printer: &mut Printer) -> std::io::Result<()> {
    printer.line(format!(
        "converted {} ({}) -> {} ({}): {} tensors, {} in {:.2}s{}",
        esc_path(&s.source),
        s.source_format,
        esc_path(&s.destination),
        s.target_format,
        s.tensors,
        human_bytes(s.bytes),
        s.seconds,
        if s.verified {
            ", every tensor read back and equal bit for bit"
        } else {
            ""
        }
    ))?;
    for f in &s.files_removed {
        printer.line(format!(
            "  removed {} (from the earlier output)",
            esc_path(f)
        ))?;
    }
    for f in &s.files_written {
        printer.line(format!("  wrote   {}", esc_path(f)))?;
    }
    for f in &s.files_copied {
        printer.line(format!("  copied  {}", esc_path(f)))?;
    }
    print_skipped(&s.files_skipped, printer)?;
    for a in &s.dropped_aliases {
        printer.line(format!(
            "  alias   {} (same tensor as {})",
            esc(&a.name),
            esc(&a.kept)
        ))?;
    }
    for c in &s.shared_copies {
        printer.line(format!(
            "  copy    {} (a different view of a shared storage, written on its own)",
            esc(c)
        ))?;
    }
    if !s.non_tensor_leaves.is_empty() {
        let names: Vec<String> = s.non_tensor_leaves.iter().map(|l| esc(&l.name)).collect();
        if s.leaves_in_metadata {
            printer.line(format!(
                "  kept {} non-tensor values in __metadata__: {}",
                names.len(),
                names.join(", ")
            ))?;
        } else {
            printer.line(format!(
                "  note: {} non-tensor values not stored ({}); pass --metadata-leaves to keep them",
                names.len(),
                names.join(", ")
            ))?;
        }
    }
    Ok(())
}

/// The files of a model folder left out, with the reason (also used by
/// `reshard` and `merge` for the folder's other files).
pub fn print_skipped(
    skipped: &[safeweights_convert::SkippedFile],
    printer: &mut Printer,
) -> std::io::Result<()> {
    for f in skipped {
        printer.line(format!(
            "  skipped {} ({})",
            esc_path(&f.path),
            esc(&f.reason)
        ))?;
    }
    Ok(())
}
