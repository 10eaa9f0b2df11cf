//! Judging Jinja chat templates (GGUF `tokenizer.chat_template`,
//! `tokenizer_config.json`, `chat_template.jinja`).
//!
//! Loaders render chat templates with Jinja2's sandbox; known escapes reach
//! Python internals through dunder attributes (`"".__class__.__mro__`),
//! Jinja's global helpers (`cycler.__init__.__globals__`, `lipsum`, `self`)
//! or names built from pieces (`"__cla" ~ "ss__"`, `|attr(...)`). Ordinary
//! templates do none of this: they index messages, call string methods and
//! use `namespace(...)` as a value holder. The template is tokenized, never
//! rendered.

use crate::severity::Severity;

/// One offending spot in a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TemplateHit {
    /// High when Python internals are reached, critical when they are also called.
    pub severity: Severity,
    /// What was found.
    pub what: String,
    /// The template code (the `{{ }}` / `{% %}` tag), shortened.
    pub snippet: String,
    /// Byte offset of the tag in the template text.
    pub offset: usize,
}

/// Names that reach Python internals from any object.
const ESCAPE_DUNDERS: &[&str] = &[
    "__class__",
    "__mro__",
    "__base__",
    "__bases__",
    "__subclasses__",
    "__globals__",
    "__init__",
    "__builtins__",
    "__import__",
    "__getattribute__",
    "__dict__",
    "__code__",
    "__func__",
    "__self__",
    "__module__",
    "__reduce__",
    "__reduce_ex__",
    "__loader__",
    "__spec__",
];

/// Jinja globals (and Flask ones) whose attributes lead to Python internals.
const GADGETS: &[&str] = &[
    "cycler",
    "joiner",
    "namespace",
    "lipsum",
    "self",
    "request",
    "config",
    "url_for",
    "get_flashed_messages",
    "range",
    "dict",
];

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    /// Decoded string literal; whether a numeric escape wrote a name character.
    Str(String, bool),
    Punct(u8),
    Other,
}

/// Tokenizes Jinja expression code from `s[i..]` until the closing `end`
/// delimiter outside a string. Returns the tokens and where the tag ends.
fn tokens(s: &[u8], mut i: usize, end: &[u8]) -> (Vec<Tok>, usize) {
    let mut out = Vec::new();
    while i < s.len() {
        let c = s[i];
        if s[i..].starts_with(end) {
            return (out, i + end.len());
        }
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let st = i;
            while i < s.len() && (s[i].is_ascii_alphanumeric() || s[i] == b'_') {
                i += 1;
            }
            out.push(Tok::Ident(String::from_utf8_lossy(&s[st..i]).into_owned()));
        } else if c.is_ascii_digit() {
            while i < s.len() && (s[i].is_ascii_alphanumeric() || s[i] == b'.' || s[i] == b'_') {
                i += 1;
            }
            out.push(Tok::Other);
        } else if c == b'\'' || c == b'"' {
            let (lit, esc, next) = string_literal(s, i);
            out.push(Tok::Str(lit, esc));
            i = next;
        } else {
            out.push(Tok::Punct(c));
            i += 1;
        }
    }
    (out, i)
}

/// Decodes the Python-style string literal at `s[i]` (its quote); returns
/// the text, whether a numeric escape wrote a name character, and the index
/// past it.
fn string_literal(s: &[u8], i: usize) -> (String, bool, usize) {
    let q = s[i];
    let mut j = i + 1;
    let mut out = Vec::new();
    let mut esc = false;
    while j < s.len() && s[j] != q {
        if s[j] == b'\\' && j + 1 < s.len() {
            let e = s[j + 1];
            let hex = |n: usize| -> Option<u32> {
                let t = s.get(j + 2..j + 2 + n)?;
                u32::from_str_radix(std::str::from_utf8(t).ok()?, 16).ok()
            };
            let (val, len) = match e {
                b'x' => (hex(2), 4),
                b'u' => (hex(4), 6),
                b'U' => (hex(8), 10),
                b'0'..=b'7' => {
                    let mut k = j + 1;
                    let mut v = 0u32;
                    while k < s.len() && k < j + 4 && (b'0'..=b'7').contains(&s[k]) {
                        v = v * 8 + u32::from(s[k] - b'0');
                        k += 1;
                    }
                    (Some(v), k - j)
                }
                b'n' => (Some(u32::from(b'\n')), 2),
                b't' => (Some(u32::from(b'\t')), 2),
                _ => (Some(u32::from(e)), 2),
            };
            let numeric = matches!(e, b'x' | b'u' | b'U' | b'0'..=b'7');
            if let Some(ch) = val.and_then(char::from_u32) {
                // `\x5f` for `_`: a name hidden from plain-text checks.
                esc |= numeric && (ch == '_' || ch.is_ascii_alphanumeric());
                let mut buf = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
            }
            j += len;
        } else {
            out.push(s[j]);
            j += 1;
        }
    }
    (
        String::from_utf8_lossy(&out).into_owned(),
        esc,
        (j + 1).min(s.len()),
    )
}

