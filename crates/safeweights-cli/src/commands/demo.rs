//! `safeweights demo`: builds a small synthetic model and walks through the
//! toolkit, checking every claim it makes. The steps, the sample model and
//! the hostile files come from `safeweights-demo`; each step here calls the
//! libraries, checks what they did and prints.

use std::time::Instant;

use anyhow::Context as _;
use safeweights::{decode, Checkpoint, Dtype, SafeTensorsFile};
use safeweights_demo::model;
use safeweights_demo::tour::{self, Step, Workdir};
use serde::Serialize;
use serde_json::{json, Value};

use super::{diff, inspect, reshard, validate};
use crate::cli::DemoArgs;
use crate::printer::{grouped, human_bytes, Printer};
use crate::Status;

/// Runs one step: prints its lines, records checks in the context, returns
/// details for the JSON summary. An `Err` stops the walk.
fn run_step(step: Step, ctx: &mut Ctx, p: &mut Printer) -> anyhow::Result<Value> {
    match step {
        Step::Write => step_write(ctx, p),
        Step::Inspect => step_inspect(ctx, p),
        Step::Validate => step_validate(ctx, p),
        Step::Reshard => step_reshard(ctx, p),
        Step::Verify => step_verify(ctx, p),
        Step::Slice => step_slice(ctx, p),
        Step::Merge => step_merge(ctx, p),
        Step::Corrupt => step_corrupt(ctx, p),
        Step::Scan => step_scan(ctx, p),
        Step::Convert => step_convert(ctx, p),
        Step::Load => step_load(ctx, p),
    }
}

/// Where the walk works, and the checks of the current step.
pub struct Ctx {
    work: Workdir,
    checks: Vec<Check>,
    expected_params: u64,
    tensors: usize,
}

/// A claim the demo verified.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked.
    pub what: String,
    /// Whether it held.
    pub ok: bool,
}

impl Ctx {
    /// Records and prints a check.
    fn check(
        &mut self,
        printer: &mut Printer,
        ok: bool,
        what: impl Into<String>,
    ) -> std::io::Result<()> {
        let what = what.into();
        printer.line(format_args!(
            "  {} {what}",
            if ok { "✓" } else { "✗ FAILED:" }
        ))?;
        self.checks.push(Check { what, ok });
        Ok(())
    }
}

/// One step's outcome in the JSON summary.
#[derive(Debug, Serialize)]
pub struct StepReport {
    /// Step name.
    pub name: &'static str,
    /// Heading.
    pub title: &'static str,
    /// `passed`, `failed` (a check failed), `error` (it could not run) or
    /// `skipped` (an earlier step could not run).
    pub status: &'static str,
    /// Wall time.
    pub seconds: f64,
    /// The checks it made.
    pub checks: Vec<Check>,
    /// The error, when `status` is `error`.
    pub error: Option<String>,
    /// Step-specific facts.
    pub details: Value,
}

/// The JSON document of `demo --json`.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// Whether every check passed.
    pub ok: bool,
    /// The working folder.
    pub dir: String,
    /// Whether the files are kept (`--dir`).
    pub kept: bool,
    /// Every step.
    pub steps: Vec<StepReport>,
}

