//! The study store: round trip, resume, settings guard, leases, corruption.

mod common;

use common::{begin, begin_as, design, new_trial, result, settings, TempDir};
use pets::search::store::{
    Claim, NewTrial, Next, Store, StoreError, StudyStore, TrialKind, SCHEMA_VERSION,
};
use pets::search::TrialState;
use serde_json::json;
use std::path::Path;
use std::time::Duration;

/// Direct SQL on the file, as a crash, a corruption or a dead process would leave it.
fn raw(path: &Path, sql: &str) {
    rusqlite::Connection::open(path)
        .expect("raw open")
        .execute_batch(sql)
        .expect(sql);
}

#[test]
fn store_round_trip_resume_and_reclaim() {
    let tmp = TempDir::new("roundtrip");
    let path = tmp.0.join("studies/nested/s.sqlite");
    let (study, ids) = {
        let store = Store::open(&path).expect("open creates folders and schema");
        let study = store.open_study("s", &settings()).expect("create");
        let mut ids = Vec::new();
        for (i, r) in [2, 4, 8, 16].into_iter().enumerate() {
            let row = begin(&store, study, &new_trial(TrialKind::Search, None, r, 400));
            assert_eq!((row.number, row.state), (i, TrialState::Running));
            ids.push(row.id);
        }
        store
            .complete_trial(ids[0], &result(0.8125, 1234))
            .expect("complete");
        store.fail_trial(ids[1], "out of memory").expect("fail");
        store
            .prune_trial(ids[2], "below median at rung 0")
            .expect("prune");
        // A trial changes state once: completing it again names the study and trial.
        let again = store.complete_trial(ids[0], &result(0.9, 1)).unwrap_err();
        assert!(
            matches!(&again, StoreError::NotRunning { study, number: 0, state: TrialState::Complete } if study == "s"),
            "{again}"
        );
        let parent = NewTrial {
            parent: Some(99),
            ..new_trial(TrialKind::Search, None, 2, 800)
        };
        assert!(matches!(
            begin_as(&store, study, &parent, "w"),
            Err(pets::Error::Store(StoreError::UnknownParent {
                number: 99,
                ..
            }))
        ));
        assert_eq!(store.study_names().unwrap(), vec!["s".to_string()]);
        (study, ids)
    }; // dropped like a process that exits: the lease is released, trial 3 stays running

    let store = Store::open(&path).expect("reopen");
    assert_eq!(store.open_study("s", &settings()).expect("resume"), study);
    assert_eq!(store.settings(study).unwrap(), settings());
    let trials = store.trials(study).unwrap();
    assert_eq!(
        trials.iter().map(|t| t.number).collect::<Vec<_>>(),
        vec![0, 1, 2, 3]
    );
    let states: Vec<TrialState> = trials.iter().map(|t| t.state).collect();
    use TrialState::*;
    assert_eq!(states, vec![Complete, Failed, Pruned, Running]);
    let t0 = &trials[0];
    assert_eq!(
        (t0.accuracy, t0.params, t0.seconds),
        (Some(0.8125), Some(1234), Some(10.0))
    );
    assert_eq!(t0.design, design(2));
    assert_eq!(
        (t0.seed, t0.fidelity, t0.rung, t0.canonical.as_str()),
        (u64::MAX - 1, 400, 1, "hash-2")
    );
    assert_eq!(t0.metrics.as_ref().unwrap()["accuracy"], json!(0.8125));
    assert!(t0.finished.unwrap() >= t0.started);
    assert_eq!(trials[1].error.as_deref(), Some("out of memory"));
    assert_eq!(trials[2].error.as_deref(), Some("below median at rung 0"));
    assert!(trials[0].evaluated().is_some() && trials[1].evaluated().is_none());

    // Trial 3's process is killed: a claim takes it back at once, with its number and design.
    let host = pets::search::store::host_identity().unwrap();
    let dead = format!("pid 4294967 on {host} (0 job 0)"); // above any pid_max
    raw(
        &path,
        &format!("UPDATE trials SET owner = '{dead}' WHERE number = 3"),
    );
    let long = Duration::from_secs(3600);
    let fresh = new_trial(TrialKind::Search, None, 32, 400);
    let mut plan = |_: &[_]| Ok(Next::Trial(fresh.clone()));
    let Claim::Reclaimed(t3) = store.claim(study, "w", long, &mut plan).unwrap() else {
        panic!("trial 3 is claimed again")
    };
    assert_eq!(
        (t3.id, t3.number, t3.attempts, t3.owner.as_deref()),
        (ids[3], 3, 2, Some("w"))
    );
    assert_eq!(t3.design, design(16));
    // Numbers keep increasing after a resume; parents must exist in the study.
    let redo = NewTrial {
        parent: Some(0),
        ..new_trial(TrialKind::Search, None, 16, 800)
    };
    let row = begin_as(&store, study, &redo, "w").expect("promotion");
    assert_eq!((row.number, row.parent), (4, Some(0)));
}

