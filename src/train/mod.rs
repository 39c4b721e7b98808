//! Training loop over the trainable vars only: AdamW, warm-up + linear decay, global-norm clipping,
//! per-epoch dev evaluation that keeps (and finally restores) the best-dev weights.
//!
//! This module owns the loop ([`train`]) and its configuration and results; `schedule` holds the
//! step arithmetic, `clip` the gradient clipping, `eval` the evaluation, `snapshot` the best-epoch
//! weights and `progress` the run's progress events.

mod adamw;
mod clip;
mod eval;
pub mod frozen;
mod progress;
mod schedule;
mod snapshot;
#[cfg(test)]
mod tests;

pub use adamw::AdamW;
pub use clip::clip_grad_norm;
pub use eval::{evaluate, evaluate_test, evaluate_with, Evaluation};
pub use schedule::{epoch_seed, learning_rate, total_steps, warmup_steps};
pub(crate) use snapshot::BestSnapshot;

use crate::batch::{make_batch, plan_batches, Batch, BatchPlan, TokenizedSplit};
use candle_core::{backprop::GradStore, DType, Device, Tensor, Var};
use candle_nn::loss::cross_entropy;
use candle_nn::optim::ParamsAdamW;
use progress::Progress;
use std::time::Instant;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum TrainError {
    #[error("the {which} split is empty")]
    EmptySplit { which: &'static str },
    /// The loss of optimizer step `step` (0-based) was NaN or infinite; training stopped there.
    #[error("non-finite training loss {loss} at step {step}")]
    NonFiniteLoss { step: usize, loss: f64 },
    /// The dev loss after epoch `epoch` (1-based) was NaN or infinite: the weights broke on a
    /// step whose own loss was still finite (the last one), so no accuracy of theirs is kept.
    #[error("non-finite dev loss {loss} after epoch {epoch}")]
    NonFiniteDevLoss { epoch: usize, loss: f64 },
    /// Checked on the first step: a var the graph never reaches would silently stay untrained
    /// (e.g. behind a fused candle op without a backward, see CANDLE_NOTES).
    #[error("trainable var #{index} (shape {shape:?}) received no gradient: the graph is cut upstream of it")]
    MissingGradient { index: usize, shape: Vec<usize> },
    #[error("invalid training config: {0}")]
    InvalidConfig(String),
    #[error("{0}")]
    Message(String),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Anything that maps a batch to logits of shape (batch, classes).
pub trait Classifier {
    /// `train` is true during training steps (enables backbone dropout where configured).
    fn logits(&self, batch: &Batch, train: bool) -> candle_core::Result<Tensor>;

    /// How many bottom layers of an encoder no trainable tensor and no dropout reaches: what
    /// enters the next one depends only on the example, so it may be computed once and given
    /// back through [`Batch::frozen`]. 0: none (the default).
    fn frozen_layers(&self) -> usize {
        0
    }

    /// What enters layer `layer` (≤ [`Classifier::frozen_layers`]) for `batch`, without a graph.
    fn hidden_before(&self, _batch: &Batch, _layer: usize) -> candle_core::Result<Tensor> {
        candle_core::bail!("this classifier has no frozen layers to start after")
    }
}

#[derive(Debug, Clone)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub eval_batch_size: usize,
    /// Peak learning rate, reached at the end of warm-up.
    pub lr: f64,
    /// Decoupled (AdamW) weight decay, applied to every given var (biases and norms included).
    pub weight_decay: f64,
    /// Share of the total steps spent warming up linearly from 0 to `lr`.
    pub warmup_fraction: f64,
    /// Clip the global L2 norm of all gradients to this; `<= 0` disables clipping.
    pub max_grad_norm: f64,
    /// Seeds the per-epoch shuffling.
    pub seed: u64,
    /// Stop after this many optimizer steps (a cheap fidelity); `None` runs every epoch.
    pub max_steps: Option<usize>,
    pub bucket_by_length: bool,
    /// Compute what enters the first adapted layer once per split when the layers below are
    /// frozen and dropout is off (see `frozen`); the results match the full forward pass.
    pub cache_frozen: bool,
    /// Report steps and per-epoch summaries as [`crate::progress`] events (the `pets` binary
    /// draws a bar, or sparse lines when stderr is not a terminal).
    pub progress: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 3,
            batch_size: 32,
            eval_batch_size: 128,
            lr: 5e-4,
            weight_decay: 0.01,
            warmup_fraction: 0.06,
            max_grad_norm: 1.0,
            seed: 0,
            max_steps: None,
            bucket_by_length: true,
            cache_frozen: true,
            progress: true,
        }
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct EpochRecord {
    /// 1-based.
    pub epoch: usize,
    /// Mean training loss over this epoch's steps.
    pub train_loss: f64,
    pub dev_accuracy: f64,
    pub dev_loss: f64,
    /// Optimizer steps taken in this epoch (fewer than a full epoch when `max_steps` cut it).
    pub steps: usize,
    /// Training time of this epoch, evaluation excluded.
    pub seconds: f64,
    pub eval_seconds: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct TrainOutcome {
    pub best_accuracy: f64,
    /// 1-based epoch whose weights the model holds after `train` returns.
    pub best_epoch: usize,
    pub steps: usize,
    /// Training time only, evaluation excluded.
    pub train_seconds: f64,
    pub epochs: Vec<EpochRecord>,
    /// Every optimizer step's training loss, in order.
    #[serde(skip)]
    pub losses: Vec<f64>,
}

pub(crate) fn validate(cfg: &TrainConfig) -> Result<(), TrainError> {
    let problem = if cfg.epochs == 0 {
        "epochs must be at least 1"
    } else if cfg.batch_size == 0 || cfg.eval_batch_size == 0 {
        "batch sizes must be at least 1"
    } else if cfg.max_steps == Some(0) {
        "max_steps must be at least 1"
    } else if !crate::spec::is_usable_learning_rate(cfg.lr) {
        "lr must be positive and finite"
    } else {
        return Ok(());
    };
    Err(TrainError::InvalidConfig(problem.to_string()))
}

/// Trains `vars` (and only them) to classify `train`, evaluating on `dev` after each epoch.
/// On return the vars hold the weights of the best dev epoch; after an error they hold whatever
/// the last completed step left (a failed trial is discarded anyway).
pub fn train(
    model: &dyn Classifier,
    vars: &[Var],
    train: &TokenizedSplit,
    dev: &TokenizedSplit,
    pad_id: u32,
    device: &Device,
    cfg: &TrainConfig,
) -> Result<TrainOutcome, TrainError> {
    if train.is_empty() {
        return Err(TrainError::EmptySplit { which: "train" });
    }
    if dev.is_empty() {
        return Err(TrainError::EmptySplit { which: "dev" });
    }
    validate(cfg)?;
    let total = total_steps(cfg, train.len());
    // The rate is set before every step from the schedule; 0 here is never used.
    let params = ParamsAdamW {
        lr: 0.0,
        weight_decay: cfg.weight_decay,
        ..Default::default()
    };
    let mut optimizer = AdamW::new(vars.to_vec(), params)?;
    let progress = Progress::new(total, cfg.progress);
    let mut best = BestSnapshot::new();
    let mut records = Vec::new();
    let (mut step, mut train_seconds) = (0usize, 0f64);
    let mut losses = Vec::new();
    let cache_started = Instant::now();
    let frozen = match cfg.cache_frozen {
        true => frozen::for_splits(model, train, dev, pad_id, device, cfg.eval_batch_size)?,
        false => None,
    };
    if let Some((states, _)) = &frozen {
        // Counted as training time: it replaces the bottom layers' work of every step.
        train_seconds += cache_started.elapsed().as_secs_f64();
        progress.line(format!(
            "layers below {} untouched: their output computed once ({} MB, {:.1}s)",
            states.layer(),
            states.bytes() >> 20,
            train_seconds
        ));
    }

    for epoch in 0..cfg.epochs {
        if step >= total {
            break; // max_steps ended on an epoch boundary: that epoch is already evaluated.
        }
        let plan = BatchPlan {
            batch_size: cfg.batch_size,
            shuffle_seed: Some(epoch_seed(cfg.seed, epoch)),
            bucket_by_length: cfg.bucket_by_length,
        };
        let started = Instant::now();
        let (mut loss_sum, mut epoch_steps) = (0f64, 0usize);
        for indices in plan_batches(train, &plan) {
            if step >= total {
                break;
            }
            let mut batch = make_batch(train, &indices, pad_id, device)?;
            if let Some((states, _)) = &frozen {
                states.attach(&mut batch, &indices)?;
            }
            let logits = model.logits(&batch, true)?.to_dtype(DType::F32)?;
            let loss = cross_entropy(&logits, &batch.labels)?;
            let value = f64::from(loss.to_scalar::<f32>()?);
            if !value.is_finite() {
                progress.end(false);
                return Err(TrainError::NonFiniteLoss { step, loss: value });
            }
            let mut grads = loss.backward()?;
            if step == 0 {
                check_gradients(&grads, vars)?;
            }
            optimizer.set_learning_rate(learning_rate(step, total, cfg));
            optimizer.step(&mut grads, cfg.max_grad_norm)?;
            step += 1;
            epoch_steps += 1;
            loss_sum += value;
            losses.push(value);
            let running = loss_sum / epoch_steps as f64;
            progress.step(
                step,
                format!("epoch {}/{} loss {running:.4}", epoch + 1, cfg.epochs),
            );
        }
        let seconds = started.elapsed().as_secs_f64();
        train_seconds += seconds;

        let eval_started = Instant::now();
        let dev_states = frozen.as_ref().map(|(_, dev)| dev);
        let eval = evaluate_with(model, dev, dev_states, pad_id, device, cfg.eval_batch_size)?;
        if !eval.loss.is_finite() {
            progress.end(false);
            let (epoch, loss) = (epoch + 1, eval.loss);
            return Err(TrainError::NonFiniteDevLoss { epoch, loss });
        }
        let record = EpochRecord {
            epoch: epoch + 1,
            train_loss: loss_sum / epoch_steps.max(1) as f64,
            dev_accuracy: eval.accuracy,
            dev_loss: eval.loss,
            steps: epoch_steps,
            seconds,
            eval_seconds: eval_started.elapsed().as_secs_f64(),
        };
        let improved = best.offer(eval.accuracy, record.epoch, vars)?;
        progress.line(format!(
            "epoch {}: train loss {:.4}, dev acc {:.4}, dev loss {:.4}, {:.1}s{}",
            record.epoch,
            record.train_loss,
            record.dev_accuracy,
            record.dev_loss,
            record.seconds,
            if improved { " (best)" } else { "" }
        ));
        records.push(record);
    }
    progress.end(true);
    best.restore(vars)?;
    Ok(TrainOutcome {
        best_accuracy: best.accuracy,
        best_epoch: best.epoch,
        steps: step,
        train_seconds,
        epochs: records,
        losses,
    })
}

pub(crate) fn check_gradients(grads: &GradStore, vars: &[Var]) -> Result<(), TrainError> {
    match vars.iter().position(|v| grads.get(v.as_tensor()).is_none()) {
        Some(index) => Err(TrainError::MissingGradient {
            index,
            shape: vars[index].dims().to_vec(),
        }),
        None => Ok(()),
    }
}
