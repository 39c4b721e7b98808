//! What a shared study trains next, decided from its stored trials alone, so any worker can
//! decide it inside its claim (optuna's model: the sampler's state is the study's history).
//!
//! This is the study's one rule of what trains next, for `pets search` and `pets worker` alike:
//! 1. the baselines, at full fidelity;
//! 2. the search, one generation after another (`generations`): a generation's designs come
//!    from the sampler, then its rungs' promotions (the best of the rung below by Pareto rank,
//!    see `fidelity`). A rung is synchronous: its promotions are claimable only once every trial
//!    of the rung below has ended, and a generation starts once the one before has ended, so its
//!    proposals see a fixed history and are the same whichever worker makes them. The sampler's
//!    history is every complete search trial of the earlier generations, each design at the
//!    highest fidelity it reached, and the baselines the space can encode (all at full fidelity);
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
enum SearchStep {
    Trial(NewTrial),
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
        match self.search_step(&live, rows, now)? {
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

    fn search_step(
        &self,
        live: &[&TrialRow],
        rows: &[TrialRow],
        now: f64,
    ) -> Result<SearchStep, SearchError> {
        let mut search: Vec<&TrialRow> = live
            .iter()
            .copied()
            .filter(|t| t.kind == TrialKind::Search)
            .collect();
        search.sort_by_key(|t| t.number);
        let generation = self.layout.membership(&search);
        let mut by_generation: HashMap<usize, Vec<&TrialRow>> = HashMap::new();
        for t in &search {
            if let Some(&g) = generation.get(&t.number) {
                by_generation.entry(g).or_default().push(t);
            }
        }
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
                let history: Vec<&TrialRow> = if g == 0 {
                    Vec::new()
                } else {
                    live.iter()
                        .copied()
                        .filter(|t| match t.kind {
                            TrialKind::Baseline => true,
                            TrialKind::Search => generation.get(&t.number) != Some(&g),
                            _ => false,
                        })
                        .collect()
                };
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

    fn propose(
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

    fn trial(
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

/// Accuracy and parameters of complete trials, as the Pareto utilities take them.
fn points(rows: &[&TrialRow]) -> Vec<Point> {
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
mod tests {
    use super::*;
    use crate::search::store::TrialId;
    use std::path::Path;
    use std::time::Duration;
    use TrialKind::{Baseline, Confirm, Search};
    use TrialState::{Complete, Running};

    /// A plan over mam.ron with one baseline, rungs of 10 and 30 steps and eta 2.
    fn plan<'a>(
        space: &'a SearchSpace,
        initial: usize,
        population: usize,
        limits: Limits,
    ) -> StudyPlan<'a> {
        let lora = Design::from_file(Path::new("search_spaces/presets/lora.ron")).unwrap();
        StudyPlan {
            space,
            shape: BackboneShape::MINILM_L6,
            budget_params: 200_000,
            steps: vec![10, 30],
            layout: Layout {
                initial,
                population,
                eta: 2,
                rungs: 2,
                trials: limits.trials,
            },
            limits,
            baselines: vec![("lora".into(), lora)],
            sampler: SamplerKind::Nsga2,
            search_seed: 0,
            population,
            train_seed: 7,
            confirm_top: 1,
            confirm_seeds: 3,
        }
    }

    fn space() -> SearchSpace {
        SearchSpace::from_file(Path::new("search_spaces/mam.ron")).unwrap()
    }

    /// The stored row of `t` as trial `number`, in `state` with `accuracy` when complete.
    fn stored(number: usize, t: &NewTrial, state: TrialState, accuracy: f64) -> TrialRow {
        TrialRow {
            id: TrialId(number as i64),
            number,
            kind: t.kind,
            label: t.label.clone(),
            design: t.design.clone(),
            canonical: t.canonical.clone(),
            state,
            accuracy: (state == Complete).then_some(accuracy),
            params: (state == Complete).then_some(1000 * (number + 1)),
            percent: None,
            fidelity: t.fidelity,
            seed: t.seed,
            rung: t.rung,
            parent: t.parent,
            started: number as f64 * 10.0,
            finished: (state != Running).then_some(number as f64 * 10.0 + 10.0),
            seconds: None,
            error: None,
            metrics: None,
            owner: Some("w".into()),
            attempts: 1,
        }
    }

    fn claim(plan: &StudyPlan, rows: &[TrialRow], now: f64) -> NewTrial {
        match plan.next(rows, now).unwrap() {
            Next::Trial(t) => t,
            other => panic!(
                "expected a trial, got {other:?} after {} trials",
                rows.len()
            ),
        }
    }

    /// Runs the study one trial at a time, each trial taking 10 s; accuracy from its design.
    fn run_to_the_end(plan: &StudyPlan) -> Vec<TrialRow> {
        let mut rows = Vec::new();
        loop {
            let now = rows.len() as f64 * 10.0;
            match plan.next(&rows, now).unwrap() {
                Next::Trial(t) => {
                    let acc = 0.5 + (t.canonical.as_bytes()[0] % 40) as f64 / 100.0;
                    let acc = acc + t.rung as f64 * 0.01 + t.seed as f64 * 0.001;
                    rows.push(stored(rows.len(), &t, Complete, acc));
                }
                Next::Done => return rows,
                Next::Wait => panic!("a sequential study never waits"),
            }
            assert!(rows.len() < 500, "the study does not end");
        }
    }

    #[test]
    fn baselines_then_rung_zero_then_promotions_once_the_rung_below_has_ended() {
        let space = space();
        let plan = plan(&space, 2, 2, Limits::new(Some(3), None));
        // 1 baseline, one generation of 2 + 1 promotion, then 2 seeds × (1 front + 1 baseline).
        assert_eq!(plan.budget(), Some(1 + 3 + 4));
        let baseline = claim(&plan, &[], 0.0);
        assert_eq!(
            (
                baseline.kind,
                baseline.label.as_deref(),
                baseline.rung,
                baseline.fidelity,
                baseline.seed
            ),
            (Baseline, Some("lora"), 1, 30, 7)
        );
        let mut rows = vec![stored(0, &baseline, Running, 0.0)];
        let t = claim(&plan, &rows, 0.0);
        assert_eq!(
            (t.kind, t.rung, t.fidelity, t.parent),
            (Search, 0, 10, None)
        );
        rows.push(stored(1, &t, Complete, 0.8));
        let t = claim(&plan, &rows, 0.0);
        rows.push(stored(2, &t, Running, 0.0));
        assert!(
            matches!(plan.next(&rows, 0.0).unwrap(), Next::Wait),
            "rung 1 waits for rung 0"
        );
        rows[2] = stored(2, &t, Complete, 0.6);
        let t = claim(&plan, &rows, 0.0);
        // Trial 1 is more accurate and smaller than trial 2: it is promoted.
        assert_eq!((t.rung, t.fidelity, t.parent), (1, 30, Some(1)));
        rows.push(stored(3, &t, Running, 0.0));
        assert!(
            matches!(plan.next(&rows, 0.0).unwrap(), Next::Wait),
            "confirmation waits"
        );
        rows[3] = stored(3, &t, Complete, 0.85);
        rows[0] = stored(0, &baseline, Complete, 0.7);
        // The trial budget is spent: the front's best (trial 3) and the baseline, seeds 8 and 9.
        let mut confirmed = Vec::new();
        for n in 4..8 {
            let t = claim(&plan, &rows, 0.0);
            assert_eq!((t.kind, t.rung, t.fidelity), (Confirm, 1, 30));
            confirmed.push((t.parent, t.seed, t.label.clone()));
            rows.push(stored(n, &t, Complete, 0.8));
        }
        let lora = Some("lora".to_string());
        assert_eq!(
            confirmed,
            [
                (Some(3), 8, None),
                (Some(3), 9, None),
                (Some(0), 8, lora.clone()),
                (Some(0), 9, lora)
            ]
        );
        assert!(matches!(plan.next(&rows, 0.0).unwrap(), Next::Done));
    }

    #[test]
    fn generations_follow_each_other_within_the_trial_budget() {
        let space = space();
        // Generation 0 of 4 (+2 promoted), then generations of 2 (+1): 6 + 3 + 3 = 12 trials.
        let plan = plan(&space, 4, 2, Limits::new(Some(12), None));
        let rows = run_to_the_end(&plan);
        let count = |kind| rows.iter().filter(|t| t.kind == kind).count();
        assert_eq!((count(Baseline), count(Search), count(Confirm)), (1, 12, 4));
        let rung0: Vec<usize> = rows
            .iter()
            .filter(|t| t.kind == Search && t.rung == 0)
            .map(|t| t.number)
            .collect();
        // Each generation's promotions come before the next generation's proposals.
        let promoted: Vec<usize> = rows
            .iter()
            .filter(|t| t.kind == Search && t.rung == 1)
            .map(|t| t.number)
            .collect();
        assert_eq!(rung0, [1, 2, 3, 4, 7, 8, 10, 11]);
        assert_eq!(promoted, [5, 6, 9, 12]);
        // Every search trial's design is new; promotions retrain their parent's design.
        let designs: HashSet<&str> = rows
            .iter()
            .filter(|t| t.rung == 0 && t.kind == Search)
            .map(|t| t.canonical.as_str())
            .collect();
        assert_eq!(designs.len(), 8);
        // Reproducible: the same settings give the same study, design for design.
        let again = run_to_the_end(&plan);
        let hashes = |r: &[TrialRow]| r.iter().map(|t| t.canonical.clone()).collect::<Vec<_>>();
        assert_eq!(hashes(&rows), hashes(&again));
    }

    #[test]
    fn a_generation_is_proposed_from_the_earlier_ones_only() {
        let space = space();
        let plan = plan(&space, 4, 2, Limits::new(Some(12), None));
        let rows = run_to_the_end(&plan);
        // Just before generation 1's second proposal (trial 8), the proposal depends on
        // generations before it, not on its own first member's result.
        let before: Vec<TrialRow> = rows[..8].to_vec();
        let a = claim(&plan, &before, 80.0);
        let mut changed = before.clone();
        changed[7].accuracy = Some(0.99);
        let b = claim(&plan, &changed, 80.0);
        assert_eq!(a.canonical, b.canonical);
        assert_eq!(a.canonical, rows[8].canonical);
        // A running member of generation 0 holds generation 1 back.
        let mut waiting = rows[..7].to_vec();
        waiting[6].state = Running;
        assert!(matches!(plan.next(&waiting, 70.0).unwrap(), Next::Wait));
    }

    #[test]
    fn the_timeout_stops_new_search_trials_and_the_confirmation_still_runs() {
        let space = space();
        // 40 s of wall time: trials take 10 s each, back to back.
        let plan = plan(
            &space,
            4,
            2,
            Limits::new(None, Some(Duration::from_secs(40))),
        );
        assert_eq!(plan.budget(), None);
        let rows = run_to_the_end(&plan);
        let search = rows.iter().filter(|t| t.kind == Search).count();
        // The baseline and three search trials fill 40 s; nothing starts after.
        assert_eq!(search, 3);
        // No full-fidelity search trial: only the baseline is confirmed.
        let confirm: Vec<_> = rows
            .iter()
            .filter(|t| t.kind == Confirm)
            .map(|t| t.parent)
            .collect();
        assert_eq!(confirm, [Some(0), Some(0)]);
    }

    #[test]
    fn test_results_never_reach_the_planner() {
        let space = space();
        let plan = plan(&space, 4, 2, Limits::new(Some(12), None));
        let rows = run_to_the_end(&plan);
        // Any test metrics the runs stored, however extreme, change nothing the plan decides.
        for cut in [3, 6, 8, 12] {
            let mut with_test = rows[..cut].to_vec();
            for (i, t) in with_test.iter_mut().enumerate() {
                let flipped = if i % 2 == 0 { "1111" } else { "0000" };
                t.metrics = Some(
                    serde_json::json!({"test_accuracy": i as f64 / 20.0, "test_correct": flipped}),
                );
            }
            let now = cut as f64 * 10.0;
            assert_eq!(
                claim(&plan, &with_test, now).canonical,
                claim(&plan, &rows[..cut], now).canonical
            );
        }
    }
}
