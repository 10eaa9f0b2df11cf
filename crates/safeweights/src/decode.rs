//! Decoding tensor elements to `f64`, for every dtype, driven by one table.
//!
//! Every safetensors dtype has a row in [`CODECS`] saying how its bits become
//! numbers. Floats narrower than 32 bits are all described by one
//! [`MiniFloat`] (sign bit, exponent bits, mantissa bits, bias, and how the
//! special values are encoded), decoded exactly: every value of every format
//! here is representable in `f64`, so decoding never rounds — except for
//! `I64`/`U64` beyond 2⁵³, which round to the nearest `f64`.
//!
//! | dtype | layout | specials |
//! |---|---|---|
//! | `F16` | IEEE binary16, E5M10, bias 15 | ±inf, NaN |
//! | `BF16` | E8M7, bias 127 | ±inf, NaN |
//! | `F32`, `F64` | IEEE | ±inf, NaN |
//! | `F8_E5M2` | E5M2, bias 15 | ±inf, NaN (IEEE-like) |
//! | `F8_E4M3` | E4M3, bias 7 ("fn") | no inf; NaN only `0x7f`/`0xff`; max 448 |
//! | `F8_E4M3FNUZ` | E4M3, bias 8 | no inf, no −0; NaN only `0x80`; max 240 |
//! | `F8_E5M2FNUZ` | E5M2, bias 16 | no inf, no −0; NaN only `0x80`; max 57344 |
//! | `F8_E8M0` | exponent only: 2^(e−127) | NaN only `0xff`; no sign, no zero |
//! | `F4` | E2M1, bias 1 | none (all finite, max 6) |
//! | `F6_E2M3` | E2M3, bias 1 | none (all finite, max 7.5) |
//! | `F6_E3M2` | E3M2, bias 3 | none (all finite, max 28) |
//! | `BOOL` | one byte | 0 → 0.0, anything else → 1.0 |
//! | integers | little-endian two's complement / unsigned | — |
//! | `C64` | two little-endian F32: real, imaginary | each element yields **two** values |
//!
//! ## Packing of sub-byte dtypes
//! * `F4`: two elements per byte, element `2i` in the **low** nibble and
//!   element `2i + 1` in the high nibble, as PyTorch's `float4_e2m1fn_x2`
//!   (and the OCP MX / NVFP4 kernels) pack them.
//! * `F6_E2M3`, `F6_E3M2`: four elements per three bytes. *Assumption* (the
//!   safetensors format does not specify it and PyTorch has no 6-bit dtype):
//!   the same little-endian, least-significant-bits-first order as `F4`. The
//!   three bytes form the 24-bit little-endian integer
//!   `w = b0 | b1 << 8 | b2 << 16`, and element `4i + k` is
//!   `(w >> 6k) & 0x3f`. So element 0 is the low six bits of `b0`.
//!
//! ```
//! use safeweights::{decode, Dtype};
//!
//! // 1.0 and -2.0 in bfloat16.
//! let values = decode::decode(Dtype::BF16, &[0x80, 0x3f, 0x00, 0xc0])?;
//! assert_eq!(values, [1.0, -2.0]);
//! // F8_E4M3 (fn): 0x7e is the largest finite value, 0x7f is NaN.
//! assert_eq!(decode::decode_byte(Dtype::F8_E4M3, 0x7e), Some(448.0));
//! assert!(decode::decode_byte(Dtype::F8_E4M3, 0x7f).unwrap().is_nan());
//! # Ok::<(), decode::DecodeError>(())
//! ```

use crate::Dtype;

/// How the special values of a small float format are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Specials {
    /// IEEE 754: the all-ones exponent is ±inf (zero mantissa) or NaN.
    Ieee,
    /// The "fn" convention (finite): no infinities; all-ones exponent and
    /// mantissa is NaN, every other all-ones-exponent pattern is a normal number.
    FiniteAllOnesNan,
    /// The "fnuz" convention (finite, unsigned zero): no infinities, no
    /// negative zero; the sign bit with everything else zero (`0x80`) is NaN.
    FiniteNegZeroNan,
    /// No special values at all: every pattern is a finite number.
    AllFinite,
}

