//! Identification by content, and the small per-format checks (npy header,
//! Keras config text, ONNX protobuf walk).

use crate::protobuf::{Field, Pb};
use crate::report::Format;

/// HDF5 signature (at 0, 512, 1024, 2048... when a user block precedes it).
pub(crate) const HDF5_SIG: &[u8] = b"\x89HDF\r\n\x1a\n";

/// Identifies the outer format of `data` from its bytes. Zip sub-kinds
/// (torch, npz, keras) are refined by the scanner after reading the
/// directory; pickle sub-kinds after walking it.
pub(crate) fn sniff(data: &[u8]) -> Format {
    if data.starts_with(b"PK\x03\x04") || data.starts_with(b"PK\x05\x06") {
        return Format::Zip;
    }
    if data.starts_with(b"7z\xbc\xaf\x27\x1c") {
        return Format::SevenZip;
    }
    if data.starts_with(b"\xfd7zXZ\x00")
        || data.starts_with(b"BZh")
        || data.starts_with(b"\x28\xb5\x2f\xfd")
    {
        return Format::Compressed;
    }
    if data.starts_with(b"\x1f\x8b") {
        return Format::Gzip;
    }
    if data.starts_with(b"\x93NUMPY") {
        return Format::Npy;
    }
    if data.starts_with(HDF5_SIG) || hdf5_at_userblock(data) {
        return Format::Hdf5;
    }
    if data.starts_with(b"GGUF") {
        return Format::Gguf;
    }
    if looks_like_safetensors(data) {
        return Format::Safetensors;
    }
    if safeweights_archive::tar::is_tar(data) {
        return Format::Tar;
    }
    if crate::pickle::looks_like_pickle(data) {
        return Format::Pickle;
    }
    if looks_like_onnx(data) {
        return Format::Onnx;
    }
    if crate::savedmodel::looks_like_graph(data) {
        return Format::SavedModel;
    }
    Format::Unknown
}

fn hdf5_at_userblock(data: &[u8]) -> bool {
    let mut off = 512usize;
    while off < data.len().min(1 << 20) {
        if data[off..].starts_with(HDF5_SIG) {
            return true;
        }
        off *= 2;
    }
    false
}

/// 8-byte little-endian header length, then a JSON object.
pub(crate) fn looks_like_safetensors(data: &[u8]) -> bool {
    let Some(p) = data.get(..8) else {
        return false;
    };
    let mut a = [0u8; 8];
    a.copy_from_slice(p);
    let n = u64::from_le_bytes(a);
    (2..=safeweights::MAX_HEADER_LEN).contains(&n)
        && n.saturating_add(8) <= data.len() as u64
        && data.get(8) == Some(&b'{')
}

/// The format a file name claims by its extension, and what the name says.
pub(crate) fn claimed(name: &str) -> Option<(&'static str, &'static [Format])> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let ext = base.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "safetensors" => ("safetensors", &[Format::Safetensors]),
        "gguf" => ("GGUF", &[Format::Gguf]),
        "onnx" => ("ONNX", &[Format::Onnx]),
        // Keras loads a `.keras` zip as Keras 3, anything else as legacy HDF5.
        "keras" => ("Keras", &[Format::Keras, Format::Hdf5]),
        _ => return None,
    })
}

/// Whether an archive member that its first bytes do not identify is still
/// read whole: compressed streams, and files that carry templates or configs
/// by name (`*.json`, `*.jinja`, TensorFlow `*.pb`).
pub(crate) fn worth_reading(name: &str, head: &[u8]) -> bool {
    let n = name.to_ascii_lowercase();
    n.ends_with(".json")
        || n.ends_with(".jinja")
        || n.ends_with(".pb")
        || looks_like_zlib(head)
        || looks_like_lzma_alone(head)
}

