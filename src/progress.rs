//! What the library says while it works, status lines and counted progress, handed to the
//! [`Observer`] the program installed (the `pets` binary draws them on stderr). None is installed
//! by default, so a program using the library prints nothing it did not ask for.
//!
//! A process-wide observer, as the `log` crate has one logger: long-running calls (a search, a
//! training run, a fetch) report from deep inside and from several threads, and threading a
//! handle through every layer would change every signature between the caller and the loop.

use std::sync::OnceLock;

/// A counted piece of work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// The optimizer steps of one training run (reported when `TrainConfig::progress` is set).
    Training,
    /// The ended trials of a study (running ones are not counted).
    Trials,
}

/// One thing the library reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Event<'a> {
    /// A line for the person running the program: a finished trial, a fetched model, a warning
    /// (starting with `warning:`) about something that did not stop the work.
    Note(&'a str),
    /// `task` starts with `total` units, `done` of them already done (a resumed study).
    Started { task: Task, total: u64, done: u64 },
    /// `task` now has `done` units done; `message` says where it stands (`epoch 1/3 loss 0.61`).
    Advanced {
        task: Task,
        done: u64,
        message: &'a str,
    },
    /// `task` ended; `completed` is false when it stopped on an error.
    Ended { task: Task, completed: bool },
}

/// Receives the library's events, from any thread.
pub trait Observer: Send + Sync {
    /// Called for every event, in order per thread; it should return quickly (training waits).
    fn event(&self, event: &Event<'_>);
}

static OBSERVER: OnceLock<Box<dyn Observer>> = OnceLock::new();

/// Installs this process's observer. The first call wins: a later one gets its observer back.
pub fn set_observer(observer: Box<dyn Observer>) -> Result<(), Box<dyn Observer>> {
    OBSERVER.set(observer)
}

/// Hands `event` to the installed observer, if any.
pub(crate) fn emit(event: Event<'_>) {
    if let Some(observer) = OBSERVER.get() {
        observer.event(&event);
    }
}

/// Reports a line (see [`Event::Note`]).
pub(crate) fn note(line: &str) {
    emit(Event::Note(line));
}
