//! Hugging Face PEFT files for IA³-only designs: an `IA3` `adapter_config.json` and
//! `adapter_model.safetensors` with one `ia3_l` per wrapped Linear, shaped `(out, 1)` where
//! PEFT scales the output and `(1, in)` where it scales the input (`feedforward_modules`).

use super::ExportError;
use crate::backbone::config::BackboneShape;
use crate::methods::ia3::peft::peft_target;
use crate::spec::{Design, Form, Insertion};
use candle_core::Tensor;
use serde::Serialize;
use std::collections::HashMap;

/// The fields of PEFT's `IA3Config` that decide how the adapter is rebuilt.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ia3PeftConfig {
    pub peft_type: &'static str,
    pub task_type: &'static str,
    pub base_model_name_or_path: String,
    /// Every wrapped Linear by its full path (`encoder.layer.0.attention.self.key`): PEFT
    /// matches a name against the end of a path, and `output.dense` would also catch
    /// `attention.output.dense`.
    pub target_modules: Vec<String>,
    /// The subset of `target_modules` whose input is scaled.
    pub feedforward_modules: Vec<String>,
    pub exclude_modules: Option<Vec<String>>,
    pub fan_in_fan_out: bool,
    pub modules_to_save: Option<Vec<String>>,
    pub init_ia3_weights: bool,
    pub inference_mode: bool,
}

/// Whether every module of `design` is IA³ (the designs this layout takes).
pub fn is_ia3_only(design: &Design) -> bool {
    !design.modules.is_empty() && design.modules.iter().all(|m| m.form == Form::Ia3)
}

/// The PEFT state-dict key of the IA³ vector on `module` (`encoder.layer.0.output.dense`).
pub fn ia3_key(module: &str) -> String {
    format!("base_model.model.{module}.ia3_l")
}

/// The adapter config and PEFT-named tensors of an IA³-only `design`, from pets' `tensors`
/// (`<label>.layer<i>.ia3_l`, one vector each). Refuses, naming the module, a site with no
/// PEFT Linear and two vectors on one Linear (PEFT holds one per adapter).
pub fn ia3_files(
    design: &Design,
    shape: &BackboneShape,
    tensors: &HashMap<String, Tensor>,
    base_model: String,
) -> crate::Result<(Ia3PeftConfig, HashMap<String, Tensor>)> {
    if !design.unfreeze.is_empty() {
        return Err(ExportError::UnfrozenBackbone {
            design: design.name.clone(),
            parts: format!("{:?}", design.unfreeze),
        }
        .into());
    }
    let graph = crate::graph::validate(design, shape)?;
    let refuse = |index: usize, reason: String| ExportError::NoEquivalent {
        design: design.name.clone(),
        module: design.module_label(index),
        format: "PEFT",
        reason,
    };
    let mut targets: Vec<String> = Vec::new();
    let mut feedforward: Vec<String> = Vec::new();
    let mut out = HashMap::new();
    for instance in graph.instances() {
        if instance.insertion != Insertion::Sequential {
            let reason = "PEFT's IA3 rescales a value in place (Sequential)".to_string();
            return Err(refuse(instance.module, reason).into());
        }
        let target = peft_target(instance.site).map_err(|r| refuse(instance.module, r))?;
        let module = shape
            .family
            .projection_module(instance.layer, target.projection);
        if targets.contains(&module) {
            let reason = format!(
                "another IA³ vector already rescales {module}, and PEFT holds one per Linear"
            );
            return Err(refuse(instance.module, reason).into());
        }
        let name = format!("{}.ia3_l", instance.name);
        let missing = || ExportError::MissingTensor {
            path: "the trained tensors".into(),
            tensor: name.clone(),
        };
        let vector = tensors.get(&name).ok_or_else(missing)?;
        let width = vector.elem_count();
        let dims = if target.feedforward {
            feedforward.push(module.clone());
            (1, width)
        } else {
            (width, 1)
        };
        out.insert(ia3_key(&module), vector.reshape(dims)?);
        targets.push(module);
    }
    targets.sort();
    feedforward.sort();
    let config = Ia3PeftConfig {
        peft_type: "IA3",
        task_type: "FEATURE_EXTRACTION",
        base_model_name_or_path: base_model,
        target_modules: targets,
        feedforward_modules: feedforward,
        exclude_modules: None,
        fan_in_fan_out: false,
        modules_to_save: None,
        init_ia3_weights: true,
        inference_mode: true,
    };
    Ok((config, out))
}