/// A binary floating-point format of at most 32 bits: sign, exponent,
/// mantissa, bias and special values. Subnormals (zero exponent field) are
/// `0.m × 2^(1 − bias)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MiniFloat {
    /// Exponent bits.
    pub exponent_bits: u32,
    /// Mantissa (fraction) bits.
    pub mantissa_bits: u32,
    /// Exponent bias.
    pub bias: i32,
    /// How specials are encoded.
    pub specials: Specials,
}

impl MiniFloat {
    /// Total bits (sign + exponent + mantissa).
    pub const fn bits(&self) -> u32 {
        1 + self.exponent_bits + self.mantissa_bits
    }

    /// Decodes the low [`bits`](Self::bits) bits of `raw` exactly.
    pub fn decode(&self, raw: u32) -> f64 {
        let m_bits = self.mantissa_bits;
        let e_bits = self.exponent_bits;
        let mantissa = raw & ((1 << m_bits) - 1);
        let exponent = (raw >> m_bits) & ((1 << e_bits) - 1);
        let negative = (raw >> (m_bits + e_bits)) & 1 == 1;
        let e_max = (1u32 << e_bits) - 1;
        match self.specials {
            Specials::Ieee if exponent == e_max => {
                return match (mantissa, negative) {
                    (0, false) => f64::INFINITY,
                    (0, true) => f64::NEG_INFINITY,
                    _ => f64::NAN,
                };
            }
            Specials::FiniteAllOnesNan if exponent == e_max && mantissa == (1 << m_bits) - 1 => {
                return f64::NAN;
            }
            Specials::FiniteNegZeroNan if negative && exponent == 0 && mantissa == 0 => {
                return f64::NAN;
            }
            _ => {}
        }
        // value = significand × 2^(scale), significand an integer < 2^(m+1).
        let (significand, scale) = if exponent == 0 {
            (mantissa, 1 - self.bias - m_bits as i32)
        } else {
            (
                mantissa | (1 << m_bits),
                exponent as i32 - self.bias - m_bits as i32,
            )
        };
        let magnitude = significand as f64 * pow2(scale);
        if negative {
            -magnitude
        } else {
            magnitude
        }
    }
}

/// 2^k exactly, for the exponent range of the formats here.
fn pow2(k: i32) -> f64 {
    debug_assert!((-1022..=1023).contains(&k));
    f64::from_bits(((k + 1023) as u64) << 52)
}

/// How a dtype's bytes become numbers: one row per dtype in [`CODECS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Codec {
    /// One byte, zero is false.
    Bool,
    /// A little-endian integer of `bytes` bytes.
    Int {
        /// Width in bytes.
        bytes: usize,
        /// Two's complement when true.
        signed: bool,
    },
    /// A float format of 4, 6, 8 or 16 bits.
    Float(MiniFloat),
    /// IEEE single precision.
    F32,
    /// IEEE double precision.
    F64,
    /// Exponent only (E8M0): 2^(e − 127), `0xff` is NaN.
    E8M0,
    /// Two F32 (real, imaginary).
    Complex64,
}

const fn mini(exponent_bits: u32, mantissa_bits: u32, bias: i32, specials: Specials) -> Codec {
    Codec::Float(MiniFloat {
        exponent_bits,
        mantissa_bits,
        bias,
        specials,
    })
}

