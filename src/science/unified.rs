//! The unified-view study (`pets unified`): expand the plan, train what is missing (child
//! processes), write the report.

use super::plan::Plan;
use super::report;
use super::runner::{jobs, run_all, ChildRuns, RunnerOptions};
use crate::assets::Cache;
use crate::backbone::config::BertConfig;
use crate::device::DeviceKind;
use std::path::PathBuf;

/// What the study runs and where its runs and reports go.
#[derive(Debug, Clone)]
pub struct UnifiedOptions {
    /// The study plan (RON).
    pub plan: PathBuf,
    /// Folder of the run folders (`<task>/<entry>/seed<k>`); finished runs are reused.
    pub runs: PathBuf,
    /// Where unified-view.md, .csv and .svg go.
    pub reports: PathBuf,
    /// Runs trained at once, as child processes (on a GPU they overlap their kernel launches).
    pub jobs: usize,
    /// Only the sections with these names; the report still covers all.
    pub sections: Vec<String>,
    /// Train nothing: write the report from the runs already finished.
    pub report_only: bool,
    /// The device of every run.
    pub device: DeviceKind,
    /// Cut every run to this many optimizer steps (smoke tests; such runs are not reused by a
    /// full study, whose epochs differ).
    pub max_steps: Option<usize>,
    /// The command line recorded in the report.
    pub command: String,
}

/// What a batch of child runs did (`pets unified`, `pets analyse init`).
#[derive(Debug)]
pub struct RunsOutcome {
    /// Runs trained by this call.
    pub trained: usize,
    /// Runs finished before, with the same run fingerprint, and not trained again.
    pub reused: usize,
    /// Each failed run's folder and why it failed (its log is `train.log` there).
    pub failed: Vec<(PathBuf, String)>,
    /// The report written.
    pub report: PathBuf,
}

/// Runs the study; `threads` per child run (default: the cores split between the jobs).
pub fn run_unified(
    args: &UnifiedOptions,
    cache: &Cache,
    threads: Option<usize>,
) -> Result<RunsOutcome, crate::Error> {
    let plan = Plan::from_file(&args.plan)?;
    let root = args
        .plan
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    let model_dir = cache.model_dir(&plan.model)?;
    let shape = BertConfig::from_file(&model_dir.join("config.json"))?.shape();
    let (entries, skipped) = plan.entries(&root, &shape)?;
    let child = ChildRuns::prepare(&plan.model, &entries, args.max_steps, cache)?;
    let mut summary = super::runner::RunSummary::default();
    if !args.report_only {
        let chosen: Vec<_> = entries
            .iter()
            .filter(|e| args.sections.is_empty() || args.sections.contains(&e.section))
            .cloned()
            .collect();
        let options = RunnerOptions::children(
            &plan.model,
            &args.runs,
            args.jobs,
            threads,
            args.device,
            args.max_steps,
        )?;
        summary = run_all(&jobs(&chosen, &args.runs, &child), &options);
    }
    let rows = report::collect(&entries, &args.runs, &child);
    report::write(&args.reports, &plan, &rows, &skipped, &args.command)?;
    Ok(RunsOutcome {
        trained: summary.trained,
        reused: summary.reused,
        failed: summary.failed,
        report: args.reports.join("unified-view.md"),
    })
}
