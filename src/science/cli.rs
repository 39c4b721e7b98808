//! `pets unified`: expand the plan, train what is missing (child processes), write the report.

use super::plan::Plan;
use super::report;
use super::runner::{jobs, run_all, ChildRuns, RunnerOptions};
use crate::assets::Cache;
use crate::backbone::config::BertConfig;
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug, Clone)]
pub struct UnifiedArgs {
    /// The study plan (RON).
    #[arg(long, default_value = "search_spaces/plans/unified-view.ron")]
    pub plan: PathBuf,
    /// Folder of the run folders (`<task>/<entry>/seed<k>`); finished runs are reused.
    #[arg(long, default_value = "runs/unified")]
    pub runs: PathBuf,
    /// Where unified-view.md, .csv and .svg go.
    #[arg(long, default_value = "reports")]
    pub reports: PathBuf,
    /// Runs trained at once, as child processes (on a GPU they overlap their kernel launches).
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// Only the sections with these names (comma-separated); the report still covers all.
    #[arg(long, value_delimiter = ',')]
    pub sections: Vec<String>,
    /// Train nothing: write the report from the runs already finished.
    #[arg(long)]
    pub report_only: bool,
    /// cpu or cuda, for every run.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Cut every run to this many optimizer steps (smoke tests; such runs are not reused by a
    /// full study, whose epochs differ).
    #[arg(long)]
    pub max_steps: Option<usize>,
}

/// What a batch of child runs did (`pets unified`, `pets analyse init`).
#[derive(Debug)]
pub struct RunsOutcome {
    pub trained: usize,
    pub reused: usize,
    pub failed: Vec<(PathBuf, String)>,
    pub report: PathBuf,
}

/// Runs the study; `threads` is the global `--threads` (split between jobs when absent).
pub fn run_unified(
    args: &UnifiedArgs,
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
            &args.device,
            args.max_steps,
        )?;
        summary = run_all(&jobs(&chosen, &args.runs, &child), &options);
    }
    let rows = report::collect(&entries, &args.runs, &child);
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    report::write(&args.reports, &plan, &rows, &skipped, &command)?;
    Ok(RunsOutcome {
        trained: summary.trained,
        reused: summary.reused,
        failed: summary.failed,
        report: args.reports.join("unified-view.md"),
    })
}
