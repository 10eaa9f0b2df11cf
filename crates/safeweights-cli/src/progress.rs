//! Progress bars on stderr, drawn only when stderr is a terminal.
//!
//! One line that fits an 80-column terminal: a phase word (never a tensor
//! name, which can be any length), the bar, bytes done and total, the rate
//! and the time left, in decimal units (`1.50 GB`) as the summaries print
//! them. Until the total is known (or when it is 0) a spinner stands in for
//! the bar, so it never shows full at `0 B/0 B`.

use std::time::Duration;

#[cfg(test)]
use indicatif::ProgressDrawTarget;
use indicatif::{ProgressBar, ProgressStyle};

/// The phase word's width: longer words are cut.
const PHASE_WIDTH: usize = 10;

fn bar_style() -> ProgressStyle {
    // 10 + 2 + 24 + 2 + 9 + 1 + 9 + 2 + 11 + 1 + 5 = 76 columns at most
    ProgressStyle::with_template(
        "{msg:10!} [{bar:24}] {decimal_bytes:>9}/{decimal_total_bytes:<9}  {decimal_bytes_per_sec:>11} {eta:>5}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ")
}

fn waiting_style() -> ProgressStyle {
    ProgressStyle::with_template("{msg:10!} {spinner} {decimal_bytes:>9}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

/// A byte-count progress bar, or nothing.
pub struct Bar(Option<Handle>);

/// A handle on a bar that can move to another thread's callback.
#[derive(Clone)]
pub struct Handle(ProgressBar);

impl Handle {
    fn new(bar: ProgressBar, total: u64, phase: &str) -> Handle {
        let handle = Handle(bar);
        handle.0.set_style(waiting_style());
        handle.0.enable_steady_tick(Duration::from_millis(120));
        handle.set_phase(phase);
        handle.set_total(total);
        handle
    }

    /// Sets the total; a bar is drawn once it is known and not 0.
    pub fn set_total(&self, total: u64) {
        let known = total > 0;
        let had = self.0.length().is_some_and(|l| l > 0);
        self.0.set_length(total);
        if known && !had {
            self.0.disable_steady_tick();
            self.0.set_style(bar_style());
        }
    }

    /// Sets the bytes done.
    pub fn set_position(&self, done: u64) {
        self.0.set_position(done);
    }

    /// Sets the phase word (`converting`, `verifying`, ...), cut to fit.
    pub fn set_phase(&self, phase: &str) {
        let word: String = phase.chars().take(PHASE_WIDTH).collect();
        self.0.set_message(word);
    }
}

impl Bar {
    /// A bar for `total` bytes when `enabled` (0: not known yet).
    pub fn new(enabled: bool, total: u64, phase: &str) -> Bar {
        if !enabled {
            return Bar(None);
        }
        Bar(Some(Handle::new(ProgressBar::new(0), total, phase)))
    }

    /// A bar drawing to `target` (for tests).
    #[cfg(test)]
    fn with_target(target: ProgressDrawTarget, total: u64, phase: &str) -> Bar {
        Bar(Some(Handle::new(
            ProgressBar::with_draw_target(Some(0), target),
            total,
            phase,
        )))
    }

    /// A handle that can move to another thread's callback.
    pub fn handle(&self) -> Option<Handle> {
        self.0.clone()
    }

    /// Adds `n` bytes.
    pub fn inc(&self, n: u64) {
        if let Some(bar) = &self.0 {
            bar.0.inc(n);
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.0.finish_and_clear();
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests build fixtures with std::fs.
mod tests {
    use indicatif::{InMemoryTerm, TermLike};

    use super::*;

    /// The widest line a bar may draw, in columns.
    const MAX_WIDTH: usize = 80;

    fn screen(term: &InMemoryTerm) -> Vec<String> {
        term.contents()
            .lines()
            .map(str::to_owned)
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// Issue 20: bars fit 80 columns with huge sizes and long phase words,
    /// use decimal units, and never start full at `0 B/0 B`.
    #[test]
    fn issue20_bars_fit_80_columns_in_decimal_units() {
        let term = InMemoryTerm::new(4, 200);
        let target = ProgressDrawTarget::term_like(Box::new(term.clone()));
        let bar = Bar::with_target(target, 0, "converting everything");
        let handle = bar.handle().unwrap();
        handle.0.tick();
        let waiting = screen(&term).join("\n");
        assert!(!waiting.contains('['), "{waiting}");
        assert!(!waiting.contains("0 B/0 B"), "{waiting}");
        assert!(waiting.starts_with("converting "), "{waiting}");
        handle.set_total(1_500_000_000_000);
        handle.set_phase("verifying a.very.long.tensor.name.that.never.ends");
        handle.set_position(750_000_000_000);
        handle.0.tick();
        let lines = screen(&term);
        assert_eq!(lines.len(), 1, "{lines:?}");
        let line = &lines[0];
        assert!(
            line.chars().count() <= MAX_WIDTH,
            "{} columns: {line}",
            line.chars().count()
        );
        assert!(line.contains("750.00 GB/1.50 TB"), "{line}");
        assert!(!line.contains("GiB") && !line.contains("TiB"), "{line}");
        assert!(!line.contains("tensor"), "{line}");
        assert_eq!(term.width(), 200);
        bar.finish();
    }
}
