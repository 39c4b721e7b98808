//! What a shared study trains next, decided from its stored trials alone, so any worker can
//! decide it inside its claim (optuna's model: the sampler's state is the study's history).
//!
//! This is the study's one rule of what trains next, for `pets search` and `pets worker` alike:
//! baselines at full fidelity, then rung 0's candidates from the sampler, then each higher rung's
//! promotions (the best of the rung below by Pareto rank, see `fidelity`). A rung is synchronous:
//! its promotions are claimable only once every trial of the rung below has ended (a promotion is
//! itself a claimable trial, with the lower trial as parent); until then a worker waits. The
//! budget is spent when every rung holds its candidates and nothing runs.

use super::fidelity::{promotion_order, Rung};
use super::pareto::Point;
use super::store::{NewTrial, Next, TrialKind, TrialRow, INTERRUPTED};
use super::{canonical, sampler_by_name, ProposalContext, SearchError, SearchSpace, TrialState};
use crate::backbone::config::BackboneShape;
use crate::spec::Design;
use std::collections::HashSet;

/// Everything the planner needs; built once per worker from the study's settings.
pub struct StudyPlan<'a> {
    pub space: &'a SearchSpace,
    pub shape: BackboneShape,
    pub budget_params: usize,
    pub rungs: Vec<Rung>,
    /// Presets fitted to the budget, by name (presets that cannot fit are left out).
    pub baselines: Vec<(String, Design)>,
    pub sampler: String,
    pub search_seed: u64,
    pub population: usize,
    /// The training seed every trial records.
    pub train_seed: u64,
}

