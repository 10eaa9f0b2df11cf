//! Untrusted text on a terminal: names and metadata come from files other
//! people wrote, and a control character in them (`ESC [2J`, a carriage
//! return, a bell) would act on the reader's terminal instead of being shown.
//! [`escape_control`] makes such text inert for human output; JSON output
//! stays exact.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` changes what a terminal shows rather than being shown: C0
/// controls, DEL, C1 controls (U+0080..U+009F, of which U+009B is a CSI on
/// some terminals) and the bidirectional overrides and isolates that reorder
/// text (U+200E, U+200F, U+202A..U+202E, U+2066..U+2069).
pub fn is_terminal_control(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every [`is_terminal_control`] character written as an escape
/// (`\n`, `\r`, `\t`, `\\`-free `\u{1b}` ...), so it prints as one inert
/// line. Text without such characters is returned as is.
///
/// ```
/// use safeweights::escape_control;
/// assert_eq!(escape_control("plain"), "plain");
/// assert_eq!(escape_control("a\x1b[2Jb\r\n"), "a\\u{1b}[2Jb\\r\\n");
/// ```
pub fn escape_control(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_terminal_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_terminal_control(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// [`escape_control`], but line feeds are kept: for text whose lines are
/// meant to be separate (a message of several lines).
pub fn escape_control_keep_newlines(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c != '\n' && is_terminal_control(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for (i, line) in s.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&escape_control(line));
    }
    Cow::Owned(out)
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests build fixtures with std::fs.
mod tests {
    use super::*;

    #[test]
    fn escapes_what_acts_on_a_terminal() {
        assert!(matches!(escape_control("layer.0.weight"), Cow::Borrowed(_)));
        assert_eq!(
            escape_control("\x1b[2J\x1b]0;PWNED\x07"),
            "\\u{1b}[2J\\u{1b}]0;PWNED\\u{7}"
        );
        assert_eq!(
            escape_control("a\u{9b}b\u{202e}c\u{7f}"),
            "a\\u{9b}b\\u{202e}c\\u{7f}"
        );
        assert_eq!(escape_control("é ü 日本"), "é ü 日本");
        assert_eq!(escape_control_keep_newlines("a\nb\rc"), "a\nb\\rc");
    }
}
