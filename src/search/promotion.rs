//! When a rung promotes (`--promotion sync|async`): synchronous successive halving, or
//! asynchronous successive halving in the style of ASHA (Li et al., 2020) with the
//! multi-objective ranking of MOASHA (Schmucker et al., 2021), so that no worker waits for a
//! rung to fill.
//!
//! Both rules rank the complete trials of a rung alike (`fidelity::promotion_order`:
//! non-dominated front, then larger crowding distance, then accuracy, then fewer parameters, then
//! the earlier trial), and both cap each rung of a generation at its bracket (`generations`), so
//! a study runs as many trials under either and `--trials` is never overrun. They differ in when:
//!
//! - **sync** (the default): a rung promotes once every trial of the rung below has ended, and a
//!   generation is proposed once the one before has ended (`plan`). A study then makes the same
//!   decisions whatever the number of workers and whenever their trials end.
//! - **async**: when the rung below holds `c` complete trials, the best `floor(c / eta)` of them
//!   may be promoted at once; once the rung below has ended (it will take no more trials and none
//!   of its trials runs) any of them may, best first, as the synchronous rule would. A free worker
//!   takes the first of: a promotion of the oldest generation that has one, its highest rung
//!   first (full-fidelity results soonest); a new design for the generation being filled, or
//!   for the next one in the layout; and it waits only when every generation the budget holds is
//!   filled and nothing is promotable until a running trial ends. A proposal sees the earlier
//!   generations' trials complete at that moment (generation 0 sees none), so under several
//!   workers the designs depend on the order trials end in; with one worker they do not.
//!
//! The decision is a function of the stored trials only, made inside the claim's transaction, so
//! workers on different machines agree and two never promote one trial (a promotion is a trial
//! whose `parent` is the promoted one; a parent already named at a rung is skipped). A worker that
//! dies leaves its trial running until its heartbeat is stale (at once when its process is seen
//! gone on the same host) and another worker claims it again under the same number
//! (`store::backend`, `store::claims`); meanwhile the rule promotes from the
//! trials that did complete, and the dead trial is ranked when it completes. Early promotions are
//! ASHA's trade: a trial promoted on few results that later results would not have picked (a
//! mispromotion) takes a place the synchronous rule would have given to a later trial.
//!
//! How this differs from the schedulers it follows. Syne Tune's MOASHA is ASHA's *stopping*
//! variant: a trial reaching a rung continues when its rank among the results recorded there so
//! far, itself included, is in the top 1/eta, and is stopped for good otherwise; the first result
//! at a rung always continues, and within a front it orders by an epsilon-net rather than by
//! crowding. A pets promotion retrains from scratch (each rung's run has its own warm-up and
//! decay), so pets follows ASHA's *promotion* variant instead: a trial passed over early may be
//! promoted later, and at least `eta` results precede the first promotion. SMAC3's successive
//! halving (and its Hyperband) is synchronous per batch: a stage is compared only once all its
//! configurations are evaluated; with several objectives it takes whole Pareto fronts until it
//! has enough, then drops the least crowded of the selection; it starts a new batch instead of
//! waiting, as async pets starts the next generation. MOASHA's rungs have no size (any number of
//! trials may continue), where pets caps each at its bracket so the trial budget holds; and both
//! schedulers keep their state in one process's memory, where pets reads it from the store.

use super::fidelity::promotion_order;
use super::plan::{points, SearchStep, StudyPlan};
use super::store::{TrialKind, TrialRow};
use super::{SearchError, TrialState};
use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

/// Which rule decides when a rung promotes (`--promotion`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Promotion {
    /// A rung promotes once the rung below has ended; generations follow each other.
    #[default]
    Sync,
    /// ASHA's rule: the best `1/eta` of a rung's results so far promote without waiting.
    Async,
}

impl FromStr for Promotion {
    type Err = SearchError;

    fn from_str(text: &str) -> Result<Promotion, SearchError> {
        match text.trim().to_ascii_lowercase().as_str() {
            "sync" => Ok(Promotion::Sync),
            "async" => Ok(Promotion::Async),
            _ => Err(SearchError::Setting {
                setting: "promotion",
                value: text.to_string(),
                expected: "expected sync or async".into(),
            }),
        }
    }
}

impl fmt::Display for Promotion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Promotion::Sync => "sync",
            Promotion::Async => "async",
        })
    }
}

/// What one generation can do next under the asynchronous rule.
#[derive(Debug)]
pub enum RungStep<'r> {
    /// Retrain `parent`'s design at `rung`.
    Promote { parent: &'r TrialRow, rung: usize },
    /// Nothing now; a running trial, or rung 0 still filling, may make a promotion possible.
    Pending,
    /// Nothing of this generation runs and nothing will be promoted again.
    Ended,
}

