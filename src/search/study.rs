//! What defines a study: its search settings, the training protocol stored with it, the
//! baselines fitted to its budget, where its trials' run folders live; and its reports rendered
//! again from the store. Running it is `worker`'s (one loop for `pets search` and `pets worker`).

use super::limits::Limits;
use super::report::{write_reports, ReportContext};
use super::{Budget, SamplerKind, SearchError};
use crate::run::RunSettings;
use std::path::{Path, PathBuf};

/// Everything that defines a study besides the training protocol in `RunSettings`.
#[derive(Debug, Clone)]
pub struct SearchSettings {
    pub study: String,
    pub space: PathBuf,
    /// The most trainable parameters (head excluded) a searched design may have.
    pub budget: Budget,
    pub sampler: SamplerKind,
    pub seed: u64,
    /// Designs of the first generation (drawn at random).
    pub initial: usize,
    /// Designs of every later generation, and NSGA-II's parents.
    pub population: usize,
    /// `--trials`: search trials in all, promotions included (see `limits`).
    pub trials: Option<usize>,
    /// `--timeout`: the study's wall time, summed over resumes.
    pub timeout: Option<std::time::Duration>,
    /// `--confirm-top`: front designs retrained over seeds after the search.
    pub confirm_top: usize,
    /// `--confirm-seeds`: seeds of each confirmed design and baseline, the search's run included.
    pub confirm_seeds: usize,
    pub eta: usize,
    pub rungs: usize,
    /// `--promotion`: when a rung promotes (see `promotion`).
    pub promotion: super::promotion::Promotion,
    /// `--rung-at`: the cheaper rungs placed by hand; empty for eta-spaced ones (see `fidelity`).
    pub rung_at: Vec<super::fidelity::RungAt>,
    /// Named presets evaluated in the same study, fitted to the budget.
    pub baselines: Vec<String>,
    pub presets_dir: PathBuf,
    pub reports: PathBuf,
    /// Trials trained at once; threads are split between them.
    pub jobs: usize,
    /// `--pack`: trials of one rung each claim loop trains together as one pack ([`crate::pack`]).
    pub pack: usize,
    pub command: String,
}

impl SearchSettings {
    /// Refuses `eta`, `rungs`, `initial`, `population`, `trials`, `confirm_top`,
    /// `confirm_seeds`, `jobs` and `pack` outside the ranges a search can run with, naming the setting.
    pub fn check(&self) -> Result<(), SearchError> {
        let ranges = [
            ("eta", self.eta, 2, 10),
            ("rungs", self.rungs, 1, 8),
            ("initial", self.initial, 1, 100_000),
            ("population", self.population, 1, 10_000),
            ("trials", self.trials.unwrap_or(1), 1, 1_000_000),
            ("confirm_top", self.confirm_top, 0, 100),
            ("confirm_seeds", self.confirm_seeds, 1, 100),
            ("jobs", self.jobs, 1, 256),
            ("pack", self.pack, 1, 256),
        ];
        for (setting, value, low, high) in ranges {
            if !(low..=high).contains(&value) {
                return Err(SearchError::Setting {
                    setting,
                    value: value.to_string(),
                    expected: format!("expected {low} to {high}"),
                });
            }
        }
        Ok(())
    }

    /// The trial and time budgets these settings give (see [`Limits::new`]).
    pub fn limits(&self) -> Limits {
        Limits::new(self.trials, self.timeout)
    }

    /// Refuses rungs so many that the cheapest would train less than one step of `full_steps`.
    pub fn check_rungs(&self, full_steps: usize) -> Result<(), SearchError> {
        let divisor = self
            .eta
            .checked_pow(self.rungs.saturating_sub(1) as u32)
            .unwrap_or(usize::MAX);
        if divisor > full_steps {
            return Err(SearchError::TooManyRungs {
                rungs: self.rungs,
                eta: self.eta,
                divisor,
                full_steps,
            });
        }
        Ok(())
    }
}

/// What a rerun reproduces (`tests/faults.rs` checks the CPU claim on a tiny encoder).
pub const DETERMINISM: &str = "Determinism: on the CPU the same seeds (`--seed`, `--search-seed`) \
    and settings give the same designs, trials and accuracies, to the last digit. What varies: \
    timings (seconds, started, finished), attempts (a trial whose process died is trained again \
    under its number), and trial numbers where, with `--jobs` > 1 or several workers, trials are \
    trained at once (numbered as they start). Other devices may differ in the last digits.";

