//! Runs a plan's entries × seeds as `pets train` child processes, a few at a time, skipping runs
//! already finished with the same run fingerprint, so a study resumes where it stopped.

use super::plan::Entry;
use super::ScienceError;
use crate::assets::Cache;
use crate::data::{SplitOptions, TaskSource};
use crate::device::DeviceKind;
use crate::progress::note;
use crate::run::{finished_run, RunFingerprint, RunInputs, RunMetrics, RunSettings};
use crate::train::TrainConfig;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// How the child runs are launched.
#[derive(Debug, Clone)]
pub struct RunnerOptions {
    /// The `pets` binary (normally the running one).
    pub exe: PathBuf,
    pub model: String,
    pub runs: PathBuf,
    /// Child processes at once. On a GPU several small runs overlap their kernel launches.
    pub jobs: usize,
    /// `--threads` of each child (CPU kernels).
    pub threads: usize,
    /// Further `pets train` arguments for every run (`--device cuda`, `--max-steps 5`).
    pub extra: Vec<String>,
}

impl RunnerOptions {
    /// Children of the running binary on `device`, `jobs` at a time, each with
    /// `threads` CPU threads (default: the cores split between the jobs), every run cut to
    /// `max_steps` when given.
    pub fn children(
        model: &str,
        runs: &Path,
        jobs: usize,
        threads: Option<usize>,
        device: DeviceKind,
        max_steps: Option<usize>,
    ) -> Result<RunnerOptions, ScienceError> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut extra = vec!["--device".to_string(), device.to_string()];
        if let Some(steps) = max_steps {
            extra.extend(["--max-steps".to_string(), steps.to_string()]);
        }
        Ok(RunnerOptions {
            exe: std::env::current_exe().map_err(|source| ScienceError::Launch {
                exe: PathBuf::from("pets"),
                source,
            })?,
            model: model.to_string(),
            runs: runs.to_path_buf(),
            jobs: jobs.max(1),
            threads: threads.unwrap_or((cores / jobs.max(1)).max(1)),
            extra,
        })
    }
}

/// Token limit of every child run (passed to it, so that its fingerprint is the one expected).
pub const CHILD_MAX_LEN: usize = 64;

/// The fingerprints child runs will have: `pets train` with its default protocol (batch size,
/// `CHILD_MAX_LEN`, the design's own learning rate) on each entry's task, cut to `max_steps`.
#[derive(Debug, Clone)]
pub struct ChildRuns {
    model: String,
    max_steps: Option<usize>,
    /// Per task (and columns): its hashes, `None` where the task does not load (its runs then
    /// count as unfinished, and a child trained on it reports why).
    inputs: HashMap<String, Option<RunInputs>>,
}

impl ChildRuns {
    /// Hashes the model once and each distinct task of `entries` once.
    pub fn prepare(
        model: &str,
        entries: &[Entry],
        max_steps: Option<usize>,
        cache: &Cache,
    ) -> crate::Result<ChildRuns> {
        let model_dir = cache.model_dir(model)?;
        let mut inputs = HashMap::new();
        for entry in entries {
            let key = task_key(entry);
            if inputs.contains_key(&key) {
                continue;
            }
            let loaded = crate::data::load_task(&source(entry), cache, &SplitOptions::default())
                .ok()
                .map(|dataset| RunInputs::of(model, &model_dir, &dataset))
                .transpose()?;
            inputs.insert(key, loaded);
        }
        Ok(ChildRuns {
            model: model.to_string(),
            max_steps,
            inputs,
        })
    }

    /// What the child run of `entry` with `seed` computes; `None` when its task does not load.
    pub fn fingerprint(&self, entry: &Entry, seed: u64) -> Option<RunFingerprint> {
        let inputs = self.inputs.get(&task_key(entry))?.as_ref()?;
        let settings = RunSettings {
            model: self.model.clone(),
            task: source(entry),
            test: crate::data::TestSplit::default(),
            max_len: CHILD_MAX_LEN,
            dropout: 0.0,
            train: TrainConfig {
                epochs: entry.epochs,
                seed,
                max_steps: self.max_steps,
                ..TrainConfig::default()
            },
            lr_override: None,
            device: candle_core::Device::Cpu,
        };
        Some(RunFingerprint::new(&entry.design, inputs, &settings))
    }
}

/// The task as `pets train --task` reads it (the columns when given).
fn source(entry: &Entry) -> TaskSource {
    match &entry.columns {
        None => TaskSource::Builtin(entry.task.clone()),
        Some((text, label)) => TaskSource::File {
            path: PathBuf::from(&entry.task),
            text_column: text.clone(),
            label_column: label.clone(),
        },
    }
}

fn task_key(entry: &Entry) -> String {
    format!("{}\t{:?}", entry.task, entry.columns)
}

/// One seed of one entry: where it runs, what it trains, and the fingerprint it will have.
#[derive(Debug, Clone)]
pub struct RunJob<'a> {
    pub entry: &'a Entry,
    pub seed: u64,
    pub dir: PathBuf,
    pub fingerprint: Option<RunFingerprint>,
}

/// What became of the jobs.
#[derive(Debug, Default)]
pub struct RunSummary {
    pub reused: usize,
    pub trained: usize,
    /// (run folder, what went wrong); the other runs went on.
    pub failed: Vec<(PathBuf, String)>,
}

