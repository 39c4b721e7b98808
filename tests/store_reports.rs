//! The study store (round trip, resume, settings guard, leases, corruption) and the search
//! reports rendered from a store filled with hand-made trials whose front is computed by hand.

use pets::search::report::{front_table, write_reports, ReportContext};
use pets::search::store::{
    NewTrial, Store, StoreError, TrialKind, TrialResult, TrialRow, INTERRUPTED, SCHEMA_VERSION,
};
use pets::search::TrialState;
use pets::spec::{Activation, Design, Form, Init, Insertion, Layers, Module, Site};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A fresh folder per test (no tempfile crate); removed when the guard drops.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!("pets-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn design(r: usize) -> Design {
    Design {
        name: format!("pa{r}"),
        modules: vec![Module {
            name: None,
            form: Form::Bottleneck {
                r,
                activation: Activation::Relu,
            },
            site: Site::Ffn,
            insertion: Insertion::Parallel,
            composition: None,
            layers: Layers::All,
            init: Init::Default,
        }],
        unfreeze: vec![],
        learning_rate: None,
    }
}

fn new_trial(kind: TrialKind, label: Option<&str>, r: usize, fidelity: usize) -> NewTrial {
    NewTrial {
        kind,
        label: label.map(String::from),
        design: design(r),
        canonical: format!("hash-{r}"),
        fidelity,
        seed: u64::MAX - 1,
        rung: usize::from(fidelity > 100),
        parent: None,
    }
}

fn result(accuracy: f64, params: usize) -> TrialResult {
    TrialResult {
        accuracy,
        params,
        percent: 100.0 * params as f64 / BACKBONE as f64,
        seconds: 10.0,
        metrics: json!({ "steps": 400, "accuracy": accuracy }),
    }
}

fn settings() -> serde_json::Value {
    json!({ "lr": 0.001, "steps": 400, "model": "minilm" })
}

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
            let row = store
                .begin_trial(study, &new_trial(TrialKind::Search, None, r, 400))
                .expect("begin");
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
            store.begin_trial(study, &parent),
            Err(StoreError::UnknownParent { number: 99, .. })
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

    let reclaimed = store.reclaim_running(study).expect("reclaim");
    assert_eq!(
        reclaimed
            .iter()
            .map(|t| (t.id, t.number))
            .collect::<Vec<_>>(),
        vec![(ids[3], 3)]
    );
    assert_eq!(reclaimed[0].design, design(16));
    assert!(
        store.reclaim_running(study).unwrap().is_empty(),
        "nothing left running"
    );
    let t3 = &store.trials(study).unwrap()[3];
    assert_eq!((t3.state, t3.error.as_deref()), (Failed, Some(INTERRUPTED)));
    // Numbers keep increasing after a resume; parents must exist in the study.
    let redo = NewTrial {
        parent: Some(0),
        ..new_trial(TrialKind::Search, None, 16, 800)
    };
    let row = store.begin_trial(study, &redo).expect("redo");
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
    a.begin_trial(study, &new_trial(TrialKind::Search, None, 2, 400))
        .unwrap();

    let b = Store::open(&path).unwrap();
    let busy = b.open_study("s", &settings()).unwrap_err();
    assert!(
        matches!(&busy, StoreError::Busy { study, .. } if study == "s"),
        "{busy}"
    );
    // Reading needs no lease: reports work while a search runs; reclaiming does not.
    let id = b.study_id("s").unwrap();
    assert_eq!(b.trials(id).unwrap().len(), 1);
    assert!(matches!(
        b.reclaim_running(id),
        Err(StoreError::LeaseLost { .. })
    ));

    // A's heartbeats keep the lease fresh even when the last write was long ago.
    let alive = a.keep_alive(study, Duration::from_millis(20)).unwrap();
    raw(&path, "UPDATE studies SET heartbeat = heartbeat - 1000");
    std::thread::sleep(Duration::from_millis(200));
    assert!(matches!(
        b.open_study("s", &settings()),
        Err(StoreError::Busy { .. })
    ));
    drop(alive);

    // A dies silently (no heartbeat for 1000 s): B takes over; A finds out at its next write.
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
    let lost = a
        .begin_trial(study, &new_trial(TrialKind::Search, None, 4, 400))
        .unwrap_err();
    assert!(
        matches!(&lost, StoreError::LeaseLost { study, .. } if study == "s"),
        "{lost}"
    );
    assert_eq!(b.reclaim_running(study).unwrap().len(), 1);

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
        store
            .begin_trial(study, &new_trial(TrialKind::Search, None, r, 400))
            .unwrap();
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

const BUDGET: usize = 1000;
const BACKBONE: usize = 200_000;

