//! `pets bench`: pets against a PyTorch reference of the same designs, and the verdicts.

use super::run_args::{check_lr, device};
use anyhow::{bail, Context, Result};
use clap::Args;
use pets::assets::Cache;
use pets::spec::Design;
use pets::train::TrainConfig;
use std::path::PathBuf;

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
    /// Where the report goes (default reports/bench.md; with --pack, reports/bench-pack-cpu.md
    /// or, on a GPU, reports/bench-pack-step.md).
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Time the designs trained one at a time against all of them as one pack (pets only, no
    /// reference; `--check-steps` steps each).
    #[arg(long)]
    pub pack: bool,
}

/// `pets bench`: times every design on both sides, writes the report, prints one verdict each.
pub fn bench(cache: &Cache, args: BenchArgs) -> Result<()> {
    check_lr(args.lr)?;
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
    // "pets", not the binary's path, so the report shows a command anyone can type.
    let words: Vec<String> = std::env::args().skip(1).collect();
    let command = format!("pets {}", words.join(" "));
    if args.pack {
        let default = match settings.device.is_cpu() {
            true => "reports/bench-pack-cpu.md",
            false => "reports/bench-pack-step.md",
        };
        let report = args.report.unwrap_or_else(|| PathBuf::from(default));
        let timing = pets::bench::run_pack_bench(&designs, &settings, cache)?;
        let text = pets::bench::pack_report(&timing, &settings, &command);
        std::fs::write(&report, &text).with_context(|| format!("writing {}", report.display()))?;
        println!("packed: {:.2}x one at a time per design", timing.speedup());
        eprintln!("wrote {}", report.display());
        return Ok(());
    }
    let report = args
        .report
        .unwrap_or_else(|| PathBuf::from("reports/bench.md"));
    let (mut context, rows) = pets::bench::run_bench(&designs, &settings, cache)?;
    context.command = command;
    pets::bench::write_report(&report, &context, &settings, &rows)?;
    for row in &rows {
        println!("{}", pets::bench::verdict(row));
    }
    eprintln!("wrote {}", report.display());
    Ok(())
}
