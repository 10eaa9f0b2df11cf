//! `safeweights diff A B`: tensor by tensor, streamed in chunks.

use std::collections::BTreeSet;

use safeweights::{decode, Checkpoint, DtypeKind, Metadata, SafeTensorsFile, TensorInfo};
use serde::Serialize;

use super::open_checkpoint;
use crate::cli::DiffArgs;
use crate::printer::{grouped, Printer};
use crate::progress::Bar;
use crate::Status;

/// Bytes compared at a time: a multiple of every element group (1, 2, 3, 4, 8).
const CHUNK: usize = 3 << 20;

/// The JSON document of `diff --json`.
#[derive(Debug, Serialize)]
pub struct Report {
    /// First checkpoint, as given.
    pub a: String,
    /// Second checkpoint, as given.
    pub b: String,
    /// Whether everything (metadata, names, dtypes, shapes, bytes) is equal.
    pub equal: bool,
    /// The metadata of each side (first file's).
    pub metadata: MetadataDiff,
    /// Tensors only in A, sorted.
    pub only_in_a: Vec<String>,
    /// Tensors only in B, sorted.
    pub only_in_b: Vec<String>,
    /// Tensors in both.
    pub compared: usize,
    /// Tensors in both with the same dtype, shape and bytes.
    pub identical: usize,
    /// Tensors in both that differ, sorted by name.
    pub changed: Vec<TensorChange>,
}

/// Metadata on both sides.
#[derive(Debug, Serialize)]
pub struct MetadataDiff {
    /// Whether it is the same.
    pub equal: bool,
    /// A's.
    pub a: Option<Metadata>,
    /// B's.
    pub b: Option<Metadata>,
}

