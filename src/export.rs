//! Deployable adapters: a folder with the design, only its trained tensors (modules, head, and
//! unfrozen backbone parts), the tokenizer and a manifest pinning the base model by SHA-256; or,
//! for LoRA-only designs, a merged model folder or Hugging Face PEFT files (also IA³-only designs).
//!
//! ```text
//! adapter:  manifest.json design.ron adapter.safetensors tokenizer.json
//! merged:   manifest.json design.ron head.safetensors tokenizer.json config.json model.safetensors
//! peft:     manifest.json adapter_config.json adapter_model.safetensors head.safetensors tokenizer.json
//! adapters: manifest.json adapter_config.json adapter.safetensors head.safetensors tokenizer.json
//! ```

pub mod adapterhub;
mod error;
pub mod load;
pub mod manifest;
pub mod merge;
pub mod peft;
pub mod peft_ia3;
pub mod trial;

pub use error::ExportError;
pub use load::{load_adapter, LoadedAdapter};
pub use manifest::{BaseModel, Layout, Manifest, ParamCounts, FORMAT_VERSION};
pub use trial::{trial_run_folder, StudyTrial};

use crate::assets::Cache;
use crate::backbone::encoder::Encoder;
use crate::model::AdaptedModel;
use crate::spec::Design;
use candle_core::{Device, Tensor};
use manifest::{copy_file, sha256_file, write_file, write_json, SELF_CONTAINED};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// What to export: a design, its trained tensors (every var of its `ParamStore`, by name), and
/// the facts the manifest records. Built from a run folder or from a model in memory.
#[derive(Debug, Clone)]
pub struct AdapterSource {
    pub design: Design,
    pub tensors: HashMap<String, Tensor>,
    /// Names the tensors' origin in errors (`runs/x/adapter.safetensors`).
    pub origin: String,
    /// The base model as given when training: a known name or a folder path.
    pub base_model: String,
    pub label_names: Vec<String>,
    pub max_len: usize,
    /// Kept verbatim in the manifest (a run's `metrics.json`).
    pub metrics: serde_json::Value,
}

impl AdapterSource {
    /// Reads a run folder written by `pets train --out`.
    pub fn from_run(dir: &Path) -> crate::Result<AdapterSource> {
        let design = Design::from_file(&dir.join("design.ron"))?;
        let metrics_path = dir.join("metrics.json");
        let metrics: serde_json::Value = manifest::read_json(&metrics_path)?;
        let field = |field: &'static str, reason: &str| ExportError::Field {
            path: metrics_path.display().to_string(),
            field,
            reason: reason.to_string(),
        };
        let base_model = metrics["model"]
            .as_str()
            .ok_or_else(|| field("model", "missing or not a string"))?
            .to_string();
        let old_run = "missing: runs from before export support do not record it; train again";
        let label_names: Vec<String> = serde_json::from_value(metrics["label_names"].clone())
            .map_err(|_| field("label_names", old_run))?;
        let max_len = metrics["max_len"]
            .as_u64()
            .ok_or_else(|| field("max_len", old_run))? as usize;
        let path = dir.join("adapter.safetensors");
        let tensors = load::read_tensors(&path, &Device::Cpu)?;
        Ok(AdapterSource {
            design,
            tensors,
            origin: path.display().to_string(),
            base_model,
            label_names,
            max_len,
            metrics,
        })
    }

    /// Takes a trained model's tensors (a study trial, a model trained in code).
    pub fn from_model(
        model: &AdaptedModel,
        base_model: &str,
        label_names: Vec<String>,
        max_len: usize,
        metrics: serde_json::Value,
    ) -> AdapterSource {
        let tensors = model
            .store
            .named()
            .iter()
            .map(|(name, var)| (name.clone(), var.as_tensor().detach()))
            .collect();
        AdapterSource {
            design: model.design.clone(),
            tensors,
            origin: format!("the trained {} model", model.design.name),
            base_model: base_model.to_string(),
            label_names,
            max_len,
            metrics,
        }
    }
}

/// The folder layout an export writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ExportFormat {
    /// pets' own folder: any design.
    #[default]
    Pets,
    /// Hugging Face PEFT files: LoRA-only or IA³-only designs.
    Peft,
    /// AdapterHub `adapters` files: bottleneck and LoRA designs and their unions.
    Adapters,
}

