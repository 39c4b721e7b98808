//! The library's progress events drawn on stderr: a bar for a training run and one for a study's
//! trials on a terminal; otherwise plain lines (about ten per training run), so logs of long
//! runs still show where they stand.

use indicatif::{ProgressBar, ProgressStyle};
use pets::progress::{Event, Observer, Task};
use std::sync::Mutex;

/// Draws [`Event`]s on stderr; install it with [`pets::progress::set_observer`].
#[derive(Default)]
pub struct Terminal {
    bars: Mutex<Bars>,
}

#[derive(Default)]
struct Bars {
    training: Option<Training>,
    trials: Option<ProgressBar>,
}

/// A training run's bar and how often a plain line is printed when it is hidden.
struct Training {
    bar: ProgressBar,
    total: u64,
    plain_every: u64,
}

impl Observer for Terminal {
    fn event(&self, event: &Event<'_>) {
        // A poisoned lock only means another thread panicked mid-draw: the bars are still usable.
        let mut bars = self.bars.lock().unwrap_or_else(|p| p.into_inner());
        match *event {
            Event::Note(line) => bars.say(line),
            Event::Started {
                task: Task::Training,
                total,
                done,
            } => {
                let bar = ProgressBar::new(total);
                let template =
                    "{bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}, {per_sec}] {msg}";
                if let Ok(style) = ProgressStyle::with_template(template) {
                    bar.set_style(style);
                }
                bar.set_position(done);
                let plain_every = (total / 10).max(1);
                bars.training = Some(Training {
                    bar,
                    total,
                    plain_every,
                });
            }
            Event::Advanced {
                task: Task::Training,
                done,
                message,
            } => {
                if let Some(t) = &bars.training {
                    if t.bar.is_hidden() && done.is_multiple_of(t.plain_every) {
                        let elapsed = t.bar.elapsed().as_secs_f64();
                        eprintln!(
                            "step {done}/{} {message} ({:.2} steps/s)",
                            t.total,
                            done as f64 / elapsed.max(1e-9)
                        );
                    }
                    t.bar.set_message(message.to_string());
                    t.bar.set_position(done);
                }
            }
            Event::Ended {
                task: Task::Training,
                completed,
            } => {
                if let Some(t) = bars.training.take() {
                    if completed {
                        t.bar.finish_and_clear();
                    } else {
                        t.bar.abandon();
                    }
                }
            }
            Event::Started {
                task: Task::Trials,
                total,
                done,
            } => {
                let bar = ProgressBar::new(total);
                bar.set_style(
                    ProgressStyle::with_template(
                        "{bar:30} {pos}/{len} trials  {elapsed_precise} elapsed, ETA {eta_precise}  {msg}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                bar.set_position(done);
                bars.trials = Some(bar);
            }
            Event::Advanced {
                task: Task::Trials,
                done,
                ..
            } => {
                if let Some(bar) = &bars.trials {
                    bar.set_position(done);
                }
            }
            Event::Ended {
                task: Task::Trials, ..
            } => {
                if let Some(bar) = bars.trials.take() {
                    bar.finish_and_clear();
                }
            }
        }
    }
}

impl Bars {
    /// A line above the visible bar on a terminal, a plain line on stderr otherwise (indicatif
    /// drops `println` when its bar is hidden, and logs of long runs need these lines).
    fn say(&self, line: &str) {
        let visible = [self.training.as_ref().map(|t| &t.bar), self.trials.as_ref()]
            .into_iter()
            .flatten()
            .find(|bar| !bar.is_hidden());
        match visible {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }
}
