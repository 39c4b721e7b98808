//! Evaluation of a pack: every active member's accuracy, loss and predictions from one forward
//! pass per batch, computed as [`crate::train::evaluate_with`] computes them for one design.

use super::Pack;
use crate::backbone::encoder::no_grad;
use crate::batch::{make_batch, plan_batches, BatchPlan, TokenizedSplit};
use crate::train::frozen::FrozenStates;
use crate::train::{Evaluation, TrainError};
use candle_core::{DType, Device, Tensor};
use candle_nn::loss::cross_entropy;

/// Each active member's evaluation on `split` (in [`Pack::active`] order), without dropout.
pub fn evaluate_packed(
    pack: &Pack,
    split: &TokenizedSplit,
    pad_id: u32,
    device: &Device,
    batch_size: usize,
) -> Result<Vec<Evaluation>, TrainError> {
    evaluate_members(pack, split, None, pad_id, device, batch_size)
}

/// [`evaluate_packed`], starting the encoder from `states` (computed for this `split`) when given.
pub(super) fn evaluate_members(
    pack: &Pack,
    split: &TokenizedSplit,
    states: Option<&FrozenStates>,
    pad_id: u32,
    device: &Device,
    batch_size: usize,
) -> Result<Vec<Evaluation>, TrainError> {
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
    let k = pack.active().len();
    let mut predictions = vec![vec![0u32; split.len()]; k];
    let mut loss_sums = vec![0f64; k];
    let mut correct = vec![0usize; k];
    for indices in plan_batches(split, &plan) {
        let mut batch = make_batch(split, &indices, pad_id, device)?;
        if let Some(states) = states {
            states.attach(&mut batch, &indices)?;
        }
        let logits = no_grad(|| pack.member_logits(&batch, false))?
            .into_iter()
            .map(|l| l.detach().to_dtype(DType::F32))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let losses = logits
            .iter()
            .map(|l| cross_entropy(l, &batch.labels))
            .collect::<candle_core::Result<Vec<_>>>()?;
        // Two reads from the device per batch, whatever the pack's size.
        let losses = Tensor::stack(&losses, 0)?.to_vec1::<f32>()?;
        let predicted = Tensor::stack(&logits, 0)?.argmax(2)?.to_vec2::<u32>()?;
        for (m, (loss, predicted)) in losses.iter().zip(&predicted).enumerate() {
            loss_sums[m] += f64::from(*loss) * batch.size as f64;
            for (&i, &p) in indices.iter().zip(predicted) {
                predictions[m][i] = p;
                correct[m] += usize::from(p == split.labels[i]);
            }
        }
    }
    let n = split.len() as f64;
    Ok(predictions
        .into_iter()
        .zip(loss_sums)
        .zip(correct)
        .map(|((predictions, loss), correct)| Evaluation {
            accuracy: correct as f64 / n,
            loss: loss / n,
            predictions,
        })
        .collect())
}
