//! Files the tour shows being caught: corrupted copies of a safetensors
//! file for the validator, and a disguised pickle for the scanner and the
//! converter. Building them runs nothing.

use std::path::Path;

use serde_json::{json, Map, Value};

use crate::{DemoError, Result};

/// A corruption of a valid safetensors file: its file name, what it does,
/// and the rule (the `kind` of the validator's error) that must report it.
#[derive(Debug, Clone, Copy)]
pub struct Corruption {
    /// File name of the corrupted copy.
    pub name: &'static str,
    /// What was done, for people.
    pub what: &'static str,
    /// The rule validation must report.
    pub rule: &'static str,
    /// Makes the corrupted bytes from the original's.
    pub apply: fn(&[u8]) -> Result<Vec<u8>>,
}

/// The corruptions the tour applies, in order.
pub const CORRUPTIONS: &[Corruption] = &[
    Corruption {
        name: "trailing.safetensors",
        what: "16 bytes appended after the last tensor",
        rule: "trailing_bytes",
        apply: append_trailing,
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
        apply: truncate,
    },
    Corruption {
        name: "bad-length.safetensors",
        what: "the header length prefix set past the end of the file",
        rule: "header_past_end",
        apply: header_past_end,
    },
];

/// 16 zero bytes after the data.
fn append_trailing(bytes: &[u8]) -> Result<Vec<u8>> {
    let mut out = bytes.to_vec();
    out.extend_from_slice(&[0u8; 16]);
    Ok(out)
}

/// The last 1000 bytes cut off.
fn truncate(bytes: &[u8]) -> Result<Vec<u8>> {
    Ok(bytes[..bytes.len().saturating_sub(1000)].to_vec())
}

/// The header length prefix set to twice the file's length.
fn header_past_end(bytes: &[u8]) -> Result<Vec<u8>> {
    let Some(rest) = bytes.get(8..) else {
        return Err(DemoError::NotASample {
            reason: "shorter than the 8-byte header length",
        });
    };
    let len = (bytes.len() as u64).saturating_mul(2);
    let mut out = len.to_le_bytes().to_vec();
    out.extend_from_slice(rest);
    Ok(out)
}

/// Rewrites the header so that the second tensor (by offset) starts 8 bytes
/// before the first ends.
pub fn overlap_offsets(bytes: &[u8]) -> Result<Vec<u8>> {
    let not_a_sample = |reason| DemoError::NotASample { reason };
    let prefix: [u8; 8] = bytes
        .get(..8)
        .and_then(|p| p.try_into().ok())
        .ok_or_else(|| not_a_sample("shorter than the 8-byte header length"))?;
    let end = usize::try_from(u64::from_le_bytes(prefix))
        .ok()
        .and_then(|n| n.checked_add(8))
        .ok_or_else(|| not_a_sample("the header length overflows"))?;
    let (Some(json_bytes), Some(data)) = (bytes.get(8..end), bytes.get(end..)) else {
        return Err(not_a_sample("the header runs past the end"));
    };
    let mut header: Map<String, Value> = serde_json::from_slice(json_bytes)
        .map_err(|_| not_a_sample("the header is not a JSON object"))?;
    let mut by_offset: Vec<(u64, String)> = header
        .iter()
        .filter_map(|(k, v)| Some((v.get("data_offsets")?.get(0)?.as_u64()?, k.clone())))
        .collect();
    by_offset.sort();
    let Some((_, second)) = by_offset.get(1).cloned() else {
        return Err(not_a_sample("fewer than two tensors"));
    };
    let entry = header
        .get_mut(&second)
        .and_then(|v| v.get_mut("data_offsets"))
        .and_then(Value::as_array_mut)
        .ok_or_else(|| not_a_sample("a tensor without data_offsets"))?;
    for offset in entry.iter_mut() {
        *offset = json!(offset.as_u64().unwrap_or(0).saturating_sub(8));
    }
    let mut text = Value::Object(header).to_string();
    while text.len() % 8 != 0 {
        text.push(' ');
    }
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(data);
    Ok(out)
}

