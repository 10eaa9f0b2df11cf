//! `cargo run --release --example convert -- SRC DST [--keep-shared] [--metadata-leaves]
//! [--max-shard-size SIZE] [--overwrite]`: runs [`safeweights_convert::convert`]
//! and prints the summary as JSON (used by `bench/convert.py`).
#![allow(clippy::disallowed_methods)] // Tests, examples and benches use std::fs directly; the rule is for library code.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use safeweights::Diagnostic;
use safeweights_convert::{convert, ConvertOptions};

fn main() {
    let mut args = std::env::args().skip(1);
    let mut paths = Vec::new();
    let mut opts = ConvertOptions::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--keep-shared" => opts = opts.keep_shared(true),
            "--metadata-leaves" => opts = opts.metadata_leaves(true),
            "--overwrite" => opts = opts.overwrite(true),
            "--max-shard-size" => {
                let v = args.next().unwrap_or_default();
                match safeweights::sharded::parse_size(&v) {
                    Some(n) => opts = opts.max_shard_size(Some(n)),
                    None => {
                        eprintln!("bad size {v:?}");
                        std::process::exit(2);
                    }
                }
            }
            _ => paths.push(a),
        }
    }
    let [src, dst] = paths.as_slice() else {
        eprintln!("usage: convert SRC DST [--keep-shared] [--metadata-leaves] [--max-shard-size SIZE] [--overwrite]");
        std::process::exit(2);
    };
    match convert(src, dst, &opts) {
        Ok(s) => {
            use std::io::Write;
            let _ = writeln!(
                std::io::stdout(),
                "{}",
                serde_json::to_string_pretty(&s).unwrap_or_default()
            );
        }
        Err(e) => {
            eprintln!("error: {}", e.message());
            std::process::exit(1);
        }
    }
}
