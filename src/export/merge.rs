//! LoRA-only designs as plain weights: which designs qualify, where each update lands in the HF
//! checkpoint, and the merged `model.safetensors` (`W + s·B·A` for every adapted projection).

use super::ExportError;
use crate::backbone::config::BackboneShape;
use crate::backbone::family::Family;
use crate::methods::{Composer, Join, SiteModules};
use crate::model::AdaptedModel;
use crate::spec::{Composition, Design, Insertion, Projection, Site};
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
    /// The backbone family, which names the projection's tensors.
    pub family: Family,
    pub r: usize,
    /// `α` times the composition's fixed scale: the update is `(alpha/r)·B·A`.
    pub alpha: f64,
}

impl LoraSite {
    /// The tensor-name prefix of this instance in pets' store.
    pub fn store_prefix(&self) -> String {
        format!("{}.layer{}", self.module, self.layer)
    }

    /// The checkpoint path of the adapted projection (`encoder.layer.3.attention.self.query`).
    pub fn hf_module(&self) -> String {
        self.family.projection_module(self.layer, self.projection)
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
    let graph = crate::graph::validate(design, shape)?;
    for (index, module) in design.modules.iter().enumerate() {
        let blocked = |reason: String| ExportError::NotLoraOnly {
            design: design.name.clone(),
            module: design.module_label(index),
            purpose,
            reason,
        };
        if module.method().low_rank().is_none() {
            let reason = format!(
                "it is a {} module; only LoRA updates are linear in a projection's input",
                module.form.kind()
            );
            return Err(blocked(reason).into());
        }
        if !matches!(module.site, Site::Projection(_)) {
            let reason = format!(
                "its site is {:?}, not a projection matrix, so its update is no single weight",
                module.site
            );
            return Err(blocked(reason).into());
        }
        if module.insertion != Insertion::Parallel {
            let reason = "it is sequential: it reads the projection's output, not its input";
            return Err(blocked(reason.into()).into());
        }
        if let other @ (Composition::LearnedScale(_) | Composition::Gated) =
            module.effective_composition()
        {
            let reason = format!(
                "its composition {other:?} depends on trained or per-token values, not a fixed scale"
            );
            return Err(blocked(reason).into());
        }
    }
    let sites = graph
        .instances()
        .filter_map(|instance| {
            let module = design.modules.get(instance.module)?;
            let (r, alpha) = module.method().low_rank()?;
            let Site::Projection(projection) = instance.site else {
                return None;
            };
            let scale = match instance.composition {
                Composition::Scaled(s) => s as f64,
                _ => 1.0,
            };
            Some(LoraSite {
                module: design.module_label(instance.module),
                layer: instance.layer,
                projection,
                family: shape.family,
                r,
                alpha: alpha as f64 * scale,
            })
        })
        .collect();
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
    let family = model.encoder.shape().family;
    let mut deltas: HashMap<String, Tensor> = HashMap::new();
    for (layer, plan) in model.compiled.layers.iter().enumerate() {
        for (site, modules) in plan.sites() {
            let Site::Projection(projection) = site else {
                return Err(crate::Error::Internal(format!(
                    "a module on {site:?} reached the merge"
                )));
            };
            if let Some(delta) = site_delta(modules)? {
                let name = format!("{}.weight", family.projection_module(layer, projection));
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
        let not_linear = || {
            crate::Error::Internal(format!(
                "non-LoRA module {} reached the merge",
                attached.label
            ))
        };
        let Join::Composed { delta, composer } = &attached.join else {
            return Err(not_linear());
        };
        let weight = delta.merged_weight().ok_or_else(not_linear)??;
        let delta = match composer {
            Composer::Add => weight,
            Composer::Scaled(s) => (weight * *s)?,
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
