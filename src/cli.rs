//! The `pets` command line's arguments (clap): every command, its options and their help, and
//! the run settings the training commands share.

pub mod validate;

use super::device;
use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand};
use pets::data::{SplitOptions, TaskSource, TestSplit};
use pets::run::RunSettings;
use pets::train::TrainConfig;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "pets",
    version,
    about = "Search the design space of parameter-efficient fine-tuning"
)]
pub struct Cli {
    /// Threads for the CPU kernels (default: all cores).
    #[arg(long, global = true)]
    pub threads: Option<usize>,
    /// Frozen linear products in bf16 with fp32 accumulation where the CPU has AVX512-BF16
    /// (ignored elsewhere); sets PETS_FROZEN_BF16=1, which child runs inherit.
    #[arg(long, global = true)]
    pub frozen_bf16: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Download a model and a dataset into the cache ($PETS_CACHE, default ~/.cache/pets).
    Fetch {
        #[arg(long, default_value = "minilm-l6")]
        model: String,
        #[arg(long, default_value = "mr")]
        data: String,
    },
    /// Write a task's fixed train/dev split as TSV files (text, label) for inspection or `predict`.
    Split {
        /// Built-in task (mr, imdb, bbc, tweets).
        #[arg(long, default_value = "mr")]
        task: String,
        #[arg(long)]
        out_dir: PathBuf,
    },
    /// Validate a design (its modules and exact trainable parameters) or a search space (its
    /// slots, options and the parameters of its smallest and largest designs).
    Validate {
        /// A design or a search-space RON file.
        design: PathBuf,
        #[arg(long, default_value = "minilm-l6")]
        model: String,
        /// Classes of the head (for the head's parameter count).
        #[arg(long, default_value_t = 2)]
        classes: usize,
        /// Also check against a budget: a share of the backbone (0.5%) or a count (120k).
        #[arg(long)]
        budget: Option<String>,
    },
    /// Print the design's graph on the backbone.
    Graph {
        design: PathBuf,
        #[arg(long, default_value = "minilm-l6")]
        model: String,
        /// Graphviz output.
        #[arg(long)]
        dot: bool,
    },
    /// Train one design on a task and write metrics.json and the trained tensors.
    Train {
        #[arg(long)]
        design: PathBuf,
        #[command(flatten)]
        run: RunArgs,
        /// Run folder for design.ron, metrics.json, adapter.safetensors.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Search designs trading trainable parameters against accuracy under a budget (resumable).
    Search {
        #[command(flatten)]
        search: SearchArgs,
        #[command(flatten)]
        run: RunArgs,
        #[command(flatten)]
        worker: WorkerArgs,
    },
    /// Join a study in a shared store and train its trials until its budget is spent (start
    /// many, on many machines: see scripts/slurm/pets-array.sbatch).
    Worker {
        #[command(flatten)]
        search: SearchArgs,
        #[command(flatten)]
        run: RunArgs,
        #[command(flatten)]
        worker: WorkerArgs,
    },
    /// Re-render a study's reports from its store.
    Report {
        #[arg(long)]
        study: String,
        /// The study store: a SQLite file or postgres://USER@HOST/DATABASE.
        #[arg(long, default_value = "studies/pets.sqlite")]
        storage: String,
        #[arg(long, default_value = "reports")]
        reports: PathBuf,
        /// Budget the front is compared at (as in `search --budget`; default: the study's own).
        #[arg(long)]
        budget: Option<String>,
        /// The model whose size the budget's percentage is of (default: the study's own).
        #[arg(long)]
        model: Option<String>,
    },
    /// Write a deployable folder from a run or a study trial: an adapter (default), a merged
    /// model, or PEFT files.
    Export(pets::export::ExportArgs),
    /// Classify texts with a folder written by `pets export`.
    Predict(pets::predict::PredictArgs),
    /// Ask questions of a design: which layers carry it, how fragile it is, whether its init
    /// matters.
    Analyse {
        #[command(subcommand)]
        what: AnalyseCommand,
    },
    /// Run the unified-view study of a plan (resumable) and write reports/unified-view.md.
    Unified(pets::science::cli::UnifiedArgs),
    /// Train every preset under one protocol and write a Markdown table.
    Baselines {
        #[arg(long, default_value = "search_spaces/presets")]
        presets: PathBuf,
        /// Only these presets (file stems), comma-separated.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        #[command(flatten)]
        run: RunArgs,
        #[arg(long, default_value = "reports/baselines.md")]
        report: PathBuf,
        /// Folder for each preset's run folder.
        #[arg(long, default_value = "runs/baselines")]
        runs: PathBuf,
    },
    /// Time pets' forward pass and training step against a PyTorch reference of the same design
    /// on the same weights and batches (needs scripts/bench-setup.sh or --python), and write a
    /// Markdown report.
    Bench(BenchArgs),
}

#[derive(Args, Clone)]
pub struct BenchArgs {
    /// Presets (file stems in --presets) or paths to design RON files, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "lora,scaled_parallel_adapter,mam"
    )]
    pub designs: Vec<String>,
    #[arg(long, default_value = "search_spaces/presets")]
    pub presets: PathBuf,
    #[arg(long, default_value = "minilm-l6")]
    pub model: String,
    /// Built-in task whose training sentences make the batches.
    #[arg(long, default_value = "mr")]
    pub task: String,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 64)]
    pub max_len: usize,
    /// Distinct batches, each run once per round.
    #[arg(long, default_value_t = 4)]
    pub batches: usize,
    /// Timed rounds (after one warm-up round), alternating pets and the reference.
    #[arg(long, default_value_t = 7)]
    pub rounds: usize,
    /// Optimizer steps whose losses must agree between the two.
    #[arg(long, default_value_t = 5)]
    pub check_steps: usize,
    /// Constant learning rate (default: each design's own).
    #[arg(long)]
    pub lr: Option<f64>,
    #[arg(long, default_value_t = 0.01)]
    pub weight_decay: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// cpu or cuda
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Python with torch, safetensors (scripts/bench-setup.sh makes .venv-bench).
    #[arg(long, default_value = ".venv-bench/bin/python")]
    pub python: PathBuf,
    /// The PyTorch reference script.
    #[arg(long, default_value = "bench/reference.py")]
    pub reference: PathBuf,
    /// Scratch folder for the plan and tensors each design hands the reference.
    #[arg(long, default_value = "runs/bench")]
    pub work: PathBuf,
    #[arg(long, default_value = "reports/bench.md")]
    pub report: PathBuf,
}

