//! Helpers shared by the store and report tests: temporary folders, hand-made designs, trials
//! and results.

use pets::search::store::{NewTrial, TrialKind, TrialResult};
use pets::spec::{Activation, Design, Form, Init, Insertion, Layers, Module, Site};
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
