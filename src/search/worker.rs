//! `pets worker`: one of many processes, on one machine or fifty, filling one study in a shared
//! store. Each claims a trial (the planner decides what, inside the claim's transaction), trains
//! it while a heartbeat thread keeps the claim, writes the result, and repeats until the study's
//! trial budget is spent and nothing runs. There is no coordinator: the store is the only shared
//! state, as with optuna's relational storage and the Slurm array jobs of He et al. and AutoPEFT.

use super::fidelity::schedule;
use super::plan::StudyPlan;
use super::report::{front_table, write_reports, ReportContext};
use super::store::{
    open_storage, owner_name, Claim, Storage, StoreError, StudyId, StudyStore, TrialEnd, TrialId,
    TrialResult, TrialRow,
};
use super::study::{fit_to_budget, settings_fingerprint, Protocol, SearchSettings};
use super::{Budget, SearchSpace};
use crate::backbone::config::BertConfig;
use crate::run::{train_design, PreparedTask, RunSettings};
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A worker's settings: the study's (which every worker of it must share) and its own.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub search: SearchSettings,
    /// `--storage`: a SQLite path or a `postgres://` URL.
    pub storage: String,
    /// Trial run folders go to `<trials_dir>/<study>-trials/<number>/`.
    pub trials_dir: PathBuf,
    /// A running trial without a heartbeat for this long is claimed again by another worker.
    pub stale_after: Duration,
    /// Write the study's reports when the budget is spent (`pets search` on a shared store).
    pub report: bool,
}

impl WorkerSettings {
    /// The default trials folder of a storage location (see [`Storage::default_trials_dir`]).
    pub fn default_trials_dir(storage: &str) -> Result<PathBuf, StoreError> {
        Ok(Storage::parse(storage)?.default_trials_dir())
    }
}

pub struct WorkerOutcome {
    /// Trials this process trained to the end (its result counted).
    pub trained: usize,
    /// Every trial of the study when this worker stopped.
    pub trials: Vec<TrialRow>,
    pub report_files: Vec<PathBuf>,
    pub front: String,
}

/// Joins (or creates) the study and works on it until its budget is spent; `search.jobs`
/// claim loops run at once, each with its own connection and share of the threads.
pub fn run_worker(
    ws: &WorkerSettings,
    run: &RunSettings,
    cache: &crate::assets::Cache,
) -> crate::Result<WorkerOutcome> {
    let s = &ws.search;
    let space = SearchSpace::from_file(&s.space)?;
    let task = PreparedTask::prepare(run, cache)?;
    let shape = BertConfig::from_file(&task.model_dir.join("config.json"))?.shape();
    let budget_params = s.budget.parse::<Budget>()?.limit(shape.backbone_params());
    let steps_per_epoch = task.train.len().div_ceil(run.train.batch_size);
    let rungs = schedule(
        run.train.epochs * steps_per_epoch,
        s.initial,
        s.eta,
        s.rungs,
    );
    let mut baselines = Vec::new();
    for name in &s.baselines {
        let preset = crate::spec::Design::from_file(&s.presets_dir.join(format!("{name}.ron")))?;
        match fit_to_budget(&preset, &shape, budget_params) {
            Some(design) => baselines.push((name.clone(), design)),
            None => eprintln!(
                "baseline {name}: no width fits the budget of {budget_params} parameters; skipped"
            ),
        }
    }
    let plan = StudyPlan {
        space: &space,
        shape,
        budget_params,
        rungs,
        baselines,
        sampler: s.sampler.clone(),
        search_seed: s.seed,
        population: s.population,
        train_seed: run.train.seed,
    };
    let store = open_storage(&ws.storage)?;
    let mut protocol = serde_json::to_value(Protocol::of(run)).unwrap_or_default();
    protocol["search"] = settings_fingerprint(s);
    let study = store.join_study(&s.study, &protocol)?;
    eprintln!(
        "worker pid {} joined study {} in {} ({} trials in its budget)",
        std::process::id(),
        s.study,
        store.location(),
        plan.budget()
    );

    let jobs = s.jobs.max(1);
    let threads = (rayon::current_num_threads() / jobs).max(1);
    let mut loops = Vec::with_capacity(jobs);
    for k in 0..jobs {
        loops.push(ClaimLoop {
            store: store.connect_again()?,
            study,
            owner: owner_name(&format!(" job {k}")),
            plan: &plan,
            task: &task,
            run,
            ws,
            steps_per_epoch,
        });
    }
    let results: Vec<crate::Result<usize>> = std::thread::scope(|scope| {
        let handles: Vec<_> = loops
            .into_iter()
            .map(|l| scope.spawn(move || l.work(threads)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(crate::Error::Internal("a worker thread panicked".into()))
                })
            })
            .collect()
    });
    let mut trained = 0;
    for r in results {
        trained += r?;
    }

    let trials = store.trials(study)?;
    let ctx = ReportContext {
        study: s.study.clone(),
        model: run.model.clone(),
        task: task.dataset.name.clone(),
        budget_params,
        backbone_params: shape.backbone_params(),
        command: s.command.clone(),
        sampler: s.sampler.clone(),
        notes: vec![format!(
            "Trained by workers sharing the study store {}.",
            store.location()
        )],
    };
    let report_files = if ws.report {
        write_reports(&s.reports.join(&s.study), &ctx, &trials)?
    } else {
        Vec::new()
    };
    Ok(WorkerOutcome {
        trained,
        front: front_table(&trials, budget_params, shape.backbone_params()),
        trials,
        report_files,
    })
}

