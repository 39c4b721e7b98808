//! Loading the encoder's frozen weights (HF names) and unfreezing parts of them into vars.

use super::super::config::{part_covers, BackboneShape, BertConfig};
use super::super::ops;
use super::super::BackboneError;
use super::{Encoder, RunOptions};
use crate::methods::ParamStore;
use crate::sites::BackbonePart;
use candle_core::{DType, Device, Result, Tensor, Var};
use candle_nn::VarBuilder;
use std::path::Path;

#[derive(Clone)]
pub(super) struct Linear {
    pub(super) weight: Tensor,
    pub(super) bias: Tensor,
}

impl Linear {
    fn load(vb: &VarBuilder, input: usize, output: usize) -> Result<Self> {
        Ok(Linear {
            weight: vb.get((output, input), "weight")?,
            bias: vb.get(output, "bias")?,
        })
    }
    pub(super) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        ops::linear(x, &self.weight, Some(&self.bias))
    }
}

#[derive(Clone)]
pub(super) struct Norm {
    pub(super) gamma: Tensor,
    pub(super) beta: Tensor,
}

impl Norm {
    fn load(vb: &VarBuilder, d: usize) -> Result<Self> {
        Ok(Norm {
            gamma: vb.get(d, "weight")?,
            beta: vb.get(d, "bias")?,
        })
    }
}

#[derive(Clone)]
pub(super) struct Layer {
    pub(super) query: Linear,
    pub(super) key: Linear,
    pub(super) value: Linear,
    /// query, key and value stacked (3·d, d): one projection when no module needs them apart.
    /// A copy of the frozen tensors; unused once any of them is unfrozen (see `packed_qkv`).
    pub(super) qkv: Linear,
    pub(super) output: Linear,
    pub(super) attention_norm: Norm,
    pub(super) ffn_in: Linear,
    pub(super) ffn_out: Linear,
    pub(super) ffn_norm: Norm,
}

impl Layer {
    /// Whether q, k and v can come from the stacked projection: no module reads or changes
    /// them apart, none of their tensors is trained, and attention runs fused.
    pub(super) fn packed_qkv(&self, ad: &crate::methods::LayerPlan, x: &Tensor) -> bool {
        use crate::sites::{Projection, Site};
        let trained = [&self.query, &self.key, &self.value]
            .iter()
            .any(|l| l.weight.track_op() || l.bias.track_op());
        [Projection::Query, Projection::Key, Projection::Value]
            .iter()
            .all(|p| ad.at(Site::Projection(*p)).is_empty())
            && ad.prefix.is_none()
            && !trained
            && crate::backbone::attention::fusable(x, x, x)
    }
}

impl Encoder {
    /// Loads `config.json` and `model.safetensors` from an HF-style folder.
    pub fn from_folder(dir: &Path, device: &Device) -> std::result::Result<Encoder, BackboneError> {
        let config = BertConfig::from_file(&dir.join("config.json"))?;
        let weights = dir.join("model.safetensors");
        let err = |e: candle_core::Error| BackboneError::Weights {
            path: weights.display().to_string(),
            message: e.to_string(),
        };
        // SAFETY: the file is memory-mapped read-only; pets never writes to model files.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, device) }
            .map_err(err)?;
        Encoder::load(vb, config).map_err(err)
    }

