//! Fixtures shared by this crate's integration tests.

use std::path::Path;

use safeweights::{Dtype, TensorRef};

/// `n` pseudo-random bytes (xorshift) from `seed`.
pub fn bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Writes `(name, dtype, shape)` tensors with pseudo-random bytes.
pub fn write(path: &Path, specs: &[(String, Dtype, Vec<usize>)]) {
    let datas: Vec<Vec<u8>> = specs
        .iter()
        .enumerate()
        .map(|(i, (_, d, s))| bytes(i as u64 + 1, d.byte_size(s.iter().product()).unwrap()))
        .collect();
    let refs: Vec<TensorRef<'_>> = specs
        .iter()
        .zip(&datas)
        .map(|((n, d, s), data)| TensorRef {
            name: n,
            dtype: *d,
            shape: s,
            data,
        })
        .collect();
    safeweights::write_file(path, &refs, None).unwrap();
}
