//! Helpers shared by the store and report tests: temporary folders, hand-made designs, trials
//! and results, and trials begun in a store.

use pets::search::store::{
    Claim, NewTrial, Store, StudyId, StudyStore, TrialKind, TrialResult, TrialRow,
};
use pets::spec::{
    Activation, BottleneckConfig, Design, Form, Init, Insertion, Layers, Module, Site,
};
use serde_json::json;
use std::path::PathBuf;

/// A fresh folder per test (no tempfile crate); removed when the guard drops.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
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

pub fn design(r: usize) -> Design {
    Design {
        name: format!("pa{r}"),
        modules: vec![Module {
            name: None,
            form: Form::Bottleneck(BottleneckConfig {
                r,
                activation: Activation::Relu,
            }),
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

pub fn new_trial(kind: TrialKind, label: Option<&str>, r: usize, fidelity: usize) -> NewTrial {
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

/// Begins `new` as the study's next trial, as a worker's claim does, owned by `owner`.
pub fn begin_as(
    store: &Store,
    study: StudyId,
    new: &NewTrial,
    owner: &str,
) -> pets::Result<TrialRow> {
    let long = std::time::Duration::from_secs(3600);
    let mut plan = |_: &[TrialRow]| Ok(pets::search::store::Next::Trial(new.clone()));
    match store.claim(study, owner, long, &mut plan)? {
        Claim::New(row) => Ok(*row),
        other => panic!("expected a new trial, got {other:?}"),
    }
}

/// [`begin_as`] with this test process as the owner (alive: nobody claims its trials again).
pub fn begin(store: &Store, study: StudyId, new: &NewTrial) -> TrialRow {
    let owner = pets::search::store::owner_name(" test");
    begin_as(store, study, new, &owner).expect("begin")
}

pub fn result(accuracy: f64, params: usize) -> TrialResult {
    TrialResult {
        accuracy,
        params,
        percent: 100.0 * params as f64 / BACKBONE as f64,
        seconds: 10.0,
        metrics: json!({ "steps": 400, "accuracy": accuracy }),
    }
}

pub fn settings() -> serde_json::Value {
    json!({ "lr": 0.001, "steps": 400, "model": "minilm" })
}

pub const BACKBONE: usize = 200_000;
