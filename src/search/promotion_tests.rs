//! Unit tests of the asynchronous promotion rule on hand-made histories: promotions before a rung
//! fills, rank and crowding, a worker that dies mid-rung, budgets, and determinism.

use super::*;
use crate::search::limits::Limits;
use crate::search::plan::tests::{claim, plan, run_to_the_end, space, stored};
use crate::search::store::{NewTrial, Next, TrialId};
use crate::search::SearchSpace;
use crate::spec::Design;
use std::time::Duration;
use TrialKind::{Baseline, Confirm, Search};
use TrialState::{Complete, Running};

/// The planner of `plan::tests` under the asynchronous rule.
pub(super) fn async_plan(
    space: &SearchSpace,
    initial: usize,
    population: usize,
    limits: Limits,
) -> StudyPlan<'_> {
    StudyPlan {
        promotion: Promotion::Async,
        ..plan(space, initial, population, limits)
    }
}

/// A hand-made search trial: `number` at `rung`, complete with (`accuracy`, `params`) or running.
fn row(
    number: usize,
    rung: usize,
    result: Option<(f64, usize)>,
    parent: Option<usize>,
) -> TrialRow {
    TrialRow {
        id: TrialId(number as i64),
        number,
        kind: Search,
        label: None,
        design: Design::from_ron("Design(name: \"d\")", "test").unwrap(),
        canonical: format!("design-{}", parent.unwrap_or(number)),
        state: if result.is_some() { Complete } else { Running },
        accuracy: result.map(|r| r.0),
        params: result.map(|r| r.1),
        percent: None,
        fidelity: 10 * (rung + 1),
        seed: 0,
        rung,
        parent,
        started: number as f64,
        finished: result.map(|_| number as f64 + 1.0),
        seconds: None,
        error: None,
        metrics: None,
        owner: Some("w".into()),
        attempts: 1,
    }
}

fn promoted(step: RungStep) -> Option<(usize, usize)> {
    match step {
        RungStep::Promote { parent, rung } => Some((parent.number, rung)),
        _ => None,
    }
}

/// The next async decision for `rows`, as (kind, rung, parent).
fn decide(plan: &StudyPlan, rows: &[TrialRow]) -> (TrialKind, usize, Option<usize>) {
    let t = claim(plan, rows, 0.0);
    (t.kind, t.rung, t.parent)
}

#[test]
fn promotion_parses_sync_and_async_and_names_the_setting() {
    assert_eq!("async".parse::<Promotion>().unwrap(), Promotion::Async);
    assert_eq!(" SYNC ".parse::<Promotion>().unwrap(), Promotion::Sync);
    assert_eq!(Promotion::default(), Promotion::Sync);
    assert_eq!(Promotion::Async.to_string(), "async");
    let err = "asha".parse::<Promotion>().unwrap_err().to_string();
    assert_eq!(err, "promotion asha: expected sync or async");
}

#[test]
fn a_promotion_starts_before_its_rung_has_filled() {
    let space = space();
    let limits = Limits::new(Some(12), None);
    let (sync, asynchronous) = (plan(&space, 4, 2, limits), async_plan(&space, 4, 2, limits));
    let baseline = claim(&asynchronous, &[], 0.0);
    let mut rows = vec![stored(0, &baseline, Complete, 0.7)];
    for (n, accuracy) in [(1, 0.6), (2, 0.8)] {
        let t = claim(&asynchronous, &rows, 0.0);
        // One result is no ranking: floor(1 / eta) = 0 promotions, so the second is a proposal.
        assert_eq!((t.kind, t.rung), (Search, 0));
        rows.push(stored(n, &t, Complete, accuracy));
    }
    // Two of generation 0's four are in: the best of them (by front, then crowding, then
    // accuracy: trial 2) goes to full fidelity now; the synchronous rule proposes trial 3 first.
    assert_eq!(decide(&asynchronous, &rows), (Search, 1, Some(2)));
    assert_eq!(decide(&sync, &rows), (Search, 0, None));
}