impl StudyPlan<'_> {
    /// Trials the budget allows: the baselines and every rung's candidates.
    pub fn budget(&self) -> usize {
        self.baselines.len() + self.rungs.iter().map(|r| r.candidates).sum::<usize>()
    }

    /// The next step given every trial of the study.
    pub fn next(&self, rows: &[TrialRow]) -> Result<Next, SearchError> {
        // Trials an earlier pets's single-process search marked interrupted were redone under new
        // numbers; they count for nothing.
        let live: Vec<&TrialRow> = rows.iter().filter(|t| !interrupted(t)).collect();
        let full = self.rungs.len() - 1;
        for (name, design) in &self.baselines {
            if !live.iter().any(|t| t.label.as_deref() == Some(name)) {
                return Ok(Next::Trial(self.trial(
                    TrialKind::Baseline,
                    Some(name.clone()),
                    design.clone(),
                    full,
                    None,
                )));
            }
        }
        let search = |r: usize| -> Vec<&TrialRow> {
            live.iter()
                .copied()
                .filter(|t| t.kind == TrialKind::Search && t.rung == r)
                .collect()
        };
        for (r, rung) in self.rungs.iter().enumerate() {
            let at_rung = search(r);
            if at_rung.len() >= rung.candidates {
                continue;
            }
            if r == 0 {
                if let Some(design) = self.propose(rows)? {
                    return Ok(Next::Trial(self.trial(
                        TrialKind::Search,
                        None,
                        design,
                        0,
                        None,
                    )));
                }
                continue; // the space is exhausted: rung 0 ends early
            }
            let below = search(r - 1);
            if below.iter().any(|t| t.state == TrialState::Running) {
                return Ok(Next::Wait);
            }
            let promoted: HashSet<usize> = at_rung.iter().filter_map(|t| t.parent).collect();
            let complete: Vec<&TrialRow> = below
                .into_iter()
                .filter(|t| t.state == TrialState::Complete)
                .collect();
            let points: Vec<Point> = complete
                .iter()
                .map(|t| Point {
                    accuracy: t.accuracy.unwrap_or(0.0),
                    params: t.params.unwrap_or(0) as f64,
                })
                .collect();
            // Best first, skipping those promoted already; none left means the rung ends short.
            if let Some(parent) = promotion_order(&points)
                .into_iter()
                .map(|i| complete[i])
                .find(|t| !promoted.contains(&t.number))
            {
                return Ok(Next::Trial(self.trial(
                    TrialKind::Search,
                    None,
                    parent.design.clone(),
                    r,
                    Some(parent.number),
                )));
            }
        }
        Ok(if rows.iter().any(|t| t.state == TrialState::Running) {
            // A running trial may still die and need re-claiming: stay until it ends.
            Next::Wait
        } else {
            Next::Done
        })
    }

    fn propose(&self, rows: &[TrialRow]) -> Result<Option<Design>, SearchError> {
        let history: Vec<_> = rows
            .iter()
            .filter(|t| t.kind == TrialKind::Search)
            .filter_map(TrialRow::evaluated)
            .collect();
        let seen: HashSet<String> = rows.iter().map(|t| t.canonical.clone()).collect();
        let ctx = ProposalContext {
            space: self.space,
            shape: self.shape,
            budget_params: self.budget_params,
            seen: &seen,
        };
        // A fresh sampler per proposal: its stream is a function of the seed and the history, so
        // whichever worker proposes, the study proposes the same designs in the same order.
        let mut sampler = sampler_by_name(&self.sampler, self.search_seed, self.population)?;
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
            fidelity: self.rungs[rung].steps,
            seed: self.train_seed,
            rung,
            parent,
        }
    }
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

    fn row(number: usize, kind: TrialKind, rung: usize, state: TrialState, acc: f64) -> TrialRow {
        let design = Design::from_ron(&format!("Design(name: \"d{number}\")"), "test").unwrap();
        TrialRow {
            id: TrialId(number as i64),
            number,
            kind,
            label: (kind == TrialKind::Baseline).then(|| "lora".to_string()),
            design,
            canonical: format!("hash-{number}"),
            state,
            accuracy: (state == TrialState::Complete).then_some(acc),
            params: (state == TrialState::Complete).then_some(1000 * (number + 1)),
            percent: None,
            fidelity: 10,
            seed: 0,
            rung,
            parent: (rung > 0).then_some(1),
            started: 0.0,
            finished: None,
            seconds: None,
            error: None,
            metrics: None,
            owner: Some("w".into()),
            attempts: 1,
        }
    }

    #[test]
    fn baselines_then_rung_zero_then_promotions_once_the_rung_below_has_ended() {
        let space = SearchSpace::from_file(Path::new("search_spaces/mam.ron")).unwrap();
        let lora = Design::from_file(Path::new("search_spaces/presets/lora.ron")).unwrap();
        let plan = StudyPlan {
            space: &space,
            shape: BackboneShape::MINILM_L6,
            budget_params: 200_000,
            rungs: vec![
                Rung {
                    steps: 10,
                    candidates: 2,
                },
                Rung {
                    steps: 30,
                    candidates: 1,
                },
            ],
            baselines: vec![("lora".into(), lora)],
            sampler: "random".into(),
            search_seed: 0,
            population: 2,
            train_seed: 7,
        };
        assert_eq!(plan.budget(), 4);
        use TrialKind::{Baseline, Search};
        use TrialState::{Complete, Running};
        let Next::Trial(t) = plan.next(&[]).unwrap() else {
            panic!("baseline first")
        };
        assert_eq!(
            (t.kind, t.label.as_deref(), t.rung, t.fidelity, t.seed),
            (Baseline, Some("lora"), 1, 30, 7)
        );

        let mut rows = vec![row(0, Baseline, 1, Running, 0.0)];
        let Next::Trial(t) = plan.next(&rows).unwrap() else {
            panic!("rung 0 while the baseline runs")
        };
        assert_eq!(
            (t.kind, t.rung, t.fidelity, t.parent),
            (Search, 0, 10, None)
        );
        assert!(!rows.iter().any(|r| r.canonical == t.canonical));

        rows.push(row(1, Search, 0, Complete, 0.8));
        rows.push(row(2, Search, 0, Running, 0.0));
        assert!(
            matches!(plan.next(&rows).unwrap(), Next::Wait),
            "rung 1 waits for rung 0"
        );

        rows[2] = row(2, Search, 0, Complete, 0.6);
        let Next::Trial(t) = plan.next(&rows).unwrap() else {
            panic!("a promotion")
        };
        // Trial 1 is more accurate and trial 2 smaller: both on the front; the more accurate first.
        assert_eq!((t.rung, t.fidelity, t.parent), (1, 30, Some(1)));

        rows.push(row(3, Search, 1, Running, 0.0));
        assert!(
            matches!(plan.next(&rows).unwrap(), Next::Wait),
            "stay while a trial may need re-claiming"
        );
        rows[3] = row(3, Search, 1, Complete, 0.85);
        rows[0] = row(0, Baseline, 1, Complete, 0.7);
        assert!(matches!(plan.next(&rows).unwrap(), Next::Done));
    }
}
