//! GGUF metadata: the key/value section that precedes the tensor infos,
//! read in one bounds-checked pass (versions 1 to 3, either byte order).
//! Only string values are kept: chat templates live there.

/// A string value of the metadata (array items are named `key[i]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GgufString {
    pub key: String,
    pub value: String,
    /// File offset of the value's bytes.
    pub offset: u64,
}

/// What the metadata walk found; `error` says where it broke, if it did.
#[derive(Debug, Default)]
pub(crate) struct GgufMeta {
    pub strings: Vec<GgufString>,
    pub error: Option<(u64, &'static str)>,
}

/// Key/value pairs accepted (llama.cpp writes a few dozen).
const MAX_KV: u64 = 1 << 20;
/// Strings kept (a vocabulary array holds hundreds of thousands: those are
/// walked, not kept, unless they look like templates).
const MAX_KEPT: usize = 10_000;

struct Rd<'a> {
    d: &'a [u8],
    p: usize,
    be: bool,
    v1: bool,
}

impl<'a> Rd<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let e = self.p.checked_add(n)?;
        let s = self.d.get(self.p..e)?;
        self.p = e;
        Some(s)
    }
    fn u32(&mut self) -> Option<u32> {
        let b: [u8; 4] = self.take(4)?.try_into().ok()?;
        Some(if self.be {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }
    fn u64(&mut self) -> Option<u64> {
        let b: [u8; 8] = self.take(8)?.try_into().ok()?;
        Some(if self.be {
            u64::from_be_bytes(b)
        } else {
            u64::from_le_bytes(b)
        })
    }
    /// A count or length: u32 in version 1, u64 after.
    fn len(&mut self) -> Option<u64> {
        if self.v1 {
            self.u32().map(u64::from)
        } else {
            self.u64()
        }
    }
    /// A string: its bytes and their offset.
    fn string(&mut self) -> Option<(&'a [u8], usize)> {
        let n = usize::try_from(self.len()?).ok()?;
        let at = self.p;
        Some((self.take(n)?, at))
    }
}

fn scalar_size(t: u32) -> Option<usize> {
    Some(match t {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        10..=12 => 8,
        _ => return None,
    })
}

/// Whether a string may be a Jinja template worth keeping.
fn templ(key: &str, v: &[u8]) -> bool {
    key.contains("chat_template")
        || memchr::memmem::find(v, b"{%").is_some()
        || memchr::memmem::find(v, b"{{").is_some()
}

/// Reads one value of type `t`; strings go to `out`.
fn value(r: &mut Rd<'_>, t: u32, key: &str, out: &mut GgufMeta, depth: usize) -> Option<()> {
    match t {
        8 => {
            let (s, at) = r.string()?;
            if out.strings.len() < MAX_KEPT || templ(key, s) {
                out.strings.push(GgufString {
                    key: key.to_string(),
                    value: String::from_utf8_lossy(s).into_owned(),
                    offset: at as u64,
                });
            }
        }
        9 => {
            if depth > 8 {
                return None;
            }
            let it = r.u32()?;
            let n = r.len()?;
            // Every item takes at least one byte: a count past the data is a lie.
            if n > (r.d.len() - r.p) as u64 {
                return None;
            }
            if let Some(sz) = scalar_size(it) {
                let total = usize::try_from(n).ok()?.checked_mul(sz)?;
                r.take(total)?;
            } else {
                for i in 0..n {
                    let k = if it == 8 {
                        // Vocabulary arrays: keep only what looks like a template.
                        let save = r.p;
                        let (s, _) = r.string()?;
                        let keep = templ(key, s);
                        r.p = save;
                        if !keep {
                            r.string()?;
                            continue;
                        }
                        format!("{key}[{i}]")
                    } else {
                        format!("{key}[{i}]")
                    };
                    value(r, it, &k, out, depth + 1)?;
                }
            }
        }
        _ => {
            r.take(scalar_size(t)?)?;
        }
    }
    Some(())
}

/// Reads the metadata of the GGUF file `data` (which starts with `GGUF`).
pub(crate) fn metadata(data: &[u8]) -> GgufMeta {
    let mut out = GgufMeta::default();
    let Some(vb) = data.get(4..8) else {
        out.error = Some((4, "file ends inside the header"));
        return out;
    };
    let le = u32::from_le_bytes([vb[0], vb[1], vb[2], vb[3]]);
    let be = le > 0xFFFF;
    let version = if be { le.swap_bytes() } else { le };
    if !(1..=3).contains(&version) {
        out.error = Some((4, "unknown GGUF version"));
        return out;
    }
    let mut r = Rd {
        d: data,
        p: 8,
        be,
        v1: version == 1,
    };
    let header = (|| {
        let _tensors = r.len()?;
        r.len()
    })();
    // A stub that ends before its counts holds no metadata to hide anything in.
    let Some(n_kv) = header else {
        return out;
    };
    if n_kv > MAX_KV {
        out.error = Some((8, "implausible key/value count"));
        return out;
    }
    for _ in 0..n_kv {
        let at = r.p as u64;
        let ok = (|| {
            let (k, _) = r.string()?;
            let key = String::from_utf8_lossy(k).into_owned();
            let t = r.u32()?;
            value(&mut r, t, &key, &mut out, 0)
        })();
        if ok.is_none() {
            out.error = Some((at, "key/value pair cannot be read"));
            break;
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests build fixtures with std::fs.
mod tests {
    use super::*;

    fn s(v: &mut Vec<u8>, x: &str) {
        v.extend_from_slice(&(x.len() as u64).to_le_bytes());
        v.extend_from_slice(x.as_bytes());
    }

    #[test]
    fn reads_strings_and_skips_arrays() {
        let mut d = b"GGUF".to_vec();
        d.extend_from_slice(&3u32.to_le_bytes());
        d.extend_from_slice(&0u64.to_le_bytes());
        d.extend_from_slice(&3u64.to_le_bytes());
        s(&mut d, "general.architecture");
        d.extend_from_slice(&8u32.to_le_bytes());
        s(&mut d, "llama");
        s(&mut d, "tokenizer.ggml.scores");
        d.extend_from_slice(&9u32.to_le_bytes());
        d.extend_from_slice(&6u32.to_le_bytes());
        d.extend_from_slice(&2u64.to_le_bytes());
        d.extend_from_slice(&[0; 8]);
        s(&mut d, "tokenizer.chat_template");
        d.extend_from_slice(&8u32.to_le_bytes());
        s(&mut d, "{{ x }}");
        let m = metadata(&d);
        assert!(m.error.is_none());
        assert_eq!(m.strings.len(), 2);
        assert_eq!(m.strings[1].key, "tokenizer.chat_template");
        assert_eq!(m.strings[1].value, "{{ x }}");
        let mut cut = d.clone();
        cut.truncate(d.len() - 3);
        assert!(metadata(&cut).error.is_some());
    }
}
