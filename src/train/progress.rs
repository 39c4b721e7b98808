//! A training run's progress as [`crate::progress`] events: its steps, and a line per epoch.

use crate::progress::{emit, note, Event, Task};

/// Reports one run's steps when enabled; silent otherwise.
pub(crate) struct Progress {
    enabled: bool,
}

impl Progress {
    pub(crate) fn new(total: usize, enabled: bool) -> Self {
        if enabled {
            emit(Event::Started {
                task: Task::Training,
                total: total as u64,
                done: 0,
            });
        }
        Self { enabled }
    }

    /// Step `step` (counted from 1) is done.
    pub(crate) fn step(&self, step: usize, msg: String) {
        if self.enabled {
            emit(Event::Advanced {
                task: Task::Training,
                done: step as u64,
                message: &msg,
            });
        }
    }

    pub(crate) fn line(&self, msg: String) {
        if self.enabled {
            note(&msg);
        }
    }

    /// The run ended, `completed` or on an error.
    pub(crate) fn end(&self, completed: bool) {
        if self.enabled {
            emit(Event::Ended {
                task: Task::Training,
                completed,
            });
        }
    }
}
