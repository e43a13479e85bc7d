//! indicatif progress bars, drawn on stderr and hidden when stdout is not a terminal (so piped or captured
//! output stays clean).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

/// True when stdout is a terminal, i.e. when progress bars should be drawn.
pub fn bars_enabled() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("ZARRTX_NO_PROGRESS").is_none()
}

fn new_bar(len: Option<u64>) -> ProgressBar {
    if bars_enabled() {
        ProgressBar::with_draw_target(len, ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    }
}

/// A byte-counting bar for writing one raster, fed by the engine through [`zarrtx::Progress`].
pub struct BytesProgress {
    bar: ProgressBar,
}

impl BytesProgress {
    /// A bar labelled `message`; its length is set by the engine.
    pub fn new(message: impl Into<String>) -> Self {
        let bar = new_bar(Some(0));
        bar.set_style(
            ProgressStyle::with_template(
                "{msg} [{bar:30.cyan/blue}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_message(message.into());
        BytesProgress { bar }
    }

    /// Removes the bar from the terminal.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl zarrtx::Progress for BytesProgress {
    fn set_total(&self, total: u64) {
        // Drawn from the first report on, so that no empty bar flashes before the engine knows the size.
        if self.bar.length() == Some(0) && total > 0 {
            self.bar.enable_steady_tick(Duration::from_millis(200));
        }
        self.bar.set_length(total);
    }

    fn advance(&self, delta: u64) {
        self.bar.inc(delta);
    }
}

/// A bar counting `total` items (elements written by the demo's workers, ...).
pub fn count_bar(total: u64, message: impl Into<String>) -> ProgressBar {
    let bar = new_bar(Some(total));
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30.green/white}] {pos}/{len} {per_sec} elapsed {elapsed}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(message.into());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;
    use zarrtx::Progress;

    #[test]
    fn bytes_progress_tracks_engine_reports() {
        let p = BytesProgress::new("test");
        p.set_total(100);
        p.advance(40);
        p.advance(60);
        assert_eq!(p.bar.position(), 100);
        assert_eq!(p.bar.length(), Some(100));
        p.finish();
    }
}
