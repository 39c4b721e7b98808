//! AdapterHub `adapters` files (checked against adapters 1.3.0): `adapter_config.json` in its
//! schema (one method's config, or a `union` of several) and `adapter.safetensors` under its key
//! names, for `model.load_adapter(path, use_safetensors=True)` on a `BertModel` after
//! `adapters.init(model)`. Each method folder maps its own modules
//! (`methods::<name>::adapterhub`); this file groups them and refuses what has no exact
//! equivalent, naming the module and the reason.

use super::ExportError;
use crate::backbone::config::BackboneShape;
use crate::graph::Instance;
use crate::methods::{bottleneck, lora, prefix};
use crate::spec::{Composition, Design, Form, Insertion, Site};
use candle_core::Tensor;
use serde_json::{json, Value};
use std::collections::HashMap;

/// The adapters release whose schema, key names and forward these files follow.
pub const ADAPTERS_VERSION: &str = "adapters.1.3.0";

/// The LoRA modules of a design, merged into one `LoRAConfig` (AdapterHub holds one per
/// adapter): their shared rank, scale and layers, and the matrices they adapt.
struct LoraGroup {
    first: String,
    r: usize,
    alpha: f64,
    layers: Vec<usize>,
    matrices: Vec<&'static str>,
}

/// The adapter name used inside the key names: the design's name with anything but letters,
/// digits and `_` replaced by `_` (a `.` would split a key).
pub fn adapter_name(design: &Design) -> String {
    design
        .name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// `adapter_config.json` and the AdapterHub-named tensors of `design` from pets' `tensors`.
pub fn adapterhub_files(
    design: &Design,
    shape: &BackboneShape,
    tensors: &HashMap<String, Tensor>,
    base_model: String,
) -> crate::Result<(Value, HashMap<String, Tensor>)> {
    if !design.unfreeze.is_empty() {
        return Err(ExportError::BackboneTrained {
            design: design.name.clone(),
            format: "AdapterHub",
            parts: format!("{:?}", design.unfreeze),
        }
        .into());
    }
    let graph = crate::graph::validate(design, shape)?;
    let name = adapter_name(design);
    let refuse = |index: usize, reason: String| ExportError::NoEquivalent {
        design: design.name.clone(),
        module: design.module_label(index),
        format: "AdapterHub",
        reason,
    };
    let mut configs: Vec<Value> = Vec::new();
    let mut slots: Vec<&str> = Vec::new();
    let mut lora_group: Option<LoraGroup> = None;
    let mut out = HashMap::new();
    let mut prefix_out = HashMap::new();
    let mut take = |instance: &Instance, renames: Vec<(&str, String)>| -> crate::Result<()> {
        for (suffix, key) in renames {
            let pets_name = format!("{}.{suffix}", instance.name);
            let tensor = tensors
                .get(&pets_name)
                .ok_or_else(|| ExportError::MissingTensor {
                    path: "the trained tensors".into(),
                    tensor: pets_name.clone(),
                })?;
            out.insert(key, tensor.clone());
        }
        Ok(())
    };
    for (index, module) in design.modules.iter().enumerate() {
        let instances: Vec<&Instance> = graph.instances().filter(|i| i.module == index).collect();
        let layers: Vec<usize> = instances.iter().map(|i| i.layer).collect();
        let leave_out: Vec<usize> = (0..shape.layers).filter(|l| !layers.contains(l)).collect();
        let composition = module.effective_composition();
        match &module.form {
            Form::Bottleneck(config) => {
                let (slot, submodule) =
                    bottleneck::adapterhub::slot(module.site).map_err(|r| refuse(index, r))?;
                if slots.contains(&slot) {
                    let reason = format!("a second bottleneck in AdapterHub's {slot} slot");
                    return Err(refuse(index, reason).into());
                }
                slots.push(slot);
                let key = (module.site, module.insertion, composition);
                let bn = bottleneck::adapterhub::bn_config(config, key, shape.hidden, &leave_out)
                    .map_err(|r| refuse(index, r))?;
                configs.push(bn);
                for instance in instances {
                    take(
                        instance,
                        bottleneck::adapterhub::tensor_names(submodule, instance.layer, &name),
                    )?;
                }
            }
            Form::Lora(config) => {
                let Site::Projection(projection) = module.site else {
                    let reason = format!("LoRA at {:?} is not on a projection", module.site);
                    return Err(refuse(index, reason).into());
                };
                let letter = lora::adapterhub::matrix(projection).map_err(|r| refuse(index, r))?;
                let scale = match composition {
                    Composition::Add => 1.0,
                    Composition::Scaled(s) => s as f64,
                    other => {
                        let reason = format!(
                            "its composition {other:?} is trained or per token (a gated LoRA); \
                             AdapterHub's LoRA gate is averaged over the sequence"
                        );
                        return Err(refuse(index, reason).into());
                    }
                };
                if module.insertion != Insertion::Parallel {
                    let reason = "a sequential LoRA has no AdapterHub equivalent".to_string();
                    return Err(refuse(index, reason).into());
                }
                let alpha = config.alpha as f64 * scale;
                match &mut lora_group {
                    None => {
                        lora_group = Some(LoraGroup {
                            first: design.module_label(index),
                            r: config.r,
                            alpha,
                            layers: layers.clone(),
                            matrices: vec![letter],
                        })
                    }
                    Some(group) => {
                        if (group.r, group.alpha, &group.layers) != (config.r, alpha, &layers) {
                            let reason = format!(
                                "its rank, scale or layers differ from LoRA module {}'s, and \
                                 AdapterHub holds one LoRA config per adapter",
                                group.first
                            );
                            return Err(refuse(index, reason).into());
                        }
                        if group.matrices.contains(&letter) {
                            let reason = format!("a second LoRA on {projection:?}");
                            return Err(refuse(index, reason).into());
                        }
                        group.matrices.push(letter);
                    }
                }
                for instance in instances {
                    let path = shape.family.projection_module(instance.layer, projection);
                    take(instance, lora::adapterhub::tensor_names(&path, &name))?;
                }
            }
            Form::Prefix(config) => {
                if config.reparam.is_some() {
                    let reason = "its keys and values come from a per-layer MLP; AdapterHub's \
                        reparametrisation shares one MLP across layers"
                        .to_string();
                    return Err(refuse(index, reason).into());
                }
                if layers.len() != shape.layers {
                    let reason = "a prefix on a layer subset is not mapped (AdapterHub's flat \
                        prefix spans every layer)"
                        .to_string();
                    return Err(refuse(index, reason).into());
                }
                let mut per_layer = Vec::new();
                for instance in &instances {
                    let get = |part: &str| {
                        let pets_name = format!("{}.{part}", instance.name);
                        tensors
                            .get(&pets_name)
                            .cloned()
                            .ok_or_else(|| ExportError::MissingTensor {
                                path: "the trained tensors".into(),
                                tensor: pets_name.clone(),
                            })
                    };
                    per_layer.push((instance.layer, get("keys")?, get("values")?));
                }
                per_layer.sort_by_key(|(layer, _, _)| *layer);
                let kv: Vec<(Tensor, Tensor)> =
                    per_layer.into_iter().map(|(_, k, v)| (k, v)).collect();
                let control = prefix::adapterhub::flat_control(&kv)?;
                for key in prefix::adapterhub::control_keys(shape.layers, &name) {
                    prefix_out.insert(key, control.clone());
                }
                configs.push(prefix::adapterhub::prefix_config(config.l));
            }
            Form::Ia3 => {
                let reason = "IA³ is not mapped to AdapterHub; export it with --format peft";
                return Err(refuse(index, reason.into()).into());
            }
        }
    }
    if let Some(group) = lora_group {
        let leave_out: Vec<usize> = (0..shape.layers)
            .filter(|l| !group.layers.contains(l))
            .collect();
        let config =
            lora::adapterhub::lora_config(group.r, group.alpha, &group.matrices, &leave_out);
        configs.insert(0, config);
    }
    out.extend(prefix_out);
    let config = match configs.len() {
        1 => configs.remove(0),
        _ => json!({"architecture": "union", "configs": configs}),
    };
    let file = json!({
        "config": config,
        "hidden_size": shape.hidden,
        "model_class": "BertModel",
        "model_name": base_model,
        "model_type": "bert",
        "name": name,
        "version": ADAPTERS_VERSION,
    });
    Ok((file, out))
}