fn context() -> ReportContext {
    ReportContext {
        study: "demo".into(),
        model: "minilm-l6".into(),
        task: "sst2".into(),
        budget_params: BUDGET,
        backbone_params: BACKBONE,
        command: "pets search --study demo".into(),
        sampler: "nsga2".into(),
        notes: vec!["hand-made trials".into()],
    }
}

/// kind, label, width, steps, (accuracy, params) when complete, final state.
type Planned = (
    TrialKind,
    Option<&'static str>,
    usize,
    usize,
    Option<(f64, usize)>,
    TrialState,
);

/// Trials 0..=11; at 400 steps the front is {1, 2, 4} (hand-computed: 3 and 7 are beaten by 2;
/// 0 would dominate but ran only 100 steps).
fn filled_store(path: &Path) -> (Store, pets::search::store::StudyId) {
    use TrialKind::{Baseline, Search};
    let store = Store::open(path).unwrap();
    let study = store.open_study("demo", &settings()).unwrap();
    let plan: [Planned; 12] = [
        (
            Search,
            None,
            2,
            100,
            Some((0.80, 300)),
            TrialState::Complete,
        ),
        (
            Search,
            None,
            4,
            400,
            Some((0.70, 200)),
            TrialState::Complete,
        ),
        (
            Search,
            None,
            8,
            400,
            Some((0.75, 400)),
            TrialState::Complete,
        ),
        (
            Search,
            None,
            16,
            400,
            Some((0.72, 600)),
            TrialState::Complete,
        ),
        (
            Search,
            None,
            32,
            400,
            Some((0.85, 1600)),
            TrialState::Complete,
        ),
        (Search, None, 64, 400, None, TrialState::Failed),
        (Search, None, 3, 100, None, TrialState::Pruned),
        (
            Search,
            None,
            6,
            400,
            Some((0.74, 800)),
            TrialState::Complete,
        ),
        (
            Baseline,
            Some("lora"),
            12,
            400,
            Some((0.73, 500)),
            TrialState::Complete,
        ),
        (
            Baseline,
            Some("houlsby"),
            24,
            400,
            Some((0.78, 900)),
            TrialState::Complete,
        ),
        (
            Baseline,
            Some("full_finetune"),
            48,
            400,
            Some((0.90, BACKBONE)),
            TrialState::Complete,
        ),
        (Search, None, 5, 400, None, TrialState::Running),
    ];
    for (kind, label, r, fidelity, outcome, state) in plan {
        let row = store
            .begin_trial(study, &new_trial(kind, label, r, fidelity))
            .unwrap();
        match (state, outcome) {
            (TrialState::Complete, Some((a, p))) => {
                store.complete_trial(row.id, &result(a, p)).unwrap()
            }
            (TrialState::Failed, _) => store.fail_trial(row.id, "NaN loss, at step 3").unwrap(),
            (TrialState::Pruned, _) => store.prune_trial(row.id, "below median").unwrap(),
            _ => {}
        }
    }
    (store, study)
}

fn read_csv(path: &Path) -> Vec<csv::StringRecord> {
    csv::Reader::from_path(path)
        .unwrap()
        .records()
        .map(|r| r.unwrap())
        .collect()
}

fn column(records: &[csv::StringRecord], index: usize) -> Vec<String> {
    records.iter().map(|r| r[index].to_string()).collect()
}

