//! `safeweights inspect PATH`.

use std::collections::BTreeMap;

use safeweights::Checkpoint;
use serde::Serialize;

use super::{file_label, open_checkpoint};
use crate::cli::InspectArgs;
use crate::printer::{grouped, human_bytes, human_count, Align, Printer};
use crate::Status;

/// The JSON document of `inspect --json` (documented in docs/cli.md).
#[derive(Debug, Serialize)]
pub struct Report {
    /// The path as given.
    pub path: String,
    /// `file` (one .safetensors) or `sharded` (an index, or a folder of files).
    pub layout: &'static str,
    /// The `__metadata__` of the (first) file, or null.
    pub metadata: Option<BTreeMap<String, String>>,
    /// The index's `metadata` object, or null without an index.
    pub index_metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// Every file of the checkpoint.
    pub files: Vec<FileRow>,
    /// Every tensor, file by file, in file order.
    pub tensors: Vec<TensorRow>,
    /// Totals per dtype, by dtype name.
    pub dtypes: Vec<DtypeRow>,
    /// Totals.
    pub total: Totals,
}

/// One file of a checkpoint.
#[derive(Debug, Serialize)]
pub struct FileRow {
    /// File name.
    pub file: String,
    /// Header JSON length (the N of the prefix).
    pub header_bytes: u64,
    /// Data buffer length.
    pub data_bytes: u64,
    /// Whole file length: 8 + header + data.
    pub file_bytes: u64,
    /// Number of tensors.
    pub tensors: usize,
}

/// One tensor.
#[derive(Debug, Serialize)]
pub struct TensorRow {
    /// Name.
    pub name: String,
    /// Dtype name.
    pub dtype: &'static str,
    /// Shape.
    pub shape: Vec<usize>,
    /// The file holding it (file name).
    pub file: String,
    /// Absolute offset of its first byte in the file.
    pub offset: u64,
    /// `data_offsets` as in the header (relative to the data buffer).
    pub data_offsets: [usize; 2],
    /// Byte size.
    pub bytes: u64,
    /// Element count.
    pub params: u64,
}

/// Totals for one dtype.
#[derive(Debug, Serialize)]
pub struct DtypeRow {
    /// Dtype name.
    pub dtype: &'static str,
    /// Tensors of this dtype.
    pub count: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Their elements.
    pub params: u64,
}

/// Totals of the checkpoint.
#[derive(Debug, Serialize)]
pub struct Totals {
    /// Files.
    pub files: usize,
    /// Tensors.
    pub tensors: usize,
    /// Elements of every tensor.
    pub params: u64,
    /// Tensor bytes.
    pub bytes: u64,
    /// Bytes on disk, headers included.
    pub file_bytes: u64,
}

/// Builds the report of an open checkpoint.
pub fn report(path: &str, ckpt: &Checkpoint) -> Report {
    let files = ckpt
        .files()
        .iter()
        .map(|f| {
            let h = f.header();
            FileRow {
                file: file_label(f.name()),
                header_bytes: h.header_len(),
                data_bytes: h.data_len(),
                file_bytes: h.data_start() + h.data_len(),
                tensors: h.len(),
            }
        })
        .collect::<Vec<_>>();
    let tensors: Vec<TensorRow> = ckpt
        .tensors()
        .map(|(f, t)| TensorRow {
            name: t.name.clone(),
            dtype: t.dtype.name(),
            shape: t.shape.clone(),
            file: file_label(f.name()),
            offset: f.file_range(t).start,
            data_offsets: [t.data_offsets.0, t.data_offsets.1],
            bytes: t.byte_len() as u64,
            params: t.element_count() as u64,
        })
        .collect();
    let mut by_dtype: BTreeMap<&'static str, DtypeRow> = BTreeMap::new();
    for t in &tensors {
        let row = by_dtype.entry(t.dtype).or_insert(DtypeRow {
            dtype: t.dtype,
            count: 0,
            bytes: 0,
            params: 0,
        });
        row.count += 1;
        row.bytes += t.bytes;
        row.params += t.params;
    }
    let total = Totals {
        files: files.len(),
        tensors: tensors.len(),
        params: tensors.iter().map(|t| t.params).sum(),
        bytes: tensors.iter().map(|t| t.bytes).sum(),
        file_bytes: files.iter().map(|f| f.file_bytes).sum(),
    };
    let sharded = ckpt.index().is_some() || ckpt.files().len() > 1;
    Report {
        path: path.to_owned(),
        layout: if sharded { "sharded" } else { "file" },
        metadata: ckpt.metadata().cloned(),
        index_metadata: ckpt.index().map(|i| i.metadata.clone()),
        files,
        tensors,
        dtypes: by_dtype.into_values().collect(),
        total,
    }
}

/// Prints a report as text.
pub fn print_human(report: &Report, printer: &mut Printer) -> std::io::Result<()> {
    let sharded = report.layout == "sharded";
    printer.line(format_args!("path: {}", report.path))?;
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
                printer.line(format_args!("  {k}: {v}"))?;
            }
        }
        _ => printer.line("metadata: (none)")?,
    }
    if let Some(m) = &report.index_metadata {
        let text = serde_json::to_string(m).unwrap_or_default();
        printer.line(format_args!("index metadata: {text}"))?;
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
            let mut row = vec![t.name.clone(), t.dtype.to_owned(), format!("{:?}", t.shape)];
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
                d.dtype.to_owned(),
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
    let ckpt = open_checkpoint(&args.path, args.read.lenient)?;
    let report = report(&args.path.display().to_string(), &ckpt);
    print_human(&report, printer)?;
    printer.json(&report)?;
    Ok(Status::Success)
}
