//! LoRA-only designs as plain weights: which designs qualify, where each update lands in the HF
//! checkpoint, and the merged `model.safetensors` (`W + s·B·A` for every adapted projection).

use super::ExportError;
use crate::adapters::{Composer, Delta, SiteModules};
use crate::backbone::config::BackboneShape;
use crate::model::AdaptedModel;
use crate::spec::{Composition, Design, Form, Insertion, Projection, Site};
use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::path::Path;

/// One LoRA instance on one projection of one layer.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraSite {
    /// The module's label (tensor names start `<label>.layer<i>`).
    pub module: String,
    pub layer: usize,
    pub projection: Projection,
    pub r: usize,
    /// `α` times the composition's fixed scale: the update is `(alpha/r)·B·A`.
    pub alpha: f64,
}

impl LoraSite {
    /// The tensor-name prefix of this instance in pets' store.
    pub fn store_prefix(&self) -> String {
        format!("{}.layer{}", self.module, self.layer)
    }

    /// The HF module path of the adapted projection (`encoder.layer.3.attention.self.query`).
    pub fn hf_module(&self) -> String {
        format!(
            "encoder.layer.{}.{}",
            self.layer,
            hf_projection(self.projection)
        )
    }
}

/// Where a projection lives inside an HF BERT layer.
pub fn hf_projection(p: Projection) -> &'static str {
    match p {
        Projection::Query => "attention.self.query",
        Projection::Key => "attention.self.key",
        Projection::Value => "attention.self.value",
        Projection::Output => "attention.output.dense",
        Projection::FfnIn => "intermediate.dense",
        Projection::FfnOut => "output.dense",
    }
}

/// Every LoRA instance of a design whose modules are all LoRA, in parallel on a projection,
/// composed by a fixed scale; otherwise an error naming the first module that is not, and why.
/// `purpose` completes "cannot be …" in that error ("merged", "exported in PEFT format").
pub fn lora_sites(
    design: &Design,
    shape: &BackboneShape,
    purpose: &'static str,
) -> crate::Result<Vec<LoraSite>> {
    let layer_sets = crate::graph::validate(design, shape)?;
    let mut sites = Vec::new();
    for (index, (module, layers)) in design.modules.iter().zip(&layer_sets).enumerate() {
        let label = design.module_label(index);
        let blocked = |reason: String| ExportError::NotLoraOnly {
            design: design.name.clone(),
            module: label.clone(),
            purpose,
            reason,
        };
        let (r, alpha) = match module.form {
            Form::Lora { r, alpha } => (r, alpha as f64),
            _ => {
                let reason = format!(
                    "it is a {} module; only LoRA updates are linear in a projection's input",
                    module.form.kind()
                );
                return Err(blocked(reason).into());
            }
        };
        let Site::Projection(projection) = module.site else {
            let reason = format!(
                "its site is {:?}, not a projection matrix, so its update is no single weight",
                module.site
            );
            return Err(blocked(reason).into());
        };
        if module.insertion != Insertion::Parallel {
            let reason = "it is sequential: it reads the projection's output, not its input";
            return Err(blocked(reason.into()).into());
        }
        let scale = match module.effective_composition() {
            Composition::Add => 1.0,
            Composition::Scaled(s) => s as f64,
            other => {
                let reason = format!(
                    "its composition {other:?} depends on trained or per-token values, not a fixed scale"
                );
                return Err(blocked(reason).into());
            }
        };
        sites.extend(layers.iter().map(|&layer| LoraSite {
            module: label.clone(),
            layer,
            projection,
            r,
            alpha: alpha * scale,
        }));
    }
    Ok(sites)
}

/// The backbone of `model` with every LoRA update folded in, under the names of `original`
/// (the base `model.safetensors`; tensors pets does not use, such as the pooler, are kept).
/// The caller has checked the design with [`lora_sites`]. Unfrozen backbone tensors carry their
/// trained values.
pub fn merged_weights(
    model: &mut AdaptedModel,
    original: HashMap<String, Tensor>,
) -> crate::Result<HashMap<String, Tensor>> {
    let mut deltas: HashMap<String, Tensor> = HashMap::new();
    for (layer, plan) in model.compiled.layers.iter().enumerate() {
        for (projection, site) in [
            (Projection::Query, &plan.query),
            (Projection::Key, &plan.key),
            (Projection::Value, &plan.value),
            (Projection::Output, &plan.output),
            (Projection::FfnIn, &plan.ffn_in),
            (Projection::FfnOut, &plan.ffn_out),
        ] {
            if let Some(delta) = site_delta(site)? {
                let name = format!("encoder.layer.{layer}.{}.weight", hf_projection(projection));
                deltas.insert(name, delta);
            }
        }
    }
    // Checkpoints saved from BertFor* models prefix every name with `bert.`.
    let prefix = if original.contains_key("bert.embeddings.word_embeddings.weight") {
        "bert."
    } else {
        ""
    };
    let mut merged = original;
    for (name, tensor) in model.encoder.backbone_tensors() {
        let tensor = tensor.detach().to_device(&Device::Cpu)?;
        let tensor = match deltas.remove(&name) {
            Some(delta) => (tensor + delta.to_device(&Device::Cpu)?)?,
            None => tensor,
        };
        merged.insert(format!("{prefix}{name}"), tensor);
    }
    if let Some(name) = deltas.keys().next() {
        return Err(crate::Error::Internal(format!(
            "merged LoRA update for {name}, which the encoder does not have"
        )));
    }
    Ok(merged)
}

/// The summed `s·B·A` of the LoRA modules on one projection, if any.
fn site_delta(site: &SiteModules) -> crate::Result<Option<Tensor>> {
    if site.sequential.is_some() {
        return Err(crate::Error::Internal(
            "a sequential module reached the merge".into(),
        ));
    }
    let mut total: Option<Tensor> = None;
    for attached in &site.parallel {
        let (Delta::Lora(lora), composer) = (&attached.delta, &attached.composer) else {
            return Err(crate::Error::Internal(format!(
                "non-LoRA module {} reached the merge",
                attached.label
            )));
        };
        let delta = match composer {
            Composer::Add => lora.merged_delta()?,
            Composer::Scaled(s) => (lora.merged_delta()? * *s)?,
            _ => {
                return Err(crate::Error::Internal(format!(
                    "module {} with a trained composition reached the merge",
                    attached.label
                )))
            }
        };
        total = Some(match total {
            Some(t) => (t + delta)?,
            None => delta,
        });
    }
    Ok(total)
}

/// Writes the merged checkpoint to `path`.
pub fn save_weights(weights: &HashMap<String, Tensor>, path: &Path) -> Result<(), ExportError> {
    candle_core::safetensors::save(weights, path).map_err(|e| ExportError::Safetensors {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}
