//! A one-pass JSON reader specialised for safetensors headers.
//!
//! It keeps what validation needs: every top-level and metadata key in
//! document order (so duplicates are seen; generic JSON maps keep only the
//! last), and for each value just enough to name what is wrong with it.
//! Tensor entries are decoded straight into dtype, shape and offsets without
//! building a value tree, and strings without escapes are borrowed. The
//! grammar is RFC 8259's; nesting is limited to 128 levels, as in serde_json,
//! which the reference uses.

use std::borrow::Cow;

use crate::Dtype;

/// The JSON type of a value, for messages.
pub(crate) type Kind = &'static str;

/// What the header's top-level value was. For an object, its entries went,
/// in document order, to the callback given to [`parse`].
pub(crate) enum Top {
    Object,
    Other(Kind),
}

/// One top-level value: metadata or a tensor entry.
pub(crate) enum Entry {
    Metadata(Meta),
    Tensor(RawTensor),
}

/// The `__metadata__` value.
pub(crate) enum Meta {
    Null,
    Object(Vec<(String, MetaValue)>),
    Other(Kind),
}

/// A metadata value.
pub(crate) enum MetaValue {
    String(String),
    Other(Kind),
}

/// A tensor entry.
pub(crate) enum RawTensor {
    Object(RawFields),
    Other(Kind),
}

/// The fields of a tensor entry; the first repeated field is remembered.
#[derive(Default)]
pub(crate) struct RawFields {
    pub dtype: Option<Field<DtypeName>>,
    pub shape: Option<Field<Vec<usize>>>,
    pub data_offsets: Option<Field<Offsets>>,
    pub duplicate: Option<String>,
}

/// A dtype field: a known dtype, or the unknown name as written.
pub(crate) enum DtypeName {
    Known(Dtype),
    Unknown(String),
}

/// `data_offsets`: exactly two non-negative integers, or not.
pub(crate) enum Offsets {
    Pair(usize, usize),
    Malformed,
}

/// A field's value, or the wrong type it had.
pub(crate) enum Field<T> {
    Ok(T),
    Wrong,
}

/// A syntax error at a byte offset of the header.
#[derive(Debug)]
pub(crate) struct JsonError {
    pub message: &'static str,
    pub offset: usize,
}

impl JsonError {
    /// 1-based line and column of the error in `text`.
    pub(crate) fn line_column(&self, text: &str) -> (usize, usize) {
        let before = text
            .as_bytes()
            .get(..self.offset)
            .unwrap_or(text.as_bytes());
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let column = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
        (line, column)
    }
}

const MAX_DEPTH: usize = 128;

type R<T> = Result<T, JsonError>;

/// Parses header text, handing each top-level entry to `on_entry` as soon as
/// it is read (so no list of raw entries is built).
pub(crate) fn parse(text: &str, on_entry: impl FnMut(String, Entry)) -> R<Top> {
    let mut p = Parser {
        text,
        b: text.as_bytes(),
        i: 0,
        depth: 0,
    };
    p.ws();
    let top = p.top(on_entry)?;
    p.ws();
    if p.i != p.b.len() {
        return Err(p.err("trailing characters"));
    }
    Ok(top)
}

struct Parser<'a> {
    text: &'a str,
    b: &'a [u8],
    i: usize,
    depth: usize,
}

/// A number in `shape` or `data_offsets`: only non-negative integers count.
enum Num {
    UInt(usize),
    Other,
}

