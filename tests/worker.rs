//! Workers sharing one study. The claim contract of both stores (numbers exclusive under
//! concurrent claims, a stale trial re-claimed with its number, a presumed-dead worker's result
//! refused), clear errors for bad storage locations, and four `pets worker` processes on one study
//! with one killed mid-trial, ending with every trial completed exactly once: on PostgreSQL
//! (`PETS_TEST_POSTGRES`; required under CI) and on a SQLite file.

mod cluster;
#[allow(dead_code)]
mod common;

use cluster::{assert_completed_exactly_once, open, postgres_url, study_args, trials, wait_until};
use pets::search::store::{open_storage, Claim, Next, StoreError, StudyStore, TrialEnd, TrialKind};
use pets::search::TrialState;
use serde_json::json;
use std::process::{Child, Command};
use std::sync::Mutex;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(600);

fn one_more(rows: &[pets::search::store::TrialRow]) -> pets::Result<Next> {
    let n = rows.len();
    Ok(Next::Trial(common::new_trial(
        TrialKind::Search,
        None,
        n + 1,
        100,
    )))
}

fn claim_contract(storage: &str) {
    let store = open(storage);
    let name = cluster::unique_study("claims");
    let study = store.join_study(&name, &json!({ "k": 1 })).unwrap();
    assert_eq!(store.join_study(&name, &json!({ "k": 1 })).unwrap(), study);
    let err = store.join_study(&name, &json!({ "k": 2 })).unwrap_err();
    assert!(
        matches!(&err, StoreError::SettingsMismatch { keys, .. } if keys == &["k"]),
        "{err}"
    );

    // Four workers, each on its own connection, claim until the plan has 12 trials.
    let claimed = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for w in 0..4 {
            let s: Box<dyn StudyStore> = store.connect_again().unwrap();
            let claimed = &claimed;
            scope.spawn(move || {
                let owner = format!("worker {w}");
                loop {
                    let mut plan = |rows: &[_]| {
                        if rows.len() < 12 {
                            one_more(rows)
                        } else {
                            Ok(Next::Done)
                        }
                    };
                    match s.claim(study, &owner, LONG, &mut plan).unwrap() {
                        Claim::New(row) => {
                            assert_eq!(row.owner.as_deref(), Some(owner.as_str()));
                            claimed.lock().unwrap().push((row.number, owner.clone()));
                            let end = TrialEnd::Complete(common::result(0.5, row.number));
                            s.finish(row.id, &owner, &end).unwrap();
                        }
                        Claim::Done => break,
                        other => panic!("unexpected {other:?}"),
                    }
                }
            });
        }
    });
    let mut claimed = claimed.into_inner().unwrap();
    claimed.sort();
    assert_eq!(
        claimed.iter().map(|c| c.0).collect::<Vec<_>>(),
        (0..12).collect::<Vec<_>>(),
        "every number claimed exactly once"
    );
    let rows = store.trials(study).unwrap();
    for (row, (number, owner)) in rows.iter().zip(&claimed) {
        assert_eq!((row.number, row.owner.as_ref()), (*number, Some(owner)));
        assert_eq!(
            (row.state, row.params, row.attempts),
            (TrialState::Complete, Some(*number), 1)
        );
    }

    // A trial whose heartbeat went stale is claimed again, with its number and design.
    let Claim::New(t) = store.claim(study, "a", LONG, &mut one_more).unwrap() else {
        panic!("a gets a new trial")
    };
    assert!(store.beat(t.id, "a").unwrap());
    let Claim::New(u) = store.claim(study, "b", LONG, &mut one_more).unwrap() else {
        panic!("with a long stale window b gets a new trial, not a's")
    };
    assert_eq!(u.number, t.number + 1);
    store
        .finish(u.id, "b", &TrialEnd::Failed("nan loss".into()))
        .unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let Claim::Reclaimed(r) = store
        .claim(study, "b", Duration::ZERO, &mut one_more)
        .unwrap()
    else {
        panic!("a's trial is stale at once with a zero window")
    };
    assert_eq!(
        (r.number, r.attempts, r.owner.as_deref()),
        (t.number, 2, Some("b"))
    );
    assert_eq!(r.design, t.design);
    // A, presumed dead, comes back: its heartbeat and its result are refused.
    assert!(!store.beat(t.id, "a").unwrap());
    let late = store
        .finish(t.id, "a", &TrialEnd::Complete(common::result(0.9, 1)))
        .unwrap_err();
    assert!(
        matches!(&late, StoreError::NotOwner { number, owner, .. } if *number == t.number && owner == "b"),
        "{late}"
    );
    store
        .finish(t.id, "b", &TrialEnd::Complete(common::result(0.75, 7)))
        .unwrap();
    let again = store
        .finish(t.id, "b", &TrialEnd::Failed("twice".into()))
        .unwrap_err();
    assert!(
        matches!(
            again,
            StoreError::NotRunning {
                state: TrialState::Complete,
                ..
            }
        ),
        "{again}"
    );
    let rows = store.trials(study).unwrap();
    let done = &rows[t.number];
    assert_eq!(
        (done.state, done.accuracy, done.attempts),
        (TrialState::Complete, Some(0.75), 2)
    );
    assert_eq!(rows[u.number].error.as_deref(), Some("nan loss"));
}

