//! Text-classification datasets: built-in tasks (mr, imdb, bbc, tweets), user CSV/TSV/JSONL, seeded stratified splits.
//! (Owned by the assets/data work; interface below is the contract.)

use thiserror::Error;

#[derive(Debug, Error)]
pub enum DataError {
    #[error("{0}")]
    Message(String),
}

#[derive(Debug, Clone)]
pub struct Example {
    pub text: String,
    pub label: u32,
}

/// A task with its fixed train/dev split.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub name: String,
    pub label_names: Vec<String>,
    pub train: Vec<Example>,
    pub dev: Vec<Example>,
}

#[derive(Debug, Clone)]
pub enum TaskSource {
    Builtin(String),
    File {
        path: std::path::PathBuf,
        text_column: String,
        label_column: String,
    },
}

#[derive(Debug, Clone, Default)]
pub struct SplitOptions;

pub fn load_task(
    _source: &TaskSource,
    _cache: &crate::assets::Cache,
    _options: &SplitOptions,
) -> crate::Result<Dataset> {
    todo!()
}