/// What a rerun reproduces under `promotion`: [`DETERMINISM`], and under the asynchronous rule
/// with several claim loops, that the designs too depend on the order trials end in.
pub fn determinism(promotion: super::promotion::Promotion) -> String {
    match promotion {
        super::promotion::Promotion::Sync => DETERMINISM.to_string(),
        super::promotion::Promotion::Async => format!(
            "{DETERMINISM} Under `--promotion async` with `--jobs` > 1 or several workers, the \
             designs too depend on the order trials end in (proposals see what has completed so \
             far); one claim loop stays reproducible."
        ),
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
    /// `--max-steps`: full fidelity is cut to this many optimizer steps (absent in older studies).
    #[serde(default)]
    pub max_steps: Option<usize>,
    /// Where the test split came from; studies of older pets had none (`Fraction(0.0)`).
    #[serde(default = "crate::data::TestSplit::none")]
    pub test: crate::data::TestSplit,
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
            max_steps: run.train.max_steps,
            test: run.test.clone(),
        }
    }

    /// Run settings reproducing the study's full-fidelity training on `device`.
    pub fn settings(&self, device: candle_core::Device) -> RunSettings {
        RunSettings {
            model: self.model.clone(),
            task: self.task.clone(),
            test: self.test.clone(),
            max_len: self.max_len,
            dropout: self.dropout,
            train: crate::train::TrainConfig {
                epochs: self.epochs,
                batch_size: self.batch_size,
                weight_decay: self.weight_decay,
                seed: self.seed,
                max_steps: self.max_steps,
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
    let mut fingerprint = serde_json::json!({
        "space": s.space, "budget": s.budget.to_string(), "sampler": s.sampler.name(), "seed": s.seed,
        "initial": s.initial, "population": s.population, "eta": s.eta, "rungs": s.rungs,
        "baselines": s.baselines, "trials": s.limits().trials,
        "timeout_seconds": s.timeout.map(|t| t.as_secs_f64()),
        "confirm_top": s.confirm_top, "confirm_seeds": s.confirm_seeds,
    });
    // Written only away from their defaults: studies made before these flags ran by the
    // defaults, and resume (or gain workers of a newer pets) unrefused.
    if s.promotion != super::promotion::Promotion::Sync {
        fingerprint["promotion"] = s.promotion.to_string().into();
    }
    if !s.rung_at.is_empty() {
        let at: Vec<String> = s.rung_at.iter().map(|r| r.to_string()).collect();
        fingerprint["rung_at"] = at.into();
    }
    fingerprint
}

/// A text the study's stored settings hold at `key` (a JSON pointer).
fn stored_text<'a>(settings: &'a serde_json::Value, key: &str) -> Option<&'a str> {
    settings.pointer(key).and_then(|v| v.as_str())
}

/// Re-renders a study's reports from its store, a SQLite path or a `postgres://` URL (no lease
/// needed: a running search or its workers are unaffected). The budget and model are the ones
/// stored with the study unless `budget` or `model` is given; `cache` finds the model's shape.
pub fn rerender(
    storage: &str,
    study: &str,
    reports: &Path,
    budget: Option<Budget>,
    model: Option<&str>,
    cache: &crate::assets::Cache,
) -> crate::Result<Vec<PathBuf>> {
    let store = super::store::open_storage(storage)?;
    let id = store.study_id(study)?;
    let trials = store.trials(id)?;
    let settings = store.settings(id)?;
    let missing = |setting: &'static str| {
        crate::Error::from(SearchError::Setting {
            setting,
            value: "(not given)".into(),
            expected: format!("study {study} stores no {setting}; pass it"),
        })
    };
    let searched_at = stored_text(&settings, "/search/budget");
    let stored: Option<Budget> = searched_at.map(str::parse).transpose()?;
    let parsed = budget.or(stored).ok_or_else(|| missing("budget"))?;
    let model = model
        .or(stored_text(&settings, "/model"))
        .ok_or_else(|| missing("model"))?;
    let dir = cache.model_dir(model)?;
    let shape = crate::backbone::config::BertConfig::from_file(&dir.join("config.json"))?.shape();
    let protocol: Option<Protocol> = serde_json::from_value(settings.clone()).ok();
    let mut notes = vec!["Re-rendered from the study store.".to_string()];
    if let Some(p) = &protocol {
        notes.push(format!(
            "Protocol: max length {}, batch {}, full fidelity {} epochs{}.",
            p.max_len,
            p.batch_size,
            p.epochs,
            p.max_steps
                .map_or(String::new(), |n| format!(" cut to --max-steps {n}"))
        ));
    }
    if let (Some(at), Some(given)) = (searched_at, budget.filter(|b| Some(*b) != stored)) {
        notes.push(format!(
            "Compared at --budget {given}; the study searched at {at}."
        ));
    }
    let task = match (
        stored_text(&settings, "/inputs/task"),
        protocol.as_ref().map(|p| &p.task),
    ) {
        (Some(name), _) => name.to_string(),
        (None, Some(crate::data::TaskSource::Builtin(name))) => name.clone(),
        (None, Some(crate::data::TaskSource::File { path, .. })) => path.display().to_string(),
        (None, None) => String::new(),
    };
    let ctx = ReportContext {
        study: study.to_string(),
        model: model.to_string(),
        task,
        budget_params: parsed.limit(shape.backbone_params()),
        backbone_params: shape.backbone_params(),
        command: format!("pets report --study {study}"),
        sampler: stored_text(&settings, "/search/sampler")
            .unwrap_or_default()
            .to_string(),
        notes,
        // `pets report` takes no --trials-dir: the folders are where the store's default puts them.
        export_args: super::report::export_args(
            storage,
            &super::store::Storage::parse(storage)?.default_trials_dir(),
        ),
    };
    Ok(write_reports(&reports.join(study), &ctx, &trials)?)
}