#[test]
fn sqlite_claims_are_exclusive_and_stale_trials_are_reclaimed() {
    let tmp = common::TempDir::new("claims");
    claim_contract(&tmp.0.join("shared.sqlite").to_string_lossy());
}

#[test]
fn postgres_claims_are_exclusive_and_stale_trials_are_reclaimed() {
    if let Some(url) = postgres_url("postgres_claims_are_exclusive_and_stale_trials_are_reclaimed")
    {
        claim_contract(&url);
    }
}

#[test]
fn bad_storage_locations_are_clear_errors_naming_them() {
    let err = open_storage("postgres://pets:secret@127.0.0.1:1/none")
        .err()
        .unwrap();
    let text = err.to_string();
    assert!(
        text.starts_with("study store postgres://pets:***@127.0.0.1:1/none: connecting:"),
        "{text}"
    );
    assert!(!text.contains("secret"), "{text}");
    let err = open_storage("postgres://pets@host:port/db").err().unwrap();
    assert!(err.to_string().contains("reading the URL"), "{err}");
    let err = open_storage("mysql://root@db/pets").err().unwrap();
    assert!(
        matches!(err, StoreError::UnsupportedStorage { .. }),
        "{err}"
    );

    // The CLI says the same and exits 1.
    let dir = cluster::tiny_study_dir("bad-url");
    let out = Command::new(env!("CARGO_BIN_EXE_pets"))
        .args([
            "report",
            "--study",
            "s",
            "--storage",
            "postgres://pets@127.0.0.1:1/none",
        ])
        .args(["--model", &dir.join("model").to_string_lossy()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("error: study store postgres://pets@127.0.0.1:1/none: connecting:"),
        "{stderr}"
    );
}

/// Four `pets worker`s on one study; one is killed with SIGKILL mid-trial. The others re-claim
/// its trial once its heartbeat is older than --stale-after and finish the study.
fn four_workers_with_one_killed(storage: &str, name: &str) {
    let dir = cluster::tiny_study_dir(name);
    let study = cluster::unique_study("four");
    let args = study_args(&dir, &study, storage);
    let mut workers: Vec<Child> = (0..4)
        .map(|k| cluster::spawn_worker(&dir, &args, &["--stale-after", "4"], k))
        .collect();
    let logs = || cluster::worker_logs(&dir, 4);
    let store = open(storage);
    let owner_of = |c: &Child| format!("pid {} on ", c.id());
    // Kill the worker of a running trial (the longest running kind first). The trial must still
    // be running after the kill, which proves the kill came mid-trial; if it ended in the
    // instant between looking and killing, try again with another worker (at most twice).
    let mut killed: Vec<usize> = Vec::new();
    let mut victim: Option<(usize, usize, String)> = None; // (worker, trial number, owner prefix)
    while victim.is_none() && killed.len() < 2 {
        let mut target = None;
        let seen = wait_until(Duration::from_secs(300), || {
            let mut rows = trials(store.as_ref(), &study);
            rows.sort_by_key(|t| std::cmp::Reverse(t.fidelity));
            target = rows
                .iter()
                .filter(|t| t.state == TrialState::Running)
                .find_map(|t| {
                    let owner = t.owner.clone().unwrap_or_default();
                    let w = (0..workers.len()).find(|&w| {
                        !killed.contains(&w) && owner.starts_with(&owner_of(&workers[w]))
                    })?;
                    Some((w, t.number))
                });
            target.is_some()
        });
        assert!(seen, "no trial was seen running\n{}", logs());
        let (w, number) = target.unwrap();
        workers[w].kill().unwrap(); // SIGKILL: no clean-up, the heartbeat just stops
        workers[w].wait().unwrap();
        killed.push(w);
        let t = &trials(store.as_ref(), &study)[number];
        if t.state == TrialState::Running {
            victim = Some((w, number, owner_of(&workers[w])));
        }
    }
    let (victim, number, killed_owner) = victim.expect("no kill landed mid-trial");

    for (k, w) in workers
        .iter_mut()
        .enumerate()
        .filter(|(k, _)| !killed.contains(k))
    {
        let mut status = None;
        let finished = wait_until(LONG, || {
            status = w.try_wait().unwrap();
            status.is_some()
        });
        if !finished {
            let _ = w.kill();
        }
        assert!(
            finished && status.unwrap().success(),
            "worker {k}: {status:?}\n{}",
            logs()
        );
    }
    let rows = trials(store.as_ref(), &study);
    assert_completed_exactly_once(&rows, &dir.join("trials"), &study);
    let t = &rows[number];
    assert!(t.attempts >= 2, "trial {number} was not re-claimed: {t:?}");
    assert!(!t.owner.as_deref().unwrap_or("").starts_with(&killed_owner));
    let line = format!("trial {number:>3} re-claimed (attempt 2)");
    assert!(
        logs().contains(&line),
        "worker {victim} was killed\n{}",
        logs()
    );

    // `pets search` on the shared store is one more worker plus the reports: the budget is
    // spent, so it trains nothing and writes the reports of all 11 trials.
    let pets = |cmd: &str, extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_pets"))
            .arg(cmd)
            .args(extra)
            .env("PETS_CACHE", dir.join("cache"))
            .output()
            .unwrap()
    };
    let mut search_args: Vec<&str> = args.iter().map(String::as_str).collect();
    let reports = dir.join("reports").to_string_lossy().to_string();
    search_args.extend(["--reports", &reports]);
    let out = pets("search", &search_args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = std::fs::read_to_string(dir.join("reports").join(&study).join("trials.csv")).unwrap();
    assert_eq!(csv.lines().count(), cluster::PLANNED + 1, "{csv}");
    // `pets report` re-renders from the same store.
    let again = dir.join("again").to_string_lossy().to_string();
    let model = dir.join("model").to_string_lossy().to_string();
    let out = pets(
        "report",
        &[
            "--storage",
            storage,
            "--study",
            &study,
            "--reports",
            &again,
            "--model",
            &model,
            "--budget",
            "5%",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let md = std::fs::read_to_string(dir.join("again").join(&study).join("pareto.md")).unwrap();
    assert!(md.contains(&study), "{md}");

    // `pets export` takes a trial from the same store, its run folder under --trials-dir, and
    // the manifest carries the accuracy the store recorded.
    let best = rows
        .iter()
        .filter(|t| t.state == TrialState::Complete && t.accuracy.is_some())
        .max_by(|a, b| a.accuracy.partial_cmp(&b.accuracy).unwrap())
        .expect("a completed trial");
    let (number, adapter) = (best.number.to_string(), dir.join("adapter"));
    let trials_dir = dir.join("trials").to_string_lossy().to_string();
    let out = pets(
        "export",
        &[
            "--storage",
            storage,
            "--study",
            &study,
            "--trial",
            &number,
            "--trials-dir",
            &trials_dir,
            "--out",
            adapter.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(adapter.join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["metrics"]["accuracy"].as_f64(), best.accuracy);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn four_postgres_workers_complete_every_trial_once_despite_a_kill() {
    if let Some(url) =
        postgres_url("four_postgres_workers_complete_every_trial_once_despite_a_kill")
    {
        four_workers_with_one_killed(&url, "pg-four");
    }
}

#[test]
fn four_sqlite_workers_complete_every_trial_once_despite_a_kill() {
    let path = std::env::temp_dir().join(format!("pets-four-{}.sqlite", std::process::id()));
    four_workers_with_one_killed(&path.to_string_lossy(), "sqlite-four");
    let _ = std::fs::remove_file(&path);
}
