//! What `pets analyse layers|noise|init` question: a trained run or an exported adapter, loaded
//! and evaluated on the task's dev split, or a design retrained over a sweep of inits; each
//! writes its report.

use super::init::run_sweep;
use super::{layer_ablation, noise_sweep, AnalyseError};
use crate::assets::Cache;
use crate::batch::TokenizedSplit;
use crate::data::{self, SplitOptions, TaskSource};
use crate::device::DeviceKind;
use crate::export::load::{build_trained, load_adapter};
use crate::export::AdapterSource;
use crate::model::AdaptedModel;
use crate::science::unified::RunsOutcome;
use crate::tokenize::TextEncoder;
use candle_core::Device;
use std::path::PathBuf;

/// Which trained design is analysed, on which task, and where the reports go.
#[derive(Debug, Clone)]
pub struct LayersOptions {
    /// What was trained: a run folder or an exported adapter.
    pub trained: Trained,
    /// The task it was trained on (its dev split is evaluated).
    pub task: TaskOptions,
    /// The folder the reports are written to.
    pub reports: PathBuf,
    /// The command line recorded in the reports.
    pub command: String,
}

/// A trained design on disk.
#[derive(Debug, Clone)]
pub enum Trained {
    /// A run folder written by `train_design` (`pets train --out`).
    Run(PathBuf),
    /// A folder written by [`crate::export::export`].
    Adapter(PathBuf),
}

/// A task as training takes it: a built-in name, or a data file and its columns.
#[derive(Debug, Clone)]
pub struct TaskOptions {
    /// A built-in task (mr, imdb, bbc, tweets) or a CSV/TSV/JSONL file: for `layers` and `noise`
    /// the one the design was trained on (its dev split is evaluated).
    pub task: String,
    /// Text column of a data file (default `text`).
    pub text_column: Option<String>,
    /// Label column of a data file (default `label`).
    pub label_column: Option<String>,
}

impl TaskOptions {
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

/// The noise sweep: what is analysed, and the noise.
#[derive(Debug, Clone)]
pub struct NoiseOptions {
    /// What is analysed, and where the reports go.
    pub source: LayersOptions,
    /// Standard deviations of the added noise.
    pub sigmas: Vec<f64>,
    /// Noise draws per σ.
    pub draws: usize,
}

/// A design retrained with its modules' initial std swept (Houlsby et al.'s Fig. 6).
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// The design (RON) whose modules' initialisation is swept.
    pub design: PathBuf,
    /// The task every run trains on.
    pub task: TaskOptions,
    /// A known model name or an HF-style folder.
    pub model: String,
    /// Initial standard deviations: every module weight starts N(0, std²).
    pub stds: Vec<f64>,
    /// Seeds per std (0, 1, …).
    pub seeds: u64,
    /// Training epochs of every run.
    pub epochs: usize,
    /// Runs trained at once, as `pets train` child processes.
    pub jobs: usize,
    /// The device of every run.
    pub device: DeviceKind,
    /// Cut every run to this many optimizer steps (smoke tests; kept in folders of their own,
    /// never reused by a full sweep).
    pub max_steps: Option<usize>,
    /// Folder of the run folders (`<task>/<design>-std<s>/seed<k>`); finished runs are reused.
    pub runs: PathBuf,
    /// The folder the report is written to.
    pub reports: PathBuf,
    /// Train nothing: write the report from the runs already finished.
    pub report_only: bool,
    /// The command line recorded in the report.
    pub command: String,
}

/// A trained model and the tokenizer it was trained with.
fn load(
    args: &LayersOptions,
    cache: &Cache,
    device: &Device,
) -> crate::Result<(AdaptedModel, TextEncoder, Vec<String>)> {
    let dir = match &args.trained {
        Trained::Adapter(dir) => {
            let loaded = load_adapter(dir, cache, device)?;
            let labels = loaded.manifest.label_names.clone();
            return Ok((loaded.model, loaded.text, labels));
        }
        Trained::Run(dir) => dir,
    };
    let source = AdapterSource::from_run(dir)?;
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
    args: &LayersOptions,
    cache: &Cache,
    device: &Device,
) -> crate::Result<(AdaptedModel, TokenizedSplit, u32)> {
    let (model, text, labels) = load(args, cache, device)?;
    // The same seeded split `pets train` made, so the dev examples are the ones it reported on.
    let dataset = data::load_task(&args.task.source(), cache, &SplitOptions::default())?;
    if dataset.label_names != labels {
        let what = match args.trained {
            Trained::Adapter(_) => "adapter",
            Trained::Run(_) => "run",
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

fn source_name(args: &LayersOptions) -> String {
    match &args.trained {
        Trained::Run(dir) | Trained::Adapter(dir) => dir.display().to_string(),
    }
}

/// Runs the layer ablation and writes `<design>-layers.{md,csv,svg}`; returns the Markdown path.
pub fn run_layers(args: &LayersOptions, cache: &Cache) -> crate::Result<PathBuf> {
    let device = Device::Cpu;
    let (mut model, dev, pad_id) = prepare(args, cache, &device)?;
    let ablation = layer_ablation(&mut model, &dev, pad_id, &device)?;
    ablation.write(&args.reports, &args.command, &source_name(args))
}

/// Runs the noise sweep and writes `<design>-noise.{md,csv,svg}`; returns the Markdown path.
pub fn run_noise(args: &NoiseOptions, cache: &Cache) -> crate::Result<PathBuf> {
    let device = Device::Cpu;
    let (model, dev, pad_id) = prepare(&args.source, cache, &device)?;
    let sweep = noise_sweep(&model, &dev, pad_id, &device, &args.sigmas, args.draws)?;
    let source = &args.source;
    sweep.write(&source.reports, &source.command, &source_name(source))
}

/// Retrains the design over the sweep of init stds (resumable) and writes `<design>-init.*`;
/// `threads` per child run (default: the cores split between the jobs).
pub fn run_init(
    args: &InitOptions,
    cache: &Cache,
    threads: Option<usize>,
) -> crate::Result<RunsOutcome> {
    run_sweep(args, cache, threads)
}
