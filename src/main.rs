//! The `pets` command line: parses arguments once, hands plain settings to the library.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use pets::assets::Cache;
use pets::backbone::config::BertConfig;
use pets::data::TaskSource;
use pets::graph::DesignGraph;
use pets::params::design_cost;
use pets::run::{train_design, PreparedTask, RunSettings};
use pets::search::study::SearchSettings;
use pets::search::worker::{run_worker, Role, WorkerSettings};
use pets::spec::Design;
use pets::train::TrainConfig;
use std::path::PathBuf;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Keeps freed memory in the process. By default mimalloc hands freed pages back to the OS
/// after a short delay, and the next op's fresh buffer faults them back in zeroed (often as
/// 2 MiB THP pages): 25-35% of an eval pass and ~7% of a training step was `clear_page_erms`.
/// `MIMALLOC_PURGE_DELAY` in the environment still wins.
fn keep_freed_memory() {
    // mimalloc's C API (linked in through the `mimalloc` crate); 15 is `mi_option_purge_delay`
    // in mimalloc 2 and 3, and -1 means "never purge".
    extern "C" {
        fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
    }
    const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets a plain integer option; mimalloc reads options atomically.
        unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
    }
}

#[derive(Parser)]
#[command(
    name = "pets",
    version,
    about = "Search the design space of parameter-efficient fine-tuning"
)]
struct Cli {
    /// Threads for the CPU kernels (default: all cores).
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
    /// Validate a design and print its modules and exact trainable parameters.
    Validate {
        design: PathBuf,
        #[arg(long, default_value = "minilm-l6")]
        model: String,
        /// Classes of the head (for the head's parameter count).
        #[arg(long, default_value_t = 2)]
        classes: usize,
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
        /// Budget the front is compared at (as in `search --budget`).
        #[arg(long, default_value = "0.5%")]
        budget: String,
        #[arg(long, default_value = "minilm-l6")]
        model: String,
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
struct BenchArgs {
    /// Presets (file stems in --presets) or paths to design RON files, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "lora,scaled_parallel_adapter,mam"
    )]
    designs: Vec<String>,
    #[arg(long, default_value = "search_spaces/presets")]
    presets: PathBuf,
    #[arg(long, default_value = "minilm-l6")]
    model: String,
    /// Built-in task whose training sentences make the batches.
    #[arg(long, default_value = "mr")]
    task: String,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    #[arg(long, default_value_t = 64)]
    max_len: usize,
    /// Distinct batches, each run once per round.
    #[arg(long, default_value_t = 4)]
    batches: usize,
    /// Timed rounds (after one warm-up round), alternating pets and the reference.
    #[arg(long, default_value_t = 7)]
    rounds: usize,
    /// Optimizer steps whose losses must agree between the two.
    #[arg(long, default_value_t = 5)]
    check_steps: usize,
    /// Constant learning rate (default: each design's own).
    #[arg(long)]
    lr: Option<f64>,
    #[arg(long, default_value_t = 0.01)]
    weight_decay: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// cpu or cuda
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Python with torch, safetensors (scripts/bench-setup.sh makes .venv-bench).
    #[arg(long, default_value = ".venv-bench/bin/python")]
    python: PathBuf,
    /// The PyTorch reference script.
    #[arg(long, default_value = "bench/reference.py")]
    reference: PathBuf,
    /// Scratch folder for the plan and tensors each design hands the reference.
    #[arg(long, default_value = "runs/bench")]
    work: PathBuf,
    #[arg(long, default_value = "reports/bench.md")]
    report: PathBuf,
}

#[derive(Subcommand)]
enum AnalyseCommand {
    /// Dev accuracy with the modules of every contiguous span of layers switched off.
    Layers(pets::analyse::cli::LayersArgs),
    /// Dev accuracy after Gaussian noise of growing σ on the trained module tensors.
    Noise(pets::analyse::cli::NoiseArgs),
    /// Retrain a design with its module weights initialised N(0, std²) over a range of stds
    /// (resumable child runs) and plot dev accuracy against the std.
    Init(pets::analyse::cli::InitArgs),
}