#[test]
fn reports_render_the_hand_computed_front() {
    let tmp = TempDir::new("reports");
    let (store, study) = filled_store(&tmp.0.join("pets.sqlite"));
    let trials: Vec<TrialRow> = store.trials(study).unwrap();
    // PETS_REPORT_DEMO=<folder> keeps a copy to look at.
    let dir =
        std::env::var_os("PETS_REPORT_DEMO").map_or(tmp.0.join("reports/demo"), PathBuf::from);
    let written = write_reports(&dir, &context(), &trials).expect("reports");
    let names: Vec<_> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "pareto.md",
            "pareto.csv",
            "trials.csv",
            "pareto.svg",
            "hypervolume.svg"
        ]
    );
    let leftovers = std::fs::read_dir(&dir).unwrap().filter(|e| {
        e.as_ref()
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".tmp")
    });
    assert_eq!(leftovers.count(), 0, "no temporary files left behind");

    let front = read_csv(&dir.join("pareto.csv"));
    assert_eq!(
        column(&front, 1),
        ["1", "2", "4"],
        "trial numbers of the front, by params"
    );
    assert_eq!(column(&front, 3), ["200", "400", "1600"]);
    assert_eq!(column(&front, 5), ["0.7", "0.75", "0.85"]);
    assert_eq!(
        column(&front, 7),
        ["true", "true", "false"],
        "within budget"
    );
    assert_eq!(&front[0][2], "parallel Relu bottleneck r=4 on Ffn, add");

    let all = read_csv(&dir.join("trials.csv"));
    assert_eq!(all.len(), 12);
    let text = std::fs::read_to_string(dir.join("trials.csv")).unwrap();
    assert_eq!(text.lines().count(), 13, "header + one line per trial");
    assert!(text.starts_with("number,kind,label,state,rung,fidelity,parent,seed,params,percent,accuracy,seconds,canonical,design,error\n"));
    assert_eq!(column(&all, 3)[5..7], ["failed", "pruned"]);
    assert_eq!(&all[5][14], "NaN loss, at step 3");
    assert_eq!(&all[9][2], "houlsby");
    assert_eq!(&all[11][3], "running");

    let md = std::fs::read_to_string(dir.join("pareto.md")).unwrap();
    for needle in [
        "Generated by `pets search --study demo`.",
        "Budget: 1,000 trainable parameters = 0.500% of the backbone's 200,000",
        "- search trials: 9 (6 complete, 1 pruned, 1 failed, 1 running)",
        "- baseline trials: 3 (3 complete, 0 pruned, 0 failed, 0 running)",
        "## Front at 400 steps",
        "3 of the 5 complete search trials",
        "| 2 | parallel Relu bottleneck r=8 on Ffn, add | 400 | 0.200% | 0.7500 | 400 | 2 | yes |",
        "| houlsby | 900 | 0.450% | 0.7800 | 400 | 9 |",
        "| full_finetune | 200,000 | 100.000% | 0.9000 | 400 | 10 |",
        "**No**: the best baseline within budget (houlsby, 900 params, 0.7800, 400 steps) beats the best front design within budget (trial 2",
        // Reference (0.5, 1000), scale 500: trial 1 adds 800·0.2 = 160, trial 2 adds 600·0.05 = 30.
        "| 0 | 0.00000 |\n| 1 | 0.32000 |\n| 2 | 0.38000 |\n| 11 | 0.38000 |",
    ] {
        assert!(md.contains(needle), "pareto.md lacks {needle:?}:\n{md}");
    }

    let svg = std::fs::read_to_string(dir.join("pareto.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    // 6 complete search trials (grey) + 3 front members (highlighted); legends use no circles.
    assert_eq!(svg.matches("<circle").count(), 9);
    // 3 baseline triangles + 1 in the legend.
    assert_eq!(svg.matches("<polygon").count(), 4);
    for needle in [
        "budget: 1,000 params (0.50% of backbone)",
        "houlsby",
        "lora",
        "dev accuracy",
        "Pareto front at 400 steps",
    ] {
        assert!(svg.contains(needle), "pareto.svg lacks {needle:?}");
    }
    let hv = std::fs::read_to_string(dir.join("hypervolume.svg")).unwrap();
    assert!(hv.starts_with("<svg") && hv.contains("hypervolume over trials"));

    let table = front_table(&trials, BUDGET, BACKBONE);
    assert!(
        table.contains("1,600 *")
            && table.contains("front of 5 complete search trials at 400 steps"),
        "{table}"
    );
}

#[test]
fn verdict_turns_when_a_design_beats_every_baseline_in_budget() {
    let tmp = TempDir::new("verdict");
    let (store, study) = filled_store(&tmp.0.join("pets.sqlite"));
    let row = store
        .begin_trial(study, &new_trial(TrialKind::Search, None, 10, 400))
        .unwrap();
    store.complete_trial(row.id, &result(0.80, 700)).unwrap();
    let dir = tmp.0.join("out");
    write_reports(&dir, &context(), &store.trials(study).unwrap()).unwrap();
    let front = read_csv(&dir.join("pareto.csv"));
    assert_eq!(column(&front, 1), ["1", "2", "12", "4"]);
    let md = std::fs::read_to_string(dir.join("pareto.md")).unwrap();
    assert!(md.contains("**Yes**: the best front design within budget (trial 12, 700 params, dev accuracy 0.8000, 400 steps) is at least as accurate as every baseline within budget; the best baseline within budget (houlsby, 900 params, 0.7800, 400 steps) is 2.00 points behind."), "{md}");
    // Trial 12 adds (1000 − 700)·(0.80 − 0.75) = 15 to 190: 205 / 500.
    assert!(md.contains("| 12 | 0.41000 |"), "{md}");
    let svg = std::fs::read_to_string(dir.join("pareto.svg")).unwrap();
    assert_eq!(svg.matches("<circle").count(), 7 + 4);
}
