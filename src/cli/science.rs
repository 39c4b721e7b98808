//! `pets unified` and `pets baselines`: studies of many child runs or presets under one
//! protocol, and the summary of what they trained.

use super::run_args::RunArgs;
use anyhow::{bail, Result};
use clap::Args;
use pets::assets::Cache;
use pets::run::{train_design, PreparedTask};
use pets::science::unified::{run_unified, RunsOutcome, UnifiedOptions};
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

/// `pets baselines`: which presets, under which protocol, reported where.
#[derive(Args, Clone)]
pub struct BaselinesArgs {
    #[arg(long, default_value = "search_spaces/presets")]
    pub presets: PathBuf,
    /// Only these presets (file stems), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    #[command(flatten)]
    pub run: RunArgs,
    #[arg(long, default_value = "reports/baselines.md")]
    pub report: PathBuf,
    /// Folder for each preset's run folder.
    #[arg(long, default_value = "runs/baselines")]
    pub runs: PathBuf,
}

/// `pets unified`: runs the study; `threads` is the global `--threads`.
pub fn unified(cache: &Cache, args: &UnifiedArgs, threads: Option<usize>) -> Result<()> {
    let options = UnifiedOptions {
        plan: args.plan.clone(),
        runs: args.runs.clone(),
        reports: args.reports.clone(),
        jobs: args.jobs,
        sections: args.sections.clone(),
        report_only: args.report_only,
        device: super::run_args::device_kind(&args.device)?,
        max_steps: args.max_steps,
        command: super::command_line(),
    };
    runs_finished(&run_unified(&options, cache, threads)?)
}

/// `pets baselines`: trains each preset (reusing finished run folders), rewriting the table after
/// each.
pub fn baselines(cache: &Cache, args: &BaselinesArgs) -> Result<()> {
    let settings = args.run.settings(3)?;
    let task = PreparedTask::prepare(&settings, cache)?;
    let designs = pets::report::load_presets(&args.presets, &args.only)?;
    let command = super::command_line();
    let mut rows = Vec::new();
    for design in &designs {
        let dir = args.runs.join(&design.name);
        let metrics = match pets::run::reusable_run(&dir, design, &task, &settings) {
            Some(done) => {
                eprintln!("preset {}: reusing {}", design.name, dir.display());
                done
            }
            None => {
                eprintln!("training preset {}", design.name);
                train_design(design, &task, &settings, Some(&dir))?.0
            }
        };
        rows.push(metrics);
        pets::report::write_baselines(&args.report, &command, &rows)?;
    }
    eprintln!("wrote {}", args.report.display());
    Ok(())
}

/// Says what a batch of child runs did; an error when any failed (rerunning retries them).
pub fn runs_finished(outcome: &RunsOutcome) -> Result<()> {
    eprintln!(
        "{} runs trained, {} reused, {} failed; wrote {}",
        outcome.trained,
        outcome.reused,
        outcome.failed.len(),
        outcome.report.display()
    );
    for (dir, why) in &outcome.failed {
        eprintln!("  failed: {}: {why}", dir.display());
    }
    if !outcome.failed.is_empty() {
        bail!(
            "{} runs failed (their logs are in train.log); rerun to retry them",
            outcome.failed.len()
        );
    }
    Ok(())
}
