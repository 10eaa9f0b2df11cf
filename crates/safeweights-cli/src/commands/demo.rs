//! `safeweights demo`: builds a small synthetic model and walks through the
//! toolkit, checking every claim it makes. The walk is a list of [`Step`]s;
//! later features add steps to [`STEPS`].

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context as _};
use safeweights::{
    decode, sharded, Checkpoint, Dtype, Metadata, SafeTensorsFile, SliceIndex, StreamingWriter,
    TensorSpec,
};
use serde::Serialize;
use serde_json::{json, Value};

use super::{diff, inspect, merge, reshard, validate};
use crate::cli::DemoArgs;
use crate::printer::{grouped, human_bytes, Printer};
use crate::Status;

/// One step of the walk.
pub struct Step {
    /// Short machine name (JSON `name`).
    pub name: &'static str,
    /// The heading printed.
    pub title: &'static str,
    /// Runs it: prints its lines, records checks in the context, returns
    /// details for the JSON summary. An `Err` stops the walk.
    pub run: fn(&mut Ctx, &mut Printer) -> anyhow::Result<Value>,
}

/// The walk, in order.
pub const STEPS: &[Step] = &[
    Step {
        name: "write",
        title: "Build a sample model and write it with the streaming writer",
        run: step_write,
    },
    Step {
        name: "inspect",
        title: "Inspect it",
        run: step_inspect,
    },
    Step {
        name: "validate",
        title: "Validate it against every rule (strict)",
        run: step_validate,
    },
    Step {
        name: "reshard",
        title: "Reshard it into 3 shards with an index",
        run: step_reshard,
    },
    Step {
        name: "verify",
        title: "Open the sharded checkpoint and verify every tensor",
        run: step_verify,
    },
    Step {
        name: "slice",
        title: "Slice a tensor, reading only the bytes it needs",
        run: step_slice,
    },
    Step {
        name: "merge",
        title: "Merge the shards back into one file and diff",
        run: step_merge,
    },
    Step {
        name: "corrupt",
        title: "Corrupt copies and watch validate catch each one",
        run: step_corrupt,
    },
    Step {
        name: "scan",
        title: "Scan a folder of incoming checkpoints for code, by content",
        run: step_scan,
    },
    Step {
        name: "convert",
        title: "Convert the pickle checkpoint to safetensors, without running it",
        run: step_convert,
    },
    Step {
        name: "load",
        title: "Load the converted model with the parallel I/O engine",
        run: step_load,
    },
];

/// Where the walk works, and the checks of the current step.
pub struct Ctx {
    dir: PathBuf,
    checks: Vec<Check>,
    expected_params: u64,
    specs: Vec<TensorSpec>,
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
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    fn original(&self) -> PathBuf {
        self.path("original/model.safetensors")
    }

    fn sharded_dir(&self) -> PathBuf {
        self.path("sharded")
    }