/// One claim-train-finish loop with its own store connection.
struct ClaimLoop<'a> {
    store: Box<dyn StudyStore>,
    study: StudyId,
    owner: String,
    plan: &'a StudyPlan<'a>,
    task: &'a PreparedTask,
    run: &'a RunSettings,
    ws: &'a WorkerSettings,
    steps_per_epoch: usize,
}

impl ClaimLoop<'_> {
    fn work(self, threads: usize) -> crate::Result<usize> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| crate::Error::Internal(e.to_string()))?;
        // Polling while a rung waits: often enough to notice, rarely enough not to load the server.
        let poll =
            (self.ws.stale_after / 8).clamp(Duration::from_millis(100), Duration::from_secs(5));
        let mut trained = 0;
        loop {
            let claim =
                self.store
                    .claim(self.study, &self.owner, self.ws.stale_after, &mut |rows| {
                        Ok(self.plan.next(rows)?)
                    })?;
            let row = match claim {
                Claim::Done => return Ok(trained),
                Claim::Wait => {
                    std::thread::sleep(poll);
                    continue;
                }
                Claim::New(row) => row,
                Claim::Reclaimed(row) => {
                    eprintln!(
                        "trial {:>3} re-claimed (attempt {}): its worker stopped heartbeating",
                        row.number, row.attempts
                    );
                    row
                }
            };
            if self.train(&row, &pool)? {
                trained += 1;
            }
        }
    }

    /// Trains a claimed trial and records how it ended; `false` when another worker re-claimed
    /// it meanwhile (this worker was presumed dead: its result is dropped, theirs counts).
    fn train(&self, row: &TrialRow, pool: &rayon::ThreadPool) -> crate::Result<bool> {
        let every = (self.ws.stale_after / 4).max(Duration::from_millis(50));
        let beat = Heartbeat::start(
            self.store.connect_again()?,
            row.id,
            self.owner.clone(),
            every,
        );
        let mut settings = self.run.clone();
        settings.train.max_steps = Some(row.fidelity);
        settings.train.epochs = row.fidelity.div_ceil(self.steps_per_epoch);
        settings.train.progress = false;
        let folder = self
            .ws
            .trials_dir
            .join(format!("{}-trials", self.ws.search.study))
            .join(row.number.to_string());
        let started = Instant::now();
        let task = self.task;
        // Only the training runs on the pool: the store connection stays on this thread.
        let end = match pool.install(|| train_design(&row.design, task, &settings, Some(&folder))) {
            Ok((metrics, _)) => TrialEnd::Complete(TrialResult {
                accuracy: metrics.accuracy,
                params: metrics.trainable_params,
                percent: metrics.trainable_percent,
                seconds: started.elapsed().as_secs_f64(),
                metrics: serde_json::to_value(&metrics).unwrap_or_default(),
            }),
            Err(e) => TrialEnd::Failed(e.to_string()),
        };
        drop(beat);
        let name = row.label.as_deref().unwrap_or(&row.design.name);
        match self.store.finish(row.id, &self.owner, &end) {
            Ok(()) => {
                match &end {
                    TrialEnd::Complete(r) => eprintln!(
                        "trial {:>3} rung {} {:>6} steps  acc {:.4}  params {:>9}  {name}",
                        row.number,
                        row.rung,
                        row.fidelity,
                        r.accuracy,
                        crate::report::group(r.params)
                    ),
                    TrialEnd::Failed(e) => eprintln!("trial {:>3} failed: {e}", row.number),
                }
                Ok(true)
            }
            Err(e @ StoreError::NotOwner { .. }) => {
                eprintln!("warning: {e}; this worker's result is dropped");
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Refreshes a trial's heartbeat from a thread with its own connection until dropped. A failed
/// beat is not fatal: if beats keep failing the claim goes stale and another worker takes it.
struct Heartbeat {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Heartbeat {
    fn start(
        store: Box<dyn StudyStore>,
        trial: TrialId,
        owner: String,
        every: Duration,
    ) -> Heartbeat {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                match store.beat(trial, &owner) {
                    Ok(true) => {}
                    // Re-claimed or ended: nothing left to keep; `finish` reports which.
                    Ok(false) => break,
                    Err(e) => eprintln!("warning: heartbeat: {e}"),
                }
            }
        });
        Heartbeat {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
