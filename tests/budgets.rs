//! `--trials` and `--timeout` on a tiny encoder: generations until the budget is spent, then the
//! confirmation; killed with SIGKILL and resumed, a study never overruns either budget.

mod tiny_study;

use pets::search::limits::wall_seconds;
use pets::search::store::{TrialKind, TrialRow};
use pets::search::TrialState;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use tiny_study::{finished, integrity, scratch, tiny_command, trials};

/// Two generations (6 + 3 promoted, then 3 + 2 promoted: 14 search trials), one baseline, the
/// best front design and the baseline confirmed with one more seed.
const GENERATIONS: &[&str] = &[
    "--trials",
    "14",
    "--initial",
    "6",
    "--population",
    "3",
    "--eta",
    "2",
    "--rungs",
    "2",
    "--epochs",
    "2",
    "--batch-size",
    "16",
    "--baselines",
    "lora",
    "--confirm-top",
    "1",
    "--confirm-seeds",
    "2",
];

/// Only a wall-time budget, one rung, no confirmation.
const TIMED: &[&str] = &[
    "--timeout",
    "4s",
    "--initial",
    "3",
    "--population",
    "3",
    "--rungs",
    "1",
    "--epochs",
    "1",
    "--baselines",
    "lora",
    "--confirm-seeds",
    "1",
];

fn spawn(dir: &Path, protocol: &[&str]) -> Child {
    tiny_command(dir, protocol)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Lets a search run until `trials` trials have ended (or it exits), then kills it with SIGKILL.
fn kill_after(dir: &Path, protocol: &[&str], ended: usize) {
    let mut child = spawn(dir, protocol);
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
        let done = trials(dir)
            .iter()
            .filter(|t| t.state != TrialState::Running)
            .count();
        if done >= ended {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    child.wait().unwrap();
    assert_eq!(integrity(dir), "ok");
}

fn of_kind(rows: &[TrialRow], kind: TrialKind) -> Vec<&TrialRow> {
    rows.iter().filter(|t| t.kind == kind).collect()
}

#[test]
fn a_trial_budget_runs_generations_then_the_confirmation_across_kills() {
    let dir = scratch("budget-trials");
    // Killed inside generation 0, again inside generation 1, then resumed to the end.
    kill_after(&dir, GENERATIONS, 4);
    kill_after(&dir, GENERATIONS, 12);
    let out = tiny_command(&dir, GENERATIONS).output().unwrap();
    assert!(out.status.success(), "{}", finished(&out));
    let rows = trials(&dir);
    let summary: Vec<_> = rows
        .iter()
        .map(|t| (t.number, t.kind, t.rung, t.state, t.seed, t.parent))
        .collect();
    assert!(
        rows.iter().all(|t| t.state == TrialState::Complete),
        "{summary:?}"
    );
    let search = of_kind(&rows, TrialKind::Search);
    assert_eq!(search.len(), 14, "the trial budget is exact: {summary:?}");
    let rung0: Vec<usize> = search
        .iter()
        .filter(|t| t.rung == 0)
        .map(|t| t.number)
        .collect();
    let rung1: Vec<usize> = search
        .iter()
        .filter(|t| t.rung == 1)
        .map(|t| t.number)
        .collect();
    // Baseline 0; generation 0 is 1–6 and its promotions 7–9; generation 1 is 10–12, then 13–14.
    assert_eq!(rung0, [1, 2, 3, 4, 5, 6, 10, 11, 12], "{summary:?}");
    assert_eq!(rung1, [7, 8, 9, 13, 14], "{summary:?}");
    for t in search.iter().filter(|t| t.rung == 1) {
        let parent = t.parent.expect("a promotion has a parent");
        let same_generation = if t.number < 10 { 1..=6 } else { 10..=12 };
        assert!(same_generation.contains(&parent), "{summary:?}");
    }
    // The confirmation: the front's most accurate design and the baseline, seed 1 each.
    let confirm = of_kind(&rows, TrialKind::Confirm);
    let mut confirmed: Vec<(Option<usize>, u64)> =
        confirm.iter().map(|t| (t.parent, t.seed)).collect();
    confirmed.sort();
    let full: Vec<&&TrialRow> = search.iter().filter(|t| t.rung == 1).collect();
    // The most accurate; on ties the fewest parameters, then the earlier trial.
    let best = full
        .iter()
        .min_by(|a, b| {
            b.accuracy
                .unwrap()
                .total_cmp(&a.accuracy.unwrap())
                .then(a.params.cmp(&b.params))
                .then(a.number.cmp(&b.number))
        })
        .unwrap();
    let mut want = vec![(Some(0), 1), (Some(best.number), 1)];
    want.sort();
    assert_eq!(confirmed, want, "{summary:?}");
    assert!(confirm.iter().all(|t| t.number > 14));
}

#[test]
fn a_timeout_holds_over_kills_and_resumes() {
    let dir = scratch("budget-timeout");
    kill_after(&dir, TIMED, 3);
    let out = tiny_command(&dir, TIMED).output().unwrap();
    assert!(out.status.success(), "{}", finished(&out));
    let rows = trials(&dir);
    let search = of_kind(&rows, TrialKind::Search);
    assert!(!search.is_empty());
    // No search trial started once the study's wall time, over both processes, reached 4 s.
    for t in &search {
        let before: Vec<TrialRow> = rows
            .iter()
            .filter(|o| o.started < t.started)
            .cloned()
            .map(|mut o| {
                // As the store stood when `t` started: trials still running then count to then.
                if o.finished.is_some_and(|f| f > t.started) {
                    o.state = TrialState::Running;
                }
                o
            })
            .collect();
        let spent = wall_seconds(&before, t.started);
        assert!(spent < 4.0, "trial {} started after {spent:.2} s", t.number);
    }
    let longest = rows
        .iter()
        .filter_map(|t| Some(t.finished? - t.started))
        .fold(0.0, f64::max);
    let spent = wall_seconds(&rows, f64::MAX);
    assert!(
        spent < 4.0 + longest + 0.5,
        "{spent:.2} s spent with trials of at most {longest:.2} s"
    );
    // A rerun of the finished study starts nothing new.
    let again = tiny_command(&dir, TIMED).output().unwrap();
    assert!(again.status.success(), "{}", finished(&again));
    assert_eq!(trials(&dir).len(), rows.len());
}
