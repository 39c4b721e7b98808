//! `--promotion async` end to end on a tiny encoder. One `pets search`, with rung 0 placed as a
//! share of the training data: promotions start before rung 0 has filled, every planned trial
//! runs once, the study completes, and resuming it under the other rule is refused. Three
//! `pets worker`s with one killed mid-rung: every trial still completes exactly once.

mod cluster;

use cluster::tiny_study::{command, finished, scratch, tiny_command, trials};
use pets::search::store::TrialKind;
use pets::search::TrialState;
use std::collections::HashSet;
use std::process::Child;
use std::time::Duration;

/// One generation of 6 designs, 3 promoted (9 search trials), one baseline, no confirmation;
/// rung 0 trains on a quarter of one pass over the training split.
const ASYNC: &[&str] = &[
    "--promotion",
    "async",
    "--rung-at",
    "25%",
    "--trials",
    "9",
    "--initial",
    "6",
    "--population",
    "3",
    "--eta",
    "2",
    "--epochs",
    "2",
    "--batch-size",
    "16",
    "--baselines",
    "lora",
    "--confirm-seeds",
    "1",
];

#[test]
fn an_async_study_promotes_before_its_rung_fills_and_completes() {
    let dir = scratch("async-promotion");
    let reports = dir.join("reports");
    let out = command(&dir, "tiny", &reports, ASYNC).output().unwrap();
    assert!(out.status.success(), "{}", finished(&out));
    let rows = trials(&dir);
    let summary: Vec<_> = rows
        .iter()
        .map(|t| (t.number, t.kind, t.rung, t.fidelity, t.parent, t.state))
        .collect();
    assert!(
        rows.iter().all(|t| t.state == TrialState::Complete),
        "{summary:?}"
    );
    let search: Vec<_> = rows
        .iter()
        .filter(|t| t.kind == TrialKind::Search)
        .collect();
    let rung = |r: usize| -> Vec<_> { search.iter().filter(|t| t.rung == r).collect() };
    assert_eq!((rung(0).len(), rung(1).len()), (6, 3), "{summary:?}");
    // One worker, in trial order: the first promotion comes before rung 0's last design.
    assert!(
        rung(1)[0].number < rung(0)[5].number,
        "no promotion before rung 0 filled: {summary:?}"
    );
    let parents: HashSet<usize> = rung(1).iter().filter_map(|t| t.parent).collect();
    assert_eq!(parents.len(), 3, "a trial promoted twice: {summary:?}");
    assert!(parents
        .iter()
        .all(|p| rung(0).iter().any(|t| t.number == *p)));
    // 25% of one pass: full fidelity is 2 passes, so rung 0 trains ceil(full / 2 / 4) steps.
    let full = rung(1)[0].fidelity;
    assert!(rung(0).iter().all(|t| t.fidelity == (full / 2).div_ceil(4)));
    let md = std::fs::read_to_string(reports.join("tiny/pareto.md")).unwrap();
    assert!(md.contains("promotion async"), "{md}");

    // The rule is part of the study's settings: resuming under the other one is refused.
    let mut sync: Vec<&str> = ASYNC.to_vec();
    sync[1] = "sync";
    let out = command(&dir, "tiny", &reports, &sync).output().unwrap();
    let text = finished(&out);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("search.promotion"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn async_workers_finish_the_study_once_despite_one_killed_mid_rung() {
    let dir = cluster::tiny_study_dir("async-workers");
    let storage = dir.join("shared.sqlite").to_string_lossy().to_string();
    let study = cluster::unique_study("async");
    let mut args = cluster::study_args(&dir, &study, &storage);
    args.extend(["--promotion", "async", "--stale-after", "4"].map(String::from));
    let mut workers: Vec<Child> = (0..3)
        .map(|k| cluster::spawn_worker(&dir, &args, &[], k))
        .collect();
    let logs = || cluster::worker_logs(&dir, 3);
    let store = cluster::open(&storage);
    // Kill the worker of the first rung-0 trial seen running: it dies mid-rung.
    let mut victim = None;
    let seen = cluster::wait_until(Duration::from_secs(300), || {
        let rows = cluster::trials(store.as_ref(), &study);
        victim = rows
            .iter()
            .filter(|t| t.state == TrialState::Running && t.kind == TrialKind::Search)
            .filter(|t| t.rung == 0)
            .find_map(|t| {
                let owner = t.owner.clone().unwrap_or_default();
                let w = (0..workers.len())
                    .find(|&w| owner.starts_with(&format!("pid {} on ", workers[w].id())))?;
                Some((w, t.number))
            });
        victim.is_some()
    });
    assert!(seen, "no rung-0 trial was seen running\n{}", logs());
    let (killed, number) = victim.unwrap();
    workers[killed].kill().unwrap(); // SIGKILL: the heartbeat just stops
    workers[killed].wait().unwrap();
    // Still running after the kill: the kill landed mid-trial (else it ended just before).
    let mid_trial = cluster::trials(store.as_ref(), &study)[number].state == TrialState::Running;
    for (k, w) in workers.iter_mut().enumerate().filter(|(k, _)| *k != killed) {
        let mut status = None;
        let ended = cluster::wait_until(Duration::from_secs(600), || {
            status = w.try_wait().unwrap();
            status.is_some()
        });
        if !ended {
            let _ = w.kill();
        }
        assert!(
            ended && status.unwrap().success(),
            "worker {k}: {status:?}\n{}",
            logs()
        );
    }
    let rows = cluster::trials(store.as_ref(), &study);
    // 2 baselines, 6 at rung 0, 3 promoted: each once, none promoted twice.
    cluster::assert_completed_exactly_once(&rows, &dir.join("trials"), &study);
    // Every promotion started once its parent had completed (the killed trial's too, if chosen).
    for t in rows
        .iter()
        .filter(|t| t.rung == 1 && t.kind == TrialKind::Search)
    {
        let parent = &rows[t.parent.expect("a promotion has a parent")];
        assert!(
            parent.finished.is_some_and(|f| f <= t.started),
            "{t:?} before {parent:?}"
        );
    }
    // Another worker trained the dead worker's trial again under its number.
    let t = &rows[number];
    assert!(!mid_trial || t.attempts >= 2, "{t:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_promotion_and_rung_flags_are_refused_naming_them() {
    let dir = scratch("async-flags");
    let cases: [(&[&str], &str); 4] = [
        (
            &["--promotion", "asha"],
            "--promotion asha: expected sync or async",
        ),
        (
            &["--rung-at", "0"],
            "--rung-at 0: expected optimizer steps (120) or a share",
        ),
        (&["--rung-at", "25%", "--rungs", "3"], "cannot be used with"),
        // Checked against the data: rungs must train fewer steps, cheapest first.
        (&["--rung-at", "50%,25%"], "--rung-at 50%,25%: 50% trains"),
    ];
    for (flags, needle) in cases {
        let out = tiny_command(&dir, flags).output().unwrap();
        let text = finished(&out);
        assert!(!out.status.success(), "{flags:?}: {text}");
        assert!(text.contains(needle), "{flags:?}: {text}");
    }
    // A refused command leaves no study behind.
    assert!(trials(&dir).is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}