/// A run's folder: `<runs>/<task>/<label>/seed<k>`, the label made path-safe.
pub fn run_dir(runs: &Path, entry: &Entry, seed: u64) -> PathBuf {
    let task = Path::new(&entry.task)
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| entry.task.clone());
    let label = entry.label.replace('@', "-at-").replace('%', "pct");
    runs.join(task).join(label).join(format!("seed{seed}"))
}

/// The finished run in `dir` if it has the fingerprint `expected`.
pub fn finished(dir: &Path, expected: Option<&RunFingerprint>) -> Option<RunMetrics> {
    finished_run(dir, expected?)
}

/// Every seed of every entry: first seed of every entry in plan order, then the second, and so
/// on, so that a study cut short still covers every entry once before it repeats any.
pub fn jobs<'a>(entries: &'a [Entry], runs: &Path, child: &ChildRuns) -> Vec<RunJob<'a>> {
    let rounds = entries.iter().map(|e| e.seeds.len()).max().unwrap_or(0);
    (0..rounds)
        .flat_map(|round| {
            entries.iter().filter_map(move |entry| {
                entry.seeds.get(round).map(|&seed| RunJob {
                    entry,
                    seed,
                    dir: run_dir(runs, entry, seed),
                    fingerprint: child.fingerprint(entry, seed),
                })
            })
        })
        .collect()
}

/// Trains every job not finished yet, `options.jobs` at a time. A failed run is reported and
/// left for the next invocation; it never stops the others.
pub fn run_all(jobs: &[RunJob], options: &RunnerOptions) -> RunSummary {
    let pending: Vec<&RunJob> = jobs
        .iter()
        .filter(|j| finished(&j.dir, j.fingerprint.as_ref()).is_none())
        .collect();
    let summary = Mutex::new(RunSummary {
        reused: jobs.len() - pending.len(),
        ..RunSummary::default()
    });
    let next = AtomicUsize::new(0);
    let total = pending.len();
    note(&format!(
        "{} runs: {} already finished, {} to train, {} at a time",
        jobs.len(),
        jobs.len() - total,
        total,
        options.jobs.max(1)
    ));
    std::thread::scope(|scope| {
        for _ in 0..options.jobs.clamp(1, total.max(1)) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(job) = pending.get(i) else { break };
                let started = Instant::now();
                let outcome = train_one(job, options);
                let mut s = summary.lock().unwrap_or_else(|e| e.into_inner());
                match outcome {
                    Ok(m) => {
                        s.trained += 1;
                        note(&format!(
                            "[{}/{total}] {} {} seed {}: dev {:.4} ({:.0} s)",
                            s.trained + s.failed.len(),
                            job.entry.task,
                            job.entry.label,
                            job.seed,
                            m.accuracy,
                            started.elapsed().as_secs_f64()
                        ));
                    }
                    Err(e) => {
                        note(&format!(
                            "[{}/{total}] {} {} seed {}: FAILED: {e}",
                            s.trained + s.failed.len() + 1,
                            job.entry.task,
                            job.entry.label,
                            job.seed
                        ));
                        s.failed.push((job.dir.clone(), e.to_string()));
                    }
                }
            });
        }
    });
    summary.into_inner().unwrap_or_else(|e| e.into_inner())
}

/// One child `pets train`, its output kept in `train.log` beside the run.
fn train_one(job: &RunJob, options: &RunnerOptions) -> Result<RunMetrics, ScienceError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ScienceError::Write { path, source }
    };
    std::fs::create_dir_all(&job.dir).map_err(io(&job.dir))?;
    let design_path = job.dir.join("design.ron");
    std::fs::write(&design_path, job.entry.design.to_ron()).map_err(io(&design_path))?;
    let log_path = job.dir.join("train.log");
    let log = std::fs::File::create(&log_path).map_err(io(&log_path))?;
    let err_log = log.try_clone().map_err(io(&log_path))?;
    let mut cmd = Command::new(&options.exe);
    cmd.arg("--threads")
        .arg(options.threads.max(1).to_string())
        .arg("train")
        .arg("--design")
        .arg(&design_path)
        .args(["--model", &options.model, "--task", &job.entry.task])
        .args(["--epochs", &job.entry.epochs.to_string()])
        .args(["--seed", &job.seed.to_string(), "--quiet"])
        .args(["--max-len", &CHILD_MAX_LEN.to_string()])
        .args([
            "--batch-size",
            &TrainConfig::default().batch_size.to_string(),
        ])
        .arg("--out")
        .arg(&job.dir)
        .args(&options.extra);
    if let Some((text, label)) = &job.entry.columns {
        cmd.args(["--text-column", text, "--label-column", label]);
    }
    let status = cmd
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(err_log))
        .status()
        .map_err(|source| ScienceError::Launch {
            exe: options.exe.clone(),
            source,
        })?;
    let failure = |why: String| {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(3).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        ScienceError::RunFailed {
            dir: job.dir.clone(),
            why: format!("{why}; {}", tail.join(" | ")),
        }
    };
    if !status.success() {
        return Err(failure(format!("pets train exited with {status}")));
    }
    finished(&job.dir, job.fingerprint.as_ref()).ok_or_else(|| {
        failure("no metrics.json with the expected run fingerprint after training".into())
    })
}
