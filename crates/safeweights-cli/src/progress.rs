//! Progress bars on stderr, drawn only when stderr is a terminal.

use indicatif::{ProgressBar, ProgressStyle};

/// A byte-count progress bar, or nothing.
pub struct Bar(Option<ProgressBar>);

impl Bar {
    /// A bar for `total` bytes when `enabled`.
    pub fn new(enabled: bool, total: u64, message: &str) -> Bar {
        if !enabled {
            return Bar(None);
        }
        let bar = ProgressBar::new(total);
        let style = ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(message.to_owned());
        Bar(Some(bar))
    }

    /// A handle that can move to another thread's callback.
    pub fn handle(&self) -> Option<ProgressBar> {
        self.0.clone()
    }

    /// Adds `n` bytes.
    pub fn inc(&self, n: u64) {
        if let Some(bar) = &self.0 {
            bar.inc(n);
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.finish();
    }
}