/// `safeweights demo`.
pub fn run(args: &DemoArgs, printer: &mut Printer) -> anyhow::Result<Status> {
    let temp;
    let (dir, kept) = match &args.dir {
        Some(dir) => {
            fs_err::create_dir_all(dir)
                .with_context(|| format!("{}: cannot create the demo folder", dir.display()))?;
            (dir.clone(), true)
        }
        None => {
            // Named so that the next demo removes it if this one is
            // interrupted before it cleans up (SIGINT, SIGKILL).
            let anchor = std::env::temp_dir().join("safeweights-demo");
            safeweights::remove_stale_siblings(&anchor, ".sw-stage");
            temp = tempfile::Builder::new()
                .prefix(&safeweights::temp_sibling_prefix(&anchor))
                .suffix(".sw-stage")
                .tempdir()
                .context("cannot create a temporary folder; pass --dir DIR")?;
            (temp.path().to_owned(), false)
        }
    };
    printer.line(format_args!(
        "safeweights demo: working in {}{}",
        dir.display(),
        if kept {
            " (files are kept)"
        } else {
            " (removed at the end; pass --dir DIR to keep the files)"
        }
    ))?;
    let mut ctx = Ctx {
        work: Workdir::new(&dir),
        checks: Vec::new(),
        expected_params: 0,
        tensors: 0,
    };
    let mut reports = Vec::new();
    let mut stopped = false;
    let total = Instant::now();
    let steps = Step::ALL;
    for (i, &step) in steps.iter().enumerate() {
        if stopped {
            reports.push(StepReport {
                name: step.name(),
                title: step.title(),
                status: "skipped",
                seconds: 0.0,
                checks: Vec::new(),
                error: None,
                details: Value::Null,
            });
            continue;
        }
        printer.blank()?;
        printer.line(format_args!("[{}/{}] {}", i + 1, steps.len(), step.title()))?;
        let start = Instant::now();
        let result = run_step(step, &mut ctx, printer);
        let seconds = start.elapsed().as_secs_f64();
        let checks = std::mem::take(&mut ctx.checks);
        let (status, error, details) = match result {
            Ok(details) if checks.iter().all(|c| c.ok) => ("passed", None, details),
            Ok(details) => ("failed", None, details),
            Err(err) if crate::errors::is_broken_pipe(&err) => return Err(err),
            Err(err) => {
                let message = crate::errors::message(&err);
                printer.line(format_args!("  ✗ ERROR: {message}"))?;
                stopped = true;
                ("error", Some(message), Value::Null)
            }
        };
        printer.line(format_args!("  ({})", format_seconds(seconds)))?;
        reports.push(StepReport {
            name: step.name(),
            title: step.title(),
            status,
            seconds,
            checks,
            error,
            details,
        });
    }
    let ok = reports.iter().all(|r| r.status == "passed");
    let checks: usize = reports.iter().map(|r| r.checks.len()).sum();
    printer.blank()?;
    if ok {
        printer.line(format_args!(
            "All {} steps passed ({checks} checks) in {}.",
            steps.len(),
            format_seconds(total.elapsed().as_secs_f64())
        ))?;
    } else {
        let bad: Vec<&str> = reports
            .iter()
            .filter(|r| r.status != "passed")
            .map(|r| r.name)
            .collect();
        printer.line(format_args!(
            "Demo FAILED: steps not passed: {}",
            bad.join(", ")
        ))?;
    }
    printer.json(&Summary {
        ok,
        dir: dir.display().to_string(),
        kept,
        steps: reports,
    })?;
    Ok(if ok { Status::Success } else { Status::Failure })
}

fn format_seconds(s: f64) -> String {
    if s < 1.0 {
        format!("{:.1} ms", s * 1e3)
    } else {
        format!("{s:.2} s")
    }
}

// ---------------------------------------------------------------- the steps

fn step_write(ctx: &mut Ctx, p: &mut Printer) -> anyhow::Result<Value> {
    let path = ctx.work.original();
    let written = model::write_sample(&path)?;
    p.line(format_args!(
        "  declared {} tensors up front: the header ({} bytes) is planned before any data",
        written.specs.len(),
        written.header_bytes
    ))?;
    let (size, chunks) = (written.file_bytes, written.chunks);
    ctx.expected_params = written.params;
    ctx.tensors = written.specs.len();
    p.line(format_args!(
        "  wrote {} ({}) in {chunks} chunks; metadata {{\"format\": \"pt\"}}",
        path.display(),
        human_bytes(size)
    ))?;
    let file = SafeTensorsFile::open(&path)?;
    ctx.check(
        p,
        file.header().len() == ctx.tensors,
        format!("the file holds all {} tensors", ctx.tensors),
    )?;
    let w = file.tensor("model.layers.1.mlp.down_proj.weight")?;
    let values = decode::decode(Dtype::F8_E4M3, w.data())?;
    let finite = values.iter().all(|v| v.is_finite() && v.abs() <= 448.0);
    ctx.check(
        p,
        finite,
        "the F8_E4M3 weight decodes to finite values within ±448",
    )?;
    Ok(
        json!({ "path": path.display().to_string(), "file_bytes": size, "tensors": ctx.tensors, "chunks": chunks }),
    )
}