/// The next promotion of one generation under the asynchronous rule. `members` are its search
/// trials in number order; `bracket` caps each rung; `closed` says rung 0 takes no more designs.
pub fn next_async<'r>(
    members: &[&'r TrialRow],
    bracket: &[usize],
    eta: usize,
    closed: bool,
) -> RungStep<'r> {
    let eta = eta.max(2);
    let at = |r: usize| members.iter().copied().filter(move |t| t.rung == r);
    let running = |r: usize| at(r).any(|t| t.state == TrialState::Running);
    // Whether the rung below will neither take nor finish any more trials.
    let mut ended_below = closed && !running(0);
    let mut found = None;
    for (r, &cap) in bracket.iter().enumerate().skip(1) {
        let here: Vec<&TrialRow> = at(r).collect();
        let complete: Vec<&TrialRow> = at(r - 1)
            .filter(|t| t.state == TrialState::Complete && t.accuracy.is_some())
            .collect();
        // ASHA's quota: floor(c / eta) while results may still arrive, all of them after.
        let quota = if ended_below {
            complete.len()
        } else {
            complete.len() / eta
        };
        let promoted: HashSet<usize> = here.iter().filter_map(|t| t.parent).collect();
        let candidate = if here.len() < cap {
            promotion_order(&points(&complete))
                .into_iter()
                .take(quota)
                .map(|i| complete[i])
                .find(|t| !promoted.contains(&t.number))
        } else {
            None
        };
        if let Some(parent) = candidate {
            // A higher rung overwrites a lower one: full fidelity is reached soonest.
            found = Some(RungStep::Promote { parent, rung: r });
        }
        let rung_closed = here.len() >= cap || (ended_below && candidate.is_none());
        ended_below = rung_closed && !running(r);
    }
    match found {
        Some(step) => step,
        None if !closed || members.iter().any(|t| t.state == TrialState::Running) => {
            RungStep::Pending
        }
        None => RungStep::Ended,
    }
}

impl StudyPlan<'_> {
    /// The search's next step under the asynchronous rule (see the module's documentation).
    pub(super) fn async_step(
        &self,
        live: &[&TrialRow],
        rows: &[TrialRow],
        now: f64,
    ) -> Result<SearchStep, SearchError> {
        if self.limits.out_of_time(rows, now) {
            return Ok(SearchStep::Over);
        }
        let (generation, mut by_generation) = self.by_generation(live);
        let eta = self.layout.eta;
        let mut pending = false;
        for (g, size) in self.layout.sizes().enumerate() {
            let members = by_generation.remove(&g).unwrap_or_default();
            let filled = members.iter().filter(|t| t.rung == 0).count();
            let promote = |step: RungStep, pending: &mut bool| match step {
                RungStep::Promote { parent, rung } => Some(self.promote(parent, rung)),
                RungStep::Pending => {
                    *pending = true;
                    None
                }
                RungStep::Ended => None,
            };
            let bracket = self.layout.bracket(size);
            if filled >= size {
                if let Some(step) = promote(next_async(&members, &bracket, eta, true), &mut pending)
                {
                    return Ok(step);
                }
                continue;
            }
            // The generation being filled: generations fill in number order, so it is the last.
            if let RungStep::Promote { parent, rung } = next_async(&members, &bracket, eta, false) {
                return Ok(self.promote(parent, rung));
            }
            let history = super::plan::history(live, &generation, g);
            if let Some(design) = self.propose(&history, rows)? {
                let trial = self.trial(TrialKind::Search, None, design, 0, None);
                return Ok(SearchStep::Trial(trial));
            }
            // The space gives nothing new: rung 0 closes at what it holds, and no later
            // generation starts.
            let bracket = self.layout.bracket(filled);
            if let Some(step) = promote(next_async(&members, &bracket, eta, true), &mut pending) {
                return Ok(step);
            }
            break;
        }
        Ok(if pending {
            SearchStep::Wait
        } else {
            SearchStep::Over
        })
    }

    /// The promotion of `parent` to `rung`: its design retrained at that rung's steps.
    fn promote(&self, parent: &TrialRow, rung: usize) -> SearchStep {
        let design = parent.design.clone();
        SearchStep::Trial(self.trial(TrialKind::Search, None, design, rung, Some(parent.number)))
    }
}

#[cfg(test)]
#[path = "promotion_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "promotion_parallel_tests.rs"]
mod parallel_tests;
