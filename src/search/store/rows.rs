//! Trials as stored: kinds, state words, new trials, results, and rows decoded from SQLite with
//! every corrupt value named.

use super::{StoreError, TrialId};
use crate::search::{Evaluated, TrialState};
use crate::spec::Design;
use rusqlite::Row;
use serde_json::Value;

/// What produced a trial: the search, or a named preset evaluated under the same protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrialKind {
    Search,
    Baseline,
}

impl TrialKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TrialKind::Search => "search",
            TrialKind::Baseline => "baseline",
        }
    }
}

/// The word stored for a state (optuna's, lower case).
pub fn state_str(state: TrialState) -> &'static str {
    match state {
        TrialState::Running => "running",
        TrialState::Complete => "complete",
        TrialState::Pruned => "pruned",
        TrialState::Failed => "failed",
    }
}

pub(crate) fn parse_state(s: &str) -> Option<TrialState> {
    [
        TrialState::Running,
        TrialState::Complete,
        TrialState::Pruned,
        TrialState::Failed,
    ]
    .into_iter()
    .find(|&t| state_str(t) == s)
}

/// A trial about to run.
#[derive(Debug, Clone)]
pub struct NewTrial {
    pub kind: TrialKind,
    /// The baseline preset's name; `None` for search trials.
    pub label: Option<String>,
    pub design: Design,
    pub canonical: String,
    /// Training steps (the fidelity).
    pub fidelity: usize,
    pub seed: u64,
    /// Multi-fidelity level, 0 for the lowest.
    pub rung: usize,
    /// Number of the lower-fidelity trial of the same study this one was promoted from.
    pub parent: Option<usize>,
}

/// What a finished training run reports.
#[derive(Debug, Clone)]
pub struct TrialResult {
    pub accuracy: f64,
    pub params: usize,
    pub percent: f64,
    pub seconds: f64,
    /// The full run record (`RunMetrics` as JSON), kept for later analysis.
    pub metrics: Value,
}

/// One stored trial. Times are Unix seconds.
#[derive(Debug, Clone)]
pub struct TrialRow {
    pub id: TrialId,
    /// 0-based, per study, in order of starting.
    pub number: usize,
    pub kind: TrialKind,
    pub label: Option<String>,
    pub design: Design,
    pub canonical: String,
    pub state: TrialState,
    pub accuracy: Option<f64>,
    pub params: Option<usize>,
    pub percent: Option<f64>,
    pub fidelity: usize,
    pub seed: u64,
    pub rung: usize,
    pub parent: Option<usize>,
    pub started: f64,
    pub finished: Option<f64>,
    /// The run's own training time when complete; wall time from start when failed or pruned.
    pub seconds: Option<f64>,
    pub error: Option<String>,
    pub metrics: Option<Value>,
}

impl TrialRow {
    /// The trial as samplers see it; `None` unless complete.
    pub fn evaluated(&self) -> Option<Evaluated> {
        match (self.state, self.accuracy, self.params) {
            (TrialState::Complete, Some(accuracy), Some(params)) => Some(Evaluated {
                design: self.design.clone(),
                canonical: self.canonical.clone(),
                accuracy,
                params,
                fidelity: self.fidelity,
            }),
            _ => None,
        }
    }
}

/// Reads one row; the outer error is SQLite's, the inner one a corrupt value naming the trial.
pub(crate) fn read_row(r: &Row, study: &str) -> rusqlite::Result<Result<TrialRow, StoreError>> {
    let number: usize = r.get(1)?;
    let corrupt = |what: String| StoreError::Corrupt {
        study: study.into(),
        number,
        what,
    };
    let (kind, state, design, metrics): (String, String, String, Option<String>) =
        (r.get(2)?, r.get(6)?, r.get(4)?, r.get(18)?);
    let kind = match kind.as_str() {
        "search" => TrialKind::Search,
        "baseline" => TrialKind::Baseline,
        other => return Ok(Err(corrupt(format!("unknown kind '{other}'")))),
    };
    let Some(state) = parse_state(&state) else {
        return Ok(Err(corrupt(format!("unknown state '{state}'"))));
    };
    let design = match Design::from_ron(&design, "stored design") {
        Ok(design) => design,
        Err(e) => return Ok(Err(corrupt(format!("bad design: {e}")))),
    };
    let metrics = match metrics.map(|m| serde_json::from_str(&m)).transpose() {
        Ok(metrics) => metrics,
        Err(e) => return Ok(Err(corrupt(format!("bad metrics JSON: {e}")))),
    };
    Ok(Ok(TrialRow {
        id: TrialId(r.get(0)?),
        number,
        kind,
        label: r.get(3)?,
        design,
        canonical: r.get(5)?,
        state,
        accuracy: r.get(7)?,
        params: r.get(8)?,
        percent: r.get(9)?,
        fidelity: r.get(10)?,
        // Bit-for-bit inverse of the cast on insert.
        seed: r.get::<_, i64>(11)? as u64,
        rung: r.get(12)?,
        parent: r.get(13)?,
        started: r.get(14)?,
        finished: r.get(15)?,
        seconds: r.get(16)?,
        error: r.get(17)?,
        metrics,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_their_words() {
        for s in [
            TrialState::Running,
            TrialState::Complete,
            TrialState::Pruned,
            TrialState::Failed,
        ] {
            assert_eq!(parse_state(state_str(s)), Some(s));
        }
        assert_eq!(parse_state("done"), None);
    }
}