fn is_dunder(s: &str) -> bool {
    s.len() > 4
        && s.starts_with("__")
        && s.ends_with("__")
        && s[2..s.len() - 2]
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// A dunder name anywhere inside a string (`"{0.__class__}"`, `"x.__globals__"`).
fn contains_dunder(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut i = 0;
    while let Some(p) = s.get(i..).and_then(|r| r.find("__")) {
        let st = i + p;
        let mut e = st + 2;
        while e < b.len() && (b[e].is_ascii_alphanumeric() || b[e] == b'_') {
            e += 1;
        }
        let w = &s[st..e];
        if is_dunder(w) {
            return Some(w.to_string());
        }
        i = st + 2;
    }
    None
}

/// Judges the code of one tag: what reaches Python internals first, and
/// whether what it reaches is then called.
fn judge_tag(toks: &[Tok]) -> Option<(String, bool)> {
    let mut what: Option<String> = None;
    let mut reached_at: Option<usize> = None;
    let mut note = |w: String, at: usize, what: &mut Option<String>| {
        if what.is_none() {
            *what = Some(w);
        }
        if reached_at.is_none() {
            reached_at = Some(at);
        }
    };
    for (i, t) in toks.iter().enumerate() {
        let prev = i.checked_sub(1).and_then(|p| toks.get(p));
        let next = toks.get(i + 1);
        match t {
            Tok::Ident(name) if is_dunder(name) => {
                note(format!("attribute {name}"), i, &mut what);
            }
            Tok::Ident(name) if prev == Some(&Tok::Punct(b'.')) && name.starts_with('_') => {
                note(format!("private attribute {name}"), i, &mut what);
            }
            Tok::Ident(name)
                if GADGETS.contains(&name.as_str())
                    && prev != Some(&Tok::Punct(b'.'))
                    && matches!(next, Some(Tok::Punct(b'.' | b'[' | b'|'))) =>
            {
                // `namespace(...)`, `range(3)` are ordinary; their attributes are not.
                if name == "range" || name == "dict" {
                    continue;
                }
                note(
                    format!("attribute of the Jinja global {name}"),
                    i,
                    &mut what,
                );
            }
            Tok::Ident(name)
                if matches!(name.as_str(), "self" | "lipsum" | "cycler" | "joiner")
                    && prev != Some(&Tok::Punct(b'.')) =>
            {
                note(format!("Jinja global {name}"), i, &mut what);
            }
            Tok::Ident(name) if name == "attr" && prev == Some(&Tok::Punct(b'|')) => {
                note(
                    "attr filter (attribute by computed name)".into(),
                    i,
                    &mut what,
                );
            }
            Tok::Str(s, esc) => {
                if let Some(d) = contains_dunder(s) {
                    note(format!("name {d} in a string"), i, &mut what);
                } else if *esc {
                    note(
                        "name characters written as escape sequences".into(),
                        i,
                        &mut what,
                    );
                } else if s.contains("%c") && matches!(next, Some(Tok::Punct(b'%' | b'|'))) {
                    note("characters built with %c formatting".into(), i, &mut what);
                } else if !s.is_empty()
                    && (s.bytes().all(|c| c == b'_') || s.starts_with("__") || s.ends_with("__"))
                {
                    let glued = matches!(prev, Some(Tok::Punct(b'~' | b'+' | b'*')))
                        || matches!(next, Some(Tok::Punct(b'~' | b'+' | b'*' | b']' | b',')));
                    if glued {
                        note(format!("name built from the piece {s:?}"), i, &mut what);
                    }
                }
            }
            _ => {}
        }
    }
    let what = what?;
    let start = reached_at.unwrap_or(0);
    // A call of what was reached: `...__subclasses__()`, `....popen('id')`.
    // A filter (`|attr(...)`, `|join(...)`) is Jinja's, not a reached callable.
    let called = (start..toks.len().saturating_sub(1)).any(|k| {
        let filter = matches!(&toks[k], Tok::Ident(_))
            && k > 0
            && toks.get(k - 1) == Some(&Tok::Punct(b'|'));
        matches!(
            &toks[k],
            Tok::Ident(_) | Tok::Punct(b']') | Tok::Punct(b')')
        ) && toks.get(k + 1) == Some(&Tok::Punct(b'('))
            && !filter
    });
    let escapes = toks[start..].iter().any(|t| match t {
        Tok::Ident(n) => ESCAPE_DUNDERS.contains(&n.as_str()) || n.starts_with('_'),
        Tok::Str(s, _) => contains_dunder(s).is_some() || s.contains('_'),
        _ => false,
    });
    Some((what, called && escapes))
}

fn snippet(text: &str, st: usize, en: usize) -> String {
    let raw = text.get(st..en).unwrap_or_default();
    let flat: String = raw
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut s: String = flat.chars().take(160).collect();
    if flat.chars().count() > 160 {
        s.push('…');
    }
    s
}

/// Every tag of `text` that reaches Python internals, in order.
pub(crate) fn judge(text: &str) -> Vec<TemplateHit> {
    let s = text.as_bytes();
    let mut hits = Vec::new();
    let mut i = 0usize;
    let mut raw = false;
    while let Some(p) = memchr::memchr(b'{', s.get(i..).unwrap_or_default()) {
        let st = i + p;
        let Some(&kind) = s.get(st + 1) else { break };
        let end: &[u8] = match kind {
            b'{' => b"}}",
            b'%' => b"%}",
            b'#' => {
                i = memchr::memmem::find(&s[st..], b"#}").map_or(s.len(), |e| st + e + 2);
                continue;
            }
            _ => {
                i = st + 1;
                continue;
            }
        };
        let (toks, next) = tokens(s, st + 2, end);
        i = next.max(st + 2);
        let words: Vec<&str> = toks
            .iter()
            .filter_map(|t| match t {
                Tok::Ident(w) => Some(w.as_str()),
                _ => None,
            })
            .collect();
        if kind == b'%' {
            match words.first() {
                Some(&"raw") => raw = true,
                Some(&"endraw") => raw = false,
                _ => {}
            }
        }
        if raw {
            continue;
        }
        if let Some((what, called)) = judge_tag(&toks) {
            hits.push(TemplateHit {
                severity: if called {
                    Severity::Critical
                } else {
                    Severity::High
                },
                what,
                snippet: snippet(text, st, i.min(s.len())),
                offset: st,
            });
        }
    }
    hits
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests build fixtures with std::fs.
mod tests {
    use super::*;

    #[test]
    fn escapes_are_found() {
        for (t, sev) in [
            (
                "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
                Severity::Critical,
            ),
            (
                "{{ ''.__class__.__mro__[1].__subclasses__() }}",
                Severity::Critical,
            ),
            ("{{ self.__class__ }}", Severity::High),
            ("{{ lipsum.__globals__['os'] }}", Severity::High),
            (
                "{% set x = ''|attr('__cla' ~ 'ss__') %}{{ x }}",
                Severity::High,
            ),
            ("{{ ''['\\x5f\\x5fclass\\x5f\\x5f'] }}", Severity::High),
            (
                "{{ namespace.__init__.__globals__['__builtins__']['__import__']('os').system('id') }}",
                Severity::Critical,
            ),
            ("{{ request.application }}", Severity::High),
            ("{{ config.items() }}", Severity::High),
            ("{{ joiner._x }}", Severity::High),
        ] {
            let h = judge(t);
            assert!(!h.is_empty(), "{t}");
            assert_eq!(h[0].severity, sev, "{t}: {h:?}");
        }
    }

    #[test]
    fn ordinary_templates_are_clean() {
        let t = "{%- set ns = namespace(found=false) -%}{%- for message in messages -%}\
                 {%- if message['role'] == 'system' -%}{%- set ns.found = true -%}{%- endif -%}\
                 {{ '<|im_start|>' + message['role'] + '\\n' + message['content'] | trim + '<|im_end|>\\n' }}\
                 {%- endfor -%}{# a comment with __class__ #}{% raw %}{{ x.__class__ }}{% endraw %}";
        assert_eq!(judge(t), vec![]);
    }
}
