//! Training progress on stderr: an indicatif bar on a terminal, otherwise sparse plain lines.

use indicatif::{ProgressBar, ProgressStyle};

/// An indicatif bar when stderr is a terminal; otherwise about ten plain lines per run.
pub(crate) struct Progress {
    pub(crate) bar: ProgressBar,
    enabled: bool,
    plain_every: usize,
}

impl Progress {
    pub(crate) fn new(total: usize, enabled: bool) -> Self {
        let bar = if enabled {
            ProgressBar::new(total as u64)
        } else {
            ProgressBar::hidden()
        };
        let template = "{bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}, {per_sec}] {msg}";
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        Self {
            bar,
            enabled,
            plain_every: (total / 10).max(1),
        }
    }

    pub(crate) fn step(&self, step: usize, msg: String) {
        if self.enabled && self.bar.is_hidden() && step.is_multiple_of(self.plain_every) {
            let elapsed = self.bar.elapsed().as_secs_f64();
            let total = self.bar.length().unwrap_or(0);
            eprintln!(
                "step {step}/{total} {msg} ({:.2} steps/s)",
                step as f64 / elapsed.max(1e-9)
            );
        }
        self.bar.set_message(msg);
        self.bar.inc(1);
    }

    pub(crate) fn line(&self, msg: String) {
        match (self.enabled, self.bar.is_hidden()) {
            (false, _) => {}
            (true, true) => eprintln!("{msg}"),
            (true, false) => self.bar.println(msg),
        }
    }
}