fn step_inspect(ctx: &mut Ctx, p: &mut Printer) -> anyhow::Result<Value> {
    let path = ctx.work.original();
    let ckpt = Checkpoint::open(&path)?;
    let report = inspect::report(&path.display().to_string(), &ckpt);
    p.line(format_args!("  $ safeweights inspect {}", path.display()))?;
    p.indented(4, |p| inspect::print_human(&report, p))?;
    let summary = &report.summary;
    ctx.check(
        p,
        summary.total.params == ctx.expected_params,
        format!("{} parameters, as built", grouped(ctx.expected_params)),
    )?;
    let dtypes: Vec<&str> = summary.dtypes.iter().map(|d| d.dtype.name()).collect();
    let wanted = ["BF16", "F16", "F32", "F8_E4M3", "I64"];
    ctx.check(
        p,
        wanted.iter().all(|d| dtypes.contains(d)),
        format!("dtypes {}", wanted.join(", ")),
    )?;
    ctx.check(
        p,
        summary
            .metadata
            .as_ref()
            .and_then(|m| m.get("format"))
            .map(String::as_str)
            == Some("pt"),
        "metadata format = pt",
    )?;
    Ok(
        json!({ "tensors": summary.total.tensors, "params": summary.total.params, "bytes": summary.total.bytes, "dtypes": dtypes }),
    )
}

fn step_validate(ctx: &mut Ctx, p: &mut Printer) -> anyhow::Result<Value> {
    let path = ctx.work.original();
    p.line(format_args!("  $ safeweights validate {}", path.display()))?;
    let outcome = validate::validate_path(&path, false);
    p.line(format_args!("  {}", validate::human_line(&outcome)))?;
    ctx.check(p, outcome.valid, "valid under the strict rules")?;
    let lenient = validate::validate_path(&path, true);
    ctx.check(
        p,
        lenient.valid,
        "valid under the reference's (lenient) rules",
    )?;
    Ok(json!({ "valid": outcome.valid }))
}

