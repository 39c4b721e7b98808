//! Runs a study: baselines fitted to the budget, then successive-halving rungs of sampled designs,
//! each trial committed to the store as it ends, reports refreshed after every trial.

use super::fidelity::{promotion_order, schedule, Rung};
use super::pareto::Point;
use super::report::{front_table, write_reports, ReportContext};
use super::sampler::check_feasible;
use super::store::{NewTrial, Store, TrialKind, TrialResult, TrialRow, INTERRUPTED};
use super::{canonical, sampler_by_name, Budget, ProposalContext, SearchError, SearchSpace};
use super::{Evaluated, TrialState};
use crate::backbone::config::BackboneShape;
use crate::params::design_cost;
use crate::run::{train_design, PreparedTask, RunSettings};
use crate::spec::{Design, Form};
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Mutex;

/// Everything that defines a study besides the training protocol in `RunSettings`.
#[derive(Debug, Clone, serde::Serialize)]
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
    pub store: PathBuf,
    pub reports: PathBuf,
    /// Trials trained at once; threads are split between them.
    pub jobs: usize,
    pub command: String,
}

/// What a rerun reproduces (`tests/faults.rs` checks the CPU claim on a tiny encoder).
pub const DETERMINISM: &str = "Determinism: on the CPU the same seeds (`--seed`, `--search-seed`) \
    and settings give the same designs, trials and accuracies, to the last digit. What varies: \
    timings (seconds, started, finished), and trial numbers where trials were interrupted and redone \
    or, with `--jobs` > 1, trained at once (numbered as they start). Other devices may differ in \
    the last digits.";

/// One unit of work: a design at a rung.
struct Job {
    kind: TrialKind,
    label: Option<String>,
    design: Design,
    rung: usize,
    steps: usize,
    parent: Option<usize>,
}

pub struct Outcome {
    pub trials: Vec<TrialRow>,
    pub report_files: Vec<PathBuf>,
    pub front: String,
}

