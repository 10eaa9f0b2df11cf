//! Shared helpers for the benchmarks: timing, machine description, the peer
//! Python interpreter.
#![allow(clippy::disallowed_methods)] // Tests, examples and benches use std::fs directly; the rule is for library code.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// Runs `f` `runs` times and returns the median duration.
pub fn median<F: FnMut()>(runs: usize, mut f: F) -> Duration {
    let mut times: Vec<Duration> = (0..runs.max(1))
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

/// One line describing the machine: CPU model, cores, memory, OS.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(str::trim)
        .unwrap_or("unknown CPU")
        .to_owned();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kb: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    format!(
        "{model}, {cores} cores, {:.1} GiB RAM, {}",
        mem_kb as f64 / (1024.0 * 1024.0),
        std::env::consts::OS
    )
}

/// The Python with the peers installed: `$SAFEWEIGHTS_PYTHON`, `.venv/bin/python`, or `python3`.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("SAFEWEIGHTS_PYTHON") {
        return p.into();
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    if venv.exists() {
        return venv;
    }
    "python3".into()
}

/// Runs a peer script and parses the JSON object it prints last.
pub fn run_peer(script: &str, args: &[String]) -> anyhow::Result<serde_json::Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("peers")
        .join(script);
    let out = Command::new(python()).arg(path).args(args).output()?;
    if !out.status.success() {
        anyhow::bail!(
            "peer {script} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or("{}");
    Ok(serde_json::from_str(last)?)
}

/// Formats bytes per duration as GB/s (10^9).
pub fn gbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e9
}

/// Prints one comparison row: ours, the peer's, and the ratio (>1: we are faster).
pub fn row(what: &str, ours: Duration, peer: Duration, peer_name: &str) {
    println!(
        "{what:<44} safeweights {:>10.3} ms   {peer_name} {:>10.3} ms   ratio {:>6.2}x",
        ours.as_secs_f64() * 1e3,
        peer.as_secs_f64() * 1e3,
        peer.as_secs_f64() / ours.as_secs_f64()
    );
}