impl<'a> Parser<'a> {
    fn err(&self, message: &'static str) -> JsonError {
        JsonError {
            message,
            offset: self.i,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8, message: &'static str) -> R<()> {
        self.ws();
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else if self.peek().is_none() {
            Err(self.err("EOF while parsing"))
        } else {
            Err(self.err(message))
        }
    }

    fn enter(&mut self) -> R<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err("recursion limit exceeded"));
        }
        Ok(())
    }

    /// Walks the members of an object whose `{` is next, calling `member`
    /// with each key once the parser stands on the value.
    fn object(&mut self, mut member: impl FnMut(&mut Self, Cow<'a, str>) -> R<()>) -> R<()> {
        self.enter()?;
        self.i += 1; // '{'
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            self.depth -= 1;
            return Ok(());
        }
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err(if self.peek().is_none() {
                    self.err("EOF while parsing an object")
                } else {
                    self.err("key must be a string")
                });
            }
            let key = self.string()?;
            self.eat(b':', "expected `:`")?;
            self.ws();
            member(self, key)?;
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    self.depth -= 1;
                    return Ok(());
                }
                None => return Err(self.err("EOF while parsing an object")),
                Some(_) => return Err(self.err("expected `,` or `}`")),
            }
        }
    }

    /// Walks the elements of an array whose `[` is next.
    fn array(&mut self, mut element: impl FnMut(&mut Self) -> R<()>) -> R<()> {
        self.enter()?;
        self.i += 1; // '['
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            self.depth -= 1;
            return Ok(());
        }
        loop {
            self.ws();
            element(self)?;
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    self.depth -= 1;
                    return Ok(());
                }
                None => return Err(self.err("EOF while parsing a list")),
                Some(_) => return Err(self.err("expected `,` or `]`")),
            }
        }
    }

    /// Parses any value and returns only its kind.
    fn skip(&mut self) -> R<Kind> {
        self.ws();
        match self.peek() {
            Some(b'{') => {
                self.object(|p, _| p.skip().map(drop))?;
                Ok("object")
            }
            Some(b'[') => {
                self.array(|p| p.skip().map(drop))?;
                Ok("array")
            }
            Some(b'"') => {
                self.string()?;
                Ok("string")
            }
            Some(b't') => self.literal(b"true", "boolean"),
            Some(b'f') => self.literal(b"false", "boolean"),
            Some(b'n') => self.literal(b"null", "null"),
            Some(b'-' | b'0'..=b'9') => {
                self.number()?;
                Ok("number")
            }
            None => Err(self.err("EOF while parsing a value")),
            Some(_) => Err(self.err("expected value")),
        }
    }

    fn literal(&mut self, word: &'static [u8], kind: Kind) -> R<Kind> {
        let end = self.i + word.len();
        if self.b.get(self.i..end) == Some(word) {
            self.i = end;
            Ok(kind)
        } else {
            Err(self.err("expected value"))
        }
    }

    /// Parses a number per the JSON grammar.
    fn number(&mut self) -> R<Num> {
        let negative = self.peek() == Some(b'-');
        if negative {
            self.i += 1;
        }
        let mut value: Option<usize> = Some(0);
        match self.peek() {
            Some(b'0') => {
                self.i += 1;
                if let Some(b'0'..=b'9') = self.peek() {
                    return Err(self.err("invalid number"));
                }
            }
            Some(b'1'..=b'9') => {
                // Up to 19 digits cannot overflow a u64; past that, checked.
                let rest = self.b.get(self.i..).unwrap_or_default();
                let mut n = 0usize;
                let mut fast: u64 = 0;
                for &d in rest.iter().take(19) {
                    if !d.is_ascii_digit() {
                        break;
                    }
                    fast = fast * 10 + u64::from(d - b'0');
                    n += 1;
                }
                value = usize::try_from(fast).ok();
                for &d in rest.get(n..).unwrap_or_default() {
                    if !d.is_ascii_digit() {
                        break;
                    }
                    value = value
                        .and_then(|v| v.checked_mul(10))
                        .and_then(|v| v.checked_add(usize::from(d - b'0')));
                    n += 1;
                }
                self.i += n;
            }
            _ => return Err(self.err("invalid number")),
        }
        let mut integer = true;
        if self.peek() == Some(b'.') {
            integer = false;
            self.i += 1;
            self.digits()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            integer = false;
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            self.digits()?;
        }
        Ok(match (integer, negative, value) {
            // `-0` is the integer 0 to serde_json, and so to the reference.
            (true, false, Some(v)) | (true, true, Some(v @ 0)) => Num::UInt(v),
            _ => Num::Other,
        })
    }

    fn digits(&mut self) -> R<()> {
        let start = self.i;
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        if self.i == start {
            return Err(self.err("invalid number"));
        }
        Ok(())
    }

    /// Length of the run of plain string bytes at the cursor: up to the next
    /// quote, backslash or control character.
    fn plain_run(&self) -> usize {
        let rest = self.b.get(self.i..).unwrap_or_default();
        let end = memchr::memchr2(b'"', b'\\', rest).unwrap_or(rest.len());
        let run = rest.get(..end).unwrap_or_default();
        // Raw control characters are not allowed in JSON strings; a vectorised
        // minimum finds one without a branch per byte.
        if run.iter().fold(u8::MAX, |m, &c| m.min(c)) < 0x20 {
            return run.iter().position(|&c| c < 0x20).unwrap_or(end);
        }
        end
    }

    /// Parses a string whose `"` is next; borrowed when it has no escapes.
    fn string(&mut self) -> R<Cow<'a, str>> {
        self.i += 1; // opening quote
        let start = self.i;
        self.i += self.plain_run();
        if self.peek() == Some(b'"') {
            let s = self.text.get(start..self.i).unwrap_or_default();
            self.i += 1;
            return Ok(Cow::Borrowed(s));
        }
        let mut out = String::from(self.text.get(start..self.i).unwrap_or_default());
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.i += 1;
                    return Ok(Cow::Owned(out));
                }
                Some(b'\\') => {
                    self.i += 1;
                    let escaped = match self.peek() {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            self.i += 1;
                            let c = self.unicode_escape()?;
                            out.push(c);
                            let run = self.i;
                            self.i += self.plain_run();
                            out.push_str(self.text.get(run..self.i).unwrap_or_default());
                            continue;
                        }
                        None => return Err(self.err("EOF while parsing a string")),
                        Some(_) => return Err(self.err("invalid escape")),
                    };
                    self.i += 1;
                    out.push(escaped);
                    let run = self.i;
                    self.i += self.plain_run();
                    out.push_str(self.text.get(run..self.i).unwrap_or_default());
                }
                None => return Err(self.err("EOF while parsing a string")),
                Some(_) => return Err(self.err("control character in string")),
            }
        }
    }

    fn hex4(&mut self) -> R<u16> {
        let digits = self
            .b
            .get(self.i..self.i + 4)
            .ok_or_else(|| self.err("EOF while parsing a string"))?;
        let mut v = 0u16;
        for &d in digits {
            let n = (d as char)
                .to_digit(16)
                .ok_or_else(|| self.err("invalid escape"))?;
            v = v * 16 + n as u16;
        }
        self.i += 4;
        Ok(v)
    }

    /// After `\u`: one code point, joining surrogate pairs.
    fn unicode_escape(&mut self) -> R<char> {
        let first = self.hex4()?;
        let code = match first {
            0xD800..=0xDBFF => {
                if self.b.get(self.i..self.i + 2) != Some(b"\\u") {
                    return Err(self.err("lone leading surrogate in hex escape"));
                }
                self.i += 2;
                let second = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return Err(self.err("lone leading surrogate in hex escape"));
                }
                0x10000 + ((u32::from(first) - 0xD800) << 10) + (u32::from(second) - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(self.err("lone trailing surrogate in hex escape")),
            other => u32::from(other),
        };
        char::from_u32(code).ok_or_else(|| self.err("invalid unicode code point"))
    }

    fn top(&mut self, mut on_entry: impl FnMut(String, Entry)) -> R<Top> {
        if self.peek() != Some(b'{') {
            return Ok(Top::Other(self.skip()?));
        }
        self.object(|p, key| {
            let entry = if key == crate::METADATA_KEY {
                Entry::Metadata(p.meta()?)
            } else {
                Entry::Tensor(p.tensor()?)
            };
            on_entry(key.into_owned(), entry);
            Ok(())
        })?;
        Ok(Top::Object)
    }

    fn meta(&mut self) -> R<Meta> {
        match self.peek() {
            Some(b'{') => {
                let mut entries = Vec::new();
                self.object(|p, key| {
                    let value = if p.peek() == Some(b'"') {
                        MetaValue::String(p.string()?.into_owned())
                    } else {
                        MetaValue::Other(p.skip()?)
                    };
                    entries.push((key.into_owned(), value));
                    Ok(())
                })?;
                Ok(Meta::Object(entries))
            }
            Some(b'n') => {
                self.literal(b"null", "null")?;
                Ok(Meta::Null)
            }
            _ => Ok(Meta::Other(self.skip()?)),
        }
    }

    fn tensor(&mut self) -> R<RawTensor> {
        if self.peek() != Some(b'{') {
            return Ok(RawTensor::Other(self.skip()?));
        }
        let mut fields = RawFields::default();
        self.object(|p, key| {
            let repeated = match &*key {
                "dtype" => {
                    let v = if p.peek() == Some(b'"') {
                        let s = p.string()?;
                        Field::Ok(match Dtype::from_name(&s) {
                            Some(d) => DtypeName::Known(d),
                            None => DtypeName::Unknown(s.into_owned()),
                        })
                    } else {
                        p.skip()?;
                        Field::Wrong
                    };
                    fields.dtype.replace(v).is_some()
                }
                "shape" => {
                    let mut dims = Vec::with_capacity(4);
                    let v = p.integers(|_, d| dims.push(d))?.map(|_| dims);
                    fields.shape.replace(v).is_some()
                }
                "data_offsets" => {
                    let mut pair = [0usize; 2];
                    let v = p
                        .integers(|i, v| {
                            if let Some(slot) = pair.get_mut(i) {
                                *slot = v;
                            }
                        })?
                        .map(|count| match count {
                            2 => Offsets::Pair(pair[0], pair[1]),
                            _ => Offsets::Malformed,
                        });
                    fields.data_offsets.replace(v).is_some()
                }
                // Unknown fields are ignored, as by the reference.
                _ => {
                    p.skip()?;
                    false
                }
            };
            if repeated && fields.duplicate.is_none() {
                fields.duplicate = Some(key.into_owned());
            }
            Ok(())
        })?;
        Ok(RawTensor::Object(fields))
    }

    /// An array of non-negative integers, each handed to `sink` with its
    /// index; returns the count, or `Wrong` if it is not an array or an
    /// element is not such an integer.
    fn integers(&mut self, mut sink: impl FnMut(usize, usize)) -> R<Field<usize>> {
        if self.peek() != Some(b'[') {
            self.skip()?;
            return Ok(Field::Wrong);
        }
        let mut count = 0usize;
        let mut valid = true;
        self.array(|p| {
            let n = match p.peek() {
                Some(b'-' | b'0'..=b'9') => p.number()?,
                _ => {
                    p.skip()?;
                    Num::Other
                }
            };
            match n {
                Num::UInt(v) if valid => sink(count, v),
                Num::UInt(_) => {}
                Num::Other => valid = false,
            }
            count += 1;
            Ok(())
        })?;
        Ok(if valid {
            Field::Ok(count)
        } else {
            Field::Wrong
        })
    }
}