pub fn run_search(
    settings: &SearchSettings,
    run: &RunSettings,
    cache: &crate::assets::Cache,
) -> crate::Result<Outcome> {
    // Everything a user typed is checked before the data is loaded and before the study is
    // created: a refused command leaves no study behind that the corrected one would clash with.
    let space = SearchSpace::from_file(&settings.space)?;
    let budget: Budget = settings.budget.parse()?;
    sampler_by_name(&settings.sampler, settings.seed, settings.population)?;
    let presets = settings
        .baselines
        .iter()
        .map(|name| {
            let path = settings.presets_dir.join(format!("{name}.ron"));
            Ok((name.clone(), crate::spec::Design::from_file(&path)?))
        })
        .collect::<crate::Result<Vec<_>>>()?;
    let task = PreparedTask::prepare(run, cache)?;
    let shape =
        crate::backbone::config::BertConfig::from_file(&task.model_dir.join("config.json"))?
            .shape();
    let limit = budget.limit(shape.backbone_params());
    check_feasible(&space, shape, limit)?;
    let steps_per_epoch = task.train.len().div_ceil(run.train.batch_size);
    let full_steps = run.train.epochs * steps_per_epoch;
    let rungs = schedule(full_steps, settings.initial, settings.eta, settings.rungs);

    let store = Store::open(&settings.store)?;
    let mut protocol = serde_json::to_value(Protocol::of(run)).unwrap_or_default();
    protocol["search"] = settings_fingerprint(settings);
    let study = store.open_study(&settings.study, &protocol)?;
    let redo = store.reclaim_running(study)?;
    let ctx = ReportContext {
        study: settings.study.clone(),
        model: run.model.clone(),
        task: task.dataset.name.clone(),
        budget_params: limit,
        backbone_params: shape.backbone_params(),
        command: settings.command.clone(),
        sampler: settings.sampler.clone(),
        notes: vec![format!(
            "Protocol: {} train / {} dev, max length {}, batch {}, full fidelity {} epochs ({} steps); rungs {}.",
            task.train.len(), task.dev.len(), run.max_len, run.train.batch_size, run.train.epochs, full_steps,
            rungs.iter().map(|r| format!("{}×{} steps", r.candidates, r.steps)).collect::<Vec<_>>().join(" → ")
        ), DETERMINISM.to_string()],
    };
    // The heartbeat keeps the study's lease while long trials train.
    let _lease = store.keep_alive(study, std::time::Duration::from_secs(20))?;
    let runner = Runner {
        store: Mutex::new(store),
        study,
        task: &task,
        run,
        settings,
        ctx: &ctx,
    };
    let total = settings.baselines.len() + rungs.iter().map(|r| r.candidates).sum::<usize>();
    let bar = progress_bar(total as u64);
    bar.set_position(
        runner
            .rows()?
            .iter()
            .filter(|t| t.state != TrialState::Running)
            .count() as u64,
    );

    // Trials a dead process left running go first, with their own design and rung.
    let redo_jobs: Vec<Job> = redo
        .into_iter()
        .map(|t| Job {
            kind: t.kind,
            label: t.label,
            design: t.design,
            rung: t.rung,
            steps: t.fidelity,
            parent: t.parent,
        })
        .collect();
    runner.run_jobs(redo_jobs, &bar)?;

    let mut baseline_jobs = Vec::new();
    for (name, preset) in &presets {
        let done = runner
            .rows()?
            .iter()
            .any(|t| t.label.as_deref() == Some(name.as_str()));
        if done {
            continue;
        }
        match fit_to_budget(preset, &shape, limit) {
            Some(design) => baseline_jobs.push(Job {
                kind: TrialKind::Baseline,
                label: Some(name.clone()),
                design,
                rung: rungs.len() - 1,
                steps: full_steps,
                parent: None,
            }),
            None => eprintln!(
                "baseline {name}: no width fits the budget of {limit} parameters; skipped"
            ),
        }
    }
    runner.run_jobs(baseline_jobs, &bar)?;

    let mut sampler = sampler_by_name(&settings.sampler, settings.seed, settings.population)?;
    for (r, rung) in rungs.iter().enumerate() {
        loop {
            let rows = runner.rows()?;
            let at_rung: Vec<&TrialRow> = rows
                .iter()
                .filter(|t| t.kind == TrialKind::Search && t.rung == r && !interrupted(t))
                .collect();
            if at_rung.len() >= rung.candidates {
                break;
            }
            let wanted = (rung.candidates - at_rung.len()).min(settings.population.max(1));
            let jobs = if r == 0 {
                let history = evaluated(&rows);
                let seen: HashSet<String> = rows.iter().map(|t| t.canonical.clone()).collect();
                let pctx = ProposalContext {
                    space: &space,
                    shape,
                    budget_params: limit,
                    seen: &seen,
                };
                let designs = sampler.propose(&pctx, &history, wanted)?;
                if designs.is_empty() {
                    eprintln!(
                        "the sampler found no new valid design within budget; rung 0 ends early"
                    );
                    break;
                }
                designs
                    .into_iter()
                    .map(|design| Job {
                        kind: TrialKind::Search,
                        label: None,
                        design,
                        rung: 0,
                        steps: rung.steps,
                        parent: None,
                    })
                    .collect()
            } else {
                promotions(&rows, r, rung, wanted)
            };
            if jobs.is_empty() {
                break;
            }
            runner.run_jobs(jobs, &bar)?;
        }
    }
    bar.finish_and_clear();
    let trials = runner.rows()?;
    let report_files = write_reports(&settings.reports.join(&settings.study), &ctx, &trials)
        .map_err(|e| SearchError::ReportsNotWritten {
            study: settings.study.clone(),
            trials: trials.len(),
            store: settings.store.display().to_string(),
            cause: e.to_string(),
        })?;
    Ok(Outcome {
        front: front_table(&trials, ctx.budget_params, ctx.backbone_params),
        trials,
        report_files,
    })
}

/// The best not-yet-promoted trials of rung `r - 1`, in promotion order.
fn promotions(rows: &[TrialRow], r: usize, rung: &Rung, wanted: usize) -> Vec<Job> {
    let promoted: HashSet<usize> = rows
        .iter()
        .filter(|t| t.rung == r && !interrupted(t))
        .filter_map(|t| t.parent)
        .collect();
    let below: Vec<&TrialRow> = rows
        .iter()
        .filter(|t| {
            t.kind == TrialKind::Search && t.rung == r - 1 && t.state == TrialState::Complete
        })
        .collect();
    let points: Vec<Point> = below
        .iter()
        .map(|t| Point {
            accuracy: t.accuracy.unwrap_or(0.0),
            params: t.params.unwrap_or(0) as f64,
        })
        .collect();
    promotion_order(&points)
        .into_iter()
        .map(|i| below[i])
        .filter(|t| !promoted.contains(&t.number))
        .take(wanted)
        .map(|t| Job {
            kind: TrialKind::Search,
            label: None,
            design: t.design.clone(),
            rung: r,
            steps: rung.steps,
            parent: Some(t.number),
        })
        .collect()
}

fn evaluated(rows: &[TrialRow]) -> Vec<Evaluated> {
    rows.iter()
        .filter(|t| t.kind == TrialKind::Search)
        .filter_map(TrialRow::evaluated)
        .collect()
}

/// A trial a dead process left running; it is redone, so it counts for nothing.
fn interrupted(t: &TrialRow) -> bool {
    t.state == TrialState::Failed && t.error.as_deref() == Some(INTERRUPTED)
}

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

