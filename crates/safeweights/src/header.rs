//! Parsing and validating the safetensors header.
//!
//! The layout: an 8-byte little-endian length `N`, `N` bytes of UTF-8 JSON,
//! then the data buffer. Validation is one bounds-checked walk over the
//! tensors sorted by offset, with checked arithmetic throughout.

use std::collections::BTreeMap;

use crate::error::HeaderError;
use crate::json::{self, DtypeName, Entry, Field, Meta, MetaValue, Offsets, RawTensor, Top};
use crate::{element_count, Dtype};

/// The largest header the reference accepts, in bytes.
pub const MAX_HEADER_LEN: u64 = 100_000_000;

/// The key of the metadata entry.
pub const METADATA_KEY: &str = "__metadata__";

/// The free-form string→string metadata of a file.
pub type Metadata = BTreeMap<String, String>;

/// How strictly to read a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseOptions {
    strict: bool,
    max_header_len: u64,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            strict: true,
            max_header_len: MAX_HEADER_LEN,
        }
    }
}

impl ParseOptions {
    /// Strict reading (the default): also rejects duplicate keys, tensors named
    /// `__metadata__` and tensor names with control characters.
    pub fn strict() -> Self {
        Self::default()
    }

    /// Reads exactly what the reference implementation reads.
    pub fn lenient() -> Self {
        ParseOptions {
            strict: false,
            ..Self::default()
        }
    }

    /// Sets strictness.
    pub fn with_strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// Whether strict checks are on.
    pub fn is_strict(&self) -> bool {
        self.strict
    }

    /// Lowers (or raises) the header size limit.
    pub fn with_max_header_len(mut self, limit: u64) -> Self {
        self.max_header_len = limit;
        self
    }
}

/// One tensor's entry in the header.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TensorInfo {
    /// The tensor's name.
    pub name: String,
    /// Its element type.
    pub dtype: Dtype,
    /// Its shape (empty for a scalar).
    pub shape: Vec<usize>,
    /// Start and end (exclusive) of its bytes, relative to the data buffer.
    pub data_offsets: (usize, usize),
}

impl TensorInfo {
    /// Number of bytes.
    pub fn byte_len(&self) -> usize {
        self.data_offsets.1 - self.data_offsets.0
    }

    /// Number of elements.
    pub fn element_count(&self) -> usize {
        // Validated at parse time not to overflow.
        element_count(&self.shape).unwrap_or(0)
    }
}

/// A parsed and validated header.
#[derive(Debug, Clone)]
pub struct Header {
    tensors: Vec<TensorInfo>,
    /// Indices into `tensors`, sorted by name.
    by_name: Vec<u32>,
    metadata: Option<Metadata>,
    header_len: u64,
    data_len: u64,
}

/// Reads the 8-byte prefix and checks the declared length against the limit
/// and the file size. Returns the header length `N`.
pub fn parse_prefix(
    prefix: &[u8],
    file_len: u64,
    options: &ParseOptions,
) -> Result<u64, HeaderError> {
    let Some(bytes) = prefix.get(..8) else {
        return Err(HeaderError::HeaderTooSmall { len: file_len });
    };
    if file_len < 8 {
        return Err(HeaderError::HeaderTooSmall { len: file_len });
    }
    let mut le = [0u8; 8];
    le.copy_from_slice(bytes);
    let len = u64::from_le_bytes(le);
    if len > options.max_header_len {
        return Err(HeaderError::HeaderTooLarge {
            len,
            limit: options.max_header_len,
        });
    }
    match len.checked_add(8) {
        Some(end) if end <= file_len => Ok(len),
        _ => Err(HeaderError::HeaderPastEnd { len, file_len }),
    }
}

impl Header {
    /// Parses a whole file image held in memory.
    pub fn parse_file_bytes(bytes: &[u8], options: &ParseOptions) -> Result<Header, HeaderError> {
        let file_len = bytes.len() as u64;
        let n = parse_prefix(bytes, file_len, options)?;
        // parse_prefix checked 8 + n <= len.
        let end = 8 + n as usize;
        let json = bytes.get(8..end).unwrap_or_default();
        Header::parse(json, file_len - 8 - n, options)
    }

