//! Trials as stored: kinds, state words, new trials, results, and rows decoded from either
//! backend with every corrupt value named.

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
    /// A full-fidelity re-run, on another seed, of the search or baseline trial in `parent`.
    Confirm,
}

impl TrialKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TrialKind::Search => "search",
            TrialKind::Baseline => "baseline",
            TrialKind::Confirm => "confirm",
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
    /// The worker that claimed it (`pets worker`); `None` for trials of a single-process search.
    pub owner: Option<String>,
    /// Times it was claimed: more than 1 when a worker died and another re-claimed it.
    pub attempts: usize,
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

/// A trial row as both backends read it: plain column values, decoded by [`RawRow::decode`] so a
/// corrupt value is named the same way whichever database it came from.
#[derive(Debug, Clone)]
pub(crate) struct RawRow {
    pub id: i64,
    pub number: i64,
    pub kind: String,
    pub label: Option<String>,
    pub design: String,
    pub canonical: String,
    pub state: String,
    pub accuracy: Option<f64>,
    pub params: Option<i64>,
    pub percent: Option<f64>,
    pub fidelity: i64,
    pub seed: i64,
    pub rung: i64,
    pub parent: Option<i64>,
    pub started: f64,
    pub finished: Option<f64>,
    pub seconds: Option<f64>,
    pub error: Option<String>,
    pub metrics: Option<String>,
    pub owner: Option<String>,
    pub attempts: i64,
}

impl RawRow {
    /// Reads the columns of [`super::schema::COLUMNS`], in that order, from a SQLite row.
    pub(crate) fn sqlite(r: &Row) -> rusqlite::Result<RawRow> {
        Ok(RawRow {
            id: r.get(0)?,
            number: r.get(1)?,
            kind: r.get(2)?,
            label: r.get(3)?,
            design: r.get(4)?,
            canonical: r.get(5)?,
            state: r.get(6)?,
            accuracy: r.get(7)?,
            params: r.get(8)?,
            percent: r.get(9)?,
            fidelity: r.get(10)?,
            seed: r.get(11)?,
            rung: r.get(12)?,
            parent: r.get(13)?,
            started: r.get(14)?,
            finished: r.get(15)?,
            seconds: r.get(16)?,
            error: r.get(17)?,
            metrics: r.get(18)?,
            owner: r.get(19)?,
            attempts: r.get(20)?,
        })
    }

    pub(crate) fn decode(self, study: &str) -> Result<TrialRow, StoreError> {
        let corrupt = |what: String| StoreError::Corrupt {
            study: study.into(),
            number: usize::try_from(self.number).unwrap_or(0),
            what,
        };
        let count = |what: &str, v: i64| {
            usize::try_from(v).map_err(|_| corrupt(format!("negative {what} {v}")))
        };
        let number = count("number", self.number)?;
        let kind = match self.kind.as_str() {
            "search" => TrialKind::Search,
            "baseline" => TrialKind::Baseline,
            "confirm" => TrialKind::Confirm,
            other => return Err(corrupt(format!("unknown kind '{other}'"))),
        };
        let Some(state) = parse_state(&self.state) else {
            return Err(corrupt(format!("unknown state '{}'", self.state)));
        };
        let design = Design::from_ron(&self.design, "stored design")
            .map_err(|e| corrupt(format!("bad design: {e}")))?;
        let metrics = self
            .metrics
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| corrupt(format!("bad metrics JSON: {e}")))?;
        Ok(TrialRow {
            id: TrialId(self.id),
            number,
            kind,
            label: self.label,
            design,
            canonical: self.canonical,
            state,
            accuracy: self.accuracy,
            params: self.params.map(|p| count("params", p)).transpose()?,
            percent: self.percent,
            fidelity: count("fidelity", self.fidelity)?,
            // Bit-for-bit inverse of the cast on insert (databases store signed integers).
            seed: self.seed as u64,
            rung: count("rung", self.rung)?,
            parent: self.parent.map(|p| count("parent", p)).transpose()?,
            started: self.started,
            finished: self.finished,
            seconds: self.seconds,
            error: self.error,
            metrics,
            owner: self.owner,
            attempts: count("attempts", self.attempts)?,
        })
    }
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
