//! Runs a study, for `pets search` and `pets worker` alike: a process joins the study and claims
//! trials (the planner decides what, inside the claim's transaction), trains each while a
//! heartbeat keeps its claim, writes the result, and repeats until the study's trial budget is
//! spent and nothing runs. Many processes, on one machine or fifty, fill one study this way; there
//! is no coordinator: the store is the only shared state, as with optuna's relational storage and
//! the Slurm array jobs of He et al. and AutoPEFT.
//!
//! `pets search` is one such worker that also refreshes the reports after every trial and writes
//! them at the end; on SQLite it holds the study's lease as well, so a second `pets search` of the
//! same study is refused while it runs. Killed and rerun, it claims back the trials the dead
//! process left running (their owner's process is gone) with their numbers and designs.

use super::claim_loop::{ClaimLoop, Shared};
use super::report::{export_args, front_table, write_reports};
use super::setup::PreparedStudy;
use super::store::{
    owner_name, KeepAlive, Storage, Store, StoreError, StudyId, StudyStore, TrialRow,
};
use super::study::SearchSettings;
use super::{SearchError, TrialState};
use crate::progress::{emit, note, Event, Task};
use crate::run::RunSettings;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Which command runs the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `pets search`: reports after every trial and at the end; the study's lease on SQLite.
    Search,
    /// `pets worker`: one of any number of processes on the study; no reports.
    Worker,
}

/// A worker's settings: the study's (which every worker of it must share) and its own.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub search: SearchSettings,
    /// `--storage`: a SQLite path or a `postgres://` URL.
    pub storage: String,
    /// Trial run folders go to `<trials_dir>/<study>-trials/<number>/`.
    pub trials_dir: PathBuf,
    /// A running trial without a heartbeat for this long is claimed again by another worker
    /// (and a `pets search` lease is taken over).
    pub stale_after: Duration,
    pub role: Role,
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
    let started = Instant::now();
    let mut study = PreparedStudy::prepare(s, run, cache)?;
    study.report.export_args = export_args(&ws.storage, &ws.trials_dir);
    let plan = study.plan(s, run);
    let (store, id, _lease) = open_study(ws, &study.protocol)?;
    if ws.role == Role::Worker {
        note(&format!(
            "worker pid {} joined study {} in {} ({})",
            std::process::id(),
            s.study,
            store.location(),
            plan.budget()
                .map_or("its budget is a timeout".into(), |n| format!(
                    "{n} trials in its budget"
                ))
        ));
    }
    let ended = store
        .trials(id)?
        .iter()
        .filter(|t| t.state != TrialState::Running)
        .count();
    emit(Event::Started {
        task: Task::Trials,
        total: plan.budget().unwrap_or(0) as u64,
        done: ended as u64,
    });
    let shared = Shared {
        plan: &plan,
        study: &study,
        id,
        run,
        ws,
        reports: (ws.role == Role::Search).then(|| (s.reports.join(&s.study), Mutex::new(()))),
        stop: AtomicBool::new(false),
    };

    let jobs = s.jobs.max(1);
    let threads = (rayon::current_num_threads() / jobs).max(1);
    let mut loops = Vec::with_capacity(jobs);
    for k in 0..jobs {
        loops.push(ClaimLoop {
            store: store.connect_again()?,
            owner: owner_name(&format!(" job {k}")),
            shared: &shared,
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
    emit(Event::Ended {
        task: Task::Trials,
        completed: results.iter().all(Result::is_ok),
    });
    let mut trained = 0;
    for r in results {
        trained += r?;
    }

    let trials = store.trials(id)?;
    let mut context = study.report.clone();
    context.notes.push(format!(
        "Wall clock of the process that wrote these reports: {:.0} s, from loading the task to \
         the last trial (`--jobs {}`).",
        started.elapsed().as_secs_f64(),
        jobs
    ));
    let report_files = match &shared.reports {
        Some((folder, _)) => write_reports(folder, &context, &trials).map_err(|e| {
            SearchError::ReportsNotWritten {
                study: s.study.clone(),
                trials: trials.len(),
                store: store.location(),
                cause: e.to_string(),
            }
        })?,
        None => Vec::new(),
    };
    if !trials.is_empty() && !trials.iter().any(|t| t.state == TrialState::Complete) {
        let first = trials
            .iter()
            .find_map(|t| t.error.clone())
            .unwrap_or_default();
        return Err(SearchError::AllFailed {
            study: s.study.clone(),
            trials: trials.len(),
            first,
        }
        .into());
    }
    Ok(WorkerOutcome {
        trained,
        front: front_table(&trials, study.budget_params, study.shape.backbone_params()),
        trials,
        report_files,
    })
}

/// The study in its store: joined, as any number of workers do; or, for `pets search` on SQLite,
/// under the study's lease, which a heartbeat thread keeps until the returned guard drops.
fn open_study(
    ws: &WorkerSettings,
    protocol: &serde_json::Value,
) -> crate::Result<(Box<dyn StudyStore>, StudyId, Option<KeepAlive>)> {
    let name = &ws.search.study;
    match (ws.role, Storage::parse(&ws.storage)?) {
        (Role::Search, Storage::Sqlite(path)) => {
            let store = Store::open(&path)?.with_stale_after(ws.stale_after);
            let id = store.open_study(name, protocol)?;
            let every = (ws.stale_after / 6).max(Duration::from_millis(50));
            let lease = store.keep_alive(id, every)?;
            Ok((Box::new(store), id, Some(lease)))
        }
        (_, storage) => {
            let store = storage.open()?;
            let id = store.join_study(name, protocol)?;
            Ok((store, id, None))
        }
    }
}
