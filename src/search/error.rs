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
    #[error("--budget {input}: expected a percentage like 0.5% or a count like 120k")]
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
    /// A search flag outside the range the search can run with (named as the user typed it).
    #[error("{flag} {value}: {expected}")]
    Setting {
        flag: &'static str,
        value: String,
        expected: String,
    },
    #[error("unknown sampler {name:?}: expected one of {known}")]
    UnknownSampler { name: String, known: &'static str },
}
