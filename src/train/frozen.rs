//! Hidden states below the layers a design changes, computed once per split and handed to every
//! later batch, so training and evaluation start the encoder at the first adapted layer.
//!
//! Valid only while nothing below that layer trains and dropout is off
//! ([`Classifier::frozen_layers`] decides): then what enters it depends on the example alone.
//! A real token's states do not depend on how far its batch is padded (padded keys get exactly
//! zero attention), so states computed in one batching serve any other; padding rows are zero.

use super::{Classifier, TrainError};
use crate::batch::{make_batch, plan_batches, Batch, BatchPlan, FrozenInput, TokenizedSplit};
use candle_core::{DType, Device, Tensor};

/// A split whose states would take more than this is not cached (e.g. long documents at a long
/// `max_len`); training then runs the whole encoder as usual.
pub const MAX_BYTES: usize = 1 << 30;

/// The states entering layer `layer` for every example of one split, unpadded.
pub struct FrozenStates {
    layer: usize,
    hidden: usize,
    dtype: DType,
    /// Example i's rows are `data[starts[i] * hidden..][..lens[i] * hidden]`.
    starts: Vec<usize>,
    lens: Vec<usize>,
    data: Vec<f32>,
}

impl FrozenStates {
    /// Runs the unchanged bottom `layer` layers of `model` once over `split`; `None` when the
    /// states would take more than [`MAX_BYTES`].
    pub fn compute(
        model: &dyn Classifier,
        split: &TokenizedSplit,
        layer: usize,
        pad_id: u32,
        device: &Device,
        batch_size: usize,
    ) -> Result<Option<FrozenStates>, TrainError> {
        let lens: Vec<usize> = split.ids.iter().map(Vec::len).collect();
        let starts: Vec<usize> = lens
            .iter()
            .scan(0, |next, &n| {
                let start = *next;
                *next += n;
                Some(start)
            })
            .collect();
        let mut states = FrozenStates {
            layer,
            hidden: 0,
            dtype: DType::F32,
            starts,
            lens,
            data: Vec::new(),
        };
        let plan = BatchPlan {
            batch_size,
            shuffle_seed: None,
            bucket_by_length: true,
        };
        for indices in plan_batches(split, &plan) {
            let batch = make_batch(split, &indices, pad_id, device)?;
            let out = model.hidden_before(&batch, layer)?;
            let (_, _, hidden) = out.dims3()?;
            if states.data.is_empty() {
                states.hidden = hidden;
                states.dtype = out.dtype();
                let values = states.lens.iter().sum::<usize>() * hidden;
                if values * std::mem::size_of::<f32>() > MAX_BYTES {
                    return Ok(None);
                }
                states.data = vec![0f32; values];
            }
            let out = out.to_dtype(DType::F32)?.to_device(&Device::Cpu)?;
            for (row, &i) in out.to_vec3::<f32>()?.into_iter().zip(&indices) {
                let dst = &mut states.data[states.starts[i] * hidden..];
                for (t, values) in row.into_iter().take(states.lens[i]).enumerate() {
                    dst[t * hidden..(t + 1) * hidden].copy_from_slice(&values);
                }
            }
        }
        Ok(Some(states))
    }

    /// The layer these states enter.
    pub fn layer(&self) -> usize {
        self.layer
    }

    pub fn bytes(&self) -> usize {
        self.data.len() * std::mem::size_of::<f32>()
    }

    /// Gives `batch` (made from `indices` of the same split) its examples' states, padded with
    /// zeros to the batch's length.
    pub fn attach(&self, batch: &mut Batch, indices: &[usize]) -> candle_core::Result<()> {
        let (b, t) = batch.input_ids.dims2()?;
        let d = self.hidden;
        let mut padded = vec![0f32; b * t * d];
        for (slot, &i) in padded.chunks_mut(t * d).zip(indices) {
            let n = self.lens[i].min(t) * d;
            let start = self.starts[i] * d;
            slot[..n].copy_from_slice(&self.data[start..start + n]);
        }
        let hidden = Tensor::from_vec(padded, (b, t, d), batch.input_ids.device())?;
        batch.frozen = Some(FrozenInput {
            layer: self.layer,
            hidden: hidden.to_dtype(self.dtype)?,
        });
        Ok(())
    }
}