    /// Parses the `N` JSON bytes of a header, given the size of the data
    /// buffer that follows them, and validates every rule.
    pub fn parse(
        json_bytes: &[u8],
        data_len: u64,
        options: &ParseOptions,
    ) -> Result<Header, HeaderError> {
        let text = std::str::from_utf8(json_bytes).map_err(|e| HeaderError::InvalidUtf8 {
            offset: 8 + e.valid_up_to() as u64,
        })?;
        // Entries are converted as they are read; the first broken rule is
        // kept and reported only if the whole text is valid JSON (a syntax
        // error anywhere comes first, as when parsing before validating).
        let mut metadata = None;
        let mut seen_metadata = false;
        let mut tensors = Vec::with_capacity((json_bytes.len() / 48).min(1 << 20));
        let mut first_error: Option<HeaderError> = None;
        let mut on_entry = |name: String, entry: Entry| {
            if first_error.is_some() {
                return;
            }
            let result = match entry {
                Entry::Metadata(meta) => {
                    // The reference too refuses a repeated `__metadata__` (a struct field).
                    if seen_metadata {
                        Err(HeaderError::DuplicateKey {
                            key: name,
                            scope: "header".to_owned(),
                        })
                    } else {
                        seen_metadata = true;
                        parse_metadata(meta, options).map(|m| metadata = m)
                    }
                }
                Entry::Tensor(raw) => (if options.strict {
                    check_name(&name)
                } else {
                    Ok(())
                })
                .and_then(|()| parse_tensor(name, raw))
                .map(|t| tensors.push(t)),
            };
            if let Err(e) = result {
                first_error = Some(e);
            }
        };
        let top = json::parse(text, &mut on_entry).map_err(|e| {
            let (line, column) = e.line_column(text);
            HeaderError::InvalidJson {
                message: e.message.to_owned(),
                line,
                column,
            }
        })?;
        if let Top::Other(found) = top {
            return Err(HeaderError::NotAnObject { found });
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        let tensors = dedup_tensors(tensors, options)?;
        // File order: by offsets (then name, for a stable order among empty
        // tensors). Files are usually written in this order already.
        let mut order: Vec<u32> = (0..tensors.len() as u32).collect();
        let key = |i: u32| {
            let t = &tensors[i as usize];
            (t.data_offsets, t.name.as_str())
        };
        if !order.windows(2).all(|w| key(w[0]) <= key(w[1])) {
            order.sort_unstable_by(|&a, &b| key(a).cmp(&key(b)));
        }
        let mut slots: Vec<Option<TensorInfo>> = tensors.into_iter().map(Some).collect();
        let tensors: Vec<TensorInfo> = order
            .iter()
            .filter_map(|&i| slots.get_mut(i as usize).and_then(Option::take))
            .collect();
        validate_layout(&tensors, data_len)?;
        let mut by_name: Vec<u32> = (0..tensors.len() as u32).collect();
        by_name.sort_unstable_by(|&a, &b| tensors[a as usize].name.cmp(&tensors[b as usize].name));
        Ok(Header {
            tensors,
            by_name,
            metadata,
            header_len: json_bytes.len() as u64,
            data_len,
        })
    }

    /// Tensors in file order (by offset).
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// Looks a tensor up by name.
    pub fn get(&self, name: &str) -> Option<&TensorInfo> {
        let i = self
            .by_name
            .binary_search_by(|&i| self.tensors[i as usize].name.as_str().cmp(name))
            .ok()?;
        self.tensors.get(*self.by_name.get(i)? as usize)
    }

    /// Tensor names sorted alphabetically (as the reference's `keys()`).
    pub fn sorted_names(&self) -> Vec<&str> {
        self.by_name
            .iter()
            .map(|&i| self.tensors[i as usize].name.as_str())
            .collect()
    }

    /// The `__metadata__` map, if the file has one.
    pub fn metadata(&self) -> Option<&Metadata> {
        self.metadata.as_ref()
    }

    /// Length `N` of the JSON header in bytes (padding included).
    pub fn header_len(&self) -> u64 {
        self.header_len
    }

    /// File offset where the data buffer starts (`8 + N`).
    pub fn data_start(&self) -> u64 {
        8 + self.header_len
    }

    /// Size of the data buffer.
    pub fn data_len(&self) -> u64 {
        self.data_len
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether the file holds no tensor.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }
}

/// Repeated tensor names: refused when strict; otherwise the last one wins,
/// as in the reference's map.
fn dedup_tensors(
    tensors: Vec<TensorInfo>,
    options: &ParseOptions,
) -> Result<Vec<TensorInfo>, HeaderError> {
    let mut order: Vec<u32> = (0..tensors.len() as u32).collect();
    // Equal names end up adjacent, in document order.
    order.sort_unstable_by(|&a, &b| {
        (tensors[a as usize].name.as_str(), a).cmp(&(tensors[b as usize].name.as_str(), b))
    });
    let mut keep = vec![true; tensors.len()];
    let mut any = false;
    for pair in order.windows(2) {
        let (a, b) = (pair[0] as usize, pair[1] as usize);
        if tensors[a].name == tensors[b].name {
            if options.strict {
                return Err(HeaderError::DuplicateKey {
                    key: tensors[a].name.clone(),
                    scope: "header".to_owned(),
                });
            }
            keep[a] = false;
            any = true;
        }
    }
    if !any {
        return Ok(tensors);
    }
    Ok(tensors
        .into_iter()
        .zip(keep)
        .filter_map(|(t, k)| k.then_some(t))
        .collect())
}

/// One bounds-checked walk over the tensors in offset order.
fn validate_layout(tensors: &[TensorInfo], data_len: u64) -> Result<(), HeaderError> {
    let mut expected: u64 = 0;
    for t in tensors {
        let (start, end) = (t.data_offsets.0 as u64, t.data_offsets.1 as u64);
        let shape = || t.shape.iter().map(|&d| d as u64).collect::<Vec<u64>>();
        if end < start {
            return Err(HeaderError::InvertedOffsets {
                tensor: t.name.clone(),
                start,
                end,
            });
        }
        if start > expected {
            return Err(HeaderError::Gap {
                tensor: t.name.clone(),
                start,
                expected,
            });
        }
        if start < expected {
            return Err(HeaderError::Overlap {
                tensor: t.name.clone(),
                start,
                expected,
            });
        }
        let overflow = || HeaderError::Overflow {
            tensor: t.name.clone(),
            dtype: t.dtype,
            shape: shape(),
        };
        let elements = element_count(&t.shape).ok_or_else(overflow)?;
        let bits = elements.checked_mul(t.dtype.bits()).ok_or_else(overflow)?;
        if bits % 8 != 0 {
            return Err(HeaderError::NotByteAligned {
                tensor: t.name.clone(),
                dtype: t.dtype,
                elements: elements as u64,
            });
        }
        let size = (bits / 8) as u64;
        if end - start != size {
            return Err(HeaderError::SizeMismatch {
                tensor: t.name.clone(),
                dtype: t.dtype,
                shape: shape(),
                expected: size,
                start,
                end,
            });
        }
        expected = end;
    }
    if expected < data_len {
        return Err(HeaderError::TrailingBytes {
            expected,
            actual: data_len,
        });
    }
    if expected > data_len {
        return Err(HeaderError::Truncated {
            expected,
            actual: data_len,
        });
    }
    Ok(())
}

/// Checks a tensor name for the strict rules.
pub(crate) fn check_name(name: &str) -> Result<(), HeaderError> {
    if name == METADATA_KEY {
        return Err(HeaderError::ReservedName);
    }
    // Control characters are ASCII C0/DEL, or C1 (U+0080..U+009F, lead byte 0xC2).
    let bytes = name.as_bytes();
    let min = bytes.iter().fold(u8::MAX, |m, &c| m.min(c));
    if min >= 0x20 && memchr::memchr2(0x7f, 0xc2, bytes).is_none() {
        return Ok(());
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(HeaderError::ControlCharacter {
            tensor: name.to_owned(),
            code: c as u32,
        });
    }
    Ok(())
}

/// Strict rule for `__metadata__` keys and values: no control character but
/// tab and line feed (ordinary text), since readers print metadata and an
/// escape sequence in it would act on their terminal.
pub(crate) fn check_metadata_text(key: &str, text: &str) -> Result<(), HeaderError> {
    match text
        .chars()
        .find(|&c| c.is_control() && c != '\t' && c != '\n')
    {
        Some(c) => Err(HeaderError::MetadataControlCharacter {
            key: key.to_owned(),
            code: c as u32,
        }),
        None => Ok(()),
    }
}

fn parse_metadata(meta: Meta, options: &ParseOptions) -> Result<Option<Metadata>, HeaderError> {
    let entries = match meta {
        Meta::Object(entries) => entries,
        Meta::Null if !options.strict => return Ok(None),
        Meta::Null => {
            return Err(HeaderError::InvalidMetadata {
                reason: "found a JSON null (the reference accepts it; use lenient mode)".into(),
            })
        }
        Meta::Other(kind) => {
            return Err(HeaderError::InvalidMetadata {
                reason: format!("found a JSON {kind}"),
            })
        }
    };
    let mut map = Metadata::new();
    for (key, value) in entries {
        let s = match value {
            MetaValue::String(s) => s,
            MetaValue::Other(kind) => {
                return Err(HeaderError::InvalidMetadata {
                    reason: format!("the value of {key:?} is a JSON {kind}"),
                })
            }
        };
        if map.contains_key(&key) && options.strict {
            return Err(HeaderError::DuplicateKey {
                key,
                scope: METADATA_KEY.to_owned(),
            });
        }
        if options.strict {
            check_metadata_text(&key, &key)?;
            check_metadata_text(&key, &s)?;
        }
        // Lenient: the last value wins, as in the reference's map.
        map.insert(key, s);
    }
    Ok(Some(map))
}

fn parse_tensor(name: String, raw: RawTensor) -> Result<TensorInfo, HeaderError> {
    let fields = match raw {
        RawTensor::Object(fields) => fields,
        RawTensor::Other(found) => {
            return Err(HeaderError::TensorNotAnObject {
                tensor: name,
                found,
            })
        }
    };
    // The reference refuses repeated fields of a tensor (struct fields), strict or not.
    if let Some(key) = fields.duplicate {
        return Err(HeaderError::DuplicateKey {
            key,
            scope: format!("tensor {name:?}"),
        });
    }
    let malformed = |field, expected| HeaderError::MalformedField {
        tensor: name.clone(),
        field,
        expected,
    };
    let missing = |field| HeaderError::MissingField {
        tensor: name.clone(),
        field,
    };
    let dtype = match fields.dtype {
        None => return Err(missing("dtype")),
        Some(Field::Wrong) => return Err(malformed("dtype", "a dtype name string")),
        Some(Field::Ok(DtypeName::Known(d))) => d,
        Some(Field::Ok(DtypeName::Unknown(dtype))) => {
            return Err(HeaderError::UnknownDtype {
                tensor: name,
                dtype,
            })
        }
    };
    let shape = match fields.shape {
        None => return Err(missing("shape")),
        Some(Field::Wrong) => return Err(malformed("shape", "an array of non-negative integers")),
        Some(Field::Ok(shape)) => shape,
    };
    let data_offsets = match fields.data_offsets {
        None => return Err(missing("data_offsets")),
        Some(Field::Ok(Offsets::Pair(a, b))) => (a, b),
        Some(_) => {
            return Err(malformed(
                "data_offsets",
                "an array of two non-negative integers [start, end]",
            ))
        }
    };
    Ok(TensorInfo {
        name,
        dtype,
        shape,
        data_offsets,
    })
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests build fixtures with std::fs.
mod tests {
    use super::*;

    fn file(json: &str, data: usize) -> Vec<u8> {
        let mut out = (json.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(json.as_bytes());
        out.resize(out.len() + data, 0);
        out
    }

    fn parse(json: &str, data: usize) -> Result<Header, HeaderError> {
        Header::parse_file_bytes(&file(json, data), &ParseOptions::strict())
    }

    #[test]
    fn valid_two_tensors() {
        let h = parse(
            r#"{"__metadata__":{"format":"pt"},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"U8","shape":[],"data_offsets":[8,9]}}"#,
            9,
        )
        .unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(h.tensors()[0].name, "b");
        assert_eq!(h.sorted_names(), vec!["a", "b"]);
        assert_eq!(h.metadata().unwrap()["format"], "pt");
        assert_eq!(h.get("a").unwrap().data_offsets, (8, 9));
    }

    #[test]
    fn whitespace_around_json_is_accepted() {
        assert!(parse("  \n{}\t  ", 0).is_ok());
    }

    #[test]
    fn duplicate_keys_strict_and_lenient() {
        let json = r#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}"#;
        assert!(matches!(
            parse(json, 2),
            Err(HeaderError::DuplicateKey { .. })
        ));
        let h = Header::parse_file_bytes(&file(json, 2), &ParseOptions::lenient()).unwrap();
        assert_eq!(h.get("a").unwrap().shape, vec![2]);
    }

    #[test]
    fn strict_refuses_control_characters_in_metadata() {
        // issue 21: `\x1b[2J\x1b]0;PWNED\x07` in a metadata value
        let json = r#"{"__metadata__":{"note":"\u001b[2J\u001b]0;PWNED\u0007"},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}"#;
        assert_eq!(
            parse(json, 1).unwrap_err(),
            HeaderError::MetadataControlCharacter {
                key: "note".into(),
                code: 0x1b
            }
        );
        let key = r#"{"__metadata__":{"a\rb":"x"}}"#;
        assert!(matches!(
            parse(key, 0),
            Err(HeaderError::MetadataControlCharacter { code: 0x0d, .. })
        ));
        let lenient = Header::parse_file_bytes(&file(json, 1), &ParseOptions::lenient()).unwrap();
        assert_eq!(
            lenient.metadata().unwrap()["note"],
            "\x1b[2J\x1b]0;PWNED\x07"
        );
        // tabs and line feeds are text
        let text = r#"{"__metadata__":{"license":"line 1\n\tline 2"}}"#;
        assert!(parse(text, 0).is_ok());
    }

    #[test]
    fn lenient_accepts_control_characters() {
        let json = r#"{"a\u0000":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}"#;
        assert!(matches!(
            parse(json, 1),
            Err(HeaderError::ControlCharacter { code: 0, .. })
        ));
        assert!(Header::parse_file_bytes(&file(json, 1), &ParseOptions::lenient()).is_ok());
    }
}