/// One tensor in both checkpoints that differs.
#[derive(Debug, Serialize)]
pub struct TensorChange {
    /// Its name.
    pub name: String,
    /// `dtype`, `shape`, `dtype_and_shape` or `values`.
    pub change: &'static str,
    /// Dtype in A and in B.
    pub dtype: [&'static str; 2],
    /// Shape in A and in B.
    pub shape: [Vec<usize>; 2],
    /// For `values`: how many decoded values differ (complex: per component;
    /// NaN equals NaN and -0 equals +0 here, so this can be 0 for bitwise
    /// different tensors).
    pub differing_values: Option<u64>,
    /// For `values` of float and complex dtypes: the largest |a - b| over
    /// values finite on both sides (null otherwise).
    pub max_abs_diff: Option<f64>,
    /// For `values` of float and complex dtypes: differing values where a
    /// side is inf or NaN.
    pub nonfinite_mismatches: Option<u64>,
}

#[derive(Default)]
struct ValueStats {
    differing: u64,
    max_abs: f64,
    nonfinite: u64,
}

/// Compares two checkpoints, streaming each common tensor in chunks.
/// `progress` receives bytes read from each side.
pub fn compare(
    a_label: &str,
    a: &Checkpoint,
    b_label: &str,
    b: &Checkpoint,
    progress: &mut dyn FnMut(u64),
) -> safeweights::Result<Report> {
    let names_a: BTreeSet<&str> = a.names().collect();
    let names_b: BTreeSet<&str> = b.names().collect();
    let only_in_a: Vec<String> = names_a
        .difference(&names_b)
        .map(|s| s.to_string())
        .collect();
    let only_in_b: Vec<String> = names_b
        .difference(&names_a)
        .map(|s| s.to_string())
        .collect();
    let mut changed = Vec::new();
    let mut compared = 0;
    let mut identical = 0;
    for name in names_a.intersection(&names_b) {
        compared += 1;
        let (fa, ia) = (a.file_of(name)?, a.info(name)?);
        let (fb, ib) = (b.file_of(name)?, b.info(name)?);
        let change = match (ia.dtype == ib.dtype, ia.shape == ib.shape) {
            (false, false) => Some("dtype_and_shape"),
            (false, true) => Some("dtype"),
            (true, false) => Some("shape"),
            (true, true) => None,
        };
        let mut row = TensorChange {
            name: name.to_string(),
            change: change.unwrap_or("values"),
            dtype: [ia.dtype.name(), ib.dtype.name()],
            shape: [ia.shape.clone(), ib.shape.clone()],
            differing_values: None,
            max_abs_diff: None,
            nonfinite_mismatches: None,
        };
        if change.is_some() {
            changed.push(row);
            continue;
        }
        match compare_values(fa, ia, fb, ib, progress)? {
            None => identical += 1,
            Some(stats) => {
                row.differing_values = Some(stats.differing);
                if matches!(ia.dtype.kind(), DtypeKind::Float | DtypeKind::Complex) {
                    row.max_abs_diff = Some(stats.max_abs);
                    row.nonfinite_mismatches = Some(stats.nonfinite);
                }
                changed.push(row);
            }
        }
    }
    let metadata = MetadataDiff {
        equal: a.metadata() == b.metadata(),
        a: a.metadata().cloned(),
        b: b.metadata().cloned(),
    };
    Ok(Report {
        a: a_label.to_owned(),
        b: b_label.to_owned(),
        equal: metadata.equal && only_in_a.is_empty() && only_in_b.is_empty() && changed.is_empty(),
        metadata,
        only_in_a,
        only_in_b,
        compared,
        identical,
        changed,
    })
}

/// `None` when bitwise equal; otherwise statistics over decoded values.
fn compare_values(
    fa: &SafeTensorsFile,
    ia: &TensorInfo,
    fb: &SafeTensorsFile,
    ib: &TensorInfo,
    progress: &mut dyn FnMut(u64),
) -> safeweights::Result<Option<ValueStats>> {
    let (ra, rb) = (fa.file_range(ia), fb.file_range(ib));
    let len = ra.end - ra.start;
    let size = CHUNK.min(len as usize);
    let (mut buf_a, mut buf_b) = (vec![0u8; size], vec![0u8; size]);
    let (mut va, mut vb) = (Vec::new(), Vec::new());
    let mut stats: Option<ValueStats> = None;
    let mut at = 0u64;
    while at < len {
        let n = ((len - at) as usize).min(size);
        let (ca, cb) = (&mut buf_a[..n], &mut buf_b[..n]);
        fa.read_at(ra.start + at, ca)?;
        fb.read_at(rb.start + at, cb)?;
        progress(2 * n as u64);
        at += n as u64;
        if ca == cb {
            continue;
        }
        let stats = stats.get_or_insert_with(ValueStats::default);
        va.clear();
        vb.clear();
        // Chunks are whole element groups, so decoding cannot fail; if it
        // somehow did, the tensor is still reported as different.
        if decode::decode_into(ia.dtype, ca, &mut va).is_err()
            || decode::decode_into(ia.dtype, cb, &mut vb).is_err()
        {
            continue;
        }
        for (&x, &y) in va.iter().zip(&vb) {
            if x == y || (x.is_nan() && y.is_nan()) {
                continue;
            }
            stats.differing += 1;
            if x.is_finite() && y.is_finite() {
                stats.max_abs = stats.max_abs.max((x - y).abs());
            } else {
                stats.nonfinite += 1;
            }
        }
    }
    Ok(stats)
}

/// A float for people: plain when moderate, scientific when tiny or huge.
fn float(x: f64) -> String {
    if x == 0.0 || (1e-4..1e6).contains(&x.abs()) {
        format!("{x}")
    } else {
        format!("{x:e}")
    }
}

/// Prints a report as text.
pub fn print_human(report: &Report, printer: &mut Printer) -> std::io::Result<()> {
    printer.line(format_args!("a: {}", report.a))?;
    printer.line(format_args!("b: {}", report.b))?;
    if !report.metadata.equal {
        let show = |m: &Option<Metadata>| serde_json::to_string(m).unwrap_or_default();
        printer.line(format_args!(
            "metadata differs: a {} | b {}",
            show(&report.metadata.a),
            show(&report.metadata.b)
        ))?;
    }
    for name in &report.only_in_a {
        printer.line(format_args!("only in a  {name}"))?;
    }
    for name in &report.only_in_b {
        printer.line(format_args!("only in b  {name}"))?;
    }
    for c in &report.changed {
        let text = match c.change {
            "dtype" => format!("dtype      {}: {} -> {}", c.name, c.dtype[0], c.dtype[1]),
            "shape" => format!(
                "shape      {}: {:?} -> {:?}",
                c.name, c.shape[0], c.shape[1]
            ),
            "dtype_and_shape" => format!(
                "dtype+shape {}: {} {:?} -> {} {:?}",
                c.name, c.dtype[0], c.shape[0], c.dtype[1], c.shape[1]
            ),
            _ => {
                let differing = c.differing_values.unwrap_or(0);
                let mut text = if differing == 0 {
                    format!(
                        "values     {}: bitwise different, numerically equal (signed zeros or NaN payloads)",
                        c.name
                    )
                } else {
                    let noun = if differing == 1 {
                        "value differs"
                    } else {
                        "values differ"
                    };
                    format!("values     {}: {} {noun}", c.name, grouped(differing))
                };
                if let (Some(max), true) = (c.max_abs_diff, differing > 0) {
                    text.push_str(&format!(", max |a-b| = {}", float(max)));
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
            printer.error(&err.into());
            return Ok(Status::Error);
        }
    };
    let total = 2 * a.total_size().min(b.total_size());
    let bar = Bar::new(printer.wants_progress(), total, "comparing");
    let result = compare(
        &args.a.display().to_string(),
        &a,
        &args.b.display().to_string(),
        &b,
        &mut |n| bar.inc(n),
    );
    bar.finish();
    let report = match result {
        Ok(report) => report,
        Err(err) => {
            printer.error(&err.into());
            return Ok(Status::Error);
        }
    };
    print_human(&report, printer)?;
    printer.json(&report)?;
    Ok(if report.equal {
        Status::Success
    } else {
        Status::Failure
    })
}
