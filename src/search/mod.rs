//! Multi-objective design search: spaces, samplers, Pareto utilities, the study store, reports.

pub mod fidelity;
pub mod pareto;

use serde::{Deserialize, Serialize};

/// Trial states, in optuna's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TrialState {
    Running,
    Complete,
    Pruned,
    Failed,
}

/// One evaluated design as the samplers and reports see it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Evaluated {
    pub design: crate::spec::Design,
    /// Canonical hash of the design (name excluded): duplicates share it.
    pub canonical: String,
    /// Dev accuracy (maximised).
    pub accuracy: f64,
    /// Trainable parameters of the design, head excluded (minimised).
    pub params: usize,
    /// Training steps the accuracy was measured at (the fidelity).
    pub fidelity: usize,
}

pub mod plot;
pub mod report;
pub mod sampler;
pub mod space;
pub mod store;
pub mod study;
