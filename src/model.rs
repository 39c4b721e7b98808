//! The classifier: frozen encoder + compiled design + mean-pooling linear head, and its trainable vars.

use crate::backbone::encoder::{mean_pool, Encoder};
use crate::batch::Batch;
use crate::compile::{compile, CompiledDesign};
use crate::methods::affine;
use crate::methods::Fill;
use crate::methods::ParamStore;
use crate::params::{design_cost, DesignCost};
use crate::spec::Design;
use crate::train::Classifier;
use candle_core::{Tensor, Var};

pub struct AdaptedModel {
    pub encoder: Encoder,
    pub design: Design,
    pub compiled: CompiledDesign,
    /// Every trainable tensor: modules, unfrozen backbone parts, and the head (`head.*`).
    pub store: ParamStore,
    pub cost: DesignCost,
    head_weight: Tensor,
    head_bias: Tensor,
}

impl AdaptedModel {
    /// Compiles `design` onto `encoder` with a fresh head for `classes` labels.
    pub fn build(
        mut encoder: Encoder,
        design: &Design,
        classes: usize,
        seed: u64,
    ) -> crate::Result<AdaptedModel> {
        let shape = encoder.shape();
        let cost = design_cost(design, &shape, classes)?;
        let mut store = ParamStore::new(seed, encoder.device());
        encoder.unfreeze(&design.unfreeze, &mut store)?;
        let compiled = compile(design, &shape, &mut store)?;
        let d = shape.hidden;
        let bound = 1.0 / (d as f32).sqrt();
        let head_weight = store.var("head.weight", &[classes, d], Fill::Uniform(bound))?;
        let head_bias = store.var("head.bias", &[classes], Fill::Zeros)?;
        let counted = store.count();
        if counted != cost.trainable + cost.head {
            return Err(crate::Error::Internal(format!(
                "design {}: {} trainable tensors' elements, but the accounting says {} + {} head",
                design.name, counted, cost.trainable, cost.head
            )));
        }
        Ok(AdaptedModel {
            encoder,
            design: design.clone(),
            compiled,
            store,
            cost,
            head_weight,
            head_bias,
        })
    }

    pub fn trainable_vars(&self) -> Vec<Var> {
        self.store.vars()
    }

    pub fn classes(&self) -> usize {
        self.head_bias.dims()[0]
    }

    /// Runs `f` with the modules (and prefixes) of `layers` detached, so those layers are
    /// exactly the frozen ones, then attaches them again. Backbone parts a design unfreezes
    /// (Houlsby's layer norms) stay as trained: they are not modules.
    pub fn with_layers_off<R>(
        &mut self,
        layers: impl IntoIterator<Item = usize>,
        f: impl FnOnce(&Self) -> R,
    ) -> R {
        let mut detached = Vec::new();
        for i in layers {
            if let Some(slot) = self.compiled.layers.get_mut(i) {
                detached.push((i, std::mem::take(slot)));
            }
        }
        let out = f(self);
        for (i, modules) in detached {
            self.compiled.layers[i] = modules;
        }
        out
    }

    /// Mean-pooled final hidden states (b, hidden).
    pub fn pooled(&self, batch: &Batch, train: bool) -> candle_core::Result<Tensor> {
        let (mask, plan) = (&batch.attention_mask, &self.compiled.layers);
        let hidden = match &batch.frozen {
            Some(start) if start.layer <= self.frozen_layers() => {
                self.encoder
                    .forward_from(start.layer, &start.hidden, mask, plan, train)?
            }
            _ => self.encoder.forward(&batch.input_ids, mask, plan, train)?,
        };
        self.pool(&hidden, mask)
    }

    /// One vector per sequence from the final hidden states (b, t, hidden) under `mask` (b, t):
    /// what the head reads.
    pub fn pool(&self, hidden: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        mean_pool(hidden, mask)
    }

    /// The head's logits (b, classes) of pooled vectors (b, hidden).
    pub fn head_logits(&self, pooled: &Tensor) -> candle_core::Result<Tensor> {
        affine(pooled, &self.head_weight, Some(&self.head_bias))
    }
}

impl Classifier for AdaptedModel {
    fn logits(&self, batch: &Batch, train: bool) -> candle_core::Result<Tensor> {
        self.head_logits(&self.pooled(batch, train)?)
    }

    /// The lowest layer with a module (all layers when there is none), or 0 when the design
    /// unfreezes backbone parts or the backbone trains with dropout.
    fn frozen_layers(&self) -> usize {
        if !self.design.unfreeze.is_empty() || self.encoder.options.dropout > 0.0 {
            return 0;
        }
        let layers = self.encoder.shape().layers;
        let lowest = self.compiled.layers.iter().position(|l| !l.is_empty());
        lowest.unwrap_or(layers).min(layers)
    }

    fn hidden_before(&self, batch: &Batch, layer: usize) -> candle_core::Result<Tensor> {
        self.encoder
            .hidden_before(layer, &batch.input_ids, &batch.attention_mask)
    }
}

#[cfg(test)]
impl AdaptedModel {
    /// N(0, std²) in every trainable tensor, so modules change the output (fresh ones, with
    /// zero up-projections, would not).
    pub(crate) fn randomise(&self, std: f32) -> candle_core::Result<()> {
        for var in self.store.named().values() {
            let noise = Tensor::randn(0f32, std, var.shape(), var.device())?;
            var.set(&noise.to_dtype(var.dtype())?)?;
        }
        Ok(())
    }
}