/// How [`export`] writes its folder.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportOptions {
    /// The layout of the folder.
    pub format: ExportFormat,
    /// Fold LoRA updates into the base weights and write a full model folder.
    pub merge: bool,
    /// Replace a non-empty output folder.
    pub force: bool,
}

/// Writes `source` to `out` in the chosen layout. The tensors are first loaded onto the base
/// model, so a folder is only written for tensors that fit the design exactly. The folder is
/// built beside `out` and renamed into place, so `out` is never left half-written.
pub fn export(
    source: &AdapterSource,
    out: &Path,
    options: &ExportOptions,
    cache: &Cache,
) -> crate::Result<Manifest> {
    if options.merge && options.format != ExportFormat::Pets {
        let format = match options.format {
            ExportFormat::Adapters => "AdapterHub",
            _ => "PEFT",
        };
        return Err(ExportError::MergeAndPeft { format }.into());
    }
    let base_dir = cache
        .model_dir(&source.base_model)
        .map_err(|e| ExportError::BaseMissing {
            id: source.base_model.clone(),
            message: e.to_string(),
        })?;
    let encoder = Encoder::from_folder(&base_dir, &Device::Cpu)?;
    let classes = source.label_names.len();
    let mut model = AdaptedModel::build(encoder, &source.design, classes, 0)?;
    load::install_tensors(&model.store, &source.tensors, &source.origin)?;
    let base = BaseModel {
        id: source.base_model.clone(),
        sha256: sha256_file(&base_dir.join("model.safetensors"))?,
    };
    let shape = model.encoder.shape();
    let absolute = std::fs::canonicalize(&base_dir).unwrap_or(base_dir.clone());
    // Refuse designs the layout cannot hold before anything is written.
    let peft = match (options.format, options.merge) {
        (ExportFormat::Pets, false) => None,
        (ExportFormat::Pets, true) => {
            merge::lora_sites(&source.design, &shape, "merged")?;
            None
        }
        (ExportFormat::Adapters, _) => {
            let base_path = absolute.display().to_string();
            let (config, tensors) =
                adapterhub::adapterhub_files(&source.design, &shape, &source.tensors, base_path)?;
            Some((Layout::Adapters, config, tensors))
        }
        (ExportFormat::Peft, _) => {
            let base_path = absolute.display().to_string();
            if peft_ia3::is_ia3_only(&source.design) {
                let (config, tensors) =
                    peft_ia3::ia3_files(&source.design, &shape, &source.tensors, base_path)?;
                Some((Layout::Peft, to_json(&config)?, tensors))
            } else {
                let sites = merge::lora_sites(&source.design, &shape, "exported in PEFT format")?;
                let (config, tensors) = peft::peft_files(
                    &source.design,
                    &sites,
                    shape.layers,
                    &source.tensors,
                    base_path,
                )?;
                Some((Layout::Peft, to_json(&config)?, tensors))
            }
        }
    };
    let staging = prepare_output(out, options.force)?;
    let written = write_folder(
        source,
        &mut model,
        &base_dir,
        base,
        (options.merge, peft),
        &staging,
    );
    match written {
        Ok(manifest) => {
            finish_output(&staging, out)?;
            Ok(manifest)
        }
        Err(err) => {
            // Best effort: the export failed and the half-written folder is of no use.
            let _ = std::fs::remove_dir_all(&staging);
            Err(err)
        }
    }
}

/// A Python library's folder: its layout, `adapter_config.json` (PEFT's LoRA or IA3, or
/// AdapterHub's) and its tensors under that library's names.
type PeftFiles = (Layout, serde_json::Value, HashMap<String, Tensor>);

fn to_json(config: &impl serde::Serialize) -> Result<serde_json::Value, ExportError> {
    serde_json::to_value(config).map_err(|e| ExportError::Json {
        path: "adapter_config.json".into(),
        message: e.to_string(),
    })
}