/// A raw zlib stream header (RFC 1950: deflate, window <= 32K, check bits).
pub(crate) fn looks_like_zlib(data: &[u8]) -> bool {
    match data {
        [cmf, flg, ..] => {
            cmf & 0x0f == 8
                && cmf >> 4 <= 7
                && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0
                && flg & 0x20 == 0
        }
        _ => false,
    }
}

/// A legacy `.lzma` ("LZMA alone") header: properties byte, a dictionary
/// size, and an unpacked size that is unknown (all ones) or plausible.
pub(crate) fn looks_like_lzma_alone(data: &[u8]) -> bool {
    let Some(h) = data.get(..13) else {
        return false;
    };
    let props = h[0];
    let dict = u32::from_le_bytes([h[1], h[2], h[3], h[4]]);
    let mut a = [0u8; 8];
    a.copy_from_slice(&h[5..13]);
    let size = u64::from_le_bytes(a);
    props < 225
        && props == 0x5d
        && (dict.is_power_of_two() || dict == u32::MAX)
        && dict >= 1 << 12
        && (size == u64::MAX || size < 1 << 40)
}

/// Parsed `.npy` header.
pub(crate) struct Npy {
    pub data_offset: usize,
    pub object: bool,
    pub header: String,
}

/// Parses an npy header; `None` if it is broken.
pub(crate) fn parse_npy(data: &[u8]) -> Option<Npy> {
    let major = *data.get(6)?;
    let (len, start): (usize, usize) = match major {
        1 => (
            usize::from(u16::from_le_bytes([*data.get(8)?, *data.get(9)?])),
            10,
        ),
        2 | 3 => {
            let b = data.get(8..12)?;
            (
                usize::try_from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])).ok()?,
                12,
            )
        }
        _ => return None,
    };
    let header = data.get(start..start.checked_add(len)?)?;
    let header = String::from_utf8_lossy(header).into_owned();
    let descr = header
        .find("'descr'")
        .or_else(|| header.find("\"descr\""))
        .map(|i| &header[i + 7..])?;
    // Stop at the next top-level key.
    let descr = descr
        .find("'fortran_order'")
        .or_else(|| descr.find("'shape'"))
        .map(|i| &descr[..i])
        .unwrap_or(descr);
    let object = ["'O'", "'|O'", "\"|O\"", "\"O\"", "'<O'", "'>O'"]
        .iter()
        .any(|p| descr.contains(p))
        || descr.contains("O8'")
        || descr.contains("O4'");
    Some(Npy {
        data_offset: start + len,
        object,
        header,
    })
}

/// Finds Keras `Lambda` layers (and Keras 3 `__lambda__` functions) in the
/// JSON text of a model config. Returns the byte offsets of matches.
pub(crate) fn keras_lambdas(text: &[u8]) -> Vec<u64> {
    let mut hits = Vec::new();
    for pat in [&b"\"class_name\""[..], b"'class_name'"] {
        for i in memchr::memmem::find_iter(text, pat) {
            let mut j = i + pat.len();
            while text.get(j).is_some_and(|c| c.is_ascii_whitespace()) {
                j += 1;
            }
            if text.get(j) != Some(&b':') {
                continue;
            }
            j += 1;
            while text.get(j).is_some_and(|c| c.is_ascii_whitespace()) {
                j += 1;
            }
            let rest = &text[j.min(text.len())..];
            if rest.starts_with(b"\"Lambda\"")
                || rest.starts_with(b"'Lambda'")
                || rest.starts_with(b"\"__lambda__\"")
            {
                hits.push(i as u64);
            }
        }
    }
    hits.sort_unstable();
    hits
}

// ---- ONNX (protobuf) ----

