//! What a shared study trains next, decided from its stored trials alone, so any worker can
//! decide it inside its claim (optuna's model: the sampler's state is the study's history).
//!
//! This is the study's one rule of what trains next, for `pets search` and `pets worker` alike:
//! 1. the baselines, at full fidelity;
//! 2. the search, one generation after another (`generations`): a generation's designs come
//!    from the sampler, then its rungs' promotions (the best of the rung below by Pareto rank,
//!    see `fidelity`). Under `--promotion sync` (the default) a rung is synchronous: its
//!    promotions are claimable only once every trial of the rung below has ended, and a
//!    generation starts once the one before has ended, so its proposals see a fixed history and
//!    are the same whichever worker makes them. Under `--promotion async` promotions start
//!    before a rung has filled and generations overlap (`promotion`). The sampler's history is
//!    every complete search trial of the earlier generations, each design at the highest
//!    fidelity it reached, and the baselines the space can encode (all at full fidelity);
//!    generation 0 sees none of them. No search trial starts once `--trials` or `--timeout` is
//!    spent (`limits`), nor once a generation cannot be filled (the space is exhausted);
//! 3. once every search trial has ended, the confirmation: the `confirm_top` most accurate
//!    full-fidelity designs of the front within the budget and every baseline are trained again
//!    with the seeds `seed + 1 … seed + confirm_seeds - 1` (their search run is the first seed).
//!
//! The study is done when all of that has ended. Only dev accuracy enters any of these decisions.

use super::fidelity::promotion_order;
use super::generations::Layout;
use super::limits::Limits;
use super::pareto::{pareto_front, Point};
use super::promotion::Promotion;
use super::store::{NewTrial, Next, TrialKind, TrialRow, INTERRUPTED};
use super::{canonical, ProposalContext, SamplerKind, SearchError, SearchSpace, TrialState};
use crate::backbone::config::BackboneShape;
use crate::spec::Design;
use std::collections::{HashMap, HashSet};

/// Everything the planner needs; built once per worker from the study's settings.
pub struct StudyPlan<'a> {
    pub space: &'a SearchSpace,
    pub shape: BackboneShape,
    pub budget_params: usize,
    /// Training steps of each rung, cheapest first; the last is full fidelity.
    pub steps: Vec<usize>,
    pub layout: Layout,
    /// When rungs promote (`--promotion`).
    pub promotion: Promotion,
    pub limits: Limits,
    /// Presets fitted to the budget, by name (presets that cannot fit are left out).
    pub baselines: Vec<(String, Design)>,
    pub sampler: SamplerKind,
    pub search_seed: u64,
    pub population: usize,
    /// The training seed every search trial and baseline records (the confirmation's first).
    pub train_seed: u64,
    /// Front designs confirmed over seeds (`--confirm-top`).
    pub confirm_top: usize,
    /// Seeds each confirmed design is trained with, its search run included (`--confirm-seeds`).
    pub confirm_seeds: usize,
}

/// Where the search stands.
pub(super) enum SearchStep {
    /// Start this search trial.
    Trial(NewTrial),
    /// Nothing to start until a running trial ends.
    Wait,
    /// No search trial will start again: the budget is spent or the space exhausted.
    Over,
}

