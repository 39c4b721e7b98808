//! Evaluation of a classifier on a tokenized split: accuracy, mean loss, predictions in order.

use super::frozen::FrozenStates;
use super::{Classifier, TrainError};
use crate::batch::{make_batch, plan_batches, BatchPlan, TokenizedSplit};
use candle_core::{DType, Device};
use candle_nn::loss::cross_entropy;

/// Result of [`evaluate`].
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub accuracy: f64,
    /// Mean cross-entropy per example.
    pub loss: f64,
    /// Arg-max class per example, in the split's order.
    pub predictions: Vec<u32>,
}

impl Evaluation {
    /// One char per example of `split`, in its order: `1` predicted right, `0` wrong (what a
    /// paired bootstrap over examples needs).
    pub fn correct(&self, split: &TokenizedSplit) -> String {
        self.predictions
            .iter()
            .zip(&split.labels)
            .map(|(p, l)| if p == l { '1' } else { '0' })
            .collect()
    }
}

/// The held-out test split, evaluated once after training with the weights `model` holds.
/// `None` for an empty split. It takes no frozen-prefix cache: computing the bottom layers'
/// states for one pass costs what the pass itself would spend on them, so caching saves nothing.
pub fn evaluate_test(
    model: &dyn Classifier,
    split: &TokenizedSplit,
    pad_id: u32,
    device: &Device,
    batch_size: usize,
) -> Result<Option<(Evaluation, String)>, TrainError> {
    if split.is_empty() {
        return Ok(None);
    }
    let eval = evaluate(model, split, pad_id, device, batch_size)?;
    let correct = eval.correct(split);
    Ok(Some((eval, correct)))
}

/// Accuracy, mean loss and predictions of `model` on `split`, without dropout. Batches are
/// bucketed by length (least padding); predictions are put back in the split's order.
pub fn evaluate(
    model: &dyn Classifier,
    split: &TokenizedSplit,
    pad_id: u32,
    device: &Device,
    batch_size: usize,
) -> Result<Evaluation, TrainError> {
    evaluate_with(model, split, None, pad_id, device, batch_size)
}

/// [`evaluate`], starting the encoder from `states` (computed for this `split`) when given.
pub fn evaluate_with(
    model: &dyn Classifier,
    split: &TokenizedSplit,
    states: Option<&FrozenStates>,
    pad_id: u32,
    device: &Device,
    batch_size: usize,
) -> Result<Evaluation, TrainError> {
    if split.is_empty() {
        return Err(TrainError::EmptySplit {
            which: "evaluation",
        });
    }
    let plan = BatchPlan {
        batch_size,
        shuffle_seed: None,
        bucket_by_length: true,
    };
    let mut predictions = vec![0u32; split.len()];
    let (mut loss_sum, mut correct) = (0f64, 0usize);
    for indices in plan_batches(split, &plan) {
        let mut batch = make_batch(split, &indices, pad_id, device)?;
        if let Some(states) = states {
            states.attach(&mut batch, &indices)?;
        }
        // Detached: nothing downstream is recorded for a backward pass that never comes.
        let logits = crate::backbone::encoder::no_grad(|| model.logits(&batch, false))?
            .detach()
            .to_dtype(DType::F32)?;
        let loss = cross_entropy(&logits, &batch.labels)?.to_scalar::<f32>()?;
        loss_sum += f64::from(loss) * batch.size as f64;
        let predicted = logits.argmax(1)?.to_vec1::<u32>()?;
        for (&i, &p) in indices.iter().zip(&predicted) {
            predictions[i] = p;
            correct += usize::from(p == split.labels[i]);
        }
    }
    let n = split.len() as f64;
    Ok(Evaluation {
        accuracy: correct as f64 / n,
        loss: loss_sum / n,
        predictions,
    })
}
