//! `pets analyse layers|noise`: load a trained run or an exported adapter, question it on the
//! task's dev split, write the report.

use super::{layer_ablation, noise_sweep};
use crate::assets::Cache;
use crate::batch::TokenizedSplit;
use crate::data::{self, SplitOptions, TaskSource};
use crate::export::load::{build_trained, load_adapter};
use crate::export::AdapterSource;
use crate::model::AdaptedModel;
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
    /// The task whose dev split is evaluated (the one the design was trained on).
    #[arg(long, default_value = "mr")]
    pub task: String,
    #[arg(long, default_value = "reports/analyse")]
    pub reports: PathBuf,
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
    let dataset = data::load_task(
        &TaskSource::Builtin(args.task.clone()),
        cache,
        &SplitOptions::default(),
    )?;
    if dataset.label_names != labels {
        return Err(crate::Error::Internal(format!(
            "task {} has labels {:?} but the model was trained on {:?}: pass the task it was trained on",
            args.task, dataset.label_names, labels
        )));
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
