//! Runs the built `safeweights` binary on files written with
//! `safeweights::write_file` in temporary folders.
#![allow(clippy::disallowed_methods)] // Tests, examples and benches use std::fs directly; the rule is for library code.

mod changing;
#[path = "../../../safeweights-load/tests/cudart_emu/mod.rs"]
mod cudart_emu;
mod fit;
mod paths;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use safeweights::{write_file, Dtype, Metadata, TensorRef};
use serde_json::Value;

/// Snapshots live beside this file, wherever cargo thinks the workspace is
/// (insta's workspace detection runs `cargo metadata`, which fails while the
/// workspace is being edited).
const SNAPSHOTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/snapshots");

macro_rules! snapshot {
    ($($arg:tt)*) => {{
        let mut settings = insta::Settings::clone_current();
        settings.set_snapshot_path(SNAPSHOTS);
        settings.bind(|| insta::assert_snapshot!($($arg)*));
    }};
}

macro_rules! json_snapshot {
    ($($arg:tt)*) => {{
        let mut settings = insta::Settings::clone_current();
        settings.set_snapshot_path(SNAPSHOTS);
        settings.bind(|| insta::assert_json_snapshot!($($arg)*));
    }};
}

/// Snapshot settings with `filters` (regex, replacement) applied to the
/// snapshot text: for timings and throughput, which change every run.
fn filtered(filters: &[(&str, &str)]) -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(SNAPSHOTS);
    for (regex, with) in filters {
        settings.add_filter(regex, *with);
    }
    settings
}

/// Seconds and throughput of `convert` and `load`, human and JSON, and the
/// share of a file the page cache held (machine state).
const TIMINGS: &[(&str, &str)] = &[
    (r" in \d+\.\d+s", " in [SECONDS]s"),
    (r"\d+\.\d+ GB/s", "[RATE] GB/s"),
    (r"\d+% in the page cache", "[PERCENT]% in the page cache"),
    (r#""seconds": [0-9.e+-]+"#, r#""seconds": "[SECONDS]""#),
    (r#""gb_per_s": [0-9.e+-]+"#, r#""gb_per_s": "[RATE]""#),
    (
        r#""resident_fraction": [0-9.e+-]+"#,
        r#""resident_fraction": "[FRACTION]""#,
    ),
];

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs the binary in `dir`, with `dir`'s path redacted as `[TMP]` in the output.
fn run(dir: &Path, args: &[&str]) -> Run {
    run_env(dir, args, &[])
}

/// As [`run`], with extra environment variables.
fn run_env(dir: &Path, args: &[&str], env: &[(&str, &Path)]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_safeweights"))
        .args(args)
        .envs(env.iter().copied())
        .current_dir(dir)
        .output()
        .expect("run safeweights");
    let redact = |b: Vec<u8>| {
        String::from_utf8(b)
            .unwrap()
            .replace(&dir.display().to_string(), "[TMP]")
    };
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: redact(out.stdout),
        stderr: redact(out.stderr),
    }
}

fn json(run: &Run) -> Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

fn le<T: Copy, const N: usize>(values: &[T], to: fn(T) -> [u8; N]) -> Vec<u8> {
    values.iter().flat_map(|&v| to(v)).collect()
}

/// A small file: F32, BF16, I64, F8_E4M3 tensors and {"format": "pt"}.
fn write_sample(path: &Path, tweak: f32) {
    let a = le(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0 + tweak], f32::to_le_bytes);
    let b = le(&[0x3f80u16, 0xc000, 0x0000, 0x4040], u16::to_le_bytes);
    let c = le(&[7i64, -8], i64::to_le_bytes);
    let d = vec![0x38u8, 0x40, 0xb8, 0x7e];
    let tensors = [
        TensorRef {
            name: "layer.weight",
            dtype: Dtype::F32,
            shape: &[2, 3],
            data: &a,
        },
        TensorRef {
            name: "layer.bias",
            dtype: Dtype::BF16,
            shape: &[4],
            data: &b,
        },
        TensorRef {
            name: "position_ids",
            dtype: Dtype::I64,
            shape: &[1, 2],
            data: &c,
        },
        TensorRef {
            name: "proj.weight",
            dtype: Dtype::F8_E4M3,
            shape: &[2, 2],
            data: &d,
        },
    ];
    let metadata: Metadata = [("format".to_owned(), "pt".to_owned())].into();
    write_file(path, &tensors, Some(&metadata)).unwrap();
}