/// The codec of every dtype, in the order of [`crate::DTYPES`].
pub const CODECS: [(Dtype, Codec); 22] = {
    use Dtype::*;
    use Specials::*;
    [
        (BOOL, Codec::Bool),
        (F4, mini(2, 1, 1, AllFinite)),
        (F6_E2M3, mini(2, 3, 1, AllFinite)),
        (F6_E3M2, mini(3, 2, 3, AllFinite)),
        (
            U8,
            Codec::Int {
                bytes: 1,
                signed: false,
            },
        ),
        (
            I8,
            Codec::Int {
                bytes: 1,
                signed: true,
            },
        ),
        (F8_E5M2, mini(5, 2, 15, Ieee)),
        (F8_E4M3, mini(4, 3, 7, FiniteAllOnesNan)),
        (F8_E8M0, Codec::E8M0),
        (F8_E4M3FNUZ, mini(4, 3, 8, FiniteNegZeroNan)),
        (F8_E5M2FNUZ, mini(5, 2, 16, FiniteNegZeroNan)),
        (
            I16,
            Codec::Int {
                bytes: 2,
                signed: true,
            },
        ),
        (
            U16,
            Codec::Int {
                bytes: 2,
                signed: false,
            },
        ),
        (F16, mini(5, 10, 15, Ieee)),
        (BF16, mini(8, 7, 127, Ieee)),
        (
            I32,
            Codec::Int {
                bytes: 4,
                signed: true,
            },
        ),
        (
            U32,
            Codec::Int {
                bytes: 4,
                signed: false,
            },
        ),
        (F32, Codec::F32),
        (C64, Codec::Complex64),
        (F64, Codec::F64),
        (
            I64,
            Codec::Int {
                bytes: 8,
                signed: true,
            },
        ),
        (
            U64,
            Codec::Int {
                bytes: 8,
                signed: false,
            },
        ),
    ]
};

/// The codec of `dtype`.
pub fn codec(dtype: Dtype) -> Codec {
    // CODECS is in declaration order (checked by a test), like DTYPES.
    CODECS[dtype as usize].1
}

/// How many `f64` values each element decodes to: 2 for `C64`, 1 otherwise.
pub fn values_per_element(dtype: Dtype) -> usize {
    match codec(dtype) {
        Codec::Complex64 => 2,
        _ => 1,
    }
}

/// The smallest number of bytes that holds a whole number of elements:
/// 1 for F4 (two elements), 3 for the F6 formats (four elements), else the
/// element size. Chunks passed to [`decode_into`] must be multiples of it.
pub fn group_bytes(dtype: Dtype) -> usize {
    match dtype.bits() {
        4 => 1,
        6 => 3,
        bits => bits / 8,
    }
}

/// Bytes that are not a whole number of elements.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{len} bytes are not a whole number of {dtype} elements (groups of {group} bytes)")]
pub struct DecodeError {
    /// The dtype.
    pub dtype: Dtype,
    /// Bytes given.
    pub len: usize,
    /// The byte group the length must be a multiple of.
    pub group: usize,
}

impl crate::Diagnostic for DecodeError {
    fn kind(&self) -> &'static str {
        "decode_length"
    }

    fn class(&self) -> crate::ErrorClass {
        crate::ErrorClass::Usage
    }

    fn details(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut map = serde_json::Map::new();
        map.insert("dtype".into(), self.dtype.name().into());
        map.insert("len".into(), self.len.into());
        map.insert("group".into(), self.group.into());
        map
    }
}

/// Decodes one byte-sized element (the 8-bit dtypes: `BOOL`, `U8`, `I8` and
/// every `F8_*`); `None` for wider or packed dtypes.
pub fn decode_byte(dtype: Dtype, byte: u8) -> Option<f64> {
    if dtype.bits() != 8 {
        return None;
    }
    let mut out = Vec::with_capacity(1);
    decode_into(dtype, &[byte], &mut out).ok()?;
    out.first().copied()
}

/// Decodes little-endian tensor bytes to `f64` values in element order
/// (two values per element for `C64`).
pub fn decode(dtype: Dtype, bytes: &[u8]) -> Result<Vec<f64>, DecodeError> {
    let mut out = Vec::new();
    decode_into(dtype, bytes, &mut out)?;
    Ok(out)
}