#[test]
fn a_rung_promotes_by_front_rank_then_crowding() {
    // Front: p1 (0.80, 100) and p4 (0.60, 10) at its ends, p3 (0.785, 55) in a sparse stretch,
    // p2 (0.79, 60) crowded beside p1 and p3; d5 and d6 are dominated.
    let rung0 = [
        row(1, 0, Some((0.80, 100)), None),
        row(2, 0, Some((0.79, 60)), None),
        row(3, 0, Some((0.785, 55)), None),
        row(4, 0, Some((0.60, 10)), None),
        row(5, 0, Some((0.70, 200)), None),
        row(6, 0, Some((0.50, 300)), None),
    ];
    // A generation of 8 (4 to promote), 6 in: floor(6 / 2) = 3 may go now.
    let bracket = [8, 4];
    let mut rows: Vec<TrialRow> = rung0.to_vec();
    let mut order = Vec::new();
    loop {
        let members: Vec<&TrialRow> = rows.iter().collect();
        let Some((parent, rung)) = promoted(next_async(&members, &bracket, 2, false)) else {
            break;
        };
        order.push(parent);
        rows.push(row(rows.len() + 1, rung, None, Some(parent)));
    }
    // Not the three most accurate (1, 2, 3): the small p4 survives, and p3 before p2.
    assert_eq!(order, [1, 4, 3]);
    // The rung waits for rung 0's last two; once rung 0 has ended, p2 fills the fourth place.
    let members: Vec<&TrialRow> = rows.iter().collect();
    assert!(matches!(
        next_async(&members, &bracket, 2, false),
        RungStep::Pending
    ));
    rows.push(row(13, 0, Some((0.55, 400)), None));
    rows.push(row(14, 0, Some((0.52, 500)), None));
    let members: Vec<&TrialRow> = rows.iter().collect();
    let last = promoted(next_async(&members, &bracket, 2, true));
    assert_eq!(last, Some((2, 1)));
}

#[test]
fn the_highest_rung_promotes_first() {
    // Three rungs (8 → 4 → 2): rung 1 holds two results, enough for one promotion to rung 2;
    // rung 0's five allow two promotions, of which trial 7 (on the front's small end) is left.
    let rows = [
        row(1, 0, Some((0.80, 100)), None),
        row(2, 0, Some((0.70, 50)), None),
        row(3, 0, Some((0.60, 90)), None),
        row(4, 0, Some((0.55, 95)), None),
        row(5, 1, Some((0.82, 100)), Some(1)),
        row(6, 1, Some((0.72, 50)), Some(2)),
        row(7, 0, Some((0.50, 5)), None),
    ];
    let members: Vec<&TrialRow> = rows.iter().collect();
    let step = next_async(&members, &[8, 4, 2], 2, false);
    assert_eq!(promoted(step), Some((5, 2)));
    // Without rung 2, trial 7 would go up.
    let step = next_async(&members, &[8, 4], 2, false);
    assert_eq!(promoted(step), Some((7, 1)));
}

