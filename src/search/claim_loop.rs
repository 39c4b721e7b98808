//! One claim-train-finish loop of a worker (a process runs `--jobs` of them, each with its own
//! store connection and share of the threads), the heartbeat that keeps its claim, and what the
//! end of a trial refreshes: the progress count and, for `pets search`, the reports. A trial whose
//! error is not its design's (`blame`) stops every loop of the process and stays claimed, to be
//! trained again on resume.

use super::blame::{blame, Blame};
use super::plan::StudyPlan;
use super::report::write_reports;
use super::setup::PreparedStudy;
use super::store::TrialRow;
use super::store::{Claim, StoreError, StudyId, StudyStore, TrialEnd, TrialId, TrialResult};
use super::study::trial_folder_in;
use super::worker::WorkerSettings;
use super::{SearchError, TrialState};
use crate::progress::{emit, note, Event, Task};
use crate::run::{
    bind_thread, train_design, train_designs_packed, PackedRun, RunMetrics, RunSettings,
};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What every claim loop of a process shares.
pub(super) struct Shared<'a> {
    pub plan: &'a StudyPlan<'a>,
    pub study: &'a PreparedStudy,
    pub id: StudyId,
    pub run: &'a RunSettings,
    pub ws: &'a WorkerSettings,
    /// The reports folder refreshed after every trial (`pets search`), one writer at a time:
    /// loops of one process would otherwise share a temporary file name.
    pub reports: Option<(PathBuf, Mutex<()>)>,
    /// Set when a loop stops on an error: the others claim nothing more.
    pub stop: AtomicBool,
}

/// One claim-train-finish loop with its own store connection.
pub(super) struct ClaimLoop<'a> {
    pub store: Box<dyn StudyStore>,
    pub owner: String,
    pub shared: &'a Shared<'a>,
}

