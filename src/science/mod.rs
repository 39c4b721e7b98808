//! The unified-view study (He et al., 2022, on the data and models reachable here): a RON plan
//! of presets at several budgets, ablations and searched designs over seeds ([`plan`]), run as
//! resumable child processes ([`runner`]) and reported beside the paper's numbers ([`report`]).

pub mod plan;
mod plot;
pub mod report;
pub mod runner;
pub mod stats;
pub mod unified;

use std::path::PathBuf;
use thiserror::Error;

pub use plan::{Entry, Finding, Plan, Section};
pub use runner::{run_all, RunnerOptions};

#[derive(Debug, Error)]
pub enum ScienceError {
    #[error(transparent)]
    Spec(#[from] crate::spec::SpecError),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("finding {finding}: no entry labelled `{label}` on task {task} in the plan")]
    UnknownLabel {
        finding: u32,
        label: String,
        task: String,
    },
    #[error("cannot start {exe}: {source}")]
    Launch {
        exe: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("run {dir} failed: {why}")]
    RunFailed { dir: PathBuf, why: String },
    #[error("plot: {0}")]
    Plot(String),
}