impl<T> Field<T> {
    fn map<U>(self, f: impl FnOnce(T) -> U) -> Field<U> {
        match self {
            Field::Ok(v) => Field::Ok(f(v)),
            Field::Wrong => Field::Wrong,
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests build fixtures with std::fs.
mod tests {
    use super::*;

    /// Every input serde_json accepts or rejects (decoding strings), we
    /// accept or reject.
    #[test]
    fn agrees_with_serde_json_on_syntax() {
        let cases = [
            "{}",
            " {} ",
            "{\"a\":1}",
            "{\"a\":[1,2,3]}",
            "{\"a\":{\"b\":[]}}",
            "[]",
            "1",
            "-0",
            "\"s\"",
            "true",
            "null",
            "{\"a\":1,}",
            "{\"a\" 1}",
            "{a:1}",
            "{\"a\":01}",
            "{\"a\":1.}",
            "{\"a\":.5}",
            "{\"a\":1e}",
            "{\"a\":1e+5}",
            "{\"a\":-}",
            "{\"a\":\"\\x\"}",
            "{\"a\":\"\\ud800\"}",
            "{\"a\":\"\\ud83d\\ude00\"}",
            "{\"a\":\"\\u00e9\"}",
            "{\"a\":tru}",
            "{\"a\":\"\t\"}",
            "{} x",
            "{\"a\":[1,]}",
            "{\"a\":[,1]}",
            "",
            "{",
            "{\"a\":\"",
            "{\"a\":\"\\udc00\"}",
            "{\"a\":[[[[]]]]}",
            "{\"a\":1}{}",
        ];
        for text in cases {
            let ours = parse(text, |_, _| {}).is_ok();
            let theirs = serde_json::from_str::<serde_json::Value>(text).is_ok();
            assert_eq!(ours, theirs, "{text:?}");
        }
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(200), "]".repeat(200));
        assert!(parse(&deep, |_, _| {}).is_err());
        assert!(serde_json::from_str::<serde_json::Value>(&deep).is_err());
    }

    #[test]
    fn escapes_decode() {
        let mut keys = Vec::new();
        let text = r#"{"a\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00":3}"#;
        assert!(matches!(parse(text, |k, _| keys.push(k)), Ok(Top::Object)));
        assert_eq!(keys[0], "a\"\\/\u{8}\u{c}\n\r\té😀");
    }
}