impl ClaimLoop<'_> {
    /// Claims and trains until the budget is spent and nothing runs; the trials it trained to
    /// the end (its result counted). An error stops the other loops of the process too.
    pub fn work(self, threads: usize) -> crate::Result<usize> {
        let worked = self.claim_and_train(threads);
        if worked.is_err() {
            self.shared.stop.store(true, Ordering::SeqCst);
        }
        worked
    }

    fn claim_and_train(&self, threads: usize) -> crate::Result<usize> {
        // This thread frees what a trial returns; the pool's threads train.
        let device = self.shared.run.device.clone();
        bind_thread(&device)?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            // A failure here shows when the trial binds its own thread again (`train`).
            .start_handler(move |_| {
                let _ = bind_thread(&device);
            })
            .build()
            .map_err(|e| crate::Error::Internal(e.to_string()))?;
        let ws = self.shared.ws;
        // Polling while a rung waits: often enough to notice, rarely enough not to load the server.
        let poll = (ws.stale_after / 8).clamp(Duration::from_millis(100), Duration::from_secs(5));
        let mut trained = 0;
        loop {
            if self.shared.stop.load(Ordering::SeqCst) {
                return Ok(trained);
            }
            let plan = self.shared.plan;
            let claim =
                self.store
                    .claim(self.shared.id, &self.owner, ws.stale_after, &mut |rows| {
                        Ok(plan.next(rows, super::store::now())?)
                    })?;
            let row = match claim {
                Claim::Done => return Ok(trained),
                Claim::Wait => {
                    std::thread::sleep(poll);
                    continue;
                }
                Claim::New(row) => row,
                Claim::Reclaimed(row) => {
                    self.say(format!(
                        "trial {:>3} re-claimed (attempt {}): its worker stopped heartbeating or its process ended",
                        row.number, row.attempts
                    ));
                    row
                }
            };
            let rows = self.claim_more(*row)?;
            for pack in same_rung_packs(rows) {
                trained += match pack.len() {
                    1 => usize::from(self.train(&pack[0], &pool)?),
                    _ => self.train_pack(&pack, &pool)?,
                };
            }
            self.refresh();
        }
    }

    /// Trains a claimed trial and records how it ended ([`ClaimLoop::record`]).
    fn train(&self, row: &TrialRow, pool: &rayon::ThreadPool) -> crate::Result<bool> {
        let beat = self.heartbeat(row)?;
        let settings = self.settings_for(row);
        let folder = self.folder_of(row);
        let started = Instant::now();
        let task = &self.shared.study.task;
        // Only the training runs on the pool: the store connection stays on this thread.
        let trained = || -> crate::Result<RunMetrics> {
            bind_thread(&settings.device)?;
            let (metrics, model) = train_design(&row.design, task, &settings, Some(&folder))?;
            // Its tensors are freed here, on the thread and stream that made them (the CUDA
            // safety note of `prepare_device`); binding again reports, as this trial's, any
            // failure the driver recorded meanwhile.
            drop(model);
            bind_thread(&settings.device)?;
            Ok(metrics)
        };
        let end = self.trial_end(row, pool.install(trained), started)?;
        drop(beat);
        self.record(row, &end)
    }

    /// [`ClaimLoop::train`] for trials of one rung trained together as one pack; how many of
    /// them were recorded as this worker's.
    fn train_pack(&self, rows: &[TrialRow], pool: &rayon::ThreadPool) -> crate::Result<usize> {
        let beats = rows
            .iter()
            .map(|row| self.heartbeat(row))
            .collect::<crate::Result<Vec<_>>>()?;
        let runs: Vec<PackedRun> = rows
            .iter()
            .map(|row| PackedRun {
                design: row.design.clone(),
                settings: self.settings_for(row),
                out: Some(self.folder_of(row)),
            })
            .collect();
        let started = Instant::now();
        let task = &self.shared.study.task;
        let device = &self.shared.run.device;
        let trained = || -> crate::Result<Vec<crate::Result<RunMetrics>>> {
            bind_thread(device)?;
            let results = train_designs_packed(&runs, task)?;
            let metrics = results.into_iter().map(|r| r.map(|(m, _)| m)).collect();
            bind_thread(device)?;
            Ok(metrics)
        };
        let results = match pool.install(trained) {
            Ok(results) => results,
            Err(e) => {
                return Err(SearchError::Stopped {
                    study: self.shared.ws.search.study.clone(),
                    trial: rows[0].number,
                    cause: e.to_string(),
                }
                .into())
            }
        };
        let ends = rows
            .iter()
            .zip(results)
            .map(|(row, result)| self.trial_end(row, result, started))
            .collect::<crate::Result<Vec<_>>>()?;
        drop(beats);
        let mut recorded = 0;
        for (row, end) in rows.iter().zip(&ends) {
            recorded += usize::from(self.record(row, end)?);
        }
        Ok(recorded)
    }

    /// Up to `--pack` trials: `first`, then whatever the plan hands out at once (a claim that
    /// would wait ends the pack: its trials start now).
    fn claim_more(&self, first: TrialRow) -> crate::Result<Vec<TrialRow>> {
        let mut rows = vec![first];
        let ws = self.shared.ws;
        while rows.len() < ws.search.pack && !self.shared.stop.load(Ordering::SeqCst) {
            let plan = self.shared.plan;
            let claim =
                self.store
                    .claim(self.shared.id, &self.owner, ws.stale_after, &mut |rows| {
                        Ok(plan.next(rows, super::store::now())?)
                    })?;
            match claim {
                Claim::New(row) | Claim::Reclaimed(row) => rows.push(*row),
                Claim::Done | Claim::Wait => break,
            }
        }
        Ok(rows)
    }

    fn heartbeat(&self, row: &TrialRow) -> crate::Result<Heartbeat> {
        let every = (self.shared.ws.stale_after / 4).max(Duration::from_millis(50));
        let store = self.store.connect_again()?;
        Ok(Heartbeat::start(store, row.id, self.owner.clone(), every))
    }

    /// The run settings of a claimed trial: its rung's steps and its seed.
    fn settings_for(&self, row: &TrialRow) -> RunSettings {
        let mut settings = self.shared.run.clone();
        settings.train.max_steps = Some(row.fidelity);
        // Confirmation runs train with their own seed; every other trial has the study's.
        settings.train.seed = row.seed;
        settings.train.epochs = row.fidelity.div_ceil(self.shared.study.steps_per_epoch);
        settings.train.progress = false;
        settings
    }

    /// Every trial keeps its trained tensors, so a design picked from the front exports as is.
    fn folder_of(&self, row: &TrialRow) -> PathBuf {
        let ws = self.shared.ws;
        trial_folder_in(&ws.trials_dir, &ws.search.study, row.number)
    }

    /// How a trained trial ended: the design's own error fails it and the study goes on; any
    /// other error (the device, I/O, the store) stops the loop and leaves it running in the store.
    fn trial_end(
        &self,
        row: &TrialRow,
        result: crate::Result<RunMetrics>,
        started: Instant,
    ) -> crate::Result<TrialEnd> {
        Ok(match result {
            Ok(metrics) => TrialEnd::Complete(TrialResult {
                accuracy: metrics.accuracy,
                params: metrics.trainable_params,
                percent: metrics.trainable_percent,
                seconds: started.elapsed().as_secs_f64(),
                metrics: serde_json::to_value(&metrics).unwrap_or_default(),
            }),
            Err(e) if blame(&e) == Blame::Design => TrialEnd::Failed(e.to_string()),
            Err(e) => {
                return Err(SearchError::Stopped {
                    study: self.shared.ws.search.study.clone(),
                    trial: row.number,
                    cause: e.to_string(),
                }
                .into())
            }
        })
    }

    /// Records how a trial ended; `false` when another worker re-claimed it meanwhile (this
    /// worker was presumed dead: its result is dropped, theirs counts).
    fn record(&self, row: &TrialRow, end: &TrialEnd) -> crate::Result<bool> {
        let name = row.label.as_deref().unwrap_or(&row.design.name);
        match self.store.finish(row.id, &self.owner, end) {
            Ok(()) => {
                self.say(match end {
                    TrialEnd::Complete(r) => format!(
                        "trial {:>3} {} {:>6} steps  acc {:.4}  params {:>9}  {name}",
                        row.number,
                        match row.kind {
                            super::store::TrialKind::Confirm => format!("seed {}", row.seed),
                            _ => format!("rung {}", row.rung),
                        },
                        row.fidelity,
                        r.accuracy,
                        crate::report::group(r.params)
                    ),
                    TrialEnd::Failed(e) => format!("trial {:>3} failed: {e}", row.number),
                });
                Ok(true)
            }
            Err(e @ StoreError::NotOwner { .. }) => {
                self.say(format!("warning: {e}; this worker's result is dropped"));
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// After a trial: the progress count is the study's ended trials, and the reports are written again.
    /// Both are derived from the store: a failed read is a warning, the trial is already recorded.
    fn refresh(&self) {
        let rows = match self.store.trials(self.shared.id) {
            Ok(rows) => rows,
            Err(e) => return self.say(format!("warning: progress and reports not refreshed: {e}")),
        };
        let ended = rows.iter().filter(|t| t.state != TrialState::Running);
        emit(Event::Advanced {
            task: Task::Trials,
            done: ended.count() as u64,
            message: "",
        });
        if let Some((folder, writing)) = &self.shared.reports {
            let _one_writer = writing.lock().unwrap_or_else(|p| p.into_inner());
            if let Err(e) = write_reports(folder, &self.shared.study.report, &rows) {
                // Reports are derived data: a full disk or read-only folder must not stop the study.
                self.say(format!("warning: reports not refreshed: {e}"));
            }
        }
    }

    fn say(&self, line: String) {
        note(&line);
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
                    Err(e) => note(&format!("warning: heartbeat: {e}")),
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

/// Claimed trials split into packs that share a rung and a seed (a pack trains on one batch
/// order for one number of steps), in claim order.
fn same_rung_packs(rows: Vec<TrialRow>) -> Vec<Vec<TrialRow>> {
    let mut packs: Vec<Vec<TrialRow>> = Vec::new();
    for row in rows {
        let key = |r: &TrialRow| (r.fidelity, r.seed);
        match packs.iter_mut().find(|p| key(&p[0]) == key(&row)) {
            Some(pack) => pack.push(row),
            None => packs.push(vec![row]),
        }
    }
    packs
}
