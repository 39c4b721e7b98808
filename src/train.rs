//! Training loop over the trainable vars only: AdamW, warm-up + linear decay, clipping, best-dev keeping.
//! (Owned by the training work; interface below is the contract.)

use crate::batch::{Batch, TokenizedSplit};
use candle_core::{Device, Tensor, Var};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum TrainError {
    #[error("{0}")]
    Message(String),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Anything that maps a batch to logits of shape (batch, classes).
pub trait Classifier {
    /// `train` is true during training steps (enables backbone dropout where configured).
    fn logits(&self, batch: &Batch, train: bool) -> candle_core::Result<Tensor>;
}

#[derive(Debug, Clone)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub eval_batch_size: usize,
    pub lr: f64,
    pub weight_decay: f64,
    pub warmup_fraction: f64,
    pub max_grad_norm: f64,
    pub seed: u64,
    /// Stop after this many optimizer steps (a cheap fidelity); `None` runs every epoch.
    pub max_steps: Option<usize>,
    pub bucket_by_length: bool,
    pub progress: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub train_loss: f64,
    pub dev_accuracy: f64,
    pub seconds: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct TrainOutcome {
    pub best_accuracy: f64,
    pub best_epoch: usize,
    pub steps: usize,
    pub train_seconds: f64,
    pub epochs: Vec<EpochRecord>,
}

pub fn train(
    _model: &dyn Classifier,
    _vars: &[Var],
    _train: &TokenizedSplit,
    _dev: &TokenizedSplit,
    _pad_id: u32,
    _device: &Device,
    _cfg: &TrainConfig,
) -> Result<TrainOutcome, TrainError> {
    todo!()
}