/// Where a trial's run folder (design, metrics, trained tensors) lives: beside the store.
pub fn trial_folder(store: &std::path::Path, study: &str, number: usize) -> PathBuf {
    let base = store.parent().unwrap_or_else(|| std::path::Path::new("."));
    base.join(format!("{study}-trials"))
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

/// A line above the bar on a terminal; a plain line on stderr otherwise (indicatif drops
/// `println` when its bar is hidden, and logs of long searches need these lines).
fn say(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

fn progress_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {pos}/{len} trials  {elapsed_precise} elapsed, ETA {eta_precise}  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

struct Runner<'a> {
    store: Mutex<Store>,
    study: super::store::StudyId,
    task: &'a PreparedTask,
    run: &'a RunSettings,
    settings: &'a SearchSettings,
    ctx: &'a ReportContext,
}

impl Runner<'_> {
    fn rows(&self) -> crate::Result<Vec<TrialRow>> {
        Ok(self.lock().trials(self.study)?)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Trains the jobs, `settings.jobs` at a time, each on its own share of the threads.
    fn run_jobs(&self, jobs: Vec<Job>, bar: &ProgressBar) -> crate::Result<()> {
        let parallel = self.settings.jobs.max(1).min(jobs.len().max(1));
        let threads = (rayon::current_num_threads() / parallel).max(1);
        let queue = Mutex::new(jobs.into_iter());
        let first_error: Mutex<Option<crate::Error>> = Mutex::new(None);
        std::thread::scope(|scope| {
            for _ in 0..parallel {
                scope.spawn(|| {
                    let pool = match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
                        Ok(p) => p,
                        Err(e) => {
                            *first_error.lock().unwrap_or_else(|p| p.into_inner()) =
                                Some(crate::Error::Internal(e.to_string()));
                            return;
                        }
                    };
                    loop {
                        let next = queue.lock().unwrap_or_else(|p| p.into_inner()).next();
                        let Some(job) = next else { break };
                        if let Err(e) = pool.install(|| self.run_one(job, bar)) {
                            *first_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                            break;
                        }
                    }
                });
            }
        });
        match first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// One trial: begin (committed), train, then complete or fail (committed), then reports.
    /// A training error fails the trial and the search goes on; a store error stops it.
    fn run_one(&self, job: Job, bar: &ProgressBar) -> crate::Result<()> {
        let new = NewTrial {
            kind: job.kind,
            label: job.label.clone(),
            canonical: canonical(&job.design),
            design: job.design.clone(),
            fidelity: job.steps,
            seed: self.run.train.seed,
            rung: job.rung,
            parent: job.parent,
        };
        let row = self.lock().begin_trial(self.study, &new)?;
        let mut settings = self.run.clone();
        settings.train.max_steps = Some(job.steps);
        settings.train.epochs = job
            .steps
            .div_ceil(self.task.train.len().div_ceil(settings.train.batch_size));
        settings.train.progress = false;
        let started = std::time::Instant::now();
        let name = job.label.clone().unwrap_or_else(|| job.design.name.clone());
        // Every trial keeps its trained tensors, so a design picked from the front exports as is.
        let folder = trial_folder(&self.settings.store, &self.settings.study, row.number);
        match train_design(&job.design, self.task, &settings, Some(&folder)) {
            Ok((metrics, _)) => {
                let result = TrialResult {
                    accuracy: metrics.accuracy,
                    params: metrics.trainable_params,
                    percent: metrics.trainable_percent,
                    seconds: started.elapsed().as_secs_f64(),
                    metrics: serde_json::to_value(&metrics).unwrap_or_default(),
                };
                self.lock().complete_trial(row.id, &result)?;
                say(
                    bar,
                    format!(
                        "trial {:>3} rung {} {:>6} steps  acc {:.4}  params {:>9}  {}",
                        row.number,
                        job.rung,
                        job.steps,
                        metrics.accuracy,
                        crate::report::group(metrics.trainable_params),
                        name
                    ),
                );
            }
            Err(e) => {
                self.lock().fail_trial(row.id, &e.to_string())?;
                say(bar, format!("trial {:>3} failed: {e}", row.number));
            }
        }
        bar.inc(1);
        let rows = self.rows()?;
        if let Err(e) = write_reports(
            &self.settings.reports.join(&self.settings.study),
            self.ctx,
            &rows,
        ) {
            // Reports are derived data: a full disk or read-only folder must not stop the search.
            say(bar, format!("warning: reports not refreshed: {e}"));
        }
        Ok(())
    }
}

/// Re-renders a study's reports from its store, a SQLite path or a `postgres://` URL (no lease
/// needed: a running search or its workers are unaffected).
pub fn rerender(
    storage: &str,
    study: &str,
    reports: &std::path::Path,
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
