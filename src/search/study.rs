//! What defines a study: its search settings, the training protocol stored with it, the
//! baselines fitted to its budget, where its trials' run folders live; and its reports rendered
//! again from the store. Running it is `worker`'s (one loop for `pets search` and `pets worker`).

use super::report::{write_reports, ReportContext};
use super::Budget;
use crate::backbone::config::BackboneShape;
use crate::params::design_cost;
use crate::run::RunSettings;
use crate::spec::{Design, Form};
use std::path::{Path, PathBuf};

/// Everything that defines a study besides the training protocol in `RunSettings`.
#[derive(Debug, Clone)]
pub struct SearchSettings {
    pub study: String,
    pub space: PathBuf,
    pub budget: String,
    pub sampler: String,
    pub seed: u64,
    /// Candidates trained at the cheapest rung.
    pub initial: usize,
    /// Designs the sampler proposes between looks at the results (NSGA-II's population).
    pub population: usize,
    pub eta: usize,
    pub rungs: usize,
    /// Named presets evaluated in the same study, fitted to the budget.
    pub baselines: Vec<String>,
    pub presets_dir: PathBuf,
    pub reports: PathBuf,
    /// Trials trained at once; threads are split between them.
    pub jobs: usize,
    pub command: String,
}

/// What a rerun reproduces (`tests/faults.rs` checks the CPU claim on a tiny encoder).
pub const DETERMINISM: &str = "Determinism: on the CPU the same seeds (`--seed`, `--search-seed`) \
    and settings give the same designs, trials and accuracies, to the last digit. What varies: \
    timings (seconds, started, finished), attempts (a trial whose process died is trained again \
    under its number), and trial numbers where, with `--jobs` > 1 or several workers, trials are \
    trained at once (numbered as they start). Other devices may differ in the last digits.";

/// The preset with its widths shrunk, largest first, until it fits `limit` (None if it never does).
pub fn fit_to_budget(design: &Design, shape: &BackboneShape, limit: usize) -> Option<Design> {
    let mut d = design.clone();
    loop {
        let cost = design_cost(&d, shape, 2).ok()?;
        if cost.trainable <= limit {
            return Some(d);
        }
        let (i, _) = d
            .modules
            .iter()
            .enumerate()
            .filter(|(_, m)| m.form.width() > 1)
            .max_by_key(|(_, m)| m.form.width())?;
        let step = match (&d.modules[i].form, d.modules[i].site) {
            (Form::Bottleneck { .. }, crate::spec::Site::AttentionHeads) => shape.heads,
            _ => 1,
        };
        let m = &mut d.modules[i];
        m.form = match m.form.clone() {
            Form::Bottleneck { r, activation } if r > step => Form::Bottleneck {
                r: r - step,
                activation,
            },
            Form::Lora { r, alpha } => Form::Lora {
                r: r - 1,
                alpha: alpha * (r - 1) as f32 / r as f32,
            },
            Form::Prefix { l, reparam } => Form::Prefix { l: l - 1, reparam },
            _ => return None,
        };
    }
}

/// The training protocol a study was run under, stored with it so a trial can be retrained
/// (`pets export --study S --trial N --retrain`) exactly as the study trained it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Protocol {
    pub model: String,
    pub task: crate::data::TaskSource,
    pub max_len: usize,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: Option<f64>,
    pub weight_decay: f64,
    pub seed: u64,
    pub dropout: f32,
}

impl Protocol {
    pub fn of(run: &RunSettings) -> Protocol {
        Protocol {
            model: run.model.clone(),
            task: run.task.clone(),
            max_len: run.max_len,
            epochs: run.train.epochs,
            batch_size: run.train.batch_size,
            lr: run.lr_override,
            weight_decay: run.train.weight_decay,
            seed: run.train.seed,
            dropout: run.dropout,
        }
    }

    /// Run settings reproducing the study's full-fidelity training on `device`.
    pub fn settings(&self, device: candle_core::Device) -> RunSettings {
        RunSettings {
            model: self.model.clone(),
            task: self.task.clone(),
            max_len: self.max_len,
            dropout: self.dropout,
            train: crate::train::TrainConfig {
                epochs: self.epochs,
                batch_size: self.batch_size,
                weight_decay: self.weight_decay,
                seed: self.seed,
                ..crate::train::TrainConfig::default()
            },
            lr_override: self.lr,
            device,
        }
    }
}

/// Where a trial's run folder (design, metrics, trained tensors) lives by default: beside the
/// SQLite store `store`.
pub fn trial_folder(store: &Path, study: &str, number: usize) -> PathBuf {
    let dir = super::store::Storage::Sqlite(store.to_path_buf()).default_trials_dir();
    trial_folder_in(&dir, study, number)
}

/// A trial's run folder under a trials folder (`--trials-dir`): `<dir>/<study>-trials/<number>/`.
pub fn trial_folder_in(trials_dir: &Path, study: &str, number: usize) -> PathBuf {
    trials_dir
        .join(format!("{study}-trials"))
        .join(number.to_string())
}

/// The search settings stored with a study: every process working on it must share them.
pub(crate) fn settings_fingerprint(s: &SearchSettings) -> serde_json::Value {
    serde_json::json!({
        "space": s.space, "budget": s.budget, "sampler": s.sampler, "seed": s.seed,
        "initial": s.initial, "population": s.population, "eta": s.eta, "rungs": s.rungs,
        "baselines": s.baselines,
    })
}

/// Re-renders a study's reports from its store, a SQLite path or a `postgres://` URL (no lease
/// needed: a running search or its workers are unaffected).
pub fn rerender(
    storage: &str,
    study: &str,
    reports: &Path,
    budget: &str,
    shape: &BackboneShape,
) -> crate::Result<Vec<PathBuf>> {
    let store = super::store::open_storage(storage)?;
    let id = store.study_id(study)?;
    let trials = store.trials(id)?;
    let settings = store.settings(id)?;
    let budget: Budget = budget.parse()?;
    let text = |key: &str| {
        settings
            .pointer(key)
            .map(|v| v.to_string().trim_matches('"').to_string())
            .unwrap_or_default()
    };
    let ctx = ReportContext {
        study: study.to_string(),
        model: text("/model"),
        task: settings
            .get("task")
            .map(|t| t.to_string())
            .unwrap_or_default(),
        budget_params: budget.limit(shape.backbone_params()),
        backbone_params: shape.backbone_params(),
        command: format!("pets report --study {study}"),
        sampler: text("/search/sampler"),
        notes: vec!["Re-rendered from the study store.".into()],
    };
    Ok(write_reports(&reports.join(study), &ctx, &trials)?)
}
