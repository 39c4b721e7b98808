//! `pets bench`: times pets against a PyTorch reference of the same design (`bench/reference.py`)
//! on the same safetensors weights, batches, batch size and thread count, in one run, and checks
//! that both compute the same thing before trusting the times.
//!
//! For each design pets builds its model, then writes what the reference needs to rebuild exactly
//! that model: a JSON [`Plan`] (the design, normalised to the sites pets' encoder uses, and the
//! training settings) and a safetensors file with pets' initial trainable tensors under pets'
//! names plus the benchmark batches. The reference runs as a child process answering one JSON
//! line per request (`reference` owns that protocol), so the two sides can alternate round by
//! round without reloading. `report` writes the Markdown.

mod pack;
mod plan;
mod reference;
mod report;

pub use pack::{pack_report, run_pack_bench, PackTiming};
pub use plan::{make_plan, write_plan, Plan, PlanModule};
pub use report::{median, verdict, write_report};

use crate::assets::Cache;
use crate::backbone::encoder::{no_grad, Encoder};
use crate::batch::{make_batch, Batch, FrozenInput, TokenizedSplit};
use crate::data::{self, SplitOptions, TaskSource};
use crate::model::AdaptedModel;
use crate::spec::Design;
use crate::tokenize::TextEncoder;
use crate::train::{AdamW, Classifier};
use candle_core::{DType, Device};
use candle_nn::loss::cross_entropy;
use candle_nn::optim::ParamsAdamW;
use reference::Reference;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;
use thiserror::Error;

/// The candle release pets is built against (a test keeps it equal to Cargo.toml's pin).
pub const CANDLE_VERSION: &str = "0.11.1";

#[derive(Debug, Error)]
pub enum BenchError {
    #[error("cannot start the reference `{python} {script}`: {source}. Run scripts/bench-setup.sh, or give an interpreter that has torch")]
    Spawn {
        python: String,
        script: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the PyTorch reference failed: {0}")]
    Reference(String),
    #[error("the reference's answer is not the JSON expected: {0}")]
    Protocol(String),
    #[error("bad benchmark settings: {0}")]
    Settings(String),
}

/// Everything one `pets bench` run needs besides the designs.
#[derive(Debug, Clone)]
pub struct BenchSettings {
    /// A known model name (`minilm-l6`) or a path to an HF-style folder.
    pub model: String,
    /// Built-in task whose first training sentences make the batches.
    pub task: String,
    pub batch_size: usize,
    pub max_len: usize,
    /// Distinct batches; every round runs each once.
    pub batches: usize,
    /// Timed rounds after one untimed warm-up round.
    pub rounds: usize,
    /// Optimizer steps of the correctness check (losses compared at each).
    pub check_steps: usize,
    /// Constant learning rate (the design's own when `None`, else 5e-4).
    pub lr: Option<f64>,
    pub weight_decay: f64,
    pub max_grad_norm: f64,
    pub seed: u64,
    pub device: Device,
    pub threads: usize,
    pub python: PathBuf,
    pub script: PathBuf,
    /// Scratch folder for each design's plan and tensors.
    pub work: PathBuf,
}

/// Times per round (milliseconds per step) and the loss check of one design.
#[derive(Debug, Clone, Serialize)]
pub struct BenchRow {
    pub design: String,
    pub trainable: usize,
    pub percent: f64,
    /// The constant learning rate of the check and the timed steps.
    pub lr: f64,
    pub forward_rounds: Side<Vec<f64>>,
    pub train_rounds: Side<Vec<f64>>,
    /// Losses at each check step, pets and reference.
    pub losses: Side<Vec<f64>>,
    /// Largest absolute difference of the initial logits on the first batch.
    pub logits_max_diff: f64,
    pub seq_lens: Vec<usize>,
    /// Bottom layers pets ran once per batch before timing (their output cached): nothing in
    /// them trains. 0 for designs with a module in layer 0.
    pub frozen_layers: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Side<T = f64> {
    pub pets: T,
    pub reference: T,
}

impl Side {
    /// reference / pets: how many times faster pets is.
    pub fn speedup(&self) -> f64 {
        self.reference / self.pets
    }
}

impl Side<Vec<f64>> {
    pub fn medians(&self) -> Side {
        Side {
            pets: median(&self.pets),
            reference: median(&self.reference),
        }
    }