#[derive(Args, Clone)]
struct SearchArgs {
    /// Search-space RON file.
    #[arg(long, default_value = "search_spaces/mam.ron")]
    space: PathBuf,
    /// Trainable-parameter budget: a share of the backbone (0.5%) or a count (120k, 1.2M).
    #[arg(long, default_value = "0.5%")]
    budget: String,
    /// Study name; rerunning the same command resumes it.
    #[arg(long)]
    study: Option<String>,
    /// The study store: a SQLite file, or postgres://USER@HOST/DATABASE shared by workers.
    /// `search` is one worker plus the reports (on SQLite also holding the study's lease).
    #[arg(long, default_value = "studies/pets.sqlite")]
    storage: String,
    #[arg(long, default_value = "reports")]
    reports: PathBuf,
    /// nsga2 or random
    #[arg(long, default_value = "nsga2")]
    sampler: String,
    /// Candidates trained at the cheapest fidelity.
    #[arg(long, default_value_t = 12)]
    initial: usize,
    /// Designs proposed between looks at the results.
    #[arg(long, default_value_t = 6)]
    population: usize,
    /// Successive-halving factor: each rung keeps 1/eta of the candidates at eta× the steps.
    #[arg(long, default_value_t = 3)]
    eta: usize,
    /// Fidelity levels (the last is full training).
    #[arg(long, default_value_t = 2)]
    rungs: usize,
    /// Presets evaluated in the same study, fitted to the budget.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "lora,prefix,pfeiffer,scaled_parallel_adapter,mam"
    )]
    baselines: Vec<String>,
    #[arg(long, default_value = "search_spaces/presets")]
    presets: PathBuf,
    /// Trials trained at once (threads are split between them).
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Sampler seed.
    #[arg(long, default_value_t = 0)]
    search_seed: u64,
}

/// A worker's own settings (every worker of a study shares the `SearchArgs`).
#[derive(Args, Clone)]
struct WorkerArgs {
    /// Seconds without a heartbeat after which a worker's running trial is claimed again (and a
    /// `search`'s lease on a SQLite study is taken over).
    #[arg(long, default_value_t = 120.0)]
    stale_after: f64,
    /// Folder of trial run folders (default: beside a SQLite store; studies/ for a database).
    #[arg(long)]
    trials_dir: Option<PathBuf>,
}

#[derive(Args, Clone)]
struct RunArgs {
    /// Built-in task (mr, imdb, bbc, tweets) or a CSV/TSV/JSONL file.
    #[arg(long, default_value = "mr")]
    task: String,
    #[arg(long)]
    text_column: Option<String>,
    #[arg(long)]
    label_column: Option<String>,
    #[arg(long, default_value = "minilm-l6")]
    model: String,
    /// Training epochs (a search's full fidelity); default 3, and 1 for `search`.
    #[arg(long)]
    epochs: Option<usize>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Overrides the design's own learning rate.
    #[arg(long)]
    lr: Option<f64>,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    #[arg(long, default_value_t = 64)]
    max_len: usize,
    #[arg(long, default_value_t = 0.01)]
    weight_decay: f64,
    /// Backbone dropout during training (0 = off, the default).
    #[arg(long, default_value_t = 0.0)]
    dropout: f32,
    /// Stop after this many optimizer steps.
    #[arg(long)]
    max_steps: Option<usize>,
    /// Run the frozen layers below a design's lowest module every step instead of once per
    /// dataset (the results are the same; for timing comparisons).
    #[arg(long)]
    no_frozen_cache: bool,
    /// cpu or cuda
    #[arg(long, default_value = "cpu")]
    device: String,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

impl RunArgs {
    fn settings(&self, default_epochs: usize) -> Result<RunSettings> {
        let task = match (&self.text_column, &self.label_column) {
            (None, None) => TaskSource::Builtin(self.task.clone()),
            (text, label) => TaskSource::File {
                path: PathBuf::from(&self.task),
                text_column: text.clone().unwrap_or_else(|| "text".into()),
                label_column: label.clone().unwrap_or_else(|| "label".into()),
            },
        };
        let device = device(&self.device)?;
        let train = TrainConfig {
            epochs: self.epochs.unwrap_or(default_epochs),
            batch_size: self.batch_size,
            weight_decay: self.weight_decay,
            seed: self.seed,
            max_steps: self.max_steps,
            cache_frozen: !self.no_frozen_cache,
            progress: !self.quiet,
            ..TrainConfig::default()
        };
        Ok(RunSettings {
            model: self.model.clone(),
            task,
            max_len: self.max_len,
            dropout: self.dropout,
            train,
            lr_override: self.lr,
            device,
        })
    }
}

/// candle's own element-wise kernels run on a second thread pool that spins against gemm's
/// rayon threads (ours); on 2 cores that cost 6-10% of a step when idle and ~2x under load.
/// Our fused ops and gemm parallelise through rayon, so candle's pool gets one thread unless
/// `CANDLE_NUM_THREADS` is set.
fn single_threaded_candle_pool() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
}

