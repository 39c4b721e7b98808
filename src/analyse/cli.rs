//! `pets analyse layers|noise|init`: load a trained run or an exported adapter and question it on
//! the task's dev split, or retrain a design over a sweep of inits; write the report.

use super::init::run_sweep;
use super::{layer_ablation, noise_sweep, AnalyseError};
use crate::assets::Cache;
use crate::batch::TokenizedSplit;
use crate::data::{self, SplitOptions, TaskSource};
use crate::export::load::{build_trained, load_adapter};
use crate::export::AdapterSource;
use crate::model::AdaptedModel;
use crate::science::cli::RunsOutcome;
use crate::tokenize::TextEncoder;
use candle_core::Device;
use clap::Args;
use std::path::PathBuf;

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

impl TaskArgs {
    /// Built-in name, or a file with the given columns (`text`/`label` when one is omitted),
    /// the rule `pets train` follows.
    pub fn source(&self) -> TaskSource {
        match self.columns() {
            None => TaskSource::Builtin(self.task.clone()),
            Some((text_column, label_column)) => TaskSource::File {
                path: PathBuf::from(&self.task),
                text_column,
                label_column,
            },
        }
    }

    /// (text, label) columns when either was given.
    pub fn columns(&self) -> Option<(String, String)> {
        match (&self.text_column, &self.label_column) {
            (None, None) => None,
            (t, l) => Some((
                t.clone().unwrap_or_else(|| "text".into()),
                l.clone().unwrap_or_else(|| "label".into()),
            )),
        }
    }
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

/// A trained model and the tokenizer it was trained with.
fn load(
    args: &LayersArgs,
    cache: &Cache,
    device: &Device,
) -> crate::Result<(AdaptedModel, TextEncoder, Vec<String>)> {
    if let Some(dir) = &args.adapter {
        let loaded = load_adapter(dir, cache, device)?;
        let labels = loaded.manifest.label_names.clone();
        return Ok((loaded.model, loaded.text, labels));
    }
    let dir = args.run.clone().unwrap_or_default();
    let source = AdapterSource::from_run(&dir)?;
    let model_dir = cache.model_dir(&source.base_model)?;
    let model = build_trained(
        &model_dir,
        &source.design,
        source.label_names.len(),
        &source.tensors,
        &source.origin,
        device,
    )?;
    let text = TextEncoder::from_file(&model_dir.join("tokenizer.json"), source.max_len)?;
    Ok((model, text, source.label_names))
}

/// The model, its tokenizer's pad id and the task's dev split, checked to share labels.
fn prepare(
    args: &LayersArgs,
    cache: &Cache,
    device: &Device,
) -> crate::Result<(AdaptedModel, TokenizedSplit, u32)> {
    let (model, text, labels) = load(args, cache, device)?;
    // The same seeded split `pets train` made, so the dev examples are the ones it reported on.
    let dataset = data::load_task(&args.task.source(), cache, &SplitOptions::default())?;
    if dataset.label_names != labels {
        let what = if args.adapter.is_some() {
            "adapter"
        } else {
            "run"
        };
        return Err(AnalyseError::LabelMismatch {
            analysed: format!("{what} {}", source_name(args)),
            task: args.task.task.clone(),
            trained: labels,
            found: dataset.label_names,
        }
        .into());
    }
    let dev = text.encode_split(&dataset.dev)?;
    Ok((model, dev, text.pad_id))
}

fn source_name(args: &LayersArgs) -> String {
    args.run
        .as_ref()
        .or(args.adapter.as_ref())
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

fn command() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}

/// Runs the layer ablation and writes `<design>-layers.{md,csv,svg}`; returns the Markdown path.
pub fn run_layers(args: &LayersArgs, cache: &Cache) -> crate::Result<PathBuf> {
    let device = Device::Cpu;
    let (mut model, dev, pad_id) = prepare(args, cache, &device)?;
    let ablation = layer_ablation(&mut model, &dev, pad_id, &device)?;
    ablation.write(&args.reports, &command(), &source_name(args))
}

/// Runs the noise sweep and writes `<design>-noise.{md,csv,svg}`; returns the Markdown path.
pub fn run_noise(args: &NoiseArgs, cache: &Cache) -> crate::Result<PathBuf> {
    let device = Device::Cpu;
    let (model, dev, pad_id) = prepare(&args.source, cache, &device)?;
    let sweep = noise_sweep(&model, &dev, pad_id, &device, &args.sigmas, args.draws)?;
    sweep.write(&args.source.reports, &command(), &source_name(&args.source))
}

/// Retrains the design over the sweep of init stds (resumable) and writes `<design>-init.*`.
pub fn run_init(
    args: &InitArgs,
    cache: &Cache,
    threads: Option<usize>,
) -> crate::Result<RunsOutcome> {
    run_sweep(args, cache, threads, &command())
}