#[test]
fn a_dead_workers_trial_holds_nothing_back_and_is_promoted_once() {
    let space = space();
    let limits = Limits::new(Some(12), None);
    let (sync, asynchronous) = (plan(&space, 4, 2, limits), async_plan(&space, 4, 2, limits));
    let p = &asynchronous;
    let mut rows = vec![stored(0, &claim(p, &[], 0.0), Complete, 0.7)];
    rows.push(stored(1, &claim(p, &rows, 0.0), Complete, 0.8));
    // Trial 2's worker dies: the trial stays running until its heartbeat is stale.
    let dead = claim(p, &rows, 0.0);
    rows.push(stored(2, &dead, Running, 0.0));
    rows.push(stored(3, &claim(p, &rows, 0.0), Complete, 0.6));
    // Trials 1 and 3 are in: trial 1 goes up without waiting for trial 2.
    assert_eq!(decide(p, &rows), (Search, 1, Some(1)));
    assert!(matches!(sync.next(&rows, 0.0).unwrap(), Next::Trial(_)));
    rows.push(stored(4, &claim(p, &rows, 0.0), Running, 0.0));
    rows.push(stored(5, &claim(p, &rows, 0.0), Complete, 0.5));
    // Generation 0 is filled and its promotable trial went up; the dead trial holds back
    // neither it nor generation 1, whose first design is proposed now. The synchronous rule waits.
    assert!(matches!(sync.next(&rows, 0.0).unwrap(), Next::Wait));
    let next = claim(p, &rows, 0.0);
    assert_eq!((next.kind, next.rung, next.parent), (Search, 0, None));
    rows.push(stored(6, &next, Running, 0.0));
    let search: Vec<&TrialRow> = rows.iter().filter(|t| t.kind == Search).collect();
    assert_eq!(p.layout.membership(&search).get(&6), Some(&1));
    // Another worker re-claims trial 2 (same number, attempt 2) and it completes the best.
    rows[2] = TrialRow {
        attempts: 2,
        ..stored(2, &dead, Complete, 0.9)
    };
    // Rung 0 has ended: trial 2 takes generation 0's second place, and no third is ever made.
    assert_eq!(decide(p, &rows), (Search, 1, Some(2)));
    let rows = finish(p, rows);
    let gen0: Vec<Option<usize>> = rows
        .iter()
        .filter(|t| t.kind == Search && t.rung == 1 && t.parent.is_some_and(|n| n <= 5))
        .map(|t| t.parent)
        .collect();
    assert_eq!(gen0, [Some(1), Some(2)]);
    assert_eq!(rows.iter().filter(|t| t.kind == Search).count(), 12);
    assert_promoted_once(&rows);
}

/// Ends every running trial, then claims and completes one trial at a time to the study's end.
fn finish(plan: &StudyPlan, mut rows: Vec<TrialRow>) -> Vec<TrialRow> {
    for t in rows.iter_mut().filter(|t| t.state == Running) {
        t.state = Complete;
        t.accuracy = Some(0.5 + t.number as f64 / 100.0);
        t.params = Some(1000 * (t.number + 1));
    }
    loop {
        match plan.next(&rows, 0.0).unwrap() {
            Next::Trial(t) => {
                let accuracy = 0.5 + (t.canonical.as_bytes()[0] % 40) as f64 / 100.0;
                rows.push(stored(rows.len(), &t, Complete, accuracy));
            }
            Next::Done => return rows,
            Next::Wait => panic!("nothing runs, yet the study waits"),
        }
        assert!(rows.len() < 500, "the study does not end");
    }
}

/// No trial is promoted twice to one rung.
pub(super) fn assert_promoted_once(rows: &[TrialRow]) {
    let mut seen = HashSet::new();
    for t in rows.iter().filter(|t| t.kind == Search && t.rung > 0) {
        let parent = t.parent.expect("a promotion names its parent");
        assert!(
            seen.insert((parent, t.rung)),
            "trial {parent} promoted twice"
        );
    }
}

#[test]
fn the_trial_budget_is_exact_and_the_confirmation_follows() {
    let space = space();
    let p = async_plan(&space, 4, 2, Limits::new(Some(12), None));
    let rows = run_to_the_end(&p);
    let count = |kind| rows.iter().filter(|t| t.kind == kind).count();
    // The same layout as the synchronous rule: 4 + 2, then 2 + 1 twice.
    assert_eq!((count(Baseline), count(Search), count(Confirm)), (1, 12, 4));
    assert_promoted_once(&rows);
    let search: Vec<&TrialRow> = rows.iter().filter(|t| t.kind == Search).collect();
    let generation = p.layout.membership(&search);
    let of = |g: usize, r: usize| -> Vec<usize> {
        search
            .iter()
            .filter(|t| t.rung == r && generation.get(&t.number) == Some(&g))
            .map(|t| t.number)
            .collect()
    };
    // Each generation's rungs hold what its bracket plans, promotions included.
    let shape: Vec<(usize, usize)> = (0..3).map(|g| (of(g, 0).len(), of(g, 1).len())).collect();
    assert_eq!(shape, [(4, 2), (2, 1), (2, 1)]);
    // Promotions interleave with proposals: one goes up before generation 0 has filled.
    assert!(of(0, 1)[0] < of(0, 0)[3], "{:?} {:?}", of(0, 0), of(0, 1));
    // Confirmation runs come last, once every search trial has ended.
    let first_confirm = rows.iter().position(|t| t.kind == Confirm).unwrap();
    assert!(rows[first_confirm..].iter().all(|t| t.kind == Confirm));
}

