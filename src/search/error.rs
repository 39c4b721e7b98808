//! The search module's error: reading a space, parsing a budget, fitting a space to a backbone and
//! proposing designs.

use crate::spec::SpecError;
use thiserror::Error;

/// Everything that can go wrong while reading a space, parsing a budget or proposing designs.
#[derive(Debug, Error)]
pub enum SearchError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error("search space {space}: {location}: {message}")]
    Space {
        space: String,
        location: String,
        message: String,
    },
    #[error("budget {input}: expected a percentage like 0.5% or a count like 120k")]
    Budget { input: String },
    #[error("search space {space}: {location} fits no option on this backbone (layers {layers}, hidden {hidden}, heads {heads})")]
    Infeasible {
        space: String,
        location: String,
        layers: usize,
        hidden: usize,
        heads: usize,
    },
    #[error("search space {space}: no design fits the budget of {budget} trainable parameters on this backbone (the cheapest costs {cheapest})")]
    OverBudget {
        space: String,
        budget: usize,
        cheapest: usize,
    },
    #[error("search space {space}: found no new valid design in {attempts} attempts (the space may be exhausted)")]
    Exhausted { space: String, attempts: usize },
    /// The search finished but its final reports could not be written (a full disk, a
    /// read-only folder): the trials are stored, and `pets report` renders them later.
    #[error("study {study}: its {trials} trials are safe in {store}, but the reports could not be written ({cause}); run `pets report --study {study}` once the folder is writable")]
    ReportsNotWritten {
        study: String,
        trials: usize,
        store: String,
        cause: String,
    },
    /// A setting outside the range the search can run with, named by its field in
    /// `SearchSettings` or `TrainConfig` (`rungs`, `max_steps`).
    #[error("{setting} {value}: {expected}")]
    Setting {
        setting: &'static str,
        value: String,
        expected: String,
    },
    /// So many rungs that the cheapest would train less than one step.
    #[error("rungs {rungs}: with eta {eta} the cheapest rung would train 1/{divisor} of the {full_steps} full-fidelity steps, less than one; use fewer rungs, a smaller eta or more steps")]
    TooManyRungs {
        rungs: usize,
        eta: usize,
        divisor: usize,
        full_steps: usize,
    },
    /// Training a trial failed for a reason that is not its design's (see `search::blame`): the
    /// study stops, and the trial, still running in the store, is claimed again on resume.
    #[error("study {study} stopped: trial {trial} hit an error that is not its design's ({cause}); the trial stays claimed and is trained again when the study resumes (fix the cause, then run the same command again)")]
    Stopped {
        study: String,
        trial: usize,
        cause: String,
    },
    /// The study ended with no trial complete.
    #[error("study {study}: all {trials} trials failed (the first: {first}); see the error column of trials.csv")]
    AllFailed {
        study: String,
        trials: usize,
        first: String,
    },
    #[error("unknown sampler {name:?}: expected one of {known}")]
    UnknownSampler { name: String, known: &'static str },
}
