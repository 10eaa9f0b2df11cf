//! The format core against the reference `safetensors` 0.8 Python package, in
//! the same run: open + list a 10,000-tensor checkpoint; write and read a
//! multi-GB file.
//!
//! `cargo run --release -p safeweights-bench --bin core -- [--dir DIR] [--gb N]`
#![allow(clippy::disallowed_methods)] // Tests, examples and benches use std::fs directly; the rule is for library code.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use safeweights::{write_file, Dtype, SafeTensorsFile, TensorRef};
use safeweights_bench::{gbps, machine, median, row, run_peer};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut dir = std::env::temp_dir().join("safeweights-bench");
    let mut gb = 2.0f64;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--dir" => dir = PathBuf::from(args.next().expect("--dir DIR")),
            "--gb" => gb = args.next().expect("--gb N").parse()?,
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    std::fs::create_dir_all(&dir)?;
    println!("machine: {}", machine());
    println!("folder:  {}\n", dir.display());

    // 1. Open + list a 10,000-tensor checkpoint.
    let many = dir.join("many.safetensors");
    let names: Vec<String> = (0..10_000)
        .map(|i| format!("model.layers.{}.experts.{}.weight", i / 100, i % 100))
        .collect();
    let data = vec![7u8; 256 * 2];
    let tensors: Vec<TensorRef<'_>> = names
        .iter()
        .map(|n| TensorRef {
            name: n,
            dtype: Dtype::BF16,
            shape: &[16, 16],
            data: &data,
        })
        .collect();
    write_file(&many, &tensors, None)?;
    let ours = median(21, || {
        let f = SafeTensorsFile::open(&many).unwrap();
        assert_eq!(f.names().len(), 10_000);
    });
    let peer = run_peer(
        "reference_core.py",
        &["open".into(), many.display().to_string()],
    )?;
    let theirs = Duration::from_secs_f64(peer["seconds"].as_f64().unwrap_or(f64::NAN));
    row("open + list 10,000 tensors", ours, theirs, "reference");

    // 2. Write a multi-GB file from memory (both fsync before reporting).
    let total = (gb * 1e9) as usize;
    let chunk = 64 << 20;
    let count = total / chunk;
    let payload: Vec<u8> = (0..chunk).map(|i| (i % 251) as u8).collect();
    let big_names: Vec<String> = (0..count).map(|i| format!("w.{i:04}")).collect();
    let big_shape = [chunk / 4];
    let big: Vec<TensorRef<'_>> = big_names
        .iter()
        .map(|n| TensorRef {
            name: n,
            dtype: Dtype::F32,
            shape: &big_shape,
            data: &payload,
        })
        .collect();
    let bytes = (count * chunk) as u64;
    let big_path = dir.join("big.safetensors");
    let ref_path = dir.join("big_ref.safetensors");
    // Alternate the two writers (ours, theirs, ours, theirs) and keep each
    // side's best, so background writeback favours neither.
    let mut ours_write = Duration::MAX;
    let mut theirs_write = Duration::MAX;
    for _ in 0..2 {
        let _ = std::fs::remove_file(&big_path);
        let start = Instant::now();
        write_file(&big_path, &big, None)?;
        ours_write = ours_write.min(start.elapsed());
        let _ = std::fs::remove_file(&ref_path);
        let peer = run_peer(
            "reference_core.py",
            &[
                "write".into(),
                ref_path.display().to_string(),
                count.to_string(),
                chunk.to_string(),
            ],
        )?;
        let seconds = peer["seconds"].as_f64().unwrap_or(f64::NAN);
        theirs_write = theirs_write.min(Duration::from_secs_f64(seconds));
    }
    drop(big);
    row(
        &format!("write {:.1} GB (+fsync, best of 2)", bytes as f64 / 1e9),
        ours_write,
        theirs_write,
        "reference",
    );
    println!(
        "{:<44} safeweights {:>7.2} GB/s   reference {:>7.2} GB/s",
        "",
        gbps(bytes, ours_write),
        gbps(bytes, theirs_write)
    );

    // 3. Read it back into memory, warm page cache (every byte copied out).
    let ours_read = median(3, || {
        let f = SafeTensorsFile::open(&big_path).unwrap();
        let mut sum = 0usize;
        for name in f.names() {
            let owned = f.tensor(name).unwrap().data().to_vec();
            sum += owned.len();
        }
        assert_eq!(sum as u64, bytes);
    });
    let peer = run_peer(
        "reference_core.py",
        &["read".into(), big_path.display().to_string()],
    )?;
    let theirs_read = Duration::from_secs_f64(peer["seconds"].as_f64().unwrap_or(f64::NAN));
    row(
        &format!("read {:.1} GB into memory (warm)", bytes as f64 / 1e9),
        ours_read,
        theirs_read,
        "reference",
    );
    println!(
        "{:<44} safeweights {:>7.2} GB/s   reference {:>7.2} GB/s",
        "",
        gbps(bytes, ours_read),
        gbps(bytes, theirs_read)
    );

    // The same with positioned reads straight into each buffer (no page faults
    // on a mapping).
    let ours_pread = median(3, || {
        let f = safeweights::OpenOptions::new()
            .pread()
            .open(&big_path)
            .unwrap();
        let mut sum = 0usize;
        for name in f.names() {
            let mut buf = vec![0u8; f.info(name).unwrap().byte_len()];
            f.read_tensor_into(name, &mut buf).unwrap();
            sum += buf.len();
        }
        assert_eq!(sum as u64, bytes);
    });
    row(
        &format!(
            "read {:.1} GB into memory (pread backend)",
            bytes as f64 / 1e9
        ),
        ours_pread,
        theirs_read,
        "reference",
    );

    // Context: this machine's single-thread memcpy bandwidth.
    let mut dst = vec![0u8; payload.len()];
    let copy = median(5, || dst.copy_from_slice(&payload));
    println!(
        "\nmemcpy (1 thread): {:.2} GB/s",
        gbps(payload.len() as u64, copy)
    );
    for p in ["many.safetensors", "big.safetensors", "big_ref.safetensors"] {
        let _ = std::fs::remove_file(dir.join(p));
    }
    Ok(())
}