#[test]
fn the_timeout_stops_promotions_and_the_confirmation_still_runs() {
    let space = space();
    let limits = Limits::new(None, Some(Duration::from_secs(40)));
    let rows = run_to_the_end(&async_plan(&space, 4, 2, limits));
    // 40 s: the baseline, two proposals and one promotion; nothing starts after.
    let search: Vec<(usize, usize)> = rows
        .iter()
        .filter(|t| t.kind == Search)
        .map(|t| (t.number, t.rung))
        .collect();
    assert_eq!(search, [(1, 0), (2, 0), (3, 1)]);
    // Unlike the synchronous rule's (baseline only), a design reached full fidelity in time.
    let confirm: Vec<_> = rows
        .iter()
        .filter(|t| t.kind == Confirm)
        .map(|t| t.parent)
        .collect();
    assert_eq!(confirm, [Some(3), Some(3), Some(0), Some(0)]);
}

#[test]
fn decisions_depend_on_the_stored_trials_only() {
    let space = space();
    let p = async_plan(&space, 4, 2, Limits::new(Some(12), None));
    let rows = run_to_the_end(&p);
    let again = run_to_the_end(&p);
    let key = |t: &TrialRow| (t.kind, t.rung, t.parent, t.canonical.clone(), t.seed);
    assert_eq!(
        rows.iter().map(key).collect::<Vec<_>>(),
        again.iter().map(key).collect::<Vec<_>>()
    );
    // A worker reading the trials in another order, at another time, decides the same.
    for cut in 0..rows.len() {
        let mut shuffled = rows[..cut].to_vec();
        shuffled.reverse();
        let a = claim(&p, &rows[..cut], 0.0);
        let b = claim(&p, &shuffled, 1e6);
        let decision = |t: &NewTrial| (t.kind, t.rung, t.parent, t.canonical.clone(), t.seed);
        assert_eq!(decision(&a), decision(&b), "after {cut} trials");
    }
}

#[test]
fn the_rule_is_in_the_study_settings_and_older_studies_resume() {
    use crate::search::fidelity::RungAt;
    use crate::search::study::{settings_fingerprint, SearchSettings};
    let sync = SearchSettings {
        study: "s".into(),
        space: "search_spaces/mam.ron".into(),
        budget: "0.5%".parse().expect("a budget"),
        sampler: crate::search::SamplerKind::Nsga2,
        seed: 0,
        initial: 12,
        population: 6,
        trials: None,
        timeout: None,
        confirm_top: 3,
        confirm_seeds: 3,
        eta: 2,
        rungs: 2,
        promotion: Promotion::Sync,
        rung_at: Vec::new(),
        baselines: vec!["lora".into()],
        presets_dir: "search_spaces/presets".into(),
        reports: "reports".into(),
        jobs: 1,
        pack: 1,
        command: "pets search".into(),
    };
    // The defaults write no key: a study stored before `--promotion` existed compares equal.
    let old = settings_fingerprint(&sync);
    assert!(old.get("promotion").is_none() && old.get("rung_at").is_none());
    let changed = SearchSettings {
        promotion: Promotion::Async,
        rung_at: vec![RungAt::Data(25.0)],
        ..sync
    };
    let new = settings_fingerprint(&changed);
    assert_eq!(new["promotion"], "async");
    assert_eq!(new["rung_at"], serde_json::json!(["25%"]));
}
