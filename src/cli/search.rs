//! `pets search`, `pets worker` and `pets report`: a study's settings, parsed once into
//! [`SearchSettings`] and [`WorkerSettings`], and what the commands print.

use super::run_args::RunArgs;
use anyhow::{bail, Result};
use clap::Args;
use pets::assets::Cache;
use pets::search::study::SearchSettings;
use pets::search::worker::{run_worker, Role, WorkerSettings};
use std::path::PathBuf;

/// What defines a study (every worker of it shares these).
#[derive(Args, Clone)]
pub struct SearchArgs {
    /// Search-space RON file.
    #[arg(long, default_value = "search_spaces/mam.ron")]
    pub space: PathBuf,
    /// Trainable-parameter budget: a share of the backbone (0.5%) or a count (120k, 1.2M).
    #[arg(long, default_value = "0.5%")]
    pub budget: String,
    /// Study name; rerunning the same command resumes it.
    #[arg(long)]
    pub study: Option<String>,
    /// The study store: a SQLite file, or postgres://USER@HOST/DATABASE shared by workers.
    /// `search` is one worker plus the reports (on SQLite also holding the study's lease).
    #[arg(long, default_value = "studies/pets.sqlite")]
    pub storage: String,
    #[arg(long, default_value = "reports")]
    pub reports: PathBuf,
    /// nsga2 or random
    #[arg(long, default_value = "nsga2")]
    pub sampler: String,
    /// Designs of the first generation (random), trained at the cheapest fidelity.
    #[arg(long, default_value_t = 12)]
    pub initial: usize,
    /// Designs of every later generation (NSGA-II's offspring and parents).
    #[arg(long, default_value_t = 6)]
    pub population: usize,
    /// Search trials in all, promotions included (baselines and confirmation runs are not
    /// counted). Default 45, or no limit when --timeout is given.
    #[arg(long)]
    pub trials: Option<usize>,
    /// The study's wall time, summed over resumes (90s, 45m, 2h, 1h30m): once spent no new
    /// search trial starts; running ones finish, then the confirmation runs.
    #[arg(long)]
    pub timeout: Option<String>,
    /// Front designs (the most accurate within the budget) retrained over seeds after the search.
    #[arg(long, default_value_t = 3)]
    pub confirm_top: usize,
    /// Seeds each confirmed design and every baseline is trained with, the search's own run as
    /// the first (1: no confirmation).
    #[arg(long, default_value_t = 3)]
    pub confirm_seeds: usize,
    /// Successive-halving factor: each rung keeps 1/eta of the candidates at eta× the steps.
    #[arg(long, default_value_t = 2)]
    pub eta: usize,
    /// Fidelity levels (the last is full training).
    #[arg(long, default_value_t = 2)]
    pub rungs: usize,
    /// When a rung promotes: sync (once the rung below has ended) or async (ASHA: the best
    /// 1/eta of the results so far, without waiting; generations overlap).
    #[arg(long, default_value = "sync")]
    pub promotion: String,
    /// The cheaper rungs by hand, cheapest first, in optimizer steps (120) or shares of the
    /// training data (25%: a quarter of one pass); full fidelity is the last rung.
    #[arg(long, value_delimiter = ',', conflicts_with = "rungs")]
    pub rung_at: Vec<String>,
    /// Presets evaluated in the same study, fitted to the budget.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "lora,prefix,pfeiffer,scaled_parallel_adapter,mam"
    )]
    pub baselines: Vec<String>,
    #[arg(long, default_value = "search_spaces/presets")]
    pub presets: PathBuf,
    /// Trials trained at once (threads are split between them).
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// Trials of one rung each job trains together, sharing one pass of the frozen model.
    #[arg(long, default_value_t = 1)]
    pub pack: usize,
    /// Sampler seed.
    #[arg(long, default_value_t = 0)]
    pub search_seed: u64,
}

/// A worker's own settings (every worker of a study shares the `SearchArgs`).
#[derive(Args, Clone)]
pub struct WorkerArgs {
    /// Seconds without a heartbeat after which a worker's running trial is claimed again (and a
    /// `search`'s lease on a SQLite study is taken over).
    #[arg(long, default_value_t = 120.0)]
    pub stale_after: f64,
    /// Folder of trial run folders (default: beside a SQLite store; studies/ for a database).
    #[arg(long)]
    pub trials_dir: Option<PathBuf>,
}