/// Says what a batch of child runs did; an error when any failed (rerunning retries them).
fn runs_finished(outcome: &pets::science::cli::RunsOutcome) -> Result<()> {
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

fn main() {
    keep_freed_memory();
    single_threaded_candle_pool();
    let cli = Cli::parse();
    if let Err(err) = run(cli) {
        eprintln!("error: {err}");
        for cause in err.chain().skip(1) {
            eprintln!("  caused by: {cause}");
        }
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    if let Some(threads) = cli.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()
            .context("configuring threads")?;
    }
    let cache = Cache::from_env();
    match cli.command {
        Command::Fetch { model, data } => {
            let dir = cache.model_dir(&model)?;
            eprintln!("model {model}: {}", dir.display());
            let file = cache.dataset_file(&data)?;
            eprintln!("data {data}: {}", file.display());
        }
        Command::Split { task, out_dir } => {
            let source = TaskSource::Builtin(task);
            let dataset = pets::data::load_task(&source, &cache, &Default::default())?;
            std::fs::create_dir_all(&out_dir)
                .with_context(|| format!("creating {}", out_dir.display()))?;
            for (name, examples) in [("train", &dataset.train), ("dev", &dataset.dev)] {
                let path = out_dir.join(format!("{name}.tsv"));
                let mut text = String::from("text\tlabel\n");
                for e in examples.iter() {
                    // TSV has no quoting: tabs and line breaks inside a text become spaces.
                    let clean = e.text.replace(['\t', '\n', '\r'], " ");
                    text.push_str(&format!(
                        "{clean}\t{}\n",
                        dataset.label_names[e.label as usize]
                    ));
                }
                std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", path.display()))?;
                eprintln!("{}: {} examples", path.display(), examples.len());
            }
        }
        Command::Validate {
            design,
            model,
            classes,
        } => {
            let design = Design::from_file(&design)?;
            let shape = model_config(&cache, &model)?.shape();
            let cost = design_cost(&design, &shape, classes)?;
            println!("{}", pets::report::cost_table(&design, &cost));
        }
        Command::Graph { design, model, dot } => {
            let design = Design::from_file(&design)?;
            let shape = model_config(&cache, &model)?.shape();
            let graph = DesignGraph::build(&design, &shape)?;
            if dot {
                print!("{}", graph.to_dot());
            } else {
                println!(
                    "design {}: {} nodes, {} edges, {} module instances over {} layers",
                    design.name,
                    graph.graph.node_count(),
                    graph.graph.edge_count(),
                    graph.module_instances(),
                    shape.layers
                );
            }
        }
        Command::Train { design, run, out } => {
            let design = Design::from_file(&design)?;
            let settings = run.settings(3)?;
            let task = PreparedTask::prepare(&settings, &cache)?;
            let (metrics, _) = train_design(&design, &task, &settings, out.as_deref())?;
            println!("{}", serde_json::to_string_pretty(&metrics)?);
        }
        Command::Search {
            search,
            run,
            worker,
        } => {
            let ws = worker_settings(search, worker, Role::Search)?;
            let mut run = run.settings(1)?;
            run.train.progress = false;
            let started = std::time::Instant::now();
            let outcome = run_worker(&ws, &run, &cache)?;
            let (front, trials, files, study) = (
                outcome.front,
                outcome.trials,
                outcome.report_files,
                ws.search.study,
            );
            println!("{front}");
            eprintln!(
                "study {study}: {} trials in {:.0} s; reports: {}",
                trials.len(),
                started.elapsed().as_secs_f64(),
                files
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        Command::Worker {
            search,
            run,
            worker,
        } => {
            let ws = worker_settings(search, worker, Role::Worker)?;
            let mut run = run.settings(1)?;
            run.train.progress = false;
            let outcome = run_worker(&ws, &run, &cache)?;
            eprintln!(
                "worker pid {}: trained {} trials; study {} has {} trials, its budget spent",
                std::process::id(),
                outcome.trained,
                ws.search.study,
                outcome.trials.len()
            );
        }
        Command::Report {
            study,
            storage,
            reports,
            budget,
            model,
        } => {
            let shape = model_config(&cache, &model)?.shape();
            let files = pets::search::study::rerender(&storage, &study, &reports, &budget, &shape)?;
            for f in files {
                println!("{}", f.display());
            }
        }
        Command::Export(args) => {
            let manifest = pets::export::run_export(&args, &cache)?;
            eprintln!(
                "exported {} ({} trainable parameters)",
                manifest.design, manifest.params.design
            );
        }
        Command::Predict(args) => pets::predict::run_predict(&args, &cache)?,
        Command::Analyse {
            what: AnalyseCommand::Layers(args),
        } => {
            let report = pets::analyse::cli::run_layers(&args, &cache)?;
            eprintln!("wrote {}", report.display());
        }
        Command::Analyse {
            what: AnalyseCommand::Noise(args),
        } => {
            let report = pets::analyse::cli::run_noise(&args, &cache)?;
            eprintln!("wrote {}", report.display());
        }
        Command::Analyse {
            what: AnalyseCommand::Init(args),
        } => {
            runs_finished(&pets::analyse::cli::run_init(&args, &cache, cli.threads)?)?;
        }
        Command::Unified(args) => {
            runs_finished(&pets::science::cli::run_unified(
                &args,
                &cache,
                cli.threads,
            )?)?;
        }
        Command::Baselines {
            presets,
            only,
            run,
            report,
            runs,
        } => {
            let settings = run.settings(3)?;
            let task = PreparedTask::prepare(&settings, &cache)?;
            let designs = pets::report::load_presets(&presets, &only)?;
            let mut rows = Vec::new();
            for design in &designs {
                let dir = runs.join(&design.name);
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
                let command = std::env::args().collect::<Vec<_>>().join(" ");
                pets::report::write_baselines(&report, &command, &rows)?;
            }
            eprintln!("wrote {}", report.display());
        }
        Command::Bench(args) => bench(args, &cache)?,
    }
    Ok(())
}

fn search_settings(search: SearchArgs) -> SearchSettings {
    let space_stem = search
        .space
        .file_stem()
        .map(|s| s.to_string_lossy().to_string());
    SearchSettings {
        study: search
            .study
            .clone()
            .or(space_stem)
            .unwrap_or_else(|| "study".into()),
        space: search.space,
        budget: search.budget,
        sampler: search.sampler,
        seed: search.search_seed,
        initial: search.initial,
        population: search.population,
        eta: search.eta,
        rungs: search.rungs,
        baselines: search.baselines,
        presets_dir: search.presets,
        reports: search.reports,
        jobs: search.jobs,
        command: std::env::args().collect::<Vec<_>>().join(" "),
    }
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
        search: search_settings(search),
        storage,
        trials_dir,
        stale_after: std::time::Duration::from_secs_f64(worker.stale_after),
        role,
    })
}

fn bench(args: BenchArgs, cache: &Cache) -> Result<()> {
    let mut designs = Vec::new();
    for name in &args.designs {
        let preset = args.presets.join(format!("{name}.ron"));
        let path = if preset.is_file() {
            preset
        } else {
            PathBuf::from(name)
        };
        if !path.is_file() {
            bail!(
                "--designs {name}: neither a preset in {} nor a design file",
                args.presets.display()
            );
        }
        designs.push(Design::from_file(&path)?);
    }
    let settings = pets::bench::BenchSettings {
        model: args.model,
        task: args.task,
        batch_size: args.batch_size,
        max_len: args.max_len,
        batches: args.batches,
        rounds: args.rounds,
        check_steps: args.check_steps,
        lr: args.lr,
        weight_decay: args.weight_decay,
        // As `pets train` clips (TrainConfig's default).
        max_grad_norm: TrainConfig::default().max_grad_norm,
        seed: args.seed,
        device: device(&args.device)?,
        threads: rayon::current_num_threads(),
        python: args.python,
        script: args.reference,
        work: args.work,
    };
    let (mut context, rows) = pets::bench::run_bench(&designs, &settings, cache)?;
    // "pets", not the binary's path, so the report shows a command anyone can type.
    let words: Vec<String> = std::env::args().skip(1).collect();
    context.command = format!("pets {}", words.join(" "));
    pets::bench::write_report(&args.report, &context, &settings, &rows)?;
    for row in &rows {
        println!("{}", pets::bench::verdict(row));
    }
    eprintln!("wrote {}", args.report.display());
    Ok(())
}

fn device(name: &str) -> Result<candle_core::Device> {
    match pets::run::open_device(name).context("opening the CUDA device")? {
        Some(device) => Ok(device),
        None => bail!("--device {name}: expected cpu or cuda"),
    }
}

fn model_config(cache: &Cache, model: &str) -> Result<BertConfig> {
    let dir = cache.model_dir(model)?;
    Ok(BertConfig::from_file(&dir.join("config.json"))?)
}
