//! Unit tests of the planner on hand-made histories: baselines, generations, the synchronous
//! rule's rungs, budgets and the confirmation.

use super::*;
use crate::search::store::TrialId;
use std::path::Path;
use std::time::Duration;
use TrialKind::{Baseline, Confirm, Search};
use TrialState::{Complete, Running};

/// A plan over mam.ron with one baseline, rungs of 10 and 30 steps and eta 2.
pub(crate) fn plan<'a>(
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
        promotion: Promotion::Sync,
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

pub(crate) fn space() -> SearchSpace {
    SearchSpace::from_file(Path::new("search_spaces/mam.ron")).unwrap()
}

/// The stored row of `t` as trial `number`, in `state` with `accuracy` when complete.
pub(crate) fn stored(number: usize, t: &NewTrial, state: TrialState, accuracy: f64) -> TrialRow {
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

pub(crate) fn claim(plan: &StudyPlan, rows: &[TrialRow], now: f64) -> NewTrial {
    match plan.next(rows, now).unwrap() {
        Next::Trial(t) => t,
        other => panic!(
            "expected a trial, got {other:?} after {} trials",
            rows.len()
        ),
    }
}

/// Runs the study one trial at a time, each trial taking 10 s; accuracy from its design.
pub(crate) fn run_to_the_end(plan: &StudyPlan) -> Vec<TrialRow> {
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
