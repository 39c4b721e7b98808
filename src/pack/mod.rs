//! Packed training: K designs on one frozen encoder, trained together on the same batches.
//!
//! The frozen encoder runs once over the K·B stacked rows of a batch (every frozen matrix
//! product is one product), each design's modules act on its own B rows (the merged plan's row
//! groups, [`crate::methods::SiteModules`]), and the layers below the lowest adapted layer of
//! any design run once on B rows. Each design keeps its own head, optimizer, learning-rate
//! schedule, clipping and best-epoch snapshot; the loss is the sum of the designs' losses, so one
//! backward pass gives each design exactly the gradient it would get alone.

mod eval;
mod plan;
mod prefix;
mod stacked;
#[cfg(test)]
mod tests;
mod train;

pub use eval::evaluate_packed;
pub use prefix::PackedPrefix;
pub(crate) use stacked::apply_stacked;
pub use train::{train_packed, PackOutcome};

use crate::backbone::encoder::Encoder;
use crate::batch::Batch;
use crate::methods::LayerPlan;
use crate::model::AdaptedModel;
use crate::train::Classifier;
use candle_core::{Result, Tensor};

/// Why a design cannot join a pack (it then trains alone).
pub fn unpackable_reason(model: &AdaptedModel) -> Option<&'static str> {
    if !model.design.unfreeze.is_empty() {
        Some("it unfreezes backbone parts, which the pack shares")
    } else if model.encoder.options.dropout > 0.0 {
        Some("the backbone trains with dropout, whose masks the pack would share")
    } else {
        None
    }
}

/// K adapted models sharing one frozen encoder, with their modules merged into one plan.
pub struct Pack {
    models: Vec<AdaptedModel>,
    /// The members still training, in pack order (a member whose loss turned non-finite leaves).
    active: Vec<usize>,
    /// Each member's lowest adapted layer, taken before its modules moved into `merged`.
    lowest: Vec<usize>,
    merged: Vec<LayerPlan>,
    encoder: Encoder,
}

impl Pack {
    /// Packs `models` (built on clones of one encoder); an error names a member that cannot join.
    pub fn new(mut models: Vec<AdaptedModel>) -> crate::Result<Pack> {
        let Some(first) = models.first() else {
            return Err(crate::Error::Internal(
                "a pack needs at least one design".into(),
            ));
        };
        let encoder = first.encoder.clone();
        for model in &models {
            if let Some(reason) = unpackable_reason(model) {
                return Err(crate::Error::Internal(format!(
                    "design {} cannot train in a pack: {reason}",
                    model.design.name
                )));
            }
        }
        let lowest = models.iter().map(|m| m.frozen_layers()).collect();
        let active: Vec<usize> = (0..models.len()).collect();
        let merged = merge_active(&mut models, &active)?;
        Ok(Pack {
            models,
            active,
            lowest,
            merged,
            encoder,
        })
    }

    /// The members still training (indices into the packed models).
    pub fn active(&self) -> &[usize] {
        &self.active
    }

    /// Member `i`'s model (its modules live in the merged plan while packed).
    pub fn member(&self, i: usize) -> &AdaptedModel {
        &self.models[i]
    }

    /// Takes members `leaving` out of the pack (their modules go back to their models).
    pub fn remove(&mut self, leaving: &[usize]) -> Result<()> {
        let merged = std::mem::take(&mut self.merged);
        unmerge_active(merged, &mut self.models, &self.active);
        self.active.retain(|i| !leaving.contains(i));
        self.merged = merge_active(&mut self.models, &self.active)?;
        Ok(())
    }

    /// Ends the pack: every model gets its modules back.
    pub fn into_models(mut self) -> Vec<AdaptedModel> {
        let merged = std::mem::take(&mut self.merged);
        unmerge_active(merged, &mut self.models, &self.active);
        self.models
    }

    /// Each active member's logits (b, classes) for `batch`, in [`Pack::active`] order.
    pub fn member_logits(&self, batch: &Batch, train: bool) -> Result<Vec<Tensor>> {
        let k = self.active.len();
        let mask = &batch.attention_mask;
        let tiled_mask = tile(mask, k)?;
        let lowest = self.frozen_layers();
        let hidden = match &batch.frozen {
            Some(start) if start.layer <= lowest => {
                let x = tile(&start.hidden, k)?;
                self.encoder
                    .forward_from(start.layer, &x, &tiled_mask, &self.merged, train)?
            }
            // The layers below every member's modules run once, on the batch's own rows.
            _ if lowest > 0 => {
                let x = self.encoder.hidden_before(lowest, &batch.input_ids, mask)?;
                self.encoder.forward_from(
                    lowest,
                    &tile(&x, k)?,
                    &tiled_mask,
                    &self.merged,
                    train,
                )?
            }
            _ => {
                let ids = tile(&batch.input_ids, k)?;
                self.encoder
                    .forward(&ids, &tiled_mask, &self.merged, train)?
            }
        };
        let b = batch.size;
        let mut logits = Vec::with_capacity(k);
        for (slot, &i) in self.active.iter().enumerate() {
            let model = &self.models[i];
            let own = hidden.narrow(0, slot * b, b)?;
            logits.push(model.head_logits(&model.pool(&own, mask)?)?);
        }
        Ok(logits)
    }
}

/// The pack as one classifier: its logits are the members' stacked along the rows; its frozen
/// layers are those below every active member's modules.
impl Classifier for Pack {
    fn logits(&self, batch: &Batch, train: bool) -> Result<Tensor> {
        Tensor::cat(&self.member_logits(batch, train)?, 0)
    }

    fn frozen_layers(&self) -> usize {
        let active = self.active.iter().map(|&i| self.lowest[i]);
        active.min().unwrap_or(0)
    }

    fn hidden_before(&self, batch: &Batch, layer: usize) -> Result<Tensor> {
        self.encoder
            .hidden_before(layer, &batch.input_ids, &batch.attention_mask)
    }
}

/// `x` stacked `k` times along its first dimension.
fn tile(x: &Tensor, k: usize) -> Result<Tensor> {
    if k == 1 {
        return Ok(x.clone());
    }
    let mut times = vec![1; x.rank()];
    times[0] = k;
    x.repeat(times)
}

fn merge_active(models: &mut [AdaptedModel], active: &[usize]) -> Result<Vec<LayerPlan>> {
    let mut plans = select(models, active);
    plan::merge(&mut plans)
}

fn unmerge_active(merged: Vec<LayerPlan>, models: &mut [AdaptedModel], active: &[usize]) {
    let mut plans = select(models, active);
    plan::unmerge(merged, &mut plans);
}

/// The layer plans of the `active` models, in that order.
fn select<'a>(models: &'a mut [AdaptedModel], active: &[usize]) -> Vec<&'a mut Vec<LayerPlan>> {
    models
        .iter_mut()
        .enumerate()
        .filter(|(i, _)| active.contains(i))
        .map(|(_, m)| &mut m.compiled.layers)
        .collect()
}