    /// Builds from any var builder (tests use random weights).
    pub fn load(vb: VarBuilder, config: BertConfig) -> Result<Encoder> {
        let vb = if vb.contains_tensor("bert.embeddings.word_embeddings.weight") {
            vb.pp("bert")
        } else {
            vb
        };
        let s = config.shape();
        let (d, f) = (s.hidden, s.ffn);
        let e = vb.pp("embeddings");
        let mut layers = Vec::with_capacity(s.layers);
        for i in 0..s.layers {
            let l = vb.pp(format!("encoder.layer.{i}"));
            let (att, selfatt) = (l.pp("attention"), l.pp("attention").pp("self"));
            let (query, key, value) = (
                Linear::load(&selfatt.pp("query"), d, d)?,
                Linear::load(&selfatt.pp("key"), d, d)?,
                Linear::load(&selfatt.pp("value"), d, d)?,
            );
            let qkv = Linear {
                weight: Tensor::cat(&[&query.weight, &key.weight, &value.weight], 0)?,
                bias: Tensor::cat(&[&query.bias, &key.bias, &value.bias], 0)?,
            };
            layers.push(Layer {
                query,
                key,
                value,
                qkv,
                output: Linear::load(&att.pp("output").pp("dense"), d, d)?,
                attention_norm: Norm::load(&att.pp("output").pp("LayerNorm"), d)?,
                ffn_in: Linear::load(&l.pp("intermediate").pp("dense"), d, f)?,
                ffn_out: Linear::load(&l.pp("output").pp("dense"), f, d)?,
                ffn_norm: Norm::load(&l.pp("output").pp("LayerNorm"), d)?,
            });
        }
        Ok(Encoder {
            word: e.get((s.vocab, d), "word_embeddings.weight")?,
            position: e.get((s.max_positions, d), "position_embeddings.weight")?,
            token_type: e.get((s.type_vocab, d), "token_type_embeddings.weight")?,
            embedding_norm: Norm::load(&e.pp("LayerNorm"), d)?,
            layers,
            config,
            options: RunOptions::default(),
        })
    }

    pub fn device(&self) -> &Device {
        self.word.device()
    }

    pub fn shape(&self) -> BackboneShape {
        self.config.shape()
    }

    /// Every backbone tensor with its HF name, in the order of `BackboneShape::tensor_inventory`.
    fn tensors_mut(&mut self) -> Vec<(String, &mut Tensor)> {
        let mut out: Vec<(String, &mut Tensor)> = vec![
            ("embeddings.word_embeddings.weight".into(), &mut self.word),
            (
                "embeddings.position_embeddings.weight".into(),
                &mut self.position,
            ),
            (
                "embeddings.token_type_embeddings.weight".into(),
                &mut self.token_type,
            ),
            (
                "embeddings.LayerNorm.weight".into(),
                &mut self.embedding_norm.gamma,
            ),
            (
                "embeddings.LayerNorm.bias".into(),
                &mut self.embedding_norm.beta,
            ),
        ];
        for (i, l) in self.layers.iter_mut().enumerate() {
            let p = format!("encoder.layer.{i}");
            for (name, lin) in [
                ("attention.self.query", &mut l.query),
                ("attention.self.key", &mut l.key),
                ("attention.self.value", &mut l.value),
                ("attention.output.dense", &mut l.output),
            ] {
                out.push((format!("{p}.{name}.weight"), &mut lin.weight));
                out.push((format!("{p}.{name}.bias"), &mut lin.bias));
            }
            out.push((
                format!("{p}.attention.output.LayerNorm.weight"),
                &mut l.attention_norm.gamma,
            ));
            out.push((
                format!("{p}.attention.output.LayerNorm.bias"),
                &mut l.attention_norm.beta,
            ));
            out.push((
                format!("{p}.intermediate.dense.weight"),
                &mut l.ffn_in.weight,
            ));
            out.push((format!("{p}.intermediate.dense.bias"), &mut l.ffn_in.bias));
            out.push((format!("{p}.output.dense.weight"), &mut l.ffn_out.weight));
            out.push((format!("{p}.output.dense.bias"), &mut l.ffn_out.bias));
            out.push((
                format!("{p}.output.LayerNorm.weight"),
                &mut l.ffn_norm.gamma,
            ));
            out.push((format!("{p}.output.LayerNorm.bias"), &mut l.ffn_norm.beta));
        }
        out
    }

    /// Every backbone tensor with its HF name (plain tensors unless unfrozen).
    pub fn backbone_tensors(&mut self) -> Vec<(String, Tensor)> {
        self.tensors_mut()
            .into_iter()
            .map(|(n, t)| (n, t.clone()))
            .collect()
    }

    /// Makes the backbone tensors that `parts` cover trainable, registering them in `store`
    /// under `backbone.<HF name>`.
    pub fn unfreeze(&mut self, parts: &[BackbonePart], store: &mut ParamStore) -> Result<()> {
        for (name, tensor) in self.tensors_mut() {
            if parts.iter().any(|p| part_covers(*p, &name)) {
                let var = Var::from_tensor(tensor)?;
                *tensor = var.as_tensor().clone();
                store.adopt(&format!("backbone.{name}"), var);
            }
        }
        Ok(())
    }
}
