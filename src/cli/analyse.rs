//! `pets analyse layers|noise|init`: which trained design, on which task, with which sweep.

use anyhow::Result;
use clap::{Args, Subcommand};
use pets::analyse::subject::{
    run_init, run_layers, run_noise, InitOptions, LayersOptions, NoiseOptions, TaskOptions, Trained,
};
use pets::assets::Cache;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum AnalyseCommand {
    /// Dev accuracy with the modules of every contiguous span of layers switched off.
    Layers(LayersArgs),
    /// Dev accuracy after Gaussian noise of growing σ on the trained module tensors.
    Noise(NoiseArgs),
    /// Retrain a design with its module weights initialised N(0, std²) over a range of stds
    /// (resumable child runs) and plot dev accuracy against the std.
    Init(InitArgs),
}

/// Runs the analysis and says where its report went.
pub fn analyse(cache: &Cache, what: AnalyseCommand, threads: Option<usize>) -> Result<()> {
    match what {
        AnalyseCommand::Layers(args) => {
            let report = run_layers(&args.options(), cache)?;
            eprintln!("wrote {}", report.display());
        }
        AnalyseCommand::Noise(args) => {
            let options = NoiseOptions {
                source: args.source.options(),
                sigmas: args.sigmas,
                draws: args.draws,
            };
            let report = run_noise(&options, cache)?;
            eprintln!("wrote {}", report.display());
        }
        AnalyseCommand::Init(args) => {
            let options = InitOptions {
                design: args.design,
                task: args.task.options(),
                model: args.model,
                stds: args.stds,
                seeds: args.seeds,
                epochs: args.epochs,
                jobs: args.jobs,
                device: super::run_args::device_kind(&args.device)?,
                max_steps: args.max_steps,
                runs: args.runs,
                reports: args.reports,
                report_only: args.report_only,
                command: super::command_line(),
            };
            super::science::runs_finished(&run_init(&options, cache, threads)?)?;
        }
    }
    Ok(())
}

impl LayersArgs {
    fn options(&self) -> LayersOptions {
        let trained = match (&self.run, &self.adapter) {
            (Some(run), _) => Trained::Run(run.clone()),
            (None, Some(adapter)) => Trained::Adapter(adapter.clone()),
            // clap requires one of the two.
            (None, None) => Trained::Run(PathBuf::new()),
        };
        LayersOptions {
            trained,
            task: self.task.options(),
            reports: self.reports.clone(),
            command: super::command_line(),
        }
    }
}

impl TaskArgs {
    fn options(&self) -> TaskOptions {
        TaskOptions {
            task: self.task.clone(),
            text_column: self.text_column.clone(),
            label_column: self.label_column.clone(),
        }
    }
}

/// Which trained design is analysed, on which task, and where the reports go.
#[derive(Args, Debug, Clone)]
pub struct LayersArgs {
    /// A run folder written by `pets train --out`.
    #[arg(long, conflicts_with = "adapter", required_unless_present = "adapter")]
    pub run: Option<PathBuf>,
    /// A folder written by `pets export`.
    #[arg(long)]
    pub adapter: Option<PathBuf>,
    #[command(flatten)]
    pub task: TaskArgs,
    #[arg(long, default_value = "reports/analyse")]
    pub reports: PathBuf,
}

/// The task, as `pets train` takes it.
#[derive(Args, Debug, Clone)]
pub struct TaskArgs {
    /// A built-in task (mr, imdb, bbc, tweets) or a CSV/TSV/JSONL file: for `layers` and `noise`
    /// the one the design was trained on (its dev split is evaluated).
    #[arg(long, default_value = "mr")]
    pub task: String,
    /// Text column of a data file (default `text`).
    #[arg(long)]
    pub text_column: Option<String>,
    /// Label column of a data file (default `label`).
    #[arg(long)]
    pub label_column: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct NoiseArgs {
    #[command(flatten)]
    pub source: LayersArgs,
    /// Standard deviations of the added noise.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0,1e-4,1e-3,1e-2,3e-2,1e-1,3e-1,1"
    )]
    pub sigmas: Vec<f64>,
    /// Noise draws per σ.
    #[arg(long, default_value_t = 3)]
    pub draws: usize,
}

/// A design retrained with its modules' initial std swept (Houlsby et al.'s Fig. 6).
#[derive(Args, Debug, Clone)]
pub struct InitArgs {
    /// The design (RON) whose modules' initialisation is swept.
    #[arg(long)]
    pub design: PathBuf,
    #[command(flatten)]
    pub task: TaskArgs,
    /// A known model name or an HF-style folder, as `pets train --model`.
    #[arg(long, default_value = "minilm-l6")]
    pub model: String,
    /// Initial standard deviations: every module weight starts N(0, std²).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1e-7,1e-5,1e-3,1e-2,3e-2,1e-1,3e-1,1"
    )]
    pub stds: Vec<f64>,
    /// Seeds per std (0, 1, …).
    #[arg(long, default_value_t = 3)]
    pub seeds: u64,
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    /// Runs trained at once, as `pets train` child processes.
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// cpu or cuda, for every run.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Cut every run to this many optimizer steps (smoke tests; kept in folders of their own,
    /// never reused by a full sweep).
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Folder of the run folders (`<task>/<design>-std<s>/seed<k>`); finished runs are reused.
    #[arg(long, default_value = "runs/analyse-init")]
    pub runs: PathBuf,
    #[arg(long, default_value = "reports/analyse")]
    pub reports: PathBuf,
    /// Train nothing: write the report from the runs already finished.
    #[arg(long)]
    pub report_only: bool,
}
