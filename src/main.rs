//! The `pets` command line: parses arguments once, hands plain settings to the library.

mod cli;

use anyhow::{bail, Context, Result};
use clap::Parser;
use cli::{AnalyseCommand, BenchArgs, Cli, Command, SearchArgs, WorkerArgs};
use pets::assets::Cache;
use pets::backbone::config::BertConfig;
use pets::data::TaskSource;
use pets::graph::DesignGraph;
use pets::run::{train_design, PreparedTask};
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
            let splits = [
                ("train", &dataset.train),
                ("dev", &dataset.dev),
                ("test", &dataset.test),
            ];
            for (name, examples) in splits {
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
            budget,
        } => {
            let shape = model_config(&cache, &model)?.shape();
            cli::validate::run(&design, &shape, classes, budget.as_deref())?;
        }
        Command::Graph { design, model, dot } => {
            let design = Design::from_file(&design)?;
            let shape = model_config(&cache, &model)?.shape();
            let graph = DesignGraph::build(&design, &shape)?;
            if dot {
                print!("{}", graph.to_dot(&design));
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
            match metrics.test_accuracy {
                Some(test) => eprintln!(
                    "dev accuracy {:.4}, test accuracy {test:.4} ({} test examples)",
                    metrics.accuracy, metrics.test_examples
                ),
                None => eprintln!("dev accuracy {:.4} (no test split)", metrics.accuracy),
            }
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
            let files = pets::search::study::rerender(
                &storage,
                &study,
                &reports,
                budget.as_deref(),
                model.as_deref(),
                &cache,
            )?;
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
        budget: search.budget,
        sampler: search.sampler,
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
        command: std::env::args().collect::<Vec<_>>().join(" "),
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

fn bench(args: BenchArgs, cache: &Cache) -> Result<()> {
    cli::check_lr(args.lr)?;
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
