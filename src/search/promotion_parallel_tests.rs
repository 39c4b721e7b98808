//! The asynchronous rule against the synchronous one under simulated parallel workers: the
//! asynchronous one idles a worker only once every rung-0 trial of the budget is claimed.

use super::tests::{assert_promoted_once, async_plan};
use crate::search::limits::Limits;
use crate::search::plan::tests::{plan, space, stored};
use crate::search::plan::StudyPlan;
use crate::search::store::{Next, TrialKind::Search, TrialRow};
use crate::search::TrialState::{Complete, Running};

/// A simulated worker.
#[derive(Clone, Copy)]
enum Worker {
    Idle,
    /// Training trial `.0` until time `.1`.
    Busy(usize, f64),
    Done,
}

/// `workers` workers on one study, rung-0 trials taking 10 to 16 s and full-fidelity ones 30 s:
/// the trials, and the number of rung-0 trials the budget still held each time a worker waited.
fn parallel(plan: &StudyPlan, workers: usize) -> (Vec<TrialRow>, Vec<usize>) {
    let mut rows: Vec<TrialRow> = Vec::new();
    let mut pool = vec![Worker::Idle; workers];
    let mut waits = Vec::new();
    let mut now = 0.0;
    let planned_rung0: usize = plan.layout.sizes().sum();
    loop {
        for worker in pool.iter_mut().filter(|w| matches!(w, Worker::Idle)) {
            match plan.next(&rows, now).unwrap() {
                Next::Trial(t) => {
                    let n = rows.len();
                    let spread = (t.canonical.as_bytes()[1] % 7) as f64;
                    let seconds = if t.rung == 0 { 10.0 + spread } else { 30.0 };
                    rows.push(TrialRow {
                        started: now,
                        ..stored(n, &t, Running, 0.0)
                    });
                    *worker = Worker::Busy(n, now + seconds);
                }
                Next::Wait => {
                    let rung0 = rows.iter().filter(|t| t.kind == Search && t.rung == 0);
                    waits.push(planned_rung0 - rung0.count());
                }
                Next::Done => *worker = Worker::Done,
            }
        }
        if pool.iter().all(|w| matches!(w, Worker::Done)) {
            return (rows, waits);
        }
        // The next event: the earliest end of a running trial.
        let (worker, n, end) = pool
            .iter_mut()
            .filter_map(|w| match *w {
                Worker::Busy(n, end) => Some((w, n, end)),
                _ => None,
            })
            .min_by(|a, b| a.2.total_cmp(&b.2))
            .expect("a worker waits while nothing runs");
        *worker = Worker::Idle;
        now = end;
        let t = &mut rows[n];
        t.state = Complete;
        t.accuracy = Some(0.5 + (t.canonical.as_bytes()[0] % 40) as f64 / 100.0);
        t.params = Some(1000 * (n + 1));
        t.finished = Some(now);
        assert!(rows.len() < 500, "the study does not end");
    }
}

#[test]
fn parallel_workers_wait_only_once_the_budget_is_claimed() {
    let space = space();
    let limits = Limits::new(Some(12), None);
    let (sync_rows, sync_waits) = parallel(&plan(&space, 4, 2, limits), 3);
    let (async_rows, async_waits) = parallel(&async_plan(&space, 4, 2, limits), 3);
    for rows in [&sync_rows, &async_rows] {
        assert_eq!(rows.iter().filter(|t| t.kind == Search).count(), 12);
        assert_promoted_once(rows);
    }
    // The synchronous rule idles workers while rungs and generations fill; the asynchronous
    // one only once every rung-0 trial the budget holds has been claimed.
    assert!(
        sync_waits.iter().any(|&left| left > 0),
        "sync: {sync_waits:?}"
    );
    assert!(
        async_waits.iter().all(|&left| left == 0),
        "async: {async_waits:?}"
    );
    assert!(async_waits.len() < sync_waits.len());
}