#[derive(Subcommand)]
pub enum AnalyseCommand {
    /// Dev accuracy with the modules of every contiguous span of layers switched off.
    Layers(pets::analyse::cli::LayersArgs),
    /// Dev accuracy after Gaussian noise of growing σ on the trained module tensors.
    Noise(pets::analyse::cli::NoiseArgs),
    /// Retrain a design with its module weights initialised N(0, std²) over a range of stds
    /// (resumable child runs) and plot dev accuracy against the std.
    Init(pets::analyse::cli::InitArgs),
}

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

#[derive(Args, Clone)]
pub struct RunArgs {
    /// Built-in task (mr, imdb, bbc, tweets) or a CSV/TSV/JSONL file.
    #[arg(long, default_value = "mr")]
    pub task: String,
    #[arg(long)]
    pub text_column: Option<String>,
    #[arg(long)]
    pub label_column: Option<String>,
    /// A test file with the same columns as `--task`: then no test split is carved from it.
    #[arg(long, value_name = "FILE", conflicts_with = "test_fraction")]
    pub test: Option<PathBuf>,
    /// Share of each class carved from the task as the held-out test split (default 0.1;
    /// 0: no test split). Dev takes 0.1, so it must be in [0, 0.9).
    #[arg(long, value_name = "F")]
    pub test_fraction: Option<f64>,
    #[arg(long, default_value = "minilm-l6")]
    pub model: String,
    /// Training epochs (a search's full fidelity); default 3, and 1 for `search`.
    #[arg(long)]
    pub epochs: Option<usize>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Overrides the design's own learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 64)]
    pub max_len: usize,
    #[arg(long, default_value_t = 0.01)]
    pub weight_decay: f64,
    /// Backbone dropout during training (0 = off, the default).
    #[arg(long, default_value_t = 0.0)]
    pub dropout: f32,
    /// Stop after this many optimizer steps.
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Run the frozen layers below a design's lowest module every step instead of once per
    /// dataset (the results are the same; for timing comparisons).
    #[arg(long)]
    pub no_frozen_cache: bool,
    /// Batch in shuffled order only, without grouping sentences of similar length (more
    /// padding; for measuring what bucketing changes).
    #[arg(long)]
    pub no_bucketing: bool,
    /// cpu or cuda
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

impl RunArgs {
    pub fn settings(&self, default_epochs: usize) -> Result<RunSettings> {
        let file = |path: PathBuf| TaskSource::File {
            path,
            text_column: self.text_column.clone().unwrap_or_else(|| "text".into()),
            label_column: self.label_column.clone().unwrap_or_else(|| "label".into()),
        };
        let task = match (&self.text_column, &self.label_column) {
            (None, None) => TaskSource::Builtin(self.task.clone()),
            _ => file(PathBuf::from(&self.task)),
        };
        let test = match (&self.test, self.test_fraction) {
            (Some(path), _) => TestSplit::File(file(path.clone())),
            (None, Some(f)) => {
                let dev = SplitOptions::default().dev_fraction;
                if f.is_nan() || f < 0.0 || f + dev >= 1.0 {
                    bail!(
                        "--test-fraction must be at least 0 and, with dev's {dev}, below 1; got {f}"
                    );
                }
                TestSplit::Fraction(f)
            }
            (None, None) => TestSplit::default(),
        };
        check_lr(self.lr)?;
        let device = device(&self.device)?;
        let train = TrainConfig {
            epochs: self.epochs.unwrap_or(default_epochs),
            batch_size: self.batch_size,
            weight_decay: self.weight_decay,
            seed: self.seed,
            max_steps: self.max_steps,
            cache_frozen: !self.no_frozen_cache,
            bucket_by_length: !self.no_bucketing,
            progress: !self.quiet,
            ..TrainConfig::default()
        };
        Ok(RunSettings {
            model: self.model.clone(),
            task,
            test,
            max_len: self.max_len,
            dropout: self.dropout,
            train,
            lr_override: self.lr,
            device,
        })
    }
}

/// Refuses a `--lr` that cannot train: 0, negative or not finite.
pub fn check_lr(lr: Option<f64>) -> Result<()> {
    match lr {
        Some(lr) if !pets::spec::is_usable_learning_rate(lr) => {
            bail!("--lr {lr}: expected a positive, finite learning rate")
        }
        _ => Ok(()),
    }
}
