//! `pets search --promotion async` end to end on a tiny encoder, with rung 0 placed as a share of
//! the training data: promotions start before rung 0 has filled, every planned trial runs once,
//! the study completes, and resuming it under the other rule is refused.

mod tiny_study;

use pets::search::store::TrialKind;
use pets::search::TrialState;
use std::collections::HashSet;
use tiny_study::{command, finished, scratch, trials};

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
}
