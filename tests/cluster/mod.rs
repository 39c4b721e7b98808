//! Helpers for the shared-store tests (workers, Slurm): the PostgreSQL under test, a tiny study
//! folder, the flags every worker of a study shares, and waiting for a study to fill.
// Each test binary uses part of this module.
#![allow(dead_code)]

#[path = "../tiny_study/mod.rs"]
pub mod tiny_study;

use pets::search::store::{open_storage, StudyStore, TrialRow};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The PostgreSQL URL of `PETS_TEST_POSTGRES` (`.ci/run` and `scripts/test-postgres.sh` set it).
/// Without it the test is skipped with a message, except under CI, where skipping would hide a
/// broken setup: there it fails.
pub fn postgres_url(test: &str) -> Option<String> {
    match std::env::var("PETS_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("{test}: CI is set but PETS_TEST_POSTGRES is not (.ci/run starts PostgreSQL and sets it)")
        }
        _ => {
            eprintln!("skipped: {test} needs PostgreSQL: eval \"$(scripts/test-postgres.sh start /tmp/pets-pg)\" sets PETS_TEST_POSTGRES");
            None
        }
    }
}

/// A study name no earlier run of the tests used (the test database outlives a run).
pub fn unique_study(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// A fresh folder holding a tiny BERT (`model/`) and a small sentiment task (`reviews.tsv`):
/// the search tests' own.
pub fn tiny_study_dir(name: &str) -> PathBuf {
    tiny_study::scratch(&format!("cluster-{name}"))
}

/// The study flags every worker shares (2 baselines + 6 candidates at rung 0 + 3 promoted = 11
/// trials), with the storage and the trials folder.
pub fn study_args(dir: &Path, study: &str, storage: &str) -> Vec<String> {
    let path = |p: &str| dir.join(p).to_string_lossy().to_string();
    let repo = env!("CARGO_MANIFEST_DIR");
    [
        "--space",
        &format!("{repo}/search_spaces/mam.ron"),
        "--presets",
        &format!("{repo}/search_spaces/presets"),
        "--budget",
        "5%",
        "--study",
        study,
        "--storage",
        storage,
        "--trials-dir",
        &path("trials"),
        "--model",
        &path("model"),
        "--task",
        &path("reviews.tsv"),
        "--text-column",
        "text",
        "--label-column",
        "label",
        "--lr",
        "0.01",
        "--quiet",
    ]
    .iter()
    // The search tests' full protocol: 11 trials.
    .chain(tiny_study::FULL)
    .map(|s| s.to_string())
    .collect()
}

/// Trials in the budget of [`study_args`].
pub const PLANNED: usize = 11;

/// The study's trials, or none while it does not exist yet.
pub fn trials(store: &dyn StudyStore, study: &str) -> Vec<TrialRow> {
    store
        .study_id(study)
        .and_then(|id| store.trials(id))
        .unwrap_or_default()
}

pub fn open(storage: &str) -> Box<dyn StudyStore> {
    open_storage(storage).unwrap_or_else(|e| panic!("{e}"))
}

/// Checks the end state the issue asks for: every planned trial completed exactly once (numbers
/// 0..PLANNED, no design evaluated twice at one fidelity, each promotion from a distinct parent,
/// a run folder per trial).
pub fn assert_completed_exactly_once(rows: &[TrialRow], trials_dir: &Path, study: &str) {
    use pets::search::TrialState;
    let summary: Vec<String> = rows
        .iter()
        .map(|t| {
            format!(
                "{} {:?} rung {} attempts {}",
                t.number, t.state, t.rung, t.attempts
            )
        })
        .collect();
    assert_eq!(rows.len(), PLANNED, "{summary:#?}");
    assert_eq!(
        rows.iter().map(|t| t.number).collect::<Vec<_>>(),
        (0..PLANNED).collect::<Vec<_>>()
    );
    assert!(
        rows.iter()
            .all(|t| t.state == TrialState::Complete && t.accuracy.is_some()),
        "{summary:#?}"
    );
    let mut designs: Vec<(&str, usize)> = rows
        .iter()
        .map(|t| (t.canonical.as_str(), t.rung))
        .collect();
    designs.sort();
    designs.dedup();
    assert_eq!(
        designs.len(),
        PLANNED,
        "a design was evaluated twice at one fidelity"
    );
    let mut parents: Vec<usize> = rows.iter().filter_map(|t| t.parent).collect();
    assert_eq!(parents.len(), 3, "{summary:#?}");
    parents.sort();
    parents.dedup();
    assert_eq!(parents.len(), 3, "a trial was promoted twice");
    for t in rows {
        let folder = trials_dir
            .join(format!("{study}-trials"))
            .join(t.number.to_string());
        assert!(
            folder.join("metrics.json").exists(),
            "no run folder {}",
            folder.display()
        );
    }
}

/// Polls `done` every 50 ms until it holds or `limit` passes; whether it held.
pub fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    done()
}

/// Starts `pets --threads 1 worker` with the study flags `args` and then `extra`, its standard
/// error going to `dir/worker-{k}.log`.
pub fn spawn_worker(dir: &Path, args: &[String], extra: &[&str], k: usize) -> Child {
    let log = std::fs::File::create(dir.join(format!("worker-{k}.log"))).unwrap();
    Command::new(env!("CARGO_BIN_EXE_pets"))
        .args(["--threads", "1", "worker"])
        .args(args)
        .args(extra)
        .env("PETS_CACHE", dir.join("cache"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// The logs of workers `0..n` (as [`spawn_worker`] writes them), one after another.
pub fn worker_logs(dir: &Path, n: usize) -> String {
    (0..n)
        .map(|k| std::fs::read_to_string(dir.join(format!("worker-{k}.log"))).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n---\n")
}