impl StudyPlan<'_> {
    /// Trials the budget allows: baselines, search trials and confirmation runs (`None` when
    /// only a timeout bounds the search).
    pub fn budget(&self) -> Option<usize> {
        let generations = self.layout.generations()?;
        let search: usize = (0..generations)
            .filter_map(|g| self.layout.size(g))
            .map(|size| self.layout.cost(size))
            .sum();
        let confirmed = self.confirm_top + self.baselines.len();
        let confirm = confirmed * self.confirm_seeds.saturating_sub(1);
        Some(self.baselines.len() + search + confirm)
    }

    /// The next step given every trial of the study, at Unix time `now`.
    pub fn next(&self, rows: &[TrialRow], now: f64) -> Result<Next, SearchError> {
        // Trials an earlier pets's single-process search marked interrupted were redone under new
        // numbers; they count for nothing.
        let live: Vec<&TrialRow> = rows.iter().filter(|t| !interrupted(t)).collect();
        let full = self.steps.len() - 1;
        for (name, design) in &self.baselines {
            if !live
                .iter()
                .any(|t| t.kind == TrialKind::Baseline && t.label.as_deref() == Some(name))
            {
                let label = Some(name.clone());
                let trial = self.trial(TrialKind::Baseline, label, design.clone(), full, None);
                return Ok(Next::Trial(trial));
            }
        }
        let step = match self.promotion {
            Promotion::Sync => self.search_step(&live, rows, now)?,
            Promotion::Async => self.async_step(&live, rows, now)?,
        };
        match step {
            SearchStep::Trial(t) => return Ok(Next::Trial(t)),
            SearchStep::Wait => return Ok(Next::Wait),
            SearchStep::Over => {}
        }
        let running = |kind: Option<TrialKind>| {
            live.iter()
                .any(|t| t.state == TrialState::Running && kind.is_none_or(|k| t.kind == k))
        };
        if running(Some(TrialKind::Search)) {
            // The confirmation ranks the finished front.
            return Ok(Next::Wait);
        }
        if let Some(t) = self.next_confirmation(&live) {
            return Ok(Next::Trial(t));
        }
        // A running trial may still die and need re-claiming: stay until it ends.
        Ok(if running(None) {
            Next::Wait
        } else {
            Next::Done
        })
    }

    /// Each live search trial's generation (by trial number), and the trials grouped by
    /// generation, each group in trial order.
    pub(super) fn by_generation<'r>(
        &self,
        live: &[&'r TrialRow],
    ) -> (HashMap<usize, usize>, HashMap<usize, Vec<&'r TrialRow>>) {
        let mut search: Vec<&TrialRow> = live
            .iter()
            .copied()
            .filter(|t| t.kind == TrialKind::Search)
            .collect();
        search.sort_by_key(|t| t.number);
        let generation = self.layout.membership(&search);
        let mut by_generation: HashMap<usize, Vec<&TrialRow>> = HashMap::new();
        for t in search {
            if let Some(&g) = generation.get(&t.number) {
                by_generation.entry(g).or_default().push(t);
            }
        }
        (generation, by_generation)
    }

    fn search_step(
        &self,
        live: &[&TrialRow],
        rows: &[TrialRow],
        now: f64,
    ) -> Result<SearchStep, SearchError> {
        let (generation, mut by_generation) = self.by_generation(live);
        let out_of_time = self.limits.out_of_time(rows, now);
        for (g, size) in self.layout.sizes().enumerate() {
            let members = by_generation.remove(&g).unwrap_or_default();
            let at = |r: usize| -> Vec<&TrialRow> {
                members.iter().copied().filter(|t| t.rung == r).collect()
            };
            let filled = at(0).len();
            let promoting = members.iter().any(|t| t.rung > 0);
            if filled < size && !promoting {
                if out_of_time {
                    return Ok(SearchStep::Over);
                }
                let baseline_running = live
                    .iter()
                    .any(|t| t.kind == TrialKind::Baseline && t.state == TrialState::Running);
                if g > 0 && baseline_running {
                    return Ok(SearchStep::Wait);
                }
                let history = history(live, &generation, g);
                if let Some(design) = self.propose(&history, rows)? {
                    let trial = self.trial(TrialKind::Search, None, design, 0, None);
                    return Ok(SearchStep::Trial(trial));
                }
                if filled == 0 {
                    return Ok(SearchStep::Over); // the space is exhausted
                }
            }
            let bracket = self.layout.bracket(filled.min(size));
            for (r, &planned) in bracket.iter().enumerate().skip(1) {
                let at_rung = at(r);
                if at_rung.len() >= planned {
                    continue;
                }
                if out_of_time {
                    return Ok(SearchStep::Over);
                }
                let below = at(r - 1);
                if below.iter().any(|t| t.state == TrialState::Running) {
                    return Ok(SearchStep::Wait);
                }
                let promoted: HashSet<usize> = at_rung.iter().filter_map(|t| t.parent).collect();
                let complete: Vec<&TrialRow> = below
                    .into_iter()
                    .filter(|t| t.state == TrialState::Complete)
                    .collect();
                // Best first, skipping those promoted already; none left: the rung ends short.
                if let Some(parent) = promotion_order(&points(&complete))
                    .into_iter()
                    .map(|i| complete[i])
                    .find(|t| !promoted.contains(&t.number))
                {
                    let design = parent.design.clone();
                    let trial = self.trial(TrialKind::Search, None, design, r, Some(parent.number));
                    return Ok(SearchStep::Trial(trial));
                }
            }
            if members.iter().any(|t| t.state == TrialState::Running) {
                // The next generation's proposals wait for this one's results.
                return Ok(SearchStep::Wait);
            }
            if filled < size {
                return Ok(SearchStep::Over); // it could not be filled: the space is exhausted
            }
        }
        Ok(SearchStep::Over)
    }

    /// The next confirmation run, if any is still to start.
    fn next_confirmation(&self, live: &[&TrialRow]) -> Option<NewTrial> {
        let full = self.steps.len() - 1;
        for parent in self.confirmed(live) {
            for k in 1..self.confirm_seeds as u64 {
                let seed = self.train_seed + k;
                let exists = live.iter().any(|t| {
                    t.kind == TrialKind::Confirm
                        && t.parent == Some(parent.number)
                        && t.seed == seed
                });
                if !exists {
                    let (label, design) = (parent.label.clone(), parent.design.clone());
                    let of = Some(parent.number);
                    let mut trial = self.trial(TrialKind::Confirm, label, design, full, of);
                    trial.seed = seed;
                    return Some(trial);
                }
            }
        }
        None
    }

    /// The trials the confirmation retrains: the `confirm_top` most accurate of the full-fidelity
    /// front within the budget (fewer parameters, then the earlier trial, first on ties), then
    /// every complete baseline.
    pub fn confirmed<'r>(&self, live: &[&'r TrialRow]) -> Vec<&'r TrialRow> {
        let full = self.steps.len() - 1;
        let complete = |t: &&&TrialRow| t.state == TrialState::Complete && t.accuracy.is_some();
        let candidates: Vec<&TrialRow> = live
            .iter()
            .filter(complete)
            .filter(|t| t.kind == TrialKind::Search && t.rung == full)
            .filter(|t| t.params.is_some_and(|p| p <= self.budget_params))
            .copied()
            .collect();
        let mut front: Vec<&TrialRow> = pareto_front(&points(&candidates))
            .into_iter()
            .map(|i| candidates[i])
            .collect();
        front.sort_by(|a, b| {
            b.accuracy
                .unwrap_or(0.0)
                .total_cmp(&a.accuracy.unwrap_or(0.0))
                .then(a.params.cmp(&b.params))
                .then(a.number.cmp(&b.number))
        });
        front.truncate(self.confirm_top);
        let mut baselines: Vec<&TrialRow> = live
            .iter()
            .filter(complete)
            .filter(|t| t.kind == TrialKind::Baseline)
            .copied()
            .collect();
        baselines.sort_by_key(|t| t.number);
        front.extend(baselines);
        front
    }

    pub(super) fn propose(
        &self,
        history: &[&TrialRow],
        rows: &[TrialRow],
    ) -> Result<Option<Design>, SearchError> {
        let mut history: Vec<&TrialRow> = history.to_vec();
        history.sort_by_key(|t| t.number);
        let history: Vec<_> = history.iter().filter_map(|t| t.evaluated()).collect();
        let seen: HashSet<String> = rows.iter().map(|t| t.canonical.clone()).collect();
        let ctx = ProposalContext {
            space: self.space,
            shape: self.shape,
            budget_params: self.budget_params,
            seen: &seen,
        };
        // A fresh sampler per proposal: its stream is a function of the seed and the history, so
        // whichever worker proposes, the study proposes the same designs in the same order.
        let mut sampler = self.sampler.build(self.search_seed, self.population);
        match sampler.propose(&ctx, &history, 1) {
            Ok(mut designs) => Ok(designs.pop()),
            Err(SearchError::Exhausted { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub(super) fn trial(
        &self,
        kind: TrialKind,
        label: Option<String>,
        design: Design,
        rung: usize,
        parent: Option<usize>,
    ) -> NewTrial {
        NewTrial {
            kind,
            label,
            canonical: canonical(&design),
            design,
            fidelity: self.steps[rung],
            seed: self.train_seed,
            rung,
            parent,
        }
    }
}

/// What generation `g`'s proposals are drawn from: every search trial of the other generations
/// (only complete ones count, see `propose`) and every baseline; nothing for generation 0.
pub(super) fn history<'r>(
    live: &[&'r TrialRow],
    generation: &HashMap<usize, usize>,
    g: usize,
) -> Vec<&'r TrialRow> {
    if g == 0 {
        return Vec::new();
    }
    live.iter()
        .copied()
        .filter(|t| match t.kind {
            TrialKind::Baseline => true,
            TrialKind::Search => generation.get(&t.number) != Some(&g),
            _ => false,
        })
        .collect()
}

/// Accuracy and parameters of complete trials, as the Pareto utilities take them.
pub(super) fn points(rows: &[&TrialRow]) -> Vec<Point> {
    rows.iter()
        .map(|t| Point {
            accuracy: t.accuracy.unwrap_or(0.0),
            params: t.params.unwrap_or(0) as f64,
        })
        .collect()
}

/// A trial a dead single-process search of an earlier pets left running, redone under a new number.
fn interrupted(t: &TrialRow) -> bool {
    t.state == TrialState::Failed && t.error.as_deref() == Some(INTERRUPTED)
}

#[cfg(test)]
#[path = "plan_tests.rs"]
pub(super) mod tests;