/// Decodes `bytes` and appends the values to `out`. `bytes` must be a
/// multiple of [`group_bytes`]; nothing is appended otherwise.
pub fn decode_into(dtype: Dtype, bytes: &[u8], out: &mut Vec<f64>) -> Result<(), DecodeError> {
    let group = group_bytes(dtype);
    if bytes.len() % group != 0 {
        return Err(DecodeError {
            dtype,
            len: bytes.len(),
            group,
        });
    }
    let count = bytes.len() * 8 / dtype.bits() * values_per_element(dtype);
    out.reserve(count);
    match codec(dtype) {
        Codec::Bool => out.extend(bytes.iter().map(|&b| if b == 0 { 0.0 } else { 1.0 })),
        Codec::Int { bytes: 1, signed } => {
            out.extend(
                bytes
                    .iter()
                    .map(|&b| if signed { b as i8 as f64 } else { b as f64 }),
            )
        }
        Codec::Int { bytes: 2, signed } => out.extend(bytes.chunks_exact(2).map(|c| {
            let raw = [c[0], c[1]];
            if signed {
                i16::from_le_bytes(raw) as f64
            } else {
                u16::from_le_bytes(raw) as f64
            }
        })),
        Codec::Int { bytes: 4, signed } => out.extend(bytes.chunks_exact(4).map(|c| {
            let raw = [c[0], c[1], c[2], c[3]];
            if signed {
                i32::from_le_bytes(raw) as f64
            } else {
                u32::from_le_bytes(raw) as f64
            }
        })),
        Codec::Int { signed, .. } => out.extend(bytes.chunks_exact(8).map(|c| {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(c);
            if signed {
                i64::from_le_bytes(raw) as f64
            } else {
                u64::from_le_bytes(raw) as f64
            }
        })),
        Codec::F32 | Codec::Complex64 => out.extend(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64),
        ),
        Codec::F64 => out.extend(bytes.chunks_exact(8).map(|c| {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(c);
            f64::from_le_bytes(raw)
        })),
        Codec::E8M0 => out.extend(bytes.iter().map(|&b| {
            if b == 0xff {
                f64::NAN
            } else {
                pow2(b as i32 - 127)
            }
        })),
        Codec::Float(format) => match format.bits() {
            4 => {
                // Low nibble first.
                let table: [f64; 16] = std::array::from_fn(|i| format.decode(i as u32));
                for &b in bytes {
                    out.push(table[(b & 0x0f) as usize]);
                    out.push(table[(b >> 4) as usize]);
                }
            }
            6 => {
                let table: [f64; 64] = std::array::from_fn(|i| format.decode(i as u32));
                for c in bytes.chunks_exact(3) {
                    let w = c[0] as u32 | (c[1] as u32) << 8 | (c[2] as u32) << 16;
                    for k in 0..4 {
                        out.push(table[((w >> (6 * k)) & 0x3f) as usize]);
                    }
                }
            }
            8 => {
                let table: [f64; 256] = std::array::from_fn(|i| format.decode(i as u32));
                out.extend(bytes.iter().map(|&b| table[b as usize]));
            }
            _ => out.extend(
                bytes
                    .chunks_exact(2)
                    .map(|c| format.decode(u16::from_le_bytes([c[0], c[1]]) as u32)),
            ),
        },
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests build fixtures with std::fs.
mod tests {
    use super::*;
    use crate::DTYPES;

    fn one(dtype: Dtype, byte: u8) -> f64 {
        decode_byte(dtype, byte).unwrap()
    }

    #[test]
    fn table_is_in_declaration_order() {
        for (i, (dtype, _)) in CODECS.iter().enumerate() {
            assert_eq!(*dtype as usize, i, "{dtype}");
            assert_eq!(DTYPES[i].dtype, *dtype);
        }
        for row in &CODECS {
            if let Codec::Float(f) = row.1 {
                assert_eq!(f.bits() as usize, row.0.bits(), "{}", row.0);
            }
        }
    }

    #[test]
    fn f16_known_values() {
        let cases: &[(u16, f64)] = &[
            (0x0000, 0.0),
            (0x3c00, 1.0),
            (0xc000, -2.0),
            (0x3555, 0.333_251_953_125),
            (0x7bff, 65504.0),
            (0x0001, 2f64.powi(-24)),
            (0x03ff, 1023.0 * 2f64.powi(-24)),
            (0x0400, 2f64.powi(-14)),
            (0x7c00, f64::INFINITY),
            (0xfc00, f64::NEG_INFINITY),
        ];
        for &(bits, want) in cases {
            let got = decode(Dtype::F16, &bits.to_le_bytes()).unwrap()[0];
            assert_eq!(got, want, "{bits:#06x}");
        }
        let neg_zero = decode(Dtype::F16, &[0x00, 0x80]).unwrap()[0];
        assert!(neg_zero == 0.0 && neg_zero.is_sign_negative());
        assert!(decode(Dtype::F16, &[0x01, 0x7c]).unwrap()[0].is_nan());
    }

    #[test]
    fn f16_matches_f32_widening_everywhere() {
        // Exhaustive: every F16 value must equal what an exact f32 conversion gives.
        for bits in 0..=u16::MAX {
            let got = decode(Dtype::F16, &bits.to_le_bytes()).unwrap()[0];
            let want = reference_f16(bits);
            assert!(
                got == want || (got.is_nan() && want.is_nan()),
                "{bits:#06x}: {got} vs {want}"
            );
        }
    }

    /// An independent F16 → f64 by textbook formula.
    fn reference_f16(bits: u16) -> f64 {
        let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
        let e = ((bits >> 10) & 0x1f) as i32;
        let m = (bits & 0x3ff) as f64;
        match e {
            0 => sign * m / 1024.0 * 2f64.powi(-14),
            31 if m == 0.0 => sign * f64::INFINITY,
            31 => f64::NAN,
            _ => sign * (1.0 + m / 1024.0) * 2f64.powi(e - 15),
        }
    }

    #[test]
    fn bf16_is_the_top_half_of_f32() {
        for bits in 0..=u16::MAX {
            let got = decode(Dtype::BF16, &bits.to_le_bytes()).unwrap()[0];
            let want = f32::from_bits((bits as u32) << 16) as f64;
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "{bits:#06x}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn f8_e4m3fn() {
        let d = Dtype::F8_E4M3;
        assert_eq!(one(d, 0x00), 0.0);
        assert_eq!(one(d, 0x38), 1.0);
        assert_eq!(one(d, 0x01), 2f64.powi(-9));
        assert_eq!(one(d, 0x08), 2f64.powi(-6));
        assert_eq!(one(d, 0x7e), 448.0);
        assert_eq!(one(d, 0xfe), -448.0);
        assert_eq!(one(d, 0x78), 256.0); // all-ones exponent is a normal number
        assert!(one(d, 0x7f).is_nan());
        assert!(one(d, 0xff).is_nan());
        assert!(one(d, 0x80).is_sign_negative());
        assert_eq!((0..=255u8).filter(|&b| one(d, b).is_nan()).count(), 2);
        assert!((0..=255u8).all(|b| !one(d, b).is_infinite()));
    }

    #[test]
    fn f8_e5m2() {
        let d = Dtype::F8_E5M2;
        assert_eq!(one(d, 0x3c), 1.0);
        assert_eq!(one(d, 0x7b), 57344.0);
        assert_eq!(one(d, 0x01), 2f64.powi(-16));
        assert_eq!(one(d, 0x7c), f64::INFINITY);
        assert_eq!(one(d, 0xfc), f64::NEG_INFINITY);
        assert!(one(d, 0x7d).is_nan() && one(d, 0xff).is_nan());
        // F8_E5M2 is the top byte of F16.
        for b in 0..=255u8 {
            let f16 = decode(Dtype::F16, &[0, b]).unwrap()[0];
            let f8 = one(d, b);
            assert!(f8.to_bits() == f16.to_bits() || (f8.is_nan() && f16.is_nan()));
        }
    }

    #[test]
    fn f8_fnuz() {
        let d = Dtype::F8_E4M3FNUZ;
        assert_eq!(one(d, 0x40), 1.0);
        assert_eq!(one(d, 0x7f), 240.0);
        assert_eq!(one(d, 0xff), -240.0);
        assert_eq!(one(d, 0x01), 2f64.powi(-10));
        assert!(one(d, 0x80).is_nan());
        assert_eq!((0..=255u8).filter(|&b| one(d, b).is_nan()).count(), 1);
        assert!((0..=255u8).all(|b| !one(d, b).is_infinite()));
        // No negative zero: the only zero is 0x00.
        assert_eq!((0..=255u8).filter(|&b| one(d, b) == 0.0).count(), 1);

        let d = Dtype::F8_E5M2FNUZ;
        assert_eq!(one(d, 0x40), 1.0);
        assert_eq!(one(d, 0x7f), 57344.0);
        assert_eq!(one(d, 0x01), 2f64.powi(-17));
        assert!(one(d, 0x80).is_nan());
        assert_eq!((0..=255u8).filter(|&b| one(d, b).is_nan()).count(), 1);
        assert!((0..=255u8).all(|b| !one(d, b).is_infinite()));
    }

    #[test]
    fn f8_e8m0() {
        let d = Dtype::F8_E8M0;
        assert_eq!(one(d, 127), 1.0);
        assert_eq!(one(d, 0), 2f64.powi(-127));
        assert_eq!(one(d, 254), 2f64.powi(127));
        assert_eq!(one(d, 128), 2.0);
        assert!(one(d, 0xff).is_nan());
    }

    #[test]
    fn f4_low_nibble_first() {
        let positives = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0];
        for (i, &want) in positives.iter().enumerate() {
            let v = decode(Dtype::F4, &[i as u8]).unwrap();
            assert_eq!(v, [want, 0.0]);
            let v = decode(Dtype::F4, &[((i as u8) | 8) << 4]).unwrap();
            assert_eq!(v[1], -want);
        }
        assert_eq!(decode(Dtype::F4, &[0x72]).unwrap(), [1.0, 6.0]);
    }

    #[test]
    fn f6_values_and_packing() {
        let e2m3 = Dtype::F6_E2M3;
        let e3m2 = Dtype::F6_E3M2;
        // Elements 1, 2, 3, 4 as 6-bit codes, packed LSB first.
        let pack = |codes: [u32; 4]| -> [u8; 3] {
            let w = codes[0] | codes[1] << 6 | codes[2] << 12 | codes[3] << 18;
            [w as u8, (w >> 8) as u8, (w >> 16) as u8]
        };
        // E2M3 bias 1: 1.0 = 0b0_01_000, 7.5 = 0b0_11_111, 0.125 = 0b0_00_001.
        let bytes = pack([0b001000, 0b011111, 0b000001, 0b111111]);
        assert_eq!(decode(e2m3, &bytes).unwrap(), [1.0, 7.5, 0.125, -7.5]);
        // E3M2 bias 3: 1.0 = 0b0_011_00, 28 = 0b0_111_11, 0.0625 = 0b0_000_01.
        let bytes = pack([0b001100, 0b011111, 0b000001, 0b100000]);
        let v = decode(e3m2, &bytes).unwrap();
        assert_eq!(&v[..3], [1.0, 28.0, 0.0625]);
        assert!(v[3] == 0.0 && v[3].is_sign_negative());
        assert_eq!(
            decode(e2m3, &[0x3f, 0, 0]).unwrap(),
            [-7.5, 0.0, 0.0, 0.0],
            "element 0 is the low six bits of byte 0"
        );
        assert!(decode(e2m3, &[0; 2]).is_err());
    }

    #[test]
    fn integers_bool_complex() {
        assert_eq!(decode(Dtype::I8, &[0xff, 0x7f]).unwrap(), [-1.0, 127.0]);
        assert_eq!(decode(Dtype::U8, &[0xff]).unwrap(), [255.0]);
        assert_eq!(
            decode(Dtype::I16, &(-300i16).to_le_bytes()).unwrap(),
            [-300.0]
        );
        assert_eq!(decode(Dtype::U16, &[0xff, 0xff]).unwrap(), [65535.0]);
        assert_eq!(decode(Dtype::I32, &(-7i32).to_le_bytes()).unwrap(), [-7.0]);
        assert_eq!(
            decode(Dtype::U32, &u32::MAX.to_le_bytes()).unwrap(),
            [u32::MAX as f64]
        );
        assert_eq!(
            decode(Dtype::I64, &i64::MIN.to_le_bytes()).unwrap(),
            [-(2f64.powi(63))]
        );
        assert_eq!(decode(Dtype::U64, &42u64.to_le_bytes()).unwrap(), [42.0]);
        assert_eq!(decode(Dtype::BOOL, &[0, 1, 2]).unwrap(), [0.0, 1.0, 1.0]);
        let c: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        assert_eq!(decode(Dtype::C64, &c).unwrap(), [1.5, -2.0]);
        assert_eq!(values_per_element(Dtype::C64), 2);
        assert_eq!(decode(Dtype::F64, &0.1f64.to_le_bytes()).unwrap(), [0.1]);
        assert_eq!(
            decode(Dtype::F32, &0.1f32.to_le_bytes()).unwrap(),
            [0.1f32 as f64]
        );
    }

    #[test]
    fn partial_elements_are_refused() {
        let err = decode(Dtype::F32, &[0; 6]).unwrap_err();
        assert_eq!(err.group, 4);
        assert!(err.to_string().contains("6 bytes"));
        assert!(decode(Dtype::C64, &[0; 4]).is_err()); // half a complex number
        assert_eq!(decode_byte(Dtype::F16, 0), None);
        assert_eq!(decode_byte(Dtype::F4, 0), None);
    }

    /// Cross-checks against PyTorch: every bit pattern of F16, BF16 and every
    /// F8 format PyTorch has (F8_E8M0 since 2.7). Python comes from
    /// `SAFEWEIGHTS_PYTHON` (default `python3`); without torch the test is
    /// skipped, unless `SAFEWEIGHTS_REQUIRE_PYTHON=1`, when it fails.
    #[test]
    #[allow(clippy::print_stderr)]
    fn matches_torch_for_every_bit_pattern() {
        const SCRIPT: &str = r#"
import struct, sys, torch
def dump(name, dtype, nbytes):
    count = 1 << (8 * nbytes)
    if nbytes == 1:
        raw = bytes(range(256))
    else:
        raw = b"".join(struct.pack("<H", i) for i in range(count))
    t = torch.frombuffer(bytearray(raw), dtype=dtype).to(torch.float64)
    vals = t.tolist()
    print(name, " ".join(struct.pack("<d", v).hex() for v in vals))
dump("F16", torch.float16, 2)
dump("BF16", torch.bfloat16, 2)
dump("F8_E4M3", torch.float8_e4m3fn, 1)
dump("F8_E5M2", torch.float8_e5m2, 1)
dump("F8_E4M3FNUZ", torch.float8_e4m3fnuz, 1)
dump("F8_E5M2FNUZ", torch.float8_e5m2fnuz, 1)
if hasattr(torch, "float8_e8m0fnu"):
    dump("F8_E8M0", torch.float8_e8m0fnu, 1)
"#;
        let python = std::env::var("SAFEWEIGHTS_PYTHON").unwrap_or_else(|_| "python3".into());
        let required = std::env::var("SAFEWEIGHTS_REQUIRE_PYTHON").as_deref() == Ok("1");
        let output = std::process::Command::new(&python)
            .args(["-c", SCRIPT])
            .output();
        let output = match output {
            Ok(o) if o.status.success() => o,
            other => {
                let why = match other {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
                    Err(e) => e.to_string(),
                };
                assert!(
                    !required,
                    "SAFEWEIGHTS_REQUIRE_PYTHON=1 but {python} with torch failed: {why}"
                );
                eprintln!("skipping: {python} with torch unavailable ({why})");
                return;
            }
        };
        let text = String::from_utf8(output.stdout).unwrap();
        let mut checked = Vec::new();
        for line in text.lines() {
            let (name, values) = line.split_once(' ').unwrap();
            let dtype = Dtype::from_name(name).unwrap();
            let wants: Vec<f64> = values
                .split(' ')
                .map(|h| {
                    let mut b = [0u8; 8];
                    for (i, byte) in b.iter_mut().enumerate() {
                        *byte = u8::from_str_radix(&h[2 * i..2 * i + 2], 16).unwrap();
                    }
                    f64::from_le_bytes(b)
                })
                .collect();
            let width = dtype.bits() / 8;
            let raw: Vec<u8> = (0..wants.len())
                .flat_map(|i| (i as u16).to_le_bytes().into_iter().take(width))
                .collect();
            let gots = decode(dtype, &raw).unwrap();
            assert_eq!(gots.len(), wants.len(), "{name}");
            for (i, (g, w)) in gots.iter().zip(&wants).enumerate() {
                assert!(
                    g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
                    "{name} pattern {i:#x}: decoded {g:e}, torch {w:e}"
                );
            }
            checked.push(name.to_owned());
        }
        assert!(checked.len() >= 6, "torch checked only {checked:?}");
    }
}
