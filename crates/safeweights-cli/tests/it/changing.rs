//! Inputs that are not plain files, or that change while a command reads
//! them: an error naming the file, exit 2, never a hang or a signal.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::write_sample;

/// Runs the binary with a deadline; returns (exit code, stdout + stderr). A command
/// killed by a signal, or still running after 30 s, fails the test.
fn run_bounded(dir: &Path, args: &[&str]) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_safeweights"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run safeweights");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("safeweights {args:?} still running after 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // What the command said, on either stream (validate reports on stdout).
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut stderr).unwrap();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    let code = status
        .code()
        .unwrap_or_else(|| panic!("safeweights {args:?} was killed by a signal: {status:?}"));
    (code, stderr)
}

#[cfg(unix)]
#[test]
fn a_fifo_is_refused_by_every_reading_command() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe.safetensors");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    write_sample(&dir.path().join("ok.safetensors"), 0.0);
    for args in [
        &["inspect", "pipe.safetensors"][..],
        &["validate", "pipe.safetensors"],
        &["diff", "pipe.safetensors", "ok.safetensors"],
        &["load", "pipe.safetensors"],
        &["scan", "pipe.safetensors"],
        &["convert", "pipe.safetensors", "out.npz"],
        &["merge", "pipe.safetensors", "-o", "merged.safetensors"],
        &["reshard", "pipe.safetensors", "-o", "shards"],
    ] {
        let (code, stderr) = run_bounded(dir.path(), args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains("pipe.safetensors"), "{args:?}: {stderr}");
    }
}

/// A file of `n` F32 tensors of 256 KiB each.
fn write_big(path: &Path, n: usize) {
    let data = vec![0x3fu8; 256 * 1024];
    let names: Vec<String> = (0..n).map(|i| format!("t{i:03}")).collect();
    let refs: Vec<safeweights::TensorRef> = names
        .iter()
        .map(|name| safeweights::TensorRef {
            name,
            dtype: safeweights::Dtype::F32,
            shape: &[64 * 1024],
            data: &data,
        })
        .collect();
    safeweights::write_file(path, &refs, None).unwrap();
}

#[test]
fn truncation_under_diff_and_scan_is_an_error_not_a_signal() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.safetensors");
    let b = dir.path().join("b.safetensors");
    write_big(&b, 64);
    for (round, args) in [
        &["diff", "a.safetensors", "b.safetensors"][..],
        &["scan", "a.safetensors"],
        &["validate", "a.safetensors"],
    ]
    .iter()
    .cycle()
    .take(12)
    .enumerate()
    {
        write_big(&a, 64);
        let p = a.clone();
        let cutter = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(5 * round as u64));
            let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
            f.set_len(4096).unwrap();
        });
        let (code, stderr) = run_bounded(dir.path(), args);
        cutter.join().unwrap();
        // Finished before the cut (0, or 1 for a difference or a truncated
        // file judged invalid), or saw it: then the message names the file.
        assert!(code <= 2, "{args:?}: {code} {stderr}");
        if code == 2 {
            assert!(stderr.contains("a.safetensors"), "{args:?}: {stderr}");
        }
    }
}

/// Commands that need only the header read only the header: a sparse file
/// whose one tensor declares 120 GB is inspected and validated under a
/// 2 GB address-space limit (a whole-file mapping needs 120 GB of it).
#[cfg(unix)]
#[test]
fn header_commands_read_only_the_header_of_a_huge_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.safetensors");
    let bytes: u64 = 120_000_000_000;
    let header =
        format!("{{\"w\":{{\"dtype\":\"U8\",\"shape\":[{bytes}],\"data_offsets\":[0,{bytes}]}}}}");
    let mut image = (header.len() as u64).to_le_bytes().to_vec();
    image.extend_from_slice(header.as_bytes());
    std::fs::write(&path, &image).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(image.len() as u64 + bytes)
        .unwrap();
    let bin = env!("CARGO_BIN_EXE_safeweights");
    for cmd in ["inspect", "validate"] {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "ulimit -v 2000000 && exec \"{bin}\" {cmd} huge.safetensors"
            ))
            .current_dir(dir.path())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{cmd}: {text}");
        assert!(!text.contains("allocate"), "{cmd}: {text}");
    }
}
