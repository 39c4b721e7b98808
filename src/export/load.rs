//! Loading an exported folder back: the base model (pinned by hash), the design, the tensors.

use super::manifest::{sha256_file, BaseModel, Layout, Manifest, SELF_CONTAINED};
use super::ExportError;
use crate::assets::Cache;
use crate::backbone::encoder::Encoder;
use crate::methods::ParamStore;
use crate::model::AdaptedModel;
use crate::spec::Design;
use crate::tokenize::TextEncoder;
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// An exported folder loaded for prediction.
pub struct LoadedAdapter {
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub model: AdaptedModel,
    /// The folder's tokenizer, truncating to the manifest's `max_len`.
    pub text: TextEncoder,
}

impl LoadedAdapter {
    pub fn label_names(&self) -> &[String] {
        &self.manifest.label_names
    }

    /// The classes as the training task's source labelled them, in head order, when the run
    /// recorded it (`metrics.source_labels`); empty otherwise.
    pub fn source_labels(&self) -> Vec<String> {
        let recorded = self.manifest.metrics.get("source_labels").cloned();
        let labels: Vec<String> = recorded
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default();
        if labels.len() == self.manifest.label_names.len() {
            labels
        } else {
            Vec::new()
        }
    }

    pub fn device(&self) -> &Device {
        self.model.encoder.device()
    }
}

/// Loads an adapter (or merged) folder: reads the manifest, finds the base model in the cache
/// (fetching a known model if needed), refuses it unless its weights hash to the recorded
/// SHA-256, compiles the design and loads every tensor, checking names and shapes.
pub fn load_adapter(dir: &Path, cache: &Cache, device: &Device) -> crate::Result<LoadedAdapter> {
    let manifest = Manifest::read(dir)?;
    if manifest.layout == Layout::Peft {
        return Err(ExportError::PeftFolder {
            path: dir.display().to_string(),
        }
        .into());
    }
    if manifest.layout == Layout::Adapters {
        return Err(ExportError::AdaptersFolder {
            path: dir.display().to_string(),
        }
        .into());
    }
    let base_dir = resolve_base(dir, &manifest.base_model, cache)?;
    let tokenizer = dir.join("tokenizer.json");
    check_hash(&tokenizer, &manifest.tokenizer_sha256, "tokenizer")?;
    let design = Design::from_file(&dir.join("design.ron"))?;
    let path = dir.join(&manifest.tensors);
    let tensors = read_tensors(&path, device)?;
    let model = build_trained(
        &base_dir,
        &design,
        manifest.label_names.len(),
        &tensors,
        &path.display().to_string(),
        device,
    )?;
    let config = crate::backbone::config::BertConfig::from_file(&base_dir.join("config.json"))?;
    let text = TextEncoder::from_file(&tokenizer, manifest.max_len)?.fit_model(&config)?;
    Ok(LoadedAdapter {
        dir: dir.to_path_buf(),
        manifest,
        model,
        text,
    })
}

/// `design` on the encoder in `model_dir` with its trained tensors installed (names and shapes
/// checked against the design's own).
pub fn build_trained(
    model_dir: &Path,
    design: &Design,
    classes: usize,
    tensors: &HashMap<String, Tensor>,
    origin: &str,
    device: &Device,
) -> crate::Result<AdaptedModel> {
    let encoder = Encoder::from_folder(model_dir, device)?;
    // The seed only decides initial values, which the saved tensors all overwrite.
    let model = AdaptedModel::build(encoder, design, classes, 0)?;
    install_tensors(&model.store, tensors, origin)?;
    Ok(model)
}

/// The folder of the manifest's base model, after checking its `model.safetensors` hash.
pub fn resolve_base(
    adapter_dir: &Path,
    base: &BaseModel,
    cache: &Cache,
) -> Result<PathBuf, ExportError> {
    let dir = if base.id == SELF_CONTAINED {
        adapter_dir.to_path_buf()
    } else {
        cache
            .model_dir(&base.id)
            .map_err(|e| ExportError::BaseMissing {
                id: base.id.clone(),
                message: e.to_string(),
            })?
    };
    let what = format!("base model {}", base.id);
    check_hash(&dir.join("model.safetensors"), &base.sha256, &what)?;
    Ok(dir)
}

/// Refuses `path` unless its SHA-256 is `expected`; `what` names it in the error.
fn check_hash(path: &Path, expected: &str, what: &str) -> Result<(), ExportError> {
    if !path.is_file() {
        return Err(ExportError::MissingFile {
            path: path.display().to_string(),
            what: format!("the {what} file the manifest pins"),
        });
    }
    let found = sha256_file(path)?;
    if found != expected {
        return Err(ExportError::HashMismatch {
            what: what.to_string(),
            path: path.display().to_string(),
            expected: expected.to_string(),
            found,
        });
    }
    Ok(())
}

/// Reads a safetensors file; a corrupt or truncated file is an error naming it, never a panic
/// (the safetensors crate validates the header and every tensor's byte range before use).
pub fn read_tensors(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>, ExportError> {
    let bytes = std::fs::read(path).map_err(ExportError::read(path))?;
    candle_core::safetensors::load_buffer(&bytes, device).map_err(|e| ExportError::Safetensors {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// Sets every var of `store` from `tensors`, requiring exactly the same names and shapes
/// (a missing, extra or mis-shaped tensor is an error naming it; `origin` names the file).
pub fn install_tensors(
    store: &ParamStore,
    tensors: &HashMap<String, Tensor>,
    origin: &str,
) -> Result<(), ExportError> {
    let vars = store.named();
    let mut extra: Vec<&String> = tensors.keys().filter(|k| !vars.contains_key(*k)).collect();
    extra.sort();
    if let Some(name) = extra.first() {
        return Err(ExportError::ExtraTensor {
            path: origin.to_string(),
            tensor: name.to_string(),
        });
    }
    for (name, var) in vars {
        let tensor = tensors
            .get(name)
            .ok_or_else(|| ExportError::MissingTensor {
                path: origin.to_string(),
                tensor: name.clone(),
            })?;
        if tensor.dims() != var.dims() {
            return Err(ExportError::TensorShape {
                path: origin.to_string(),
                tensor: name.clone(),
                found: tensor.dims().to_vec(),
                expected: var.dims().to_vec(),
            });
        }
        let set = tensor
            .to_dtype(DType::F32)
            .and_then(|t| t.to_device(var.device()))
            .and_then(|t| var.set(&t));
        set.map_err(|e| ExportError::Safetensors {
            path: origin.to_string(),
            message: format!("tensor {name}: {e}"),
        })?;
    }
    Ok(())
}