    fn merged(&self) -> PathBuf {
        self.path("merged/model.safetensors")
    }

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
            std::fs::create_dir_all(dir)
                .with_context(|| format!("{}: cannot create the demo folder", dir.display()))?;
            (dir.clone(), true)
        }
        None => {
            temp = tempfile::Builder::new()
                .prefix("safeweights-demo-")
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
        dir: dir.clone(),
        checks: Vec::new(),
        expected_params: 0,
        specs: Vec::new(),
    };
    let mut reports = Vec::new();
    let mut stopped = false;
    let total = Instant::now();
    for (i, step) in STEPS.iter().enumerate() {
        if stopped {
            reports.push(StepReport {
                name: step.name,
                title: step.title,
                status: "skipped",
                seconds: 0.0,
                checks: Vec::new(),
                error: None,
                details: Value::Null,
            });
            continue;
        }
        printer.blank()?;
        printer.line(format_args!("[{}/{}] {}", i + 1, STEPS.len(), step.title))?;
        let start = Instant::now();
        let result = (step.run)(&mut ctx, printer);
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
            name: step.name,
            title: step.title,
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
            STEPS.len(),
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

// ---------------------------------------------------------------- the model

/// A small transformer-like model: embeddings, two decoder layers, a head.
fn sample_specs() -> Vec<(TensorSpec, Fill)> {
    let (vocab, hidden, inter, layers) = (2048, 256, 512, 2);
    let mut t = vec![(
        TensorSpec::new("model.embed_tokens.weight", Dtype::BF16, [vocab, hidden]),
        Fill::Normal(0.02),
    )];
    for l in 0..layers {
        let p = format!("model.layers.{l}");
        t.push((
            TensorSpec::new(format!("{p}.input_layernorm.weight"), Dtype::F32, [hidden]),
            Fill::Ones,
        ));
        for proj in ["q_proj", "k_proj", "v_proj", "o_proj"] {
            t.push((
                TensorSpec::new(
                    format!("{p}.self_attn.{proj}.weight"),
                    Dtype::BF16,
                    [hidden, hidden],
                ),
                Fill::Normal(0.02),
            ));
        }
        t.push((
            TensorSpec::new(
                format!("{p}.post_attention_layernorm.weight"),
                Dtype::F32,
                [hidden],
            ),
            Fill::Ones,
        ));
        for proj in ["gate_proj", "up_proj"] {
            t.push((
                TensorSpec::new(
                    format!("{p}.mlp.{proj}.weight"),
                    Dtype::F16,
                    [inter, hidden],
                ),
                Fill::Normal(0.02),
            ));
        }
        // An FP8 weight with its scale, as FP8 checkpoints store them.
        t.push((
            TensorSpec::new(
                format!("{p}.mlp.down_proj.weight"),
                Dtype::F8_E4M3,
                [hidden, inter],
            ),
            Fill::Normal(64.0),
        ));
        t.push((
            TensorSpec::new(format!("{p}.mlp.down_proj.weight_scale"), Dtype::F32, [1]),
            Fill::Const(0.02 / 64.0),
        ));
    }
    t.push((
        TensorSpec::new("model.norm.weight", Dtype::F32, [hidden]),
        Fill::Ones,
    ));
    t.push((
        TensorSpec::new("model.rotary_emb.inv_freq", Dtype::F32, [32]),
        Fill::InvFreq,
    ));
    t.push((
        TensorSpec::new("model.position_ids", Dtype::I64, [1, 1024]),
        Fill::Arange,
    ));
    t.push((
        TensorSpec::new("lm_head.weight", Dtype::F32, [vocab, hidden]),
        Fill::Normal(0.02),
    ));
    t
}

#[derive(Debug, Clone, Copy)]
enum Fill {
    Normal(f32),
    Ones,
    Const(f32),
    InvFreq,
    Arange,
}

/// SplitMix64: a small deterministic generator.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Box–Muller.
    fn normal(&mut self) -> f32 {
        let (u, v) = (self.uniform(), self.uniform());
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
    }
}

/// Nearest-value encoder for a small float dtype, built from the decode table.
struct Encoder {
    /// (value, bits) of every finite non-negative pattern, sorted by value.
    table: Vec<(f64, u16)>,
    sign_bit: u16,
}

impl Encoder {
    fn new(dtype: Dtype) -> Self {
        let bits = dtype.bits();
        let width = bits / 8;
        let raw: Vec<u8> = (0..1u32 << (bits - 1))
            .flat_map(|pattern| (pattern as u16).to_le_bytes().into_iter().take(width))
            .collect();
        let values = decode::decode(dtype, &raw).unwrap_or_default();
        let mut table: Vec<(f64, u16)> = (0u16..)
            .zip(values)
            .filter(|(_, v)| v.is_finite())
            .map(|(bits, v)| (v, bits))
            .collect();
        table.sort_by(|a, b| a.0.total_cmp(&b.0));
        Encoder {
            table,
            sign_bit: 1 << (bits - 1),
        }
    }

    fn encode(&self, x: f32) -> u16 {
        let mag = (x as f64).abs();
        let i = self.table.partition_point(|&(v, _)| v < mag);
        let pick = match (self.table.get(i.wrapping_sub(1)), self.table.get(i)) {
            (Some(lo), Some(hi)) => {
                if mag - lo.0 <= hi.0 - mag {
                    lo
                } else {
                    hi
                }
            }
            (Some(lo), None) => lo, // saturate
            (None, Some(hi)) => hi,
            (None, None) => return 0,
        };
        if x.is_sign_negative() && pick.0 != 0.0 {
            pick.1 | self.sign_bit
        } else {
            pick.1
        }
    }
}

