//! The `pets` command line: clap's arguments, parsed once into the library's typed settings, and
//! everything the program prints: results on stdout, progress and summaries on stderr. One module
//! per command family; the library itself prints nothing.

mod analyse;
mod bench;
mod data;
mod export;
pub mod hints;
mod predict;
mod run_args;
mod science;
mod search;
pub mod terminal;
mod train;
mod validate;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use pets::assets::Cache;
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
        run: run_args::RunArgs,
        /// Run folder for design.ron, metrics.json, adapter.safetensors.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Search designs trading trainable parameters against accuracy under a budget (resumable).
    Search {
        #[command(flatten)]
        search: search::SearchArgs,
        #[command(flatten)]
        run: run_args::RunArgs,
        #[command(flatten)]
        worker: search::WorkerArgs,
    },
    /// Join a study in a shared store and train its trials until its budget is spent (start
    /// many, on many machines: see scripts/slurm/pets-array.sbatch).
    Worker {
        #[command(flatten)]
        search: search::SearchArgs,
        #[command(flatten)]
        run: run_args::RunArgs,
        #[command(flatten)]
        worker: search::WorkerArgs,
    },
    /// Re-render a study's reports from its store.
    Report(search::ReportArgs),
    /// Write a deployable folder from a run or a study trial: an adapter (default), a merged
    /// model, or PEFT files.
    Export(export::ExportArgs),
    /// Classify texts with a folder written by `pets export`.
    Predict(predict::PredictArgs),
    /// Ask questions of a design: which layers carry it, how fragile it is, whether its init
    /// matters.
    Analyse {
        #[command(subcommand)]
        what: analyse::AnalyseCommand,
    },
    /// Run the unified-view study of a plan (resumable) and write reports/unified-view.md.
    Unified(science::UnifiedArgs),
    /// Train every preset under one protocol and write a Markdown table.
    Baselines(science::BaselinesArgs),
    /// Time pets' forward pass and training step against a PyTorch reference of the same design
    /// on the same weights and batches (needs scripts/bench-setup.sh or --python), and write a
    /// Markdown report.
    Bench(bench::BenchArgs),
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    if cli.frozen_bf16 {
        // Read once by the kernels (and inherited by child runs) before any product runs.
        std::env::set_var("PETS_FROZEN_BF16", "1");
    }
    if let Some(threads) = cli.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()
            .context("configuring threads")?;
    }
    let cache = Cache::from_env();
    match cli.command {
        Command::Fetch { model, data } => data::fetch(&cache, &model, &data),
        Command::Split { task, out_dir } => data::split(&cache, &task, &out_dir),
        Command::Validate {
            design,
            model,
            classes,
            budget,
        } => {
            let shape = train::model_config(&cache, &model)?.shape();
            let budget = budget.as_deref().map(str::parse).transpose()?;
            validate::run(&design, &shape, classes, budget)
        }
        Command::Graph { design, model, dot } => train::graph(&cache, &design, &model, dot),
        Command::Train { design, run, out } => train::train(&cache, &design, &run, out),
        Command::Search {
            search,
            run,
            worker,
        } => search::search(&cache, search, &run, worker),
        Command::Worker {
            search,
            run,
            worker,
        } => search::worker(&cache, search, &run, worker),
        Command::Report(args) => search::report(&cache, &args),
        Command::Export(args) => export::export(&cache, &args),
        Command::Predict(args) => predict::predict(&cache, &args),
        Command::Analyse { what } => analyse::analyse(&cache, what, cli.threads),
        Command::Unified(args) => science::unified(&cache, &args, cli.threads),
        Command::Baselines(args) => science::baselines(&cache, &args),
        Command::Bench(args) => bench::bench(&cache, args),
    }
}

/// The command line as typed, recorded in reports.
pub fn command_line() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}
