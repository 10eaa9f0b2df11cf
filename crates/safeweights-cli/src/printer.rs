//! All output goes through here: human text, JSON, or nothing (quiet) on
//! stdout; errors and hints on stderr in every mode.

use std::fmt::Display;
use std::io::{self, IsTerminal, Write};

use serde::Serialize;

use crate::errors;

/// What stdout gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Text for people.
    Human,
    /// One JSON document.
    Json,
    /// Nothing.
    Quiet,
}

/// Column alignment in [`Printer::table`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Pad on the right.
    Left,
    /// Pad on the left (numbers).
    Right,
}

/// The one writer of the program's output.
pub struct Printer {
    mode: Mode,
    out: io::BufWriter<io::Stdout>,
    indent: usize,
}

impl Printer {
    /// A printer for `mode`.
    pub fn new(mode: Mode) -> Self {
        Printer {
            mode,
            out: io::BufWriter::new(io::stdout()),
            indent: 0,
        }
    }

    /// Whether human text is printed.
    pub fn is_human(&self) -> bool {
        self.mode == Mode::Human
    }

    /// Whether progress bars may be drawn: not quiet, and stderr is a terminal.
    pub fn wants_progress(&self) -> bool {
        self.mode != Mode::Quiet && io::stderr().is_terminal()
    }

    /// A line of human text (nothing in JSON or quiet mode).
    ///
    /// Control characters are escaped (line feeds split lines): text built
    /// from names and metadata cannot act on the terminal. Call sites escape
    /// untrusted values with [`esc`] so a line feed in them cannot start a
    /// line of its own either.
    pub fn line(&mut self, text: impl Display) -> io::Result<()> {
        if self.is_human() {
            let pad = " ".repeat(self.indent);
            let text = text.to_string();
            let text = safeweights::escape_control_keep_newlines(&text);
            if text.is_empty() {
                writeln!(self.out)?;
            } else {
                for line in text.lines() {
                    writeln!(self.out, "{pad}{line}")?;
                }
            }
            // Keep interleaving with stderr sensible and notice a closed pipe early.
            self.out.flush()?;
        }
        Ok(())
    }

    /// Runs `f` with human text indented `by` more spaces.
    pub fn indented<T>(&mut self, by: usize, f: impl FnOnce(&mut Self) -> T) -> T {
        self.indent += by;
        let result = f(self);
        self.indent -= by;
        result
    }

    /// An empty line of human text.
    pub fn blank(&mut self) -> io::Result<()> {
        self.line("")
    }

    /// The JSON document (nothing in human or quiet mode).
    pub fn json<T: Serialize + ?Sized>(&mut self, value: &T) -> io::Result<()> {
        if self.mode == Mode::Json {
            serde_json::to_writer_pretty(&mut self.out, value).map_err(io::Error::other)?;
            writeln!(self.out)?;
            self.out.flush()?;
        }
        Ok(())
    }

    /// Text already rendered for the chosen format (human, JSON or SARIF):
    /// written as is in every mode but quiet.
    pub fn rendered(&mut self, text: &str) -> io::Result<()> {
        if self.mode != Mode::Quiet {
            self.out.write_all(text.as_bytes())?;
            if !text.ends_with('\n') {
                writeln!(self.out)?;
            }
            self.out.flush()?;
        }
        Ok(())
    }

    /// Whether JSON was asked for with `--json`.
    pub fn is_json(&self) -> bool {
        self.mode == Mode::Json
    }