#[test]
fn settings_mismatch_lists_the_differing_keys() {
    let tmp = TempDir::new("settings");
    let path = tmp.0.join("pets.sqlite");
    let store = Store::open(&path).unwrap();
    store
        .open_study(
            "s",
            &json!({ "lr": 0.001, "space": { "widths": [8, 16] }, "steps": 400 }),
        )
        .unwrap();
    let other = json!({ "lr": 0.01, "space": { "widths": [8, 32] }, "steps": 400, "seed": 1 });
    let err = store.open_study("s", &other).unwrap_err();
    let StoreError::SettingsMismatch { study, keys, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(study, "s");
    assert_eq!(keys, &["lr", "seed", "space.widths"]);
    assert!(
        err.to_string().contains("lr: stored 0.001, now 0.01"),
        "{err}"
    );
    // Another study name is a separate protocol and is fine.
    store
        .open_study("t", &other)
        .expect("a second study in the same file");
    assert_eq!(store.study_names().unwrap(), vec!["s", "t"]);
}

#[test]
fn lease_busy_stale_takeover_and_keep_alive() {
    let tmp = TempDir::new("lease");
    let path = tmp.0.join("pets.sqlite");
    let a = Store::open(&path).unwrap();
    let study = a.open_study("s", &settings()).unwrap();
    begin(&a, study, &new_trial(TrialKind::Search, None, 2, 400));

    let b = Store::open(&path).unwrap();
    let busy = b.open_study("s", &settings()).unwrap_err();
    assert!(
        matches!(&busy, StoreError::Busy { study, .. } if study == "s"),
        "{busy}"
    );
    // Reading needs no lease: reports work while a search runs; B holds none to refresh.
    let id = b.study_id("s").unwrap();
    assert_eq!(b.trials(id).unwrap().len(), 1);
    assert!(matches!(b.heartbeat(id), Err(StoreError::LeaseLost { .. })));

    // A's heartbeats keep the lease fresh even when the last write was long ago.
    let alive = a.keep_alive(study, Duration::from_millis(20)).unwrap();
    raw(&path, "UPDATE studies SET heartbeat = heartbeat - 1000");
    std::thread::sleep(Duration::from_millis(200));
    assert!(matches!(
        b.open_study("s", &settings()),
        Err(StoreError::Busy { .. })
    ));
    drop(alive);

    // A dies silently (no heartbeat for 1000 s): B takes over; A finds out at its next heartbeat.
    raw(&path, "UPDATE studies SET heartbeat = heartbeat - 1000");
    assert_eq!(
        b.open_study("s", &settings())
            .expect("stale lease taken over"),
        study
    );
    assert!(matches!(
        a.heartbeat(study),
        Err(StoreError::LeaseLost { .. })
    ));

    // Dropping B releases the lease at once; a short stale window also lets a store take over.
    drop(b);
    a.open_study("s", &settings()).expect("released lease");
    let c = Store::open(&path).unwrap().with_stale_after(Duration::ZERO);
    c.open_study("s", &settings()).expect("zero stale window");
}

#[test]
fn corrupt_rows_and_foreign_schema_name_the_culprit() {
    let tmp = TempDir::new("corrupt");
    let path = tmp.0.join("pets.sqlite");
    let store = Store::open(&path).unwrap();
    let study = store.open_study("mine", &settings()).unwrap();
    for r in [2, 4] {
        begin(&store, study, &new_trial(TrialKind::Search, None, r, 400));
    }
    raw(
        &path,
        "UPDATE trials SET design = 'Design(name: \"x\", modules: [Bogus(' WHERE number = 1",
    );
    let err = store.trials(study).unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt { study, number: 1, .. } if study == "mine"),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("study 'mine', trial 1: bad design"),
        "{err}"
    );
    drop(store);

    raw(
        &path,
        &format!("PRAGMA user_version = {}", SCHEMA_VERSION + 1),
    );
    let err = Store::open(&path).err().expect("newer schema refused");
    assert!(matches!(err, StoreError::SchemaVersion { found, .. } if found == SCHEMA_VERSION + 1));
}