    /// `|pets − reference| / |reference|` at each step.
    pub fn relative_diffs(&self) -> Vec<f64> {
        self.pets
            .iter()
            .zip(&self.reference)
            .map(|(p, r)| (p - r).abs() / r.abs().max(f64::MIN_POSITIVE))
            .collect()
    }
}

/// What the run was: devices, versions, load; filled in as the run goes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BenchContext {
    pub command: String,
    pub device: String,
    pub threads: usize,
    pub torch: String,
    pub python: String,
    pub reference_device: String,
    /// `/proc/loadavg`'s 1-minute load at the start and at the end: other work on the cores.
    pub load_start: Option<f64>,
    pub load_end: Option<f64>,
}

/// Benchmarks every design against the reference; one row per design.
pub fn run_bench(
    designs: &[Design],
    settings: &BenchSettings,
    cache: &Cache,
) -> crate::Result<(BenchContext, Vec<BenchRow>)> {
    let s = settings;
    if [s.batches, s.rounds, s.batch_size, s.check_steps].contains(&0) {
        let problem = "batches, rounds, batch size and check steps must be at least 1";
        return Err(BenchError::Settings(problem.into()).into());
    }
    let model_dir = cache.model_dir(&s.model)?;
    let (split, pad_id) = bench_split(s, cache, &model_dir)?;
    let mut context = BenchContext {
        device: crate::run::device_name(&s.device),
        threads: s.threads,
        ..Default::default()
    };
    context.load_start = report::load_average();
    let mut rows = Vec::new();
    for design in designs {
        let batches = (0..s.batches)
            .map(|i| {
                let indices: Vec<usize> = (i * s.batch_size..(i + 1) * s.batch_size).collect();
                make_batch(&split, &indices, pad_id, &s.device)
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let encoder = Encoder::from_folder(&model_dir, &s.device)?;
        let (pets, reference, ready) = start(design, encoder, batches, &model_dir, s)?;
        context.torch = ready.torch;
        context.python = ready.python;
        context.reference_device = ready.device;
        rows.push(bench_design(pets, reference, s)?);
    }
    context.load_end = report::load_average();
    Ok((context, rows))
}

/// Builds pets' model of `design`, hands it to a freshly started reference and waits for it.
fn start(
    design: &Design,
    encoder: Encoder,
    batches: Vec<Batch>,
    model_dir: &Path,
    s: &BenchSettings,
) -> crate::Result<(PetsSide, Reference, reference::Ready)> {
    let model = AdaptedModel::build(encoder, design, 2, s.seed)?;
    let lr = s.lr.or(design.learning_rate).unwrap_or(5e-4);
    let plan = make_plan(design, &model, model_dir, s, lr)?;
    let dir = s.work.join(&design.name);
    write_plan(&dir, &plan, &model.store, &batches)?;
    crate::progress::note(&format!("{}: starting the reference", design.name));
    let (reference, ready) =
        Reference::spawn(&s.python, &s.script, &dir.join("plan.json"), s.threads)?;
    if ready.trainable != model.store.count() {
        return Err(BenchError::Reference(format!(
            "it trains {} parameters, pets {}",
            ready.trainable,
            model.store.count()
        ))
        .into());
    }
    Ok((PetsSide::new(model, batches, s, lr)?, reference, ready))
}

/// The loss check, then the warm-up and timed rounds of one design.
fn bench_design(
    mut pets: PetsSide,
    mut reference: Reference,
    s: &BenchSettings,
) -> crate::Result<BenchRow> {
    let name = pets.model.design.name.clone();
    crate::progress::note(&format!(
        "{name}: checking losses over {} steps",
        s.check_steps
    ));
    let (losses, logits_max_diff) = check(&mut pets, &mut reference, s.check_steps)?;
    let (mut forward, mut train) = (Side::<Vec<f64>>::default(), Side::<Vec<f64>>::default());
    for round in 0..=s.rounds {
        crate::progress::note(&format!("{name}: round {round}/{} (0 = warm-up)", s.rounds));
        // The order swaps every round, so neither side always runs right after the other.
        let pets_first = round % 2 == 0;
        let mut measured = Side::<[f64; 2]>::default();
        for pets_turn in [pets_first, !pets_first] {
            if pets_turn {
                measured.pets = [pets.time(false)?, pets.time(true)?];
            } else {
                let n = s.batches;
                measured.reference = [reference.time(false, n)?, reference.time(true, n)?];
            }
        }
        if round > 0 {
            forward.pets.push(measured.pets[0]);
            forward.reference.push(measured.reference[0]);
            train.pets.push(measured.pets[1]);
            train.reference.push(measured.reference[1]);
        }
    }
    let seq_lens = pets.batches.iter().map(|b| b.input_ids.dim(1));
    Ok(BenchRow {
        design: name,
        trainable: pets.model.cost.trainable,
        percent: pets.model.cost.percent(),
        lr: pets.lr,
        forward_rounds: forward,
        train_rounds: train,
        losses,
        logits_max_diff,
        seq_lens: seq_lens.collect::<candle_core::Result<_>>()?,
        frozen_layers: pets.model.frozen_layers(),
    })
}

/// Both sides from the same initial tensors: the largest difference of batch 0's logits, and
/// the losses of `steps` optimizer steps over the batches in order.
fn check(
    pets: &mut PetsSide,
    reference: &mut Reference,
    steps: usize,
) -> crate::Result<(Side<Vec<f64>>, f64)> {
    let logits = pets.logits(0)?;
    let losses = (0..steps)
        .map(|i| pets.train_step(i % pets.batches.len()))
        .collect::<crate::Result<Vec<_>>>()?;
    let theirs = reference.check(steps)?;
    if theirs.logits.len() != logits.len() {
        return Err(BenchError::Protocol(format!(
            "{} logits from the reference, {} from pets",
            theirs.logits.len(),
            logits.len()
        ))
        .into());
    }
    let diff = logits
        .iter()
        .zip(&theirs.logits)
        .map(|(p, r)| (f64::from(*p) - r).abs())
        .fold(0.0, f64::max);
    let losses = Side {
        pets: losses,
        reference: theirs.losses,
    };
    Ok((losses, diff))
}

/// The first `batches × batch_size` sentences of the task's (already shuffled) training split.
fn bench_split(
    s: &BenchSettings,
    cache: &Cache,
    model_dir: &Path,
) -> crate::Result<(TokenizedSplit, u32)> {
    let dataset = data::load_task(
        &TaskSource::Builtin(s.task.clone()),
        cache,
        &SplitOptions::default(),
    )?;
    let needed = s.batches * s.batch_size;
    if dataset.train.len() < needed {
        return Err(BenchError::Settings(format!(
            "{} batches of {} need {needed} sentences; {} has {}",
            s.batches,
            s.batch_size,
            s.task,
            dataset.train.len()
        ))
        .into());
    }
    let text = TextEncoder::from_file(&model_dir.join("tokenizer.json"), s.max_len)?;
    Ok((text.encode_split(&dataset.train[..needed])?, text.pad_id))
}

/// pets' half: the model, its optimizer and the batches, stepped exactly as `train::train` does.
struct PetsSide {
    model: AdaptedModel,
    optimizer: AdamW,
    batches: Vec<Batch>,
    device: Device,
    max_grad_norm: f64,
    lr: f64,
}

impl PetsSide {
    fn new(
        model: AdaptedModel,
        mut batches: Vec<Batch>,
        s: &BenchSettings,
        lr: f64,
    ) -> crate::Result<Self> {
        // As `pets train` does once per dataset (untimed here, like tokenising): what enters
        // the first layer the design changes, when the layers below are frozen.
        let frozen = model.frozen_layers();
        if frozen > 0 {
            for batch in &mut batches {
                let hidden = model.hidden_before(batch, frozen)?;
                batch.frozen = Some(FrozenInput {
                    layer: frozen,
                    hidden,
                });
            }
        }
        let vars = model.trainable_vars();
        let params = ParamsAdamW {
            lr,
            weight_decay: s.weight_decay,
            ..Default::default()
        };
        Ok(PetsSide {
            optimizer: AdamW::new(vars, params)?,
            model,
            batches,
            device: s.device.clone(),
            max_grad_norm: s.max_grad_norm,
            lr,
        })
    }

    /// Logits of batch `i` without a graph, flattened.
    fn logits(&self, i: usize) -> crate::Result<Vec<f32>> {
        let logits = no_grad(|| self.model.logits(&self.batches[i], false))?;
        Ok(logits.flatten_all()?.to_vec1()?)
    }

    /// Forward, loss, backward, clipping, AdamW: one step of `train::train`; returns the loss.
    fn train_step(&mut self, i: usize) -> crate::Result<f64> {
        let batch = &self.batches[i];
        let logits = self.model.logits(batch, true)?.to_dtype(DType::F32)?;
        let loss = cross_entropy(&logits, &batch.labels)?;
        let value = f64::from(loss.to_scalar::<f32>()?);
        let mut grads = loss.backward()?;
        self.optimizer.step(&mut grads, self.max_grad_norm)?;
        Ok(value)
    }

    /// Mean milliseconds per step over every batch once: forward only, or training steps.
    fn time(&mut self, train: bool) -> crate::Result<f64> {
        let started = Instant::now();
        for i in 0..self.batches.len() {
            if train {
                self.train_step(i)?;
            } else {
                // Like the reference's `.cpu()`: the logits reach the host, the device is done.
                no_grad(|| self.model.logits(&self.batches[i], false))?.to_device(&Device::Cpu)?;
            }
        }
        self.device.synchronize()?;
        Ok(started.elapsed().as_secs_f64() * 1e3 / self.batches.len() as f64)
    }
}

#[cfg(test)]
mod tests;
