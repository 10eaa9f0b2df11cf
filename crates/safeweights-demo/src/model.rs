//! The sample model: a small transformer-like checkpoint with deterministic
//! contents, in the dtypes real checkpoints use.

use std::path::{Path, PathBuf};

use safeweights::{decode, Dtype, Metadata, StreamingWriter, TensorSpec};

use crate::{DemoError, Result};

/// How a tensor's values are made.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Fill {
    /// Normally distributed with this standard deviation (mean 0).
    Normal(f32),
    /// All ones (norm weights).
    Ones,
    /// One constant (a scale).
    Const(f32),
    /// Rotary inverse frequencies: `1 / 10000^(i / n)`.
    InvFreq,
    /// `0, 1, 2, ...` (position ids).
    Arange,
}

/// Seed of the sample's generator: the same bytes on every run.
pub const SEED: u64 = 0x5afe_3e16_4750;

/// Chunk size in which the sample's tensors are handed to the writer.
pub const WRITE_CHUNK: usize = 64 << 10;

/// The sample model: embeddings, two decoder layers (attention in BF16, MLP
/// in F16 with an FP8 E4M3 down projection and its F32 scale, as FP8
/// checkpoints store them), norms and rotary frequencies in F32, position
/// ids in I64 and an F32 head. In declaration order.
pub fn sample_specs() -> Vec<(TensorSpec, Fill)> {
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

/// SplitMix64: a small deterministic generator.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f32 {
        let (u, v) = (self.uniform(), self.uniform());
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
    }
}

/// Nearest-value encoder for FP8 E4M3 (which `half` does not cover), built
/// from the core's decode table: every finite pattern, sorted by value.
#[derive(Debug, Clone)]
pub struct F8E4M3Encoder {
    /// (value, bits) of every finite non-negative pattern, sorted by value.
    table: Vec<(f64, u8)>,
}

impl Default for F8E4M3Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl F8E4M3Encoder {
    /// Builds the table.
    pub fn new() -> Self {
        let raw: Vec<u8> = (0..0x80).collect();
        let values = decode::decode(Dtype::F8_E4M3, &raw).unwrap_or_default();
        let mut table: Vec<(f64, u8)> = (0u8..)
            .zip(values)
            .filter(|(_, v)| v.is_finite())
            .map(|(bits, v)| (v, bits))
            .collect();
        table.sort_by(|a, b| a.0.total_cmp(&b.0));
        F8E4M3Encoder { table }
    }

    /// The nearest pattern to `x` (ties to the smaller magnitude), saturating
    /// at ±448; -0 encodes as +0.
    pub fn encode(&self, x: f32) -> u8 {
        let mag = f64::from(x).abs();
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
            pick.1 | 0x80
        } else {
            pick.1
        }
    }
}

/// Little-endian bytes of `values` in `dtype`: F32 as is, BF16 and F16
/// rounded to nearest even (`half`), FP8 E4M3 to nearest, I64 truncated;
/// any other dtype zeros.
pub fn encode(dtype: Dtype, values: &[f32], f8: &F8E4M3Encoder) -> Vec<u8> {
    match dtype {
        Dtype::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        Dtype::BF16 => values
            .iter()
            .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
            .collect(),
        Dtype::F16 => values
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
            .collect(),
        Dtype::F8_E4M3 => values.iter().map(|&v| f8.encode(v)).collect(),
        Dtype::I64 => values
            .iter()
            .flat_map(|&v| (v as i64).to_le_bytes())
            .collect(),
        other => vec![0; other.byte_size(values.len()).unwrap_or(0)],
    }
}

/// The values of one tensor, drawing from `rng` for [`Fill::Normal`].
pub fn values(spec: &TensorSpec, fill: Fill, rng: &mut Rng) -> Vec<f32> {
    let n: usize = spec.shape.iter().product();
    (0..n)
        .map(|i| match fill {
            Fill::Normal(std) => rng.normal() * std,
            Fill::Ones => 1.0,
            Fill::Const(c) => c,
            Fill::InvFreq => 1.0 / 10000f32.powf(2.0 * i as f32 / (2.0 * n as f32)),
            Fill::Arange => i as f32,
        })
        .collect()
}

/// What [`write_sample`] wrote.
#[derive(Debug, Clone)]
pub struct SampleFile {
    /// The file.
    pub path: PathBuf,
    /// Every tensor declared, in declaration order.
    pub specs: Vec<TensorSpec>,
    /// Length of the header (prefix, JSON and padding), planned before any data.
    pub header_bytes: usize,
    /// Chunks handed to the writer.
    pub chunks: usize,
    /// Size of the file.
    pub file_bytes: u64,
    /// Elements of every tensor.
    pub params: u64,
}