fn sample_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    write_sample(&path, 0.0);
    (dir, path)
}

fn append(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(bytes).unwrap();
}

// ------------------------------------------------------------------ inspect

#[test]
fn inspect_human() {
    let (dir, _) = sample_dir();
    let r = run(dir.path(), &["inspect", "model.safetensors"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    snapshot!(r.stdout);
}

#[test]
fn inspect_json() {
    let (dir, _) = sample_dir();
    let r = run(dir.path(), &["inspect", "--json", "model.safetensors"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    json_snapshot!(json(&r));
}

#[test]
fn inspect_sharded() {
    let (dir, _) = sample_dir();
    let r = run(
        dir.path(),
        &[
            "reshard",
            "model.safetensors",
            "--max-shard-size",
            "40",
            "-o",
            "shards",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    snapshot!("reshard_human", r.stdout);
    let r = run(dir.path(), &["inspect", "shards"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    snapshot!(r.stdout);
    let r = run(
        dir.path(),
        &["inspect", "--json", "shards/model.safetensors.index.json"],
    );
    let v = json(&r);
    assert_eq!(v["layout"], "sharded");
    assert_eq!(v["files"].as_array().unwrap().len(), 2);
    assert_eq!(v["index_metadata"]["total_size"], 52);
    assert_eq!(v["tensors"][0]["file"], "model-00001-of-00002.safetensors");
}

#[test]
fn inspect_invalid_and_missing() {
    let (dir, path) = sample_dir();
    append(&path, b"junk");
    let r = run(dir.path(), &["inspect", "model.safetensors"]);
    assert_eq!(r.code, 1);
    assert!(r.stdout.is_empty());
    snapshot!("inspect_invalid_stderr", r.stderr);
    let r = run(dir.path(), &["inspect", "nope.safetensors"]);
    assert_eq!(r.code, 2);
    snapshot!("inspect_missing_stderr", r.stderr);
}

#[test]
fn inspect_lenient_reads_what_the_reference_reads() {
    let dir = tempfile::tempdir().unwrap();
    // A duplicate key: the reference keeps the last, strict mode refuses.
    let header = br#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes.push(7);
    std::fs::write(dir.path().join("dup.safetensors"), bytes).unwrap();
    let r = run(dir.path(), &["inspect", "dup.safetensors"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("--lenient"), "{}", r.stderr);
    let r = run(
        dir.path(),
        &["inspect", "--lenient", "--json", "dup.safetensors"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(json(&r)["total"]["tensors"], 1);
}

#[test]
fn quiet_prints_nothing() {
    let (dir, _) = sample_dir();
    let r = run(dir.path(), &["inspect", "-q", "model.safetensors"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""));
}

// ----------------------------------------------------------------- validate

fn validate_fixture() -> tempfile::TempDir {
    let (dir, _) = sample_dir();
    let bad = dir.path().join("trailing.safetensors");
    write_sample(&bad, 0.0);
    append(&bad, &[0; 8]);
    // Overlapping offsets: b starts inside a.
    let header = br#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(&[0; 8]);
    std::fs::write(dir.path().join("overlap.safetensors"), bytes).unwrap();
    dir
}

#[test]
fn validate_valid() {
    let (dir, _) = sample_dir();
    let r = run(dir.path(), &["validate", "model.safetensors"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    snapshot!(r.stdout);
}

#[test]
fn validate_invalid() {
    let dir = validate_fixture();
    let args = [
        "validate",
        "model.safetensors",
        "trailing.safetensors",
        "overlap.safetensors",
    ];
    let r = run(dir.path(), &args);
    assert_eq!(r.code, 1, "{}", r.stderr);
    snapshot!(r.stdout);
    let r = run(dir.path(), &[&["--json"][..], &args].concat());
    assert_eq!(r.code, 1);
    json_snapshot!(json(&r));
}

#[test]
fn validate_missing_file_is_exit_2() {
    let dir = validate_fixture();
    let args = [
        "validate",
        "--json",
        "trailing.safetensors",
        "missing.safetensors",
    ];
    let r = run(dir.path(), &args);
    assert_eq!(r.code, 2);
    let v = json(&r);
    assert_eq!(v[0]["error"]["kind"], "trailing_bytes");
    assert_eq!(v[1]["valid"], false);
    assert_eq!(v[1]["error"]["kind"], "io");
    assert_eq!(v[1]["error"]["io_kind"], "NotFound");
    let r = run(dir.path(), &["validate", "missing.safetensors"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stdout.starts_with("ERROR    missing.safetensors: "),
        "{}",
        r.stdout
    );
}

#[test]
fn folders_without_a_checkpoint_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    let r = run(dir.path(), &["validate", "--json", "empty"]);
    assert_eq!(r.code, 2);
    assert_eq!(json(&r)[0]["error"]["kind"], "empty");
    assert_eq!(json(&r)[0]["error"]["category"], "usage");
    let r = run(dir.path(), &["inspect", "empty"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("hint: "), "{}", r.stderr);
}

#[test]
fn inconsistent_index_is_invalid() {
    let (dir, _) = sample_dir();
    let args = [
        "reshard",
        "-q",
        "model.safetensors",
        "--max-shard-size",
        "40",
        "-o",
        "shards",
    ];
    assert_eq!(run(dir.path(), &args).code, 0);
    let index = dir.path().join("shards/model.safetensors.index.json");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&index).unwrap()).unwrap();
    v["weight_map"]["ghost"] = "model-00001-of-00002.safetensors".into();
    std::fs::write(&index, v.to_string()).unwrap();
    let r = run(dir.path(), &["validate", "--json", "shards"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let e = &json(&r)[0]["error"];
    assert_eq!(e["kind"], "missing_from_shard");
    assert_eq!(e["category"], "checkpoint");
    assert_eq!(e["tensor"], "ghost");
    let r = run(dir.path(), &["validate", "shards"]);
    snapshot!(r.stdout);
}

#[test]
fn validate_requires_a_path() {
    let (dir, _) = sample_dir();
    let r = run(dir.path(), &["validate"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("PATHS"), "{}", r.stderr);
}

// --------------------------------------------------------------------- diff

#[test]
fn diff_equal() {
    let (dir, _) = sample_dir();
    write_sample(&dir.path().join("copy.safetensors"), 0.0);
    let r = run(
        dir.path(),
        &["diff", "model.safetensors", "copy.safetensors"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    snapshot!(r.stdout);
}

#[test]
fn diff_different() {
    let (dir, _) = sample_dir();
    // Values of layer.weight change; b drops position_ids, changes proj's dtype, adds extra.
    let a = le(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.5], f32::to_le_bytes);
    let b = le(&[0x3f80u16, 0xc000, 0x0000, 0x4040], u16::to_le_bytes);
    let d = vec![0x38u8, 0x40, 0xb8, 0x7e];
    let e = vec![1u8];
    let tensors = [
        TensorRef {
            name: "layer.weight",
            dtype: Dtype::F32,
            shape: &[2, 3],
            data: &a,
        },
        TensorRef {
            name: "layer.bias",
            dtype: Dtype::BF16,
            shape: &[4],
            data: &b,
        },
        TensorRef {
            name: "proj.weight",
            dtype: Dtype::U8,
            shape: &[2, 2],
            data: &d,
        },
        TensorRef {
            name: "extra",
            dtype: Dtype::BOOL,
            shape: &[1],
            data: &e,
        },
    ];
    write_file(dir.path().join("other.safetensors"), &tensors, None).unwrap();
    let r = run(
        dir.path(),
        &["diff", "model.safetensors", "other.safetensors"],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    snapshot!(r.stdout);
    let r = run(
        dir.path(),
        &["diff", "--json", "model.safetensors", "other.safetensors"],
    );
    assert_eq!(r.code, 1);
    let v = json(&r);
    assert_eq!(v["changed"][0]["max_abs_diff"], 0.5);
    json_snapshot!(v);
}

#[test]
fn diff_nan_and_signed_zero() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, values: &[f32]| {
        let data = le(values, f32::to_le_bytes);
        let t = [TensorRef {
            name: "x",
            dtype: Dtype::F32,
            shape: &[values.len()],
            data: &data,
        }];
        write_file(dir.path().join(name), &t, None).unwrap();
    };
    write("a.safetensors", &[0.0, f32::NAN, 1.0, 2.0]);
    write("b.safetensors", &[-0.0, f32::NAN, 1.0, 2.0]);
    write("c.safetensors", &[0.0, 1.0, 1.25, f32::INFINITY]);
    let r = run(
        dir.path(),
        &["diff", "--json", "a.safetensors", "b.safetensors"],
    );
    assert_eq!(r.code, 1, "bitwise different");
    let v = json(&r);
    assert_eq!(v["changed"][0]["differing_values"], 0);
    let r = run(
        dir.path(),
        &["diff", "--json", "a.safetensors", "c.safetensors"],
    );
    let v = json(&r);
    assert_eq!(v["changed"][0]["differing_values"], 3);
    assert_eq!(v["changed"][0]["max_abs_diff"], 0.25);
    assert_eq!(v["changed"][0]["nonfinite_mismatches"], 2);
}

#[test]
fn diff_errors_are_exit_2() {
    let (dir, path) = sample_dir();
    let r = run(
        dir.path(),
        &["diff", "model.safetensors", "missing.safetensors"],
    );
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("missing.safetensors"), "{}", r.stderr);
    write_sample(&dir.path().join("bad.safetensors"), 0.0);
    append(&dir.path().join("bad.safetensors"), b"x");
    let r = run(
        dir.path(),
        &["diff", "model.safetensors", "bad.safetensors"],
    );
    assert_eq!(r.code, 2, "an invalid input is an error, not a difference");
    assert!(path.exists());
}

#[test]
fn diff_streams_large_tensors_in_chunks() {
    // 10 MB of F16: more than one 3 MiB chunk; one element differs near the end.
    let dir = tempfile::tempdir().unwrap();
    let n = 5_000_000usize;
    let mut data = vec![0u8; 2 * n];
    let write = |name: &str, data: &[u8]| {
        let t = [TensorRef {
            name: "big",
            dtype: Dtype::F16,
            shape: &[n],
            data,
        }];
        write_file(dir.path().join(name), &t, None).unwrap();
    };
    write("a.safetensors", &data);
    data[2 * (n - 3) + 1] = 0x3c; // 1.0
    write("b.safetensors", &data);
    let r = run(
        dir.path(),
        &["diff", "--json", "a.safetensors", "b.safetensors"],
    );
    assert_eq!(r.code, 1);
    let v = json(&r);
    assert_eq!(v["changed"][0]["differing_values"], 1);
    assert_eq!(v["changed"][0]["max_abs_diff"], 1.0);
}

// ---------------------------------------------------------- reshard / merge

#[test]
fn reshard_merge_round_trip_is_bit_identical() {
    let (dir, path) = sample_dir();
    let r = run(
        dir.path(),
        &[
            "reshard",
            "--json",
            "model.safetensors",
            "--max-shard-size",
            "20B",
            "-o",
            "shards",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = json(&r);
    assert_eq!(v["shards"].as_array().unwrap().len(), 3);
    assert_eq!(v["index"], "model.safetensors.index.json");
    json_snapshot!("reshard_json", v);
    let index = std::fs::read_to_string(dir.path().join("shards/model.safetensors.index.json"));
    snapshot!("reshard_index", index.unwrap());

    let r = run(dir.path(), &["validate", "shards"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    let r = run(
        dir.path(),
        &["merge", "--json", "shards", "-o", "merged.safetensors"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    json_snapshot!("merge_json", json(&r));
    let merged = std::fs::read(dir.path().join("merged.safetensors")).unwrap();
    assert_eq!(
        merged,
        std::fs::read(&path).unwrap(),
        "byte-identical round trip"
    );
    let r = run(dir.path(), &["diff", "model.safetensors", "shards"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
}

#[test]
fn reshard_and_merge_refuse_to_overwrite() {
    let (dir, _) = sample_dir();
    let r = run(dir.path(), &["reshard", "model.safetensors", "-o", "."]);
    assert_eq!(r.code, 2);
    snapshot!("reshard_refuses", r.stderr);
    let r = run(
        dir.path(),
        &["merge", "model.safetensors", "-o", "model.safetensors"],
    );
    assert_eq!(r.code, 2);
    snapshot!("merge_refuses", r.stderr);
    let r = run(
        dir.path(),
        &["merge", "-q", "model.safetensors", "-o", "copy.safetensors"],
    );
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{}", r.stderr);
    let r = run(
        dir.path(),
        &[
            "merge",
            "--force",
            "-q",
            "model.safetensors",
            "-o",
            "copy.safetensors",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn bad_size_is_a_usage_error() {
    let (dir, _) = sample_dir();
    let r = run(
        dir.path(),
        &[
            "reshard",
            "model.safetensors",
            "--max-shard-size",
            "5 parsecs",
            "-o",
            "x",
        ],
    );
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("e.g. 5GB"), "{}", r.stderr);
}

#[test]
fn single_shard_has_no_index() {
    let (dir, _) = sample_dir();
    let r = run(
        dir.path(),
        &["reshard", "--json", "model.safetensors", "-o", "one"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = json(&r);
    assert_eq!(v["index"], Value::Null);
    assert_eq!(v["shards"][0]["file"], "model.safetensors");
    assert_eq!(v["max_shard_size"], 5_000_000_000u64);
}

// --------------------------------------------------------------------- load

#[test]
fn load_reports_the_io_backend() {
    let (dir, _) = sample_dir();
    let r = run(
        dir.path(),
        &[
            "load",
            "model.safetensors",
            "--io-backend",
            "threads",
            "--json",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = json(&r);
    assert_eq!(v["io_backend"], "threads");
    assert_eq!(v["io_backend_fallback"], Value::Null);
    assert_eq!(v["tensors"], 4);
    // io_uring where the machine allows it, else threads and the reason.
    let r = run(
        dir.path(),
        &[
            "load",
            "model.safetensors",
            "--io-backend",
            "io-uring",
            "--json",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = json(&r);
    match v["io_backend"].as_str() {
        Some("io_uring") => assert_eq!(v["io_backend_fallback"], Value::Null),
        Some("threads") => assert!(v["io_backend_fallback"].is_string(), "{v}"),
        other => panic!("io_backend {other:?}"),
    }
    let r = run(
        dir.path(),
        &["load", "model.safetensors", "--io-backend", "io-uring"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("loaded 4 tensors"), "{}", r.stdout);
    assert!(
        r.stdout.contains("via io_uring,") || r.stdout.contains("I/O backend fallback: "),
        "{}",
        r.stdout
    );
    let r = run(
        dir.path(),
        &["load", "model.safetensors", "--io-backend", "aio"],
    );
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("io-uring"), "{}", r.stderr);
}

#[test]
fn load_human_and_json() {
    let (dir, _) = sample_dir();
    let args = ["load", "model.safetensors", "--io-backend", "threads"];
    let human = run(dir.path(), &args);
    assert_eq!(human.code, 0, "{}", human.stderr);
    filtered(TIMINGS).bind(|| insta::assert_snapshot!("load_human", human.stdout));
    let json_run = run(dir.path(), &[&args[..], &["--json"]].concat());
    assert_eq!(json_run.code, 0, "{}", json_run.stderr);
    filtered(TIMINGS).bind(|| insta::assert_json_snapshot!("load_json", json(&json_run)));
}

/// `--device cuda:0 --verify` through the emulated CUDA runtime of the load
/// crate's tests (`$SAFEWEIGHTS_CUDART`, as a user would point at
/// libcudart): a clean load verifies; a copy that silently flips a byte is
/// caught (exit 1, the tensor named); no device is a clean error (exit 2).
#[test]
fn load_verify_on_cuda_through_the_emulated_runtime() {
    let (dir, _) = sample_dir();
    let lib = cudart_emu::build();
    let cuda = [("SAFEWEIGHTS_CUDART", lib.as_path())];
    let args = [
        "load",
        "model.safetensors",
        "--device",
        "cuda:0",
        "--threads",
        "1",
        "--verify",
    ];
    let r = run_env(dir.path(), &[&args[..], &["--json"]].concat(), &cuda);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = json(&r);
    assert_eq!(
        (v["device"].as_str(), v["tensors"].as_u64()),
        (Some("cuda:0"), Some(4))
    );
    assert_eq!(
        (v["verified"].as_bool(), &v["mismatch"]),
        (Some(true), &Value::Null)
    );
    let r = run_env(dir.path(), &args, &cuda);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("to cuda:0") && r.stdout.contains("verified: every tensor"));

    // One thread, one chunk: the file's only copy has its first byte flipped.
    let corrupt = Path::new("1");
    let bad = [cuda[0], ("CUDART_EMU_CORRUPT_COPY", corrupt)];
    let r = run_env(dir.path(), &[&args[..], &["--json"]].concat(), &bad);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let v = json(&r);
    assert_eq!(v["verified"], false);
    assert_eq!(v["mismatch"]["offset"], 0);
    assert!(v["mismatch"]["tensor"].is_string(), "{v}");
    let r = run_env(dir.path(), &args, &bad);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout.contains("MISMATCH: model.safetensors: tensor"),
        "{}",
        r.stdout
    );
    // Without --verify the same corruption goes unseen: that is what it is for.
    let r = run_env(dir.path(), &args[..6], &bad);
    assert_eq!(r.code, 0, "{}", r.stderr);

    let none = [cuda[0], ("CUDART_EMU_DEVICES", Path::new("0"))];
    let r = run_env(dir.path(), &args, &none);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("CUDA is unavailable"), "{}", r.stderr);
}

// --------------------------------------------------------------------- misc

#[test]
fn help_documents_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["--help"][..],
        &["validate", "--help"],
        &["diff", "--help"],
    ] {
        let r = run(dir.path(), args);
        assert_eq!(r.code, 0);
        assert!(r.stdout.contains("Exit codes:"), "{}", r.stdout);
    }
}

#[test]
fn closed_pipe_ends_quietly() {
    // Enough output to fill any pipe buffer: thousands of tensors.
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..4000).map(|i| format!("layers.{i}.weight")).collect();
    let data = [0u8; 4];
    let tensors: Vec<TensorRef> = names
        .iter()
        .map(|n| TensorRef {
            name: n,
            dtype: Dtype::F32,
            shape: &[1],
            data: &data,
        })
        .collect();
    write_file(dir.path().join("many.safetensors"), &tensors, None).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_safeweights"))
        .args(["inspect", "many.safetensors"])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("path: "));
    // The reader is dropped: the pipe is closed.
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

#[test]
fn demo_passes() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(dir.path(), &["demo", "--json", "--dir", "work"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let v = json(&r);
    assert_eq!(v["ok"], true);
    assert_eq!(v["kept"], true);
    let steps: Vec<&str> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "write", "inspect", "validate", "reshard", "verify", "slice", "merge", "corrupt",
            "scan", "convert", "load"
        ]
    );
    assert!(v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["status"] == "passed"));
    assert!(dir
        .path()
        .join("work/sharded/model.safetensors.index.json")
        .exists());
    // The human walk, in a temporary folder.
    let r = run(dir.path(), &["demo"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let n = steps.len();
    assert!(
        r.stdout.contains(&format!("[8/{n}] Corrupt copies")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(&format!("All {n} steps passed")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("the tensors overlap [overlap]"),
        "{}",
        r.stdout
    );
}

/// A protocol-2 pickle calling `os.system("echo pwned")`, written byte by byte.
fn malicious_pickle() -> Vec<u8> {
    let mut p = vec![0x80, 0x02];
    p.extend_from_slice(b"cposix\nsystem\n");
    p.extend_from_slice(&[b'X', 10, 0, 0, 0]);
    p.extend_from_slice(b"echo pwned");
    p.extend_from_slice(&[0x85, b'R', b'.']);
    p
}

#[test]
fn scan_exit_codes_follow_the_threshold() {
    let (dir, model) = sample_dir();
    let ok = run(dir.path(), &["scan", model.to_str().unwrap()]);
    assert_eq!(ok.code, 0, "{}{}", ok.stdout, ok.stderr);

    // Named like weights, but a pickle that runs a command: found by content.
    let evil = dir.path().join("weights.safetensors");
    std::fs::write(&evil, malicious_pickle()).unwrap();
    let bad = run(dir.path(), &["scan", "--json", evil.to_str().unwrap()]);
    assert_eq!(bad.code, 1, "{}{}", bad.stdout, bad.stderr);
    let report = json(&bad);
    let findings = report["findings"].as_array().unwrap();
    assert!(
        findings
            .iter()
            .any(|f| f["severity"] == "critical" && f["rule"] == "pickle.global.critical"),
        "{report:#}"
    );
    // Above the threshold only: --fail-on critical still fails, nothing else changes it.
    let crit = run(
        dir.path(),
        &["scan", "--fail-on", "critical", evil.to_str().unwrap()],
    );
    assert_eq!(crit.code, 1);

    let sarif = run(
        dir.path(),
        &["scan", "--format", "sarif", evil.to_str().unwrap()],
    );
    let sarif: Value = serde_json::from_str(&sarif.stdout).unwrap();
    assert_eq!(sarif["version"], "2.1.0");

    let missing = run(dir.path(), &["scan", "nope.bin"]);
    assert_eq!(missing.code, 2, "{}{}", missing.stdout, missing.stderr);
}

#[test]
fn scan_policy_safetensors_only_suggests_convert() {
    let (dir, model) = sample_dir();
    let npy = dir.path().join("arr.npy");
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
    let mut h = header.to_owned();
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    bytes.extend_from_slice(&(h.len() as u16).to_le_bytes());
    bytes.extend_from_slice(h.as_bytes());
    bytes.extend_from_slice(&[0; 8]);
    std::fs::write(&npy, bytes).unwrap();
    let plain = run(dir.path(), &["scan", npy.to_str().unwrap()]);
    assert_eq!(plain.code, 0, "{}", plain.stdout);
    let gate = run(
        dir.path(),
        &[
            "scan",
            "--policy",
            "safetensors-only",
            npy.to_str().unwrap(),
            model.to_str().unwrap(),
        ],
    );
    assert_eq!(gate.code, 1, "{}", gate.stdout);
    assert!(
        gate.stdout.contains("safeweights convert"),
        "{}",
        gate.stdout
    );
}

/// A folder with one safe file (`model.safetensors`) and one that runs a
/// command (`weights.bin`), scanned in each output format.
#[test]
fn scan_human_json_and_sarif() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    std::fs::create_dir(&models).unwrap();
    write_sample(&models.join("model.safetensors"), 0.0);
    std::fs::write(models.join("weights.bin"), malicious_pickle()).unwrap();

    let human = run(dir.path(), &["scan", "models"]);
    assert_eq!(human.code, 1, "{}", human.stderr);
    snapshot!("scan_human", human.stdout);

    let json_run = run(dir.path(), &["scan", "--json", "models"]);
    assert_eq!(json_run.code, 1, "{}", json_run.stderr);
    json_snapshot!("scan_json", json(&json_run));

    let sarif_run = run(dir.path(), &["scan", "--format", "sarif", "models"]);
    assert_eq!(sarif_run.code, 1, "{}", sarif_run.stderr);
    let mut sarif = json(&sarif_run);
    let version = &mut sarif["runs"][0]["tool"]["driver"]["version"];
    assert_eq!(*version, env!("CARGO_PKG_VERSION"));
    *version = "[VERSION]".into();
    json_snapshot!("scan_sarif", sarif);
}

fn pickle_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../safeweights-pickle/tests/fixtures")
        .join(name)
}

#[test]
fn convert_torch_checkpoint_then_validate_and_scan() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("nested.safetensors");
    let src = pickle_fixture("nested.pt");
    let before = std::fs::read(&src).unwrap();
    let conv = run(
        dir.path(),
        &[
            "--json",
            "convert",
            src.to_str().unwrap(),
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(conv.code, 0, "{}{}", conv.stdout, conv.stderr);
    let summary = json(&conv);
    assert_eq!(summary["verified"], true);
    assert!(summary["tensors"].as_u64().unwrap() > 0);
    assert_eq!(std::fs::read(&src).unwrap(), before, "source modified");
    let valid = run(dir.path(), &["validate", out.to_str().unwrap()]);
    assert_eq!(valid.code, 0, "{}", valid.stdout);
    let scan = run(dir.path(), &["scan", out.to_str().unwrap()]);
    assert_eq!(scan.code, 0, "{}", scan.stdout);
    // Refuses to overwrite without --overwrite.
    let again = run(
        dir.path(),
        &["convert", src.to_str().unwrap(), out.to_str().unwrap()],
    );
    assert_eq!(again.code, 2, "{}{}", again.stdout, again.stderr);
}

#[test]
fn convert_human_and_json() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(pickle_fixture("small.pt"), dir.path().join("small.pt")).unwrap();
    let human = run(dir.path(), &["convert", "small.pt", "small.safetensors"]);
    assert_eq!(human.code, 0, "{}", human.stderr);
    filtered(TIMINGS).bind(|| insta::assert_snapshot!("convert_human", human.stdout));
    let json_run = run(
        dir.path(),
        &["--json", "convert", "small.pt", "again.safetensors"],
    );
    assert_eq!(json_run.code, 0, "{}", json_run.stderr);
    filtered(TIMINGS).bind(|| insta::assert_json_snapshot!("convert_json", json(&json_run)));
}

#[test]
fn convert_refuses_code_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // A torch zip archive whose data.pkl calls os.system.
    let evil = dir.path().join("model.bin");
    let mut zip = safeweights_archive::ZipWriter::new(std::fs::File::create(&evil).unwrap());
    zip.entry("archive/data.pkl", &malicious_pickle()).unwrap();
    zip.entry("archive/version", b"3\n").unwrap();
    zip.finish().unwrap();
    let out = dir.path().join("model.safetensors");
    let conv = run(
        dir.path(),
        &["convert", evil.to_str().unwrap(), out.to_str().unwrap()],
    );
    assert_ne!(conv.code, 0);
    assert!(
        conv.stderr.contains("posix") || conv.stderr.contains("system"),
        "{}",
        conv.stderr
    );
    assert!(!out.exists());
    let script = run(
        dir.path(),
        &[
            "convert",
            pickle_fixture("torchscript.pt").to_str().unwrap(),
            out.to_str().unwrap(),
        ],
    );
    assert_ne!(script.code, 0);
    assert!(
        script.stderr.to_lowercase().contains("torchscript"),
        "{}",
        script.stderr
    );
    assert!(!out.exists());
}