fn tensor_bytes(spec: &TensorSpec, fill: Fill, rng: &mut Rng, encoders: &Encoders) -> Vec<u8> {
    let n = spec.shape.iter().product::<usize>();
    let values: Vec<f32> = (0..n)
        .map(|i| match fill {
            Fill::Normal(std) => rng.normal() * std,
            Fill::Ones => 1.0,
            Fill::Const(c) => c,
            Fill::InvFreq => 1.0 / 10000f32.powf(2.0 * i as f32 / (2.0 * n as f32)),
            Fill::Arange => i as f32,
        })
        .collect();
    match spec.dtype {
        Dtype::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        Dtype::BF16 => values
            .iter()
            .flat_map(|v| {
                // Round to nearest even.
                let b = v.to_bits();
                let rounded = b.wrapping_add(0x7fff + ((b >> 16) & 1)) >> 16;
                (rounded as u16).to_le_bytes()
            })
            .collect(),
        Dtype::F16 => values
            .iter()
            .flat_map(|&v| encoders.f16.encode(v).to_le_bytes())
            .collect(),
        Dtype::F8_E4M3 => values
            .iter()
            .map(|&v| encoders.f8.encode(v) as u8)
            .collect(),
        Dtype::I64 => values
            .iter()
            .flat_map(|&v| (v as i64).to_le_bytes())
            .collect(),
        other => vec![0; other.byte_size(n).unwrap_or(0)],
    }
}

struct Encoders {
    f16: Encoder,
    f8: Encoder,
}

// ---------------------------------------------------------------- the steps

fn step_write(ctx: &mut Ctx, p: &mut Printer) -> anyhow::Result<Value> {
    let model = sample_specs();
    let encoders = Encoders {
        f16: Encoder::new(Dtype::F16),
        f8: Encoder::new(Dtype::F8_E4M3),
    };
    let path = ctx.original();
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("{}", parent.display()))?;
    }
    let metadata: Metadata = [("format".to_owned(), "pt".to_owned())].into();
    let specs: Vec<TensorSpec> = model.iter().map(|(s, _)| s.clone()).collect();
    let mut writer = StreamingWriter::create(&path, specs.clone(), Some(&metadata))?;
    p.line(format_args!(
        "  declared {} tensors up front: the header ({} bytes) is planned before any data",
        specs.len(),
        writer.layout().header_bytes().len()
    ))?;
    let mut rng = Rng(0x5afe_3e16_4750);
    let mut chunks = 0usize;
    // Tensors arrive in declaration order, in 64 KiB chunks: the writer places
    // each at its planned offset (the file order is by dtype, then name).
    for (spec, fill) in &model {
        let bytes = tensor_bytes(spec, *fill, &mut rng, &encoders);
        for chunk in bytes.chunks(64 << 10) {
            writer.write(&spec.name, chunk)?;
            chunks += 1;
        }
    }
    writer.finish()?;
    let size = std::fs::metadata(&path)?.len();
    ctx.expected_params = specs
        .iter()
        .map(|s| s.shape.iter().product::<usize>() as u64)
        .sum();
    ctx.specs = specs;
    p.line(format_args!(
        "  wrote {} ({}) in {chunks} chunks; metadata {{\"format\": \"pt\"}}",
        path.display(),
        human_bytes(size)
    ))?;
    let file = SafeTensorsFile::open(&path)?;
    ctx.check(
        p,
        file.header().len() == ctx.specs.len(),
        format!("the file holds all {} tensors", ctx.specs.len()),
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
        json!({ "path": path.display().to_string(), "file_bytes": size, "tensors": ctx.specs.len(), "chunks": chunks }),
    )
}

fn step_inspect(ctx: &mut Ctx, p: &mut Printer) -> anyhow::Result<Value> {
    let path = ctx.original();
    let ckpt = Checkpoint::open(&path)?;
    let report = inspect::report(&path.display().to_string(), &ckpt);
    p.line(format_args!("  $ safeweights inspect {}", path.display()))?;
    p.indented(4, |p| inspect::print_human(&report, p))?;
    ctx.check(
        p,
        report.total.params == ctx.expected_params,
        format!("{} parameters, as built", grouped(ctx.expected_params)),
    )?;
    let dtypes: Vec<&str> = report.dtypes.iter().map(|d| d.dtype).collect();
    let wanted = ["BF16", "F16", "F32", "F8_E4M3", "I64"];
    ctx.check(
        p,
        wanted.iter().all(|d| dtypes.contains(d)),
        format!("dtypes {}", wanted.join(", ")),
    )?;
    ctx.check(
        p,
        report
            .metadata
            .as_ref()
            .and_then(|m| m.get("format"))
            .map(String::as_str)
            == Some("pt"),
        "metadata format = pt",
    )?;
    Ok(
        json!({ "tensors": report.total.tensors, "params": report.total.params, "bytes": report.total.bytes, "dtypes": dtypes }),
    )
}

