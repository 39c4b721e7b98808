//! `manifest.json` of an exported folder: what base model and tokenizer it needs (by SHA-256),
//! its labels, token limit, metrics and parameter counts; plus the small file helpers around it.

use super::ExportError;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Version of the folder layout this build writes and reads; bumped on incompatible changes.
pub const FORMAT_VERSION: u32 = 1;
/// The file name of the manifest inside an exported folder.
pub const MANIFEST: &str = "manifest.json";
/// `base_model.id` of a merged folder: the weights are in the folder itself.
pub const SELF_CONTAINED: &str = ".";

/// How the folder stores its weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// `design.ron` + `adapter.safetensors` (modules, head, unfrozen backbone parts) on a base model.
    Adapter,
    /// A full model folder with the LoRA updates merged in, plus `head.safetensors`.
    Merged,
    /// Hugging Face PEFT files (`adapter_config.json`, `adapter_model.safetensors`) + `head.safetensors`.
    Peft,
    /// AdapterHub files (`adapter_config.json`, `adapter.safetensors`) + `head.safetensors`.
    Adapters,
}

/// A model folder pinned by the SHA-256 of its `model.safetensors`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseModel {
    /// As the user gave it when training: a known model name or a folder path (`.` = this folder).
    pub id: String,
    pub sha256: String,
}

/// Parameter counts of the exported design, as `pets validate` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamCounts {
    /// Modules + unfrozen backbone tensors, the head excluded.
    pub design: usize,
    pub head: usize,
    /// The encoder as run (no pooler).
    pub backbone: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub pets_version: String,
    pub layout: Layout,
    /// The design's name (the design itself is in `design.ron`).
    pub design: String,
    pub base_model: BaseModel,
    /// For a merged folder: the model the LoRA updates were merged into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_from: Option<BaseModel>,
    /// SHA-256 of the folder's `tokenizer.json`.
    pub tokenizer_sha256: String,
    /// The safetensors file pets loads (`adapter.safetensors` or `head.safetensors`).
    pub tensors: String,
    /// Class names in logit order.
    pub label_names: Vec<String>,
    /// Texts are truncated to this many tokens, special tokens included, as in training.
    pub max_len: usize,
    pub params: ParamCounts,
    /// The run's `metrics.json` (or what the caller passed), kept verbatim.
    pub metrics: serde_json::Value,
}

impl Manifest {
    pub fn read(dir: &Path) -> Result<Manifest, ExportError> {
        let path = dir.join(MANIFEST);
        let manifest: Manifest = read_json(&path)?;
        if manifest.format_version > FORMAT_VERSION {
            return Err(ExportError::FormatVersion {
                path: path.display().to_string(),
                found: manifest.format_version,
                supported: FORMAT_VERSION,
            });
        }
        Ok(manifest)
    }

    pub fn write(&self, dir: &Path) -> Result<(), ExportError> {
        write_json(&dir.join(MANIFEST), self)
    }
}

/// Lower-case hex SHA-256 of a file; errors name the file.
pub fn sha256_file(path: &Path) -> Result<String, ExportError> {
    crate::assets::sha256_file(path).map_err(ExportError::read(path))
}

/// Parses a JSON file into `T`; errors name the file, line and column.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ExportError> {
    let text = std::fs::read_to_string(path).map_err(ExportError::read(path))?;
    serde_json::from_str(&text).map_err(|e| ExportError::Json {
        path: path.display().to_string(),
        message: format!("line {} column {}: {e}", e.line(), e.column()),
    })
}

pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), ExportError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| ExportError::Json {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    write_file(path, text.as_bytes())
}

pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    std::fs::write(path, bytes).map_err(ExportError::write(path))
}

pub fn copy_file(from: &Path, to: &Path) -> Result<(), ExportError> {
    std::fs::copy(from, to)
        .map(|_| ())
        .map_err(ExportError::write(to))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            format_version: FORMAT_VERSION,
            pets_version: "0.1.0".into(),
            layout: Layout::Merged,
            design: "lora-merged".into(),
            base_model: BaseModel {
                id: SELF_CONTAINED.into(),
                sha256: "ab".into(),
            },
            merged_from: Some(BaseModel {
                id: "minilm-l6".into(),
                sha256: "cd".into(),
            }),
            tokenizer_sha256: "ef".into(),
            tensors: "head.safetensors".into(),
            label_names: vec!["0".into(), "1".into()],
            max_len: 64,
            params: ParamCounts {
                design: 1,
                head: 2,
                backbone: 3,
            },
            metrics: serde_json::json!({"accuracy": 0.8}),
        }
    }

    #[test]
    fn round_trips_and_refuses_newer_formats() -> Result<(), ExportError> {
        let dir = std::env::temp_dir().join(format!("pets-manifest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(ExportError::write(&dir))?;
        let mut m = manifest();
        m.write(&dir)?;
        assert_eq!(Manifest::read(&dir)?, m);
        let text = std::fs::read_to_string(dir.join(MANIFEST)).map_err(ExportError::read(&dir))?;
        assert!(text.contains("\"layout\": \"merged\""), "{text}");
        m.format_version = FORMAT_VERSION + 1;
        m.write(&dir)?;
        let err = Manifest::read(&dir).err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("upgrade pets")));
        Ok(())
    }

    #[test]
    fn hashes_files() -> Result<(), ExportError> {
        let path = std::env::temp_dir().join(format!("pets-sha-{}", std::process::id()));
        write_file(&path, b"abc")?;
        assert_eq!(
            sha256_file(&path)?,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        Ok(())
    }
}