/// Writes the sample model to `path` (creating its folder) with the
/// streaming writer: every tensor declared up front, then the bytes in
/// declaration order in chunks of [`WRITE_CHUNK`]; metadata `{"format": "pt"}`.
///
/// # Errors
/// The folder or the file cannot be written.
pub fn write_sample(path: &Path) -> Result<SampleFile> {
    let model = sample_specs();
    let f8 = F8E4M3Encoder::new();
    if let Some(parent) = path.parent() {
        fs_err::create_dir_all(parent).map_err(|e| DemoError::io(parent, e))?;
    }
    let metadata: Metadata = [("format".to_owned(), "pt".to_owned())].into();
    let specs: Vec<TensorSpec> = model.iter().map(|(s, _)| s.clone()).collect();
    let mut writer = StreamingWriter::create(path, specs.clone(), Some(&metadata))?;
    let header_bytes = writer.layout().header_bytes().len();
    let mut rng = Rng::new(SEED);
    let mut chunks = 0usize;
    // Tensors arrive in declaration order, in chunks: the writer places each
    // at its planned offset (the file order is by dtype, then name).
    for (spec, fill) in &model {
        let bytes = encode(spec.dtype, &values(spec, *fill, &mut rng), &f8);
        for chunk in bytes.chunks(WRITE_CHUNK) {
            writer.write(&spec.name, chunk)?;
            chunks += 1;
        }
    }
    writer.finish()?;
    let file_bytes = fs_err::metadata(path)
        .map_err(|e| DemoError::io(path, e))?
        .len();
    let params = specs
        .iter()
        .map(|s| s.shape.iter().product::<usize>() as u64)
        .sum();
    Ok(SampleFile {
        path: path.to_owned(),
        specs,
        header_bytes,
        chunks,
        file_bytes,
        params,
    })
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests build fixtures with std::fs.
mod tests {
    use super::*;

    #[test]
    fn f8_encoder_round_trips_exact_values() {
        let f8 = F8E4M3Encoder::new();
        for (x, bits) in [
            (1.0f32, 0x38u8),
            (-448.0, 0xfe),
            (1e6, 0x7e),
            (0.0, 0x00),
            (-1.0, 0xb8),
        ] {
            assert_eq!(f8.encode(x), bits, "{x}");
        }
    }

    #[test]
    fn f16_and_bf16_encode_exact_values() {
        let f8 = F8E4M3Encoder::new();
        let f16 = encode(Dtype::F16, &[1.0, -2.0, 65504.0], &f8);
        assert_eq!(f16, [0x00, 0x3c, 0x00, 0xc0, 0xff, 0x7b]);
        let bf16 = encode(Dtype::BF16, &[1.0, -2.0], &f8);
        assert_eq!(bf16, [0x80, 0x3f, 0x00, 0xc0]);
    }

    #[test]
    fn encoders_agree_with_the_decoder() {
        // Every value the decoder produces encodes back to its own bits.
        let f8 = F8E4M3Encoder::new();
        for dtype in [Dtype::F16, Dtype::BF16] {
            let raw: Vec<u8> = (0..=u16::MAX).flat_map(u16::to_le_bytes).collect();
            let decoded = decode::decode(dtype, &raw).unwrap();
            for (i, v) in decoded.iter().enumerate() {
                if v.is_finite() {
                    let bits = encode(dtype, &[*v as f32], &f8);
                    assert_eq!(bits, raw[2 * i..2 * i + 2], "{dtype} {v}");
                }
            }
        }
        let raw: Vec<u8> = (0..=u8::MAX).collect();
        let decoded = decode::decode(Dtype::F8_E4M3, &raw).unwrap();
        for (bits, v) in raw.iter().zip(&decoded) {
            // -0 encodes as +0.
            if v.is_finite() && *bits != 0x80 {
                assert_eq!(f8.encode(*v as f32), *bits, "{v}");
            }
        }
    }

    #[test]
    fn deterministic() {
        let mut a = Rng::new(SEED);
        let mut b = Rng::new(SEED);
        assert!((0..100).all(|_| a.next_u64() == b.next_u64()));
        let (spec, fill) = &sample_specs()[0];
        let v = values(spec, *fill, &mut Rng::new(SEED));
        let std = (v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
        assert!((std - 0.02).abs() < 0.001, "{std}");
    }
}