/// States of `train` and `dev` when `model` has frozen bottom layers and both fit.
pub fn for_splits(
    model: &dyn Classifier,
    train: &TokenizedSplit,
    dev: &TokenizedSplit,
    pad_id: u32,
    device: &Device,
    batch_size: usize,
) -> Result<Option<(FrozenStates, FrozenStates)>, TrainError> {
    let layer = model.frozen_layers();
    if layer == 0 {
        return Ok(None);
    }
    let compute = |s| FrozenStates::compute(model, s, layer, pad_id, device, batch_size);
    let Some(train) = compute(train)? else {
        return Ok(None);
    };
    Ok(compute(dev)?.map(|dev| (train, dev)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backbone::tiny::tiny_encoder;
    use crate::model::AdaptedModel;
    use crate::spec::{shipped_preset, Layers};
    use crate::train::{evaluate, evaluate_with, train, TrainConfig};

    /// The preset on the tiny encoder, its modules limited to `layers`; `random` fills the
    /// trainable tensors with noise (not seeded: only for comparisons within one model).
    fn model(preset: &str, layers: Option<Vec<usize>>, dropout: f32, random: bool) -> AdaptedModel {
        let mut design = shipped_preset(preset);
        if let Some(layers) = layers {
            for m in &mut design.modules {
                m.layers = Layers::List(layers.clone());
            }
        }
        let mut encoder = tiny_encoder(0).expect("tiny encoder");
        encoder.options.dropout = dropout;
        let model = AdaptedModel::build(encoder, &design, 2, 0).expect("build");
        if random {
            model.randomise(0.3).expect("randomise");
        }
        model
    }

    /// Sentences of lengths 2..=9, so batches pad differently in every batching.
    fn split(n: usize) -> TokenizedSplit {
        TokenizedSplit {
            ids: (0..n)
                .map(|i| {
                    (0..2 + i % 8)
                        .map(|t| 1 + ((i * 7 + t * 3) % 60) as u32)
                        .collect()
                })
                .collect(),
            labels: (0..n).map(|i| (i % 2) as u32).collect(),
        }
    }

    #[test]
    fn frozen_layers_stop_at_the_first_module_unfrozen_part_or_dropout() {
        let cases: [(&str, Option<Vec<usize>>, f32, usize); 6] = [
            ("mam", None, 0.0, 0),
            ("mam", Some(vec![1]), 0.0, 1),
            ("lora", Some(vec![1]), 0.0, 1),
            ("lora", Some(vec![1]), 0.1, 0),
            ("full_finetune", None, 0.0, 0),
            // Houlsby trains every layer norm: nothing below its modules is frozen.
            ("houlsby", Some(vec![1]), 0.0, 0),
        ];
        for (preset, layers, dropout, want) in cases {
            let m = model(preset, layers.clone(), dropout, false);
            assert_eq!(
                m.frozen_layers(),
                want,
                "{preset} {layers:?} dropout {dropout}"
            );
        }
        let mut none = shipped_preset("lora");
        none.modules.clear();
        let probe = AdaptedModel::build(tiny_encoder(0).expect("tiny"), &none, 2, 0).expect("b");
        assert_eq!(
            probe.frozen_layers(),
            2,
            "a linear probe freezes every layer"
        );
    }

    /// Logits from cached states (computed in another batching) match the full forward pass,
    /// and evaluation gives the same predictions.
    #[test]
    fn cached_states_give_the_full_forward_pass() -> Result<(), TrainError> {
        let m = model("mam", Some(vec![1]), 0.0, true);
        let data = split(20);
        let states = FrozenStates::compute(&m, &data, 1, 0, &Device::Cpu, 3)?.expect("fits");
        assert_eq!(states.layer(), 1);
        let rows: usize = data.ids.iter().map(Vec::len).sum();
        assert_eq!(states.bytes(), rows * 48 * 4);
        let indices = [4, 11, 0, 19, 7];
        let plain = make_batch(&data, &indices, 0, &Device::Cpu)?;
        let mut cached = plain.clone();
        states.attach(&mut cached, &indices)?;
        let want: Vec<Vec<f32>> = m.logits(&plain, false)?.to_vec2()?;
        let got: Vec<Vec<f32>> = m.logits(&cached, false)?.to_vec2()?;
        for (w, g) in want.iter().flatten().zip(got.iter().flatten()) {
            assert!((w - g).abs() < 1e-5, "cached {g} vs full {w}");
        }
        let full = evaluate(&m, &data, 0, &Device::Cpu, 4)?;
        let fast = evaluate_with(&m, &data, Some(&states), 0, &Device::Cpu, 4)?;
        assert_eq!(fast.predictions, full.predictions);
        assert!((fast.loss - full.loss).abs() < 1e-6);
        Ok(())
    }

    /// Training with the cache follows the same trajectory as without it.
    #[test]
    fn training_with_the_cache_matches_training_without() -> Result<(), TrainError> {
        let (train_split, dev_split) = (split(48), split(16));
        let run = |cache_frozen| -> Result<_, TrainError> {
            // Seeded fresh modules, so both runs start from the same tensors.
            let m = model("lora", Some(vec![1]), 0.0, false);
            let cfg = TrainConfig {
                epochs: 2,
                batch_size: 8,
                lr: 1e-2,
                progress: false,
                cache_frozen,
                ..TrainConfig::default()
            };
            let vars = m.trainable_vars();
            train(&m, &vars, &train_split, &dev_split, 0, &Device::Cpu, &cfg)
        };
        let (with, without) = (run(true)?, run(false)?);
        for (a, b) in with.epochs.iter().zip(&without.epochs) {
            assert!((a.train_loss - b.train_loss).abs() < 1e-5, "{a:?} vs {b:?}");
            assert!((a.dev_loss - b.dev_loss).abs() < 1e-5, "{a:?} vs {b:?}");
            assert_eq!(a.dev_accuracy, b.dev_accuracy);
        }
        Ok(())
    }
}