fn step_reshard(ctx: &mut Ctx, p: &mut Printer) -> anyhow::Result<Value> {
    let src = Checkpoint::open(ctx.work.original())?;
    let sizes: Vec<u64> = src.tensors().map(|(_, t)| t.byte_len() as u64).collect();
    // The smallest limit that gives at most 3 shards (greedy packing in file order).
    let lo = tour::smallest_shard_limit(&sizes, tour::SHARDS);
    let out = ctx.work.sharded();
    p.line(format_args!(
        "  $ safeweights reshard {} --max-shard-size {lo} -o {}",
        ctx.work.original().display(),
        out.display()
    ))?;
    let (written, shards) = reshard::reshard(&src, &out, "model", lo, &mut |_| {})?;
    for s in &shards {
        p.line(format_args!(
            "  {}  {} tensors  {}",
            s.file,
            s.tensors,
            human_bytes(s.file_bytes)
        ))?;
    }
    let index = out.join("model.safetensors.index.json");
    ctx.check(
        p,
        shards.len() == tour::SHARDS,
        format!("{} shards of at most {}", shards.len(), human_bytes(lo)),
    )?;
    ctx.check(
        p,
        shards.iter().all(|s| s.bytes <= lo),
        "every shard's tensors fit the limit",
    )?;
    ctx.check(
        p,
        written.last() == Some(&index),
        "model.safetensors.index.json written",
    )?;
    let text = fs_err::read_to_string(&index)?;
    let parsed = safeweights::ShardIndex::parse(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", index.display()))?;
    ctx.check(
        p,
        parsed.total_size() == Some(src.total_size()),
        format!("index total_size = {} bytes", grouped(src.total_size())),
    )?;
    let dir_listing = shards.iter().map(|s| s.file.clone()).collect::<Vec<_>>();
    Ok(
        json!({ "max_shard_size": lo, "shards": dir_listing, "index": "model.safetensors.index.json" }),
    )
}

fn step_verify(ctx: &mut Ctx, p: &mut Printer) -> anyhow::Result<Value> {
    let original = Checkpoint::open(ctx.work.original())?;
    let index = ctx.work.sharded().join("model.safetensors.index.json");
    let shards = Checkpoint::open(&index)?;
    p.line(format_args!(
        "  opened {} ({} files, {} tensors)",
        index.display(),
        shards.files().len(),
        shards.len()
    ))?;
    let same_names = original.names().eq(shards.names());
    ctx.check(p, same_names, "the same tensor names")?;
    let (identical, bytes) = tour::bit_identical(&original, &shards)?;
    ctx.check(
        p,
        identical == original.len(),
        format!(
            "{identical} of {} tensors bit-identical to the original ({})",
            original.len(),
            human_bytes(bytes)
        ),
    )?;
    ctx.check(
        p,
        shards.metadata() == original.metadata(),
        "shards keep the metadata",
    )?;
    Ok(json!({ "tensors": original.len(), "identical": identical }))
}

fn step_slice(ctx: &mut Ctx, p: &mut Printer) -> anyhow::Result<Value> {
    let path = ctx.work.original();
    let file = SafeTensorsFile::open(&path)?;
    let name = tour::SLICE_TENSOR;
    let info = file.info(name)?.clone();
    let mut details = Vec::new();
    let full = file.tensor(name)?.data().to_vec();
    let columns = info.shape.get(1).copied().unwrap_or(0);
    p.line(format_args!(
        "  {name}: {} {:?}, bytes {}..{} of the file",
        info.dtype,
        info.shape,
        grouped(file.file_range(&info).start),
        grouped(file.file_range(&info).end)
    ))?;
    for case in tour::slice_cases() {
        let (label, index) = (case.label, case.index());
        let ranges = file.slice_file_ranges(name, &index)?;
        let (shape, bytes) = file.read_slice(name, &index)?;
        let read: u64 = ranges.iter().map(|r| r.end - r.start).sum();
        p.line(format_args!(
            "  {name}{label} -> shape {shape:?}: {} byte range{} after coalescing, {} of {} bytes read:",
            ranges.len(),
            if ranges.len() == 1 { "" } else { "s" },
            grouped(read),
            grouped(full.len() as u64)
        ))?;
        for r in &ranges {
            p.line(format_args!(
                "    file bytes {}..{} ({} bytes)",
                grouped(r.start),
                grouped(r.end),
                grouped(r.end - r.start)
            ))?;
        }
        // The expected bytes, cut out of the whole tensor by hand.
        let expected = case.cut(&full, columns, info.dtype.bits() / 8);
        ctx.check(
            p,
            Some(&bytes) == expected.as_ref(),
            format!("{label} reads exactly the selected elements"),
        )?;
        details.push(json!({
            "slice": label,
            "shape": shape,
            "ranges": ranges.iter().map(|r| [r.start, r.end]).collect::<Vec<_>>(),
        }));
        if label.contains(',') {
            let values = decode::decode(info.dtype, bytes.get(..8).unwrap_or_default())?;
            let shown: Vec<String> = values.iter().map(|v| format!("{v:.6}")).collect();
            p.line(format_args!("    first values: {}", shown.join(", ")))?;
        }
    }
    ctx.check(
        p,
        details.len() == 2
            && details
                .first()
                .and_then(|d| d["ranges"].as_array())
                .map(Vec::len)
                == Some(1),
        "a row range is one contiguous read",
    )?;
    ctx.check(
        p,
        details
            .get(1)
            .and_then(|d| d["ranges"].as_array())
            .map(Vec::len)
            == Some(4),
        "a 4-row column window is 4 reads, one per row",
    )?;
    Ok(json!({ "tensor": name, "slices": details }))
}

fn step_merge(ctx: &mut Ctx, p: &mut Printer) -> anyhow::Result<Value> {
    let shards = Checkpoint::open(ctx.work.sharded())?;
    let out = ctx.work.merged();
    tour::create_parent(&out)?;
    p.line(format_args!(
        "  $ safeweights merge {} -o {}",
        ctx.work.sharded().display(),
        out.display()
    ))?;
    let size = shards.merge_into(&out, &mut |_| {})?;
    p.line(format_args!(
        "  wrote {} ({})",
        out.display(),
        human_bytes(size)
    ))?;
    let original = Checkpoint::open(ctx.work.original())?;
    let merged = Checkpoint::open(&out)?;
    p.line(format_args!(
        "  $ safeweights diff {} {}",
        ctx.work.original().display(),
        out.display()
    ))?;
    let report = diff::Report {
        a: "original".to_owned(),
        b: "merged".to_owned(),
        comparison: safeweights::diff::compare(&original, &merged, &mut |_| {})?,
    };
    p.indented(4, |p| diff::print_human(&report, p))?;
    ctx.check(p, report.comparison.equal, "diff: equal")?;
    let same_bytes = fs_err::read(ctx.work.original())? == fs_err::read(&out)?;
    ctx.check(
        p,
        same_bytes,
        "the merged file is byte-identical to the original (the layout is deterministic)",
    )?;
    Ok(
        json!({ "path": out.display().to_string(), "equal": report.comparison.equal, "byte_identical": same_bytes }),
    )
}

fn step_corrupt(ctx: &mut Ctx, p: &mut Printer) -> anyhow::Result<Value> {
    let mut details = Vec::new();
    for (c, path) in tour::write_corruptions(&ctx.work)? {
        p.line(format_args!("  {}: {}", c.name, c.what))?;
        let outcome = validate::validate_path(&path, false);
        p.line(format_args!(
            "    $ safeweights validate {}",
            path.display()
        ))?;
        p.line(format_args!("    {}", validate::human_line(&outcome)))?;
        let kind = outcome.error.as_ref().map(|e| e.kind.as_str());
        ctx.check(
            p,
            !outcome.valid && kind == Some(c.rule),
            format!("caught as {}", c.rule),
        )?;
        details.push(json!({ "file": c.name, "expected": c.rule, "error": outcome.error }));
    }
    Ok(Value::Array(details))
}

// ------------------------------------------------- scan and convert

fn step_scan(ctx: &mut Ctx, p: &mut Printer) -> anyhow::Result<Value> {
    use safeweights_scan::{scan_paths, Policy, ScanOptions, Severity};

    // A real PyTorch checkpoint of the sample, and a look-alike whose pickle
    // runs a shell command when loaded, named like a harmless weights file.
    tour::write_incoming(&ctx.work)?;
    let (dir, bin, evil) = (
        ctx.work.incoming(),
        ctx.work.incoming_bin(),
        ctx.work.incoming_disguised(),
    );
    p.line(format_args!(
        "  {}: a PyTorch checkpoint (pickle inside a zip)",
        bin.display()
    ))?;
    p.line(format_args!(
        "  {}: named .safetensors, but a PyTorch zip whose pickle calls os.system",
        evil.display()
    ))?;

    p.line(format_args!("  $ safeweights scan {}", dir.display()))?;
    let options = ScanOptions::new();
    let report = scan_paths(&[&dir], &options);
    let text = safeweights_scan::render_human(&report, &Default::default());
    p.indented(4, |p| p.line(text.trim_end()))?;
    let critical = report
        .findings
        .iter()
        .any(|f| f.severity == Severity::Critical && f.file.contains("adapter_model"));
    ctx.check(
        p,
        critical,
        "the disguised pickle is critical (os.system), found by content",
    )?;
    let benign_max = report
        .findings
        .iter()
        .filter(|f| f.file.contains("pytorch_model.bin"))
        .map(|f| f.severity)
        .max();
    ctx.check(
        p,
        benign_max <= Some(Severity::Info),
        "the real checkpoint's pickle uses only allow-listed tensor globals (info)",
    )?;
    ctx.check(
        p,
        options.exit_code(&report) == 1,
        "exit code 1: a CI job would fail",
    )?;

    p.line(format_args!(
        "  $ safeweights scan --policy safetensors-only {}",
        bin.display()
    ))?;
    let policy = ScanOptions::new().policy(Policy::SafetensorsOnly);
    let gated = scan_paths(&[&bin], &policy);
    let fix = gated.findings.iter().find_map(|f| f.fix.clone());
    if let Some(fix) = &fix {
        p.line(format_args!("    fix: {fix}"))?;
    }
    ctx.check(
        p,
        policy.exit_code(&gated) == 1
            && fix
                .as_deref()
                .is_some_and(|f| f.contains("safeweights convert")),
        "the safetensors-only policy fails it and says how to convert",
    )?;
    Ok(json!({
        "findings": report.findings.len(),
        "critical": critical,
        "highest": report.highest().map(|s| s.as_str()),
    }))
}

fn step_convert(ctx: &mut Ctx, p: &mut Printer) -> anyhow::Result<Value> {
    use safeweights_convert::{convert, ConvertOptions};

    let bin = ctx.work.incoming_bin();
    let out = ctx.work.converted();
    tour::create_parent(&out)?;
    p.line(format_args!(
        "  $ safeweights convert {} {}",
        bin.display(),
        out.display()
    ))?;
    let before = fs_err::read(&bin)?;
    let summary = convert(&bin, &out, &ConvertOptions::new().overwrite(true))?;
    p.indented(4, |p| super::convert::print_summary(&summary, p))?;
    ctx.check(
        p,
        summary.verified,
        "every tensor read back and compared bit for bit",
    )?;
    ctx.check(p, fs_err::read(&bin)? == before, "the source is untouched")?;

    let original = Checkpoint::open(ctx.work.original())?;
    let converted = Checkpoint::open(&out)?;
    let report = safeweights::diff::compare(&original, &converted, &mut |_| {})?;
    ctx.check(
        p,
        report.equal,
        "safetensors → torch .bin → safetensors: diff equal to the original",
    )?;

    let evil = ctx.work.incoming_disguised();
    let refused_out = ctx.work.converted_refused();
    p.line(format_args!(
        "  $ safeweights convert {} {}",
        evil.display(),
        refused_out.display()
    ))?;
    let refused = convert(&evil, &refused_out, &ConvertOptions::new());
    let message = match &refused {
        Err(e) => safeweights::Diagnostic::message(e),
        Ok(_) => String::new(),
    };
    p.line(format_args!("    error: {message}"))?;
    ctx.check(
        p,
        refused.is_err() && message.contains("posix") && !refused_out.exists(),
        "refused, naming the global; nothing written; nothing ran",
    )?;
    Ok(json!({
        "tensors": summary.tensors,
        "bytes": summary.bytes,
        "verified": summary.verified,
        "equal_to_original": report.equal,
        "refused": message,
    }))
}

fn step_load(ctx: &mut Ctx, p: &mut Printer) -> anyhow::Result<Value> {
    use safeweights_load::{evict_from_page_cache, load_to_host, IoMode, LoadOptions, LoadPlan};

    let path = ctx.work.converted();
    let open = safeweights::OpenOptions::new().pread();
    let checkpoint = Checkpoint::open_with(&path, &open)?;
    let mut details = Vec::new();
    for (label, cold) in [("warm", false), ("cold", true)] {
        if cold {
            evict_from_page_cache(&path)?;
        }
        p.line(format_args!(
            "  $ safeweights load {}{} --device cpu",
            if cold { "--cold " } else { "" },
            path.display()
        ))?;
        let loaded = load_to_host(
            LoadPlan::for_checkpoint(&checkpoint),
            &LoadOptions::new().io_mode(IoMode::Auto),
        )?;
        p.indented(4, |p| super::load::print_report(loaded.report(), p))?;
        // Every byte equals what the plain reader sees.
        let (equal, tensors) = tour::matches_file(&path, |name| loaded.get(name))?;
        ctx.check(
            p,
            equal && loaded.report().tensors == tensors,
            format!("{label}: every tensor byte-identical to the file"),
        )?;
        details.push(json!({ "pass": label, "report": loaded.report() }));
    }
    p.line(
        "  (on a GPU machine: safeweights load --device cuda:0 PATH; CUDA is found at run time)",
    )?;
    Ok(Value::Array(details))
}