/// ModelProto starts with ir_version (field 1, varint) in every writer we
/// know; the top level must parse cleanly and hold a graph (field 7).
pub(crate) fn looks_like_onnx(data: &[u8]) -> bool {
    if data.first() != Some(&0x08) {
        return false;
    }
    let mut pb = Pb::new(data);
    let mut has_graph = false;
    let mut has_ir = false;
    let mut n = 0;
    while let Some(f) = pb.next() {
        let Ok((num, f)) = f else { return false };
        n += 1;
        match (num, f) {
            (1, Field::Varint(v)) if (1..=64).contains(&v) => has_ir = true,
            (7, Field::Bytes(..)) => has_graph = true,
            (2..=6 | 8 | 14 | 20 | 25, _) => {}
            _ => return false,
        }
        if n > 10_000 {
            break;
        }
    }
    has_ir && has_graph
}

/// An external-data `location` found in an ONNX model, with its offset.
pub(crate) fn onnx_external_locations(data: &[u8]) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut pb = Pb::new(data);
    while let Some(Ok((num, f))) = pb.next() {
        if let (7, Field::Bytes(b, at)) = (num, f) {
            graph(b, at, &mut out, 0);
        }
    }
    out
}

fn graph(d: &[u8], base: usize, out: &mut Vec<(String, u64)>, depth: usize) {
    if depth > 32 {
        return;
    }
    let mut pb = Pb::new(d);
    while let Some(Ok((num, f))) = pb.next() {
        let Field::Bytes(b, at) = f else { continue };
        match num {
            1 => node(b, base + at, out, depth), // NodeProto
            5 => tensor(b, base + at, out),      // initializer
            15 => sparse(b, base + at, out),     // sparse_initializer
            _ => {}
        }
    }
}

fn node(d: &[u8], base: usize, out: &mut Vec<(String, u64)>, depth: usize) {
    let mut pb = Pb::new(d);
    while let Some(Ok((num, f))) = pb.next() {
        if let (5, Field::Bytes(b, at)) = (num, f) {
            // AttributeProto
            let mut ab = Pb::new(b);
            while let Some(Ok((an, af))) = ab.next() {
                let Field::Bytes(x, xa) = af else { continue };
                let off = base + at + xa;
                match an {
                    5 | 10 => tensor(x, off, out),
                    6 | 11 => graph(x, off, out, depth + 1),
                    22 | 23 => sparse(x, off, out),
                    _ => {}
                }
            }
        }
    }
}

fn sparse(d: &[u8], base: usize, out: &mut Vec<(String, u64)>) {
    let mut pb = Pb::new(d);
    while let Some(Ok((num, f))) = pb.next() {
        if let (1 | 2, Field::Bytes(b, at)) = (num, f) {
            tensor(b, base + at, out);
        }
    }
}

fn tensor(d: &[u8], base: usize, out: &mut Vec<(String, u64)>) {
    let mut pb = Pb::new(d);
    while let Some(Ok((num, f))) = pb.next() {
        if let (13, Field::Bytes(b, at)) = (num, f) {
            let mut kv = Pb::new(b);
            let (mut k, mut v) = (None, None);
            while let Some(Ok((n, f))) = kv.next() {
                if let Field::Bytes(s, _) = f {
                    match n {
                        1 => k = Some(String::from_utf8_lossy(s).into_owned()),
                        2 => v = Some(String::from_utf8_lossy(s).into_owned()),
                        _ => {}
                    }
                }
            }
            if k.as_deref() == Some("location") {
                if let Some(v) = v {
                    out.push((v, (base + at) as u64));
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests build fixtures with std::fs.
mod tests {
    use super::*;

    #[test]
    fn lambdas() {
        let t = br#"{"class_name": "Sequential", "layers": [{"class_name" : "Lambda"}, {"class_name":"TFOpLambda"}]}"#;
        assert_eq!(keras_lambdas(t).len(), 1);
    }

    #[test]
    fn npy_object() {
        let h = b"{'descr': '|O', 'fortran_order': False, 'shape': (2,), }";
        let mut d = b"\x93NUMPY\x01\x00".to_vec();
        d.extend_from_slice(&(h.len() as u16).to_le_bytes());
        d.extend_from_slice(h);
        assert!(parse_npy(&d).unwrap().object);
    }
}