/// Writes every file of the folder into `staging`: merged when `merged`, PEFT when `peft` is set.
fn write_folder(
    source: &AdapterSource,
    model: &mut AdaptedModel,
    base_dir: &Path,
    base: BaseModel,
    (merged, peft): (bool, Option<PeftFiles>),
    staging: &Path,
) -> crate::Result<Manifest> {
    let tokenizer = staging.join("tokenizer.json");
    copy_file(&base_dir.join("tokenizer.json"), &tokenizer)?;
    let mut manifest = Manifest {
        format_version: FORMAT_VERSION,
        pets_version: env!("CARGO_PKG_VERSION").to_string(),
        layout: Layout::Adapter,
        design: source.design.name.clone(),
        base_model: base,
        merged_from: None,
        tokenizer_sha256: sha256_file(&tokenizer)?,
        tensors: "adapter.safetensors".into(),
        label_names: source.label_names.clone(),
        max_len: source.max_len,
        params: ParamCounts {
            design: model.cost.trainable,
            head: model.cost.head,
            backbone: model.cost.backbone,
        },
        metrics: source.metrics.clone(),
    };
    let head = head_tensors(model);
    match (peft, merged) {
        (None, false) => {
            write_file(
                &staging.join("design.ron"),
                source.design.to_ron().as_bytes(),
            )?;
            let path = staging.join(&manifest.tensors);
            model
                .store
                .save(&path)
                .map_err(|e| ExportError::Safetensors {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?;
        }
        (None, true) => {
            let weights = staging.join("model.safetensors");
            let original = load::read_tensors(&base_dir.join("model.safetensors"), &Device::Cpu)?;
            merge::save_weights(&merge::merged_weights(model, original)?, &weights)?;
            copy_file(&base_dir.join("config.json"), &staging.join("config.json"))?;
            let design = Design {
                name: format!("{}-merged", source.design.name),
                modules: Vec::new(),
                unfreeze: Vec::new(),
                learning_rate: None,
            };
            write_file(&staging.join("design.ron"), design.to_ron().as_bytes())?;
            manifest.layout = Layout::Merged;
            manifest.tensors = "head.safetensors".into();
            let own = BaseModel {
                id: SELF_CONTAINED.into(),
                sha256: sha256_file(&weights)?,
            };
            manifest.merged_from = Some(std::mem::replace(&mut manifest.base_model, own));
            merge::save_weights(&head, &staging.join(&manifest.tensors))?;
        }
        (Some((layout, config, tensors)), _) => {
            write_json(&staging.join("adapter_config.json"), &config)?;
            let weights = match layout {
                Layout::Adapters => "adapter.safetensors",
                _ => "adapter_model.safetensors",
            };
            merge::save_weights(&tensors, &staging.join(weights))?;
            manifest.layout = layout;
            manifest.tensors = "head.safetensors".into();
            merge::save_weights(&head, &staging.join(&manifest.tensors))?;
        }
    }
    manifest.write(staging)?;
    Ok(manifest)
}

/// The head's tensors (`head.weight` (classes, hidden), `head.bias`).
fn head_tensors(model: &AdaptedModel) -> HashMap<String, Tensor> {
    model
        .store
        .named()
        .iter()
        .filter(|(name, _)| name.starts_with("head."))
        .map(|(name, var)| (name.clone(), var.as_tensor().detach()))
        .collect()
}

/// A fresh staging folder beside `out`; refuses a non-empty `out` unless `force`.
fn prepare_output(out: &Path, force: bool) -> Result<PathBuf, ExportError> {
    let occupied = std::fs::read_dir(out).is_ok_and(|mut d| d.next().is_some());
    if occupied && !force {
        return Err(ExportError::OutputExists {
            out: out.display().to_string(),
        });
    }
    let name = out.file_name().map_or_else(
        || "export".to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let staging = out.with_file_name(format!(".{name}.partial-{}", std::process::id()));
    // A leftover from a crashed export of the same process id is ours to replace.
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(ExportError::write(&staging))?;
    Ok(staging)
}

fn finish_output(staging: &Path, out: &Path) -> Result<(), ExportError> {
    if out.exists() {
        std::fs::remove_dir_all(out).map_err(ExportError::write(out))?;
    }
    std::fs::rename(staging, out).map_err(ExportError::write(out))
}