/// The shell command of [`malicious_pickle`].
pub const MALICIOUS_COMMAND: &str = "echo this would run on torch.load";

/// A protocol-2 pickle that calls `posix.system(MALICIOUS_COMMAND)` when
/// unpickled. Built byte by byte; never unpickled here.
pub fn malicious_pickle() -> Vec<u8> {
    let mut p = vec![0x80, 0x02];
    p.extend_from_slice(b"cposix\nsystem\n");
    let cmd = MALICIOUS_COMMAND.as_bytes();
    p.push(b'X');
    p.extend_from_slice(&(cmd.len() as u32).to_le_bytes());
    p.extend_from_slice(cmd);
    p.extend_from_slice(&[0x85, b'R', b'.']);
    p
}

/// Writes at `path` a zip laid out like `torch.save`'s (`archive/data.pkl`,
/// `archive/version`) whose pickle is [`malicious_pickle`]: what a hostile
/// upload named like a harmless weights file looks like.
///
/// # Errors
/// The file cannot be written.
pub fn write_disguised_pickle_zip(path: &Path) -> Result<()> {
    let file = fs_err::File::create(path).map_err(|e| DemoError::io(path, e))?;
    let mut zip = safeweights_archive::ZipWriter::new(file);
    zip.entry("archive/data.pkl", &malicious_pickle())
        .and_then(|()| zip.entry("archive/version", b"3\n"))
        .map_err(|e| DemoError::io(path, e))?;
    zip.finish().map_err(|e| DemoError::io(path, e))?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests build fixtures with std::fs.
mod tests {
    use safeweights::{serialize, Dtype, HeaderError, SafeTensors, TensorRef};

    use super::*;

    fn sample() -> Vec<u8> {
        let data = [0u8; 16];
        serialize(
            &[
                TensorRef {
                    name: "a",
                    dtype: Dtype::F32,
                    shape: &[4],
                    data: &data,
                },
                TensorRef {
                    name: "b",
                    dtype: Dtype::F32,
                    shape: &[4],
                    data: &data,
                },
            ],
            None,
        )
        .unwrap()
    }

    #[test]
    fn every_corruption_breaks_its_rule() {
        let original = sample();
        assert!(SafeTensors::deserialize(&original).is_ok());
        for c in CORRUPTIONS {
            let bytes = (c.apply)(&original).unwrap();
            let err = SafeTensors::deserialize(&bytes).expect_err(c.name);
            let found = match &err {
                safeweights::Error::Header { source, .. } => match source {
                    HeaderError::TrailingBytes { .. } => "trailing_bytes",
                    HeaderError::Overlap { .. } => "overlap",
                    HeaderError::HeaderPastEnd { .. } => "header_past_end",
                    _ => "other",
                },
                _ => "other",
            };
            // Truncation is reported by the reader of a file; in memory the
            // missing bytes show up as a size rule.
            if c.rule != "truncated" {
                assert_eq!(found, c.rule, "{}: {err}", c.name);
            }
        }
    }

    #[test]
    fn corruptions_refuse_what_is_not_a_sample() {
        for bytes in [&b""[..], &[1, 0, 0, 0, 0, 0, 0, 0, b'x'][..]] {
            assert!(overlap_offsets(bytes).is_err());
        }
        assert!(header_past_end(b"abc").is_err());
    }

    #[test]
    fn malicious_pickle_is_what_it_says() {
        let p = malicious_pickle();
        assert!(p.starts_with(b"\x80\x02cposix\nsystem\n"));
        assert!(p.ends_with(b"\x85R."));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("adapter_model.safetensors");
        write_disguised_pickle_zip(&path).unwrap();
        assert!(std::fs::read(&path).unwrap().starts_with(b"PK\x03\x04"));
    }
}