/// `pets report`: which study, from which store, compared at which budget.
#[derive(Args, Clone)]
pub struct ReportArgs {
    #[arg(long)]
    pub study: String,
    /// The study store: a SQLite file or postgres://USER@HOST/DATABASE.
    #[arg(long, default_value = "studies/pets.sqlite")]
    pub storage: String,
    #[arg(long, default_value = "reports")]
    pub reports: PathBuf,
    /// Budget the front is compared at (as in `search --budget`; default: the study's own).
    #[arg(long)]
    pub budget: Option<String>,
    /// The model whose size the budget's percentage is of (default: the study's own).
    #[arg(long)]
    pub model: Option<String>,
}

/// `pets search`: one worker that also writes the reports; prints the front on stdout.
pub fn search(cache: &Cache, search: SearchArgs, run: &RunArgs, worker: WorkerArgs) -> Result<()> {
    let ws = worker_settings(search, worker, Role::Search)?;
    let mut run = run.settings(1)?;
    run.train.progress = false;
    let started = std::time::Instant::now();
    let outcome = run_worker(&ws, &run, cache)?;
    println!("{}", outcome.front);
    let files: Vec<String> = outcome
        .report_files
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    eprintln!(
        "study {}: {} trials in {:.0} s; reports: {}",
        ws.search.study,
        outcome.trials.len(),
        started.elapsed().as_secs_f64(),
        files.join(", ")
    );
    Ok(())
}

/// `pets worker`: trains the study's trials until its budget is spent.
pub fn worker(cache: &Cache, search: SearchArgs, run: &RunArgs, worker: WorkerArgs) -> Result<()> {
    let ws = worker_settings(search, worker, Role::Worker)?;
    let mut run = run.settings(1)?;
    run.train.progress = false;
    let outcome = run_worker(&ws, &run, cache)?;
    eprintln!(
        "worker pid {}: trained {} trials; study {} has {} trials, its budget spent",
        std::process::id(),
        outcome.trained,
        ws.search.study,
        outcome.trials.len()
    );
    Ok(())
}

/// `pets report`: re-renders the study's reports and prints their paths.
pub fn report(cache: &Cache, args: &ReportArgs) -> Result<()> {
    let budget = args.budget.as_deref().map(str::parse).transpose()?;
    let files = pets::search::study::rerender(
        &args.storage,
        &args.study,
        &args.reports,
        budget,
        args.model.as_deref(),
        cache,
    )?;
    for f in files {
        println!("{}", f.display());
    }
    Ok(())
}

fn search_settings(search: SearchArgs) -> Result<SearchSettings> {
    let timeout = search
        .timeout
        .as_deref()
        .map(pets::search::limits::parse_timeout)
        .transpose()?;
    let space_stem = search
        .space
        .file_stem()
        .map(|s| s.to_string_lossy().to_string());
    Ok(SearchSettings {
        study: search
            .study
            .clone()
            .or(space_stem)
            .unwrap_or_else(|| "study".into()),
        space: search.space,
        budget: search.budget.parse()?,
        sampler: search.sampler.parse()?,
        seed: search.search_seed,
        initial: search.initial,
        population: search.population,
        trials: search.trials,
        timeout,
        confirm_top: search.confirm_top,
        confirm_seeds: search.confirm_seeds,
        eta: search.eta,
        // Rungs placed by hand are the cheaper ones; full fidelity is the last.
        rungs: match search.rung_at.len() {
            0 => search.rungs,
            n => n + 1,
        },
        promotion: search.promotion.parse()?,
        rung_at: search
            .rung_at
            .iter()
            .map(|r| r.parse::<pets::search::fidelity::RungAt>())
            .collect::<std::result::Result<Vec<_>, _>>()?,
        baselines: search.baselines,
        presets_dir: search.presets,
        reports: search.reports,
        jobs: search.jobs,
        pack: search.pack,
        command: super::command_line(),
    })
}

fn worker_settings(search: SearchArgs, worker: WorkerArgs, role: Role) -> Result<WorkerSettings> {
    if !(worker.stale_after.is_finite() && worker.stale_after > 0.0) {
        bail!(
            "--stale-after {}: expected a positive number of seconds",
            worker.stale_after
        );
    }
    let storage = search.storage.clone();
    let trials_dir = match worker.trials_dir {
        Some(dir) => dir,
        None => WorkerSettings::default_trials_dir(&storage)?,
    };
    Ok(WorkerSettings {
        search: search_settings(search)?,
        storage,
        trials_dir,
        stale_after: std::time::Duration::from_secs_f64(worker.stale_after),
        role,
    })
}