fn step_validate(ctx: &mut Ctx, p: &mut Printer) -> anyhow::Result<Value> {
    let path = ctx.original();
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
    let src = Checkpoint::open(ctx.original())?;
    let sizes: Vec<u64> = src.tensors().map(|(_, t)| t.byte_len() as u64).collect();
    // The smallest limit that gives at most 3 shards (greedy packing in file order).
    let (mut lo, mut hi) = (1u64, sizes.iter().sum::<u64>().max(1));
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if sharded::plan_shards(&sizes, mid).len() <= 3 {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    let out = ctx.sharded_dir();
    p.line(format_args!(
        "  $ safeweights reshard {} --max-shard-size {lo} -o {}",
        ctx.original().display(),
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
        shards.len() == 3,
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
    let text = std::fs::read_to_string(&index)?;
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
    let original = Checkpoint::open(ctx.original())?;
    let index = ctx.sharded_dir().join("model.safetensors.index.json");
    let shards = Checkpoint::open(&index)?;
    p.line(format_args!(
        "  opened {} ({} files, {} tensors)",
        index.display(),
        shards.files().len(),
        shards.len()
    ))?;
    let same_names = original.names().eq(shards.names());
    ctx.check(p, same_names, "the same tensor names")?;
    let mut identical = 0usize;
    let mut bytes = 0u64;
    for name in original.names() {
        let (a, b) = (original.tensor(name)?, shards.tensor(name)?);
        if a.dtype() == b.dtype() && a.shape() == b.shape() && a.data() == b.data() {
            identical += 1;
            bytes += a.data().len() as u64;
        }
    }
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
    let path = ctx.original();
    let file = SafeTensorsFile::open(&path)?;
    let name = "model.layers.0.mlp.up_proj.weight";
    let info = file.info(name)?.clone();
    let mut details = Vec::new();
    let cases: [(&str, Vec<SliceIndex>); 2] = [
        ("[100:200]", vec![SliceIndex::range(100, 200)]),
        (
            "[10:14, 64:128]",
            vec![SliceIndex::range(10, 14), SliceIndex::range(64, 128)],
        ),
    ];
    let full = file.tensor(name)?.data().to_vec();
    let row_bytes = info.shape[1] * 2;
    p.line(format_args!(
        "  {name}: {} {:?}, bytes {}..{} of the file",
        info.dtype,
        info.shape,
        grouped(file.file_range(&info).start),
        grouped(file.file_range(&info).end)
    ))?;
    for (label, index) in cases {
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
        let expected: Vec<u8> = match label {
            "[100:200]" => full[100 * row_bytes..200 * row_bytes].to_vec(),
            _ => (10..14)
                .flat_map(|row| full[row * row_bytes + 64 * 2..row * row_bytes + 128 * 2].to_vec())
                .collect(),
        };
        ctx.check(
            p,
            bytes == expected,
            format!("{label} reads exactly the selected elements"),
        )?;
        details.push(json!({
            "slice": label,
            "shape": shape,
            "ranges": ranges.iter().map(|r| [r.start, r.end]).collect::<Vec<_>>(),
        }));
        if label.contains(',') {
            let values = decode::decode(info.dtype, &bytes[..8])?;
            let shown: Vec<String> = values.iter().map(|v| format!("{v:.6}")).collect();
            p.line(format_args!("    first values: {}", shown.join(", ")))?;
        }
    }
    ctx.check(
        p,
        details.len() == 2 && details[0]["ranges"].as_array().map(Vec::len) == Some(1),
        "a row range is one contiguous read",
    )?;
    ctx.check(
        p,
        details[1]["ranges"].as_array().map(Vec::len) == Some(4),
        "a 4-row column window is 4 reads, one per row",
    )?;
    Ok(json!({ "tensor": name, "slices": details }))
}

fn step_merge(ctx: &mut Ctx, p: &mut Printer) -> anyhow::Result<Value> {
    let shards = Checkpoint::open(ctx.sharded_dir())?;
    let out = ctx.merged();
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("{}", parent.display()))?;
    }
    p.line(format_args!(
        "  $ safeweights merge {} -o {}",
        ctx.sharded_dir().display(),
        out.display()
    ))?;
    let size = merge::merge(&shards, &out, &mut |_| {})?;
    p.line(format_args!(
        "  wrote {} ({})",
        out.display(),
        human_bytes(size)
    ))?;
    let original = Checkpoint::open(ctx.original())?;
    let merged = Checkpoint::open(&out)?;
    p.line(format_args!(
        "  $ safeweights diff {} {}",
        ctx.original().display(),
        out.display()
    ))?;
    let report = diff::compare("original", &original, "merged", &merged, &mut |_| {})?;
    p.indented(4, |p| diff::print_human(&report, p))?;
    ctx.check(p, report.equal, "diff: equal")?;
    let same_bytes = std::fs::read(ctx.original())? == std::fs::read(&out)?;
    ctx.check(
        p,
        same_bytes,
        "the merged file is byte-identical to the original (the layout is deterministic)",
    )?;
    Ok(
        json!({ "path": out.display().to_string(), "equal": report.equal, "byte_identical": same_bytes }),
    )
}

/// A corruption: a name, what it does, the rule validate must report.
struct Corruption {
    name: &'static str,
    what: &'static str,
    rule: &'static str,
    apply: fn(&[u8]) -> anyhow::Result<Vec<u8>>,
}

const CORRUPTIONS: &[Corruption] = &[
    Corruption {
        name: "trailing.safetensors",
        what: "16 bytes appended after the last tensor",
        rule: "trailing_bytes",
        apply: |b| {
            let mut out = b.to_vec();
            out.extend_from_slice(&[0u8; 16]);
            Ok(out)
        },
    },
    Corruption {
        name: "overlap.safetensors",
        what: "the second tensor's data_offsets moved back 8 bytes, into the first",
        rule: "overlap",
        apply: overlap_offsets,
    },
    Corruption {
        name: "truncated.safetensors",
        what: "the last 1000 bytes cut off",
        rule: "truncated",
        apply: |b| Ok(b[..b.len().saturating_sub(1000)].to_vec()),
    },
    Corruption {
        name: "bad-length.safetensors",
        what: "the header length prefix set past the end of the file",
        rule: "header_past_end",
        apply: |b| {
            let mut out = b.to_vec();
            let len = (b.len() as u64) * 2;
            out[..8].copy_from_slice(&len.to_le_bytes());
            Ok(out)
        },
    },
];

/// Rewrites the header so that the second tensor (by offset) starts 8 bytes
/// before the first ends.
fn overlap_offsets(bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    let n = u64::from_le_bytes(bytes[..8].try_into()?) as usize;
    let mut header: serde_json::Map<String, Value> = serde_json::from_slice(&bytes[8..8 + n])?;
    let mut by_offset: Vec<(u64, String)> = header
        .iter()
        .filter_map(|(k, v)| Some((v.get("data_offsets")?.get(0)?.as_u64()?, k.clone())))
        .collect();
    by_offset.sort();
    let Some((_, second)) = by_offset.get(1).cloned() else {
        bail!("the sample has fewer than two tensors");
    };
    let entry = header
        .get_mut(&second)
        .and_then(|v| v.get_mut("data_offsets"))
        .and_then(Value::as_array_mut)
        .context("no data_offsets")?;
    for offset in entry.iter_mut() {
        *offset = json!(offset.as_u64().unwrap_or(0).saturating_sub(8));
    }
    let mut text = serde_json::to_string(&header)?;
    while text.len() % 8 != 0 {
        text.push(' ');
    }
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(&bytes[8 + n..]);
    Ok(out)
}

fn step_corrupt(ctx: &mut Ctx, p: &mut Printer) -> anyhow::Result<Value> {
    let original = std::fs::read(ctx.original())?;
    let dir = ctx.path("corrupt");
    std::fs::create_dir_all(&dir).with_context(|| format!("{}", dir.display()))?;
    let mut details = Vec::new();
    for c in CORRUPTIONS {
        let path = dir.join(c.name);
        std::fs::write(&path, (c.apply)(&original)?)
            .with_context(|| format!("{}", path.display()))?;
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

/// A protocol-2 pickle that calls `os.system(...)` when unpickled.
fn malicious_pickle() -> Vec<u8> {
    let mut p = vec![0x80, 0x02];
    p.extend_from_slice(b"cposix\nsystem\n");
    let cmd = b"echo this would run on torch.load";
    p.push(b'X');
    p.extend_from_slice(&(cmd.len() as u32).to_le_bytes());
    p.extend_from_slice(cmd);
    p.extend_from_slice(&[0x85, b'R', b'.']);
    p
}

fn incoming_dir(ctx: &Ctx) -> PathBuf {
    ctx.path("incoming")
}

fn step_scan(ctx: &mut Ctx, p: &mut Printer) -> anyhow::Result<Value> {
    use safeweights_scan::{scan_paths, Policy, ScanOptions, Severity};

    let dir = incoming_dir(ctx);
    std::fs::create_dir_all(&dir).with_context(|| format!("{}", dir.display()))?;
    // A real PyTorch checkpoint of the sample (the torch zip format, as
    // `torch.save` writes it), made by converting the safetensors file back.
    let bin = dir.join("pytorch_model.bin");
    safeweights_convert::convert(
        ctx.original(),
        &bin,
        &safeweights_convert::ConvertOptions::new().overwrite(true),
    )?;
    // And a look-alike whose pickle runs a shell command when loaded, named
    // like a harmless weights file.
    let evil = dir.join("adapter_model.safetensors");
    let mut zip = safeweights_convert::zipw::ZipWriter::new(
        std::fs::File::create(&evil).with_context(|| format!("{}", evil.display()))?,
    );
    zip.entry("archive/data.pkl", &malicious_pickle())?;
    zip.entry("archive/version", b"3\n")?;
    zip.finish()?;
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

    let dir = incoming_dir(ctx);
    let bin = dir.join("pytorch_model.bin");
    let out = ctx.path("converted/model.safetensors");
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("{}", parent.display()))?;
    }
    p.line(format_args!(
        "  $ safeweights convert {} {}",
        bin.display(),
        out.display()
    ))?;
    let before = std::fs::read(&bin)?;
    let summary = convert(&bin, &out, &ConvertOptions::new().overwrite(true))?;
    p.indented(4, |p| super::convert::print_summary(&summary, p))?;
    ctx.check(
        p,
        summary.verified,
        "every tensor read back and compared bit for bit",
    )?;
    ctx.check(p, std::fs::read(&bin)? == before, "the source is untouched")?;

    let original = Checkpoint::open(ctx.original())?;
    let converted = Checkpoint::open(&out)?;
    let report = diff::compare("original", &original, "converted", &converted, &mut |_| {})?;
    ctx.check(
        p,
        report.equal,
        "safetensors → torch .bin → safetensors: diff equal to the original",
    )?;

    let evil = dir.join("adapter_model.safetensors");
    let refused_out = ctx.path("converted/adapter_model.safetensors");
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

    let path = ctx.path("converted/model.safetensors");
    let open = safeweights::OpenOptions::new().backend(safeweights::Backend::Pread);
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
        let reader = SafeTensorsFile::open(&path)?;
        let mut equal = true;
        for info in reader.header().tensors() {
            equal &= loaded.get(&info.name) == Some(reader.tensor(&info.name)?.data());
        }
        ctx.check(
            p,
            equal && loaded.report().tensors == reader.header().len(),
            format!("{label}: every tensor byte-identical to the file"),
        )?;
        details.push(json!({ "pass": label, "report": loaded.report() }));
    }
    p.line(
        "  (on a GPU machine: safeweights load --device cuda:0 PATH; CUDA is found at run time)",
    )?;
    Ok(Value::Array(details))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoder_round_trips_exact_values() {
        let f8 = Encoder::new(Dtype::F8_E4M3);
        for (x, bits) in [
            (1.0f32, 0x38u16),
            (-448.0, 0xfe),
            (1e6, 0x7e),
            (0.0, 0x00),
            (-1.0, 0xb8),
        ] {
            assert_eq!(f8.encode(x), bits, "{x}");
        }
        let f16 = Encoder::new(Dtype::F16);
        assert_eq!(f16.encode(1.0), 0x3c00);
        assert_eq!(f16.encode(-2.0), 0xc000);
        assert_eq!(f16.encode(65504.0), 0x7bff);
    }

    #[test]
    fn steps_have_unique_names() {
        let mut names: Vec<&str> = STEPS.iter().map(|s| s.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), STEPS.len());
    }
}