    /// A table of human text: a header row and rows, columns padded; cells
    /// are escaped with [`esc`].
    pub fn table(
        &mut self,
        header: &[&str],
        align: &[Align],
        rows: &[Vec<String>],
    ) -> io::Result<()> {
        if !self.is_human() {
            return Ok(());
        }
        let rows: Vec<Vec<String>> = rows
            .iter()
            .map(|r| r.iter().map(|c| esc(c)).collect())
            .collect();
        let rows = &rows[..];
        let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for row in rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let render = |cells: &mut dyn Iterator<Item = &str>| {
            let mut line = String::new();
            for (i, cell) in cells.enumerate() {
                let width = widths.get(i).copied().unwrap_or(0);
                let pad = " ".repeat(width.saturating_sub(cell.chars().count()));
                if i > 0 {
                    line.push_str("  ");
                }
                match align.get(i).copied().unwrap_or(Align::Left) {
                    Align::Left => {
                        line.push_str(cell);
                        line.push_str(&pad);
                    }
                    Align::Right => {
                        line.push_str(&pad);
                        line.push_str(cell);
                    }
                }
            }
            line.trim_end().to_owned()
        };
        let pad = " ".repeat(self.indent);
        let head = render(&mut header.iter().copied());
        writeln!(self.out, "{pad}{head}")?;
        for row in rows {
            let line = render(&mut row.iter().map(|s| s.as_str()));
            writeln!(self.out, "{pad}{line}")?;
        }
        self.out.flush()
    }

    /// Reports an error on stderr with a hint of what to do, in every mode.
    pub fn error(&mut self, err: &anyhow::Error) {
        let _ = self.out.flush();
        let mut stderr = io::stderr().lock();
        let message = errors::message(err);
        let _ = writeln!(
            stderr,
            "error: {}",
            safeweights::escape_control_keep_newlines(&message)
        );
        if let Some(hint) = errors::hint(err) {
            let _ = writeln!(stderr, "hint: {}", safeweights::escape_control(&hint));
        }
    }

    /// Flushes stdout.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// An untrusted string (a file, tensor or metadata name, a metadata value)
/// for human output: every control character escaped, line feeds too, so it
/// stays on its line and cannot act on the terminal.
pub fn esc(text: &str) -> String {
    safeweights::escape_control(text).into_owned()
}

/// A path for human output, escaped like [`esc`].
pub fn esc_path(path: &std::path::Path) -> String {
    esc(&path.display().to_string())
}

/// `1234567` → `1,234,567`.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Decimal byte size: `4.57 MB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut value = n as f64;
    let mut unit = "B";
    for u in UNITS {
        if value < 1000.0 {
            break;
        }
        value /= 1000.0;
        unit = u;
    }
    format!("{value:.2} {unit}")
}

/// `1 thread`, `2 threads`: a count and its noun, singular for one.
pub fn count(n: impl Into<u64>, noun: &str) -> String {
    let n = n.into();
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{} {noun}s", grouped(n))
    }
}

/// A measured value to 4 significant digits, trailing zeros dropped:
/// `0.3137`, `0.5`, `1234`, `1.235e-7`.
pub fn significant(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    if (1e-4..1e6).contains(&x.abs()) {
        let magnitude = x.abs().log10().floor() as i32;
        let decimals = (3 - magnitude).max(0) as usize;
        let text = format!("{x:.decimals$}");
        if text.contains('.') {
            text.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            text
        }
    } else {
        format!("{x:.3e}")
    }
}

/// Parameter count with a suffix: `1.23M`.
pub fn human_count(n: u64) -> String {
    match n {
        0..=999 => n.to_string(),
        1_000..=999_999 => format!("{:.2}K", n as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.2}M", n as f64 / 1e6),
        _ => format!("{:.2}B", n as f64 / 1e9),
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests build fixtures with std::fs.
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(1234567), "1,234,567");
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(4_567_890), "4.57 MB");
        assert_eq!(human_bytes(5_000_000_000), "5.00 GB");
        assert_eq!(human_count(1_230_000), "1.23M");
        assert_eq!(count(1u64, "thread"), "1 thread");
        assert_eq!(count(4u64, "thread"), "4 threads");
        assert_eq!(count(1234u64, "read"), "1,234 reads");
        assert_eq!(significant(0.313_725_490_196), "0.3137");
        assert_eq!(significant(0.5), "0.5");
        assert_eq!(significant(2.0), "2");
        assert_eq!(significant(1234.5678), "1235");
        assert_eq!(significant(99_999.9), "100000");
        assert_eq!(significant(1.234_567e-7), "1.235e-7");
        assert_eq!(significant(0.0), "0");
    }
}
