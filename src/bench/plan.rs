//! The hand-over to the reference: the [`Plan`] (the design resolved the way pets compiles it,
//! and the training settings) as JSON, and the initial trainable tensors plus the batches as
//! safetensors under pets' own names.

use super::BenchSettings;
use crate::batch::Batch;
use crate::error::io_err;
use crate::methods::ParamStore;
use crate::model::AdaptedModel;
use crate::sites::{Projection, Site};
use crate::spec::{Composition, Design, Form, Insertion};
use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// What the reference reads: the design as pets' encoder runs it, and the training settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The design as written, for the record; the reference reads `modules`.
    pub design: Design,
    pub modules: Vec<PlanModule>,
    pub model_dir: PathBuf,
    /// Initial trainable tensors by pets' names, and `batch.<i>.{input_ids,attention_mask,labels}`.
    pub tensors: PathBuf,
    pub batches: usize,
    pub lr: f64,
    pub weight_decay: f64,
    pub max_grad_norm: f64,
    pub threads: usize,
    /// `cpu` or `cuda`.
    pub device: String,
}

/// One module, resolved the way pets compiles it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanModule {
    /// Tensor names start with `<label>.layer<i>.`.
    pub label: String,
    pub form: Form,
    /// The encoder insertion point: query, key, value, heads, output, attention, ffn_in,
    /// ffn_act, ffn_out or ffn.
    pub site: String,
    pub insertion: Insertion,
    /// The composition actually used (the form's default resolved).
    pub composition: Composition,
    pub layers: Vec<usize>,
}

/// The design as pets compiled it: labels, sites and layer sets resolved by pets' own rules.
pub fn make_plan(
    design: &Design,
    model: &AdaptedModel,
    model_dir: &Path,
    s: &BenchSettings,
    lr: f64,
) -> crate::Result<Plan> {
    let graph = crate::graph::validate(design, &model.encoder.shape())?;
    let mut modules: Vec<PlanModule> = design
        .modules
        .iter()
        .enumerate()
        .map(|(i, m)| PlanModule {
            label: design.module_label(i),
            form: m.form.clone(),
            site: site_name(m.site).to_string(),
            insertion: m.insertion,
            composition: m.effective_composition(),
            layers: Vec::new(),
        })
        .collect();
    for instance in graph.instances() {
        if let Some(m) = modules.get_mut(instance.module) {
            m.layers.push(instance.layer);
        }
    }
    Ok(Plan {
        design: design.clone(),
        modules,
        model_dir: std::path::absolute(model_dir).map_err(io_err("resolving the model folder"))?,
        tensors: PathBuf::from("tensors.safetensors"),
        batches: s.batches,
        lr,
        weight_decay: s.weight_decay,
        max_grad_norm: s.max_grad_norm,
        threads: s.threads,
        device: if s.device.is_cpu() { "cpu" } else { "cuda" }.to_string(),
    })
}

/// The reference's name of a site (bench/reference.py's insertion points).
fn site_name(site: Site) -> &'static str {
    match site {
        Site::Attention => "attention",
        Site::AttentionHeads => "heads",
        Site::Ffn => "ffn",
        Site::FfnActivation => "ffn_act",
        Site::Projection(p) => match p {
            Projection::Query => "query",
            Projection::Key => "key",
            Projection::Value => "value",
            Projection::Output => "output",
            Projection::FfnIn => "ffn_in",
            Projection::FfnOut => "ffn_out",
        },
    }
}

/// Writes `plan.json` and the tensors file (named in the plan, relative to `dir`).
pub fn write_plan(
    dir: &Path,
    plan: &Plan,
    store: &ParamStore,
    batches: &[Batch],
) -> crate::Result<()> {
    std::fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    for (name, var) in store.named() {
        tensors.insert(name.clone(), var.as_tensor().to_device(&Device::Cpu)?);
    }
    for (i, b) in batches.iter().enumerate() {
        // Integer ids as I64: what torch indexes with.
        let ids = b.input_ids.to_device(&Device::Cpu)?.to_dtype(DType::I64)?;
        tensors.insert(format!("batch.{i}.input_ids"), ids);
        tensors.insert(
            format!("batch.{i}.attention_mask"),
            b.attention_mask.to_device(&Device::Cpu)?,
        );
        let labels = b.labels.to_device(&Device::Cpu)?.to_dtype(DType::I64)?;
        tensors.insert(format!("batch.{i}.labels"), labels);
    }
    candle_core::safetensors::save(&tensors, dir.join(&plan.tensors))?;
    let json =
        serde_json::to_string_pretty(plan).map_err(|e| crate::Error::Internal(e.to_string()))?;
    let path = dir.join("plan.json");
    std::fs::write(&path, json).map_err(io_err(format!("writing {}", path.display())))
}
