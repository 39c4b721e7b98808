//! Multi-objective design search: spaces, samplers, Pareto utilities, the study store, reports.

pub mod blame;
pub mod bounds;
pub mod budget;
pub mod canonical;
mod claim_loop;
pub mod confirm;
pub mod error;
pub mod fidelity;
pub mod generations;
pub mod genome;
pub mod limits;
pub mod operators;
pub mod pareto;
pub mod plan;
pub mod promotion;
pub mod rate;

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
pub mod registry;
pub mod report;
pub mod sampler;
pub mod setup;
pub mod space;
pub mod store;
pub mod study;
pub mod width;
pub mod worker;

pub use budget::Budget;
pub use canonical::canonical;
pub use error::SearchError;
pub use registry::{sampler_by_name, SamplerKind};
pub use sampler::{ProposalContext, Sampler};
pub use space::SearchSpace;
