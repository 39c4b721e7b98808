//! Errors of export, loading and prediction: each names the file, field or tensor at fault.

use std::path::Path;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ExportError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Json { path: String, message: String },
    #[error("{path}: field `{field}`: {reason}")]
    Field {
        path: String,
        field: &'static str,
        reason: String,
    },
    #[error("missing {path} ({what})")]
    MissingFile { path: String, what: String },
    #[error(
        "{path}: format version {found} is newer than this pets reads ({supported}); upgrade pets"
    )]
    FormatVersion {
        path: String,
        found: u32,
        supported: u32,
    },
    #[error("{path} is in PEFT format, for Python's peft; export in pets' own format to predict with pets")]
    PeftFolder { path: String },
    #[error("{path} is in AdapterHub format, for Python's adapters; export in pets' own format to predict with pets")]
    AdaptersFolder { path: String },
    #[error("{path}: not a valid safetensors file (corrupt or truncated?): {message}")]
    Safetensors { path: String, message: String },
    #[error("{path}: tensor {tensor} is missing")]
    MissingTensor { path: String, tensor: String },
    #[error("{path}: unexpected tensor {tensor} (the design has no such parameter)")]
    ExtraTensor { path: String, tensor: String },
    #[error("{path}: tensor {tensor} has shape {found:?}, the design expects {expected:?}")]
    TensorShape {
        path: String,
        tensor: String,
        found: Vec<usize>,
        expected: Vec<usize>,
    },
    #[error("base model {id} is not available: {message}")]
    BaseMissing { id: String, message: String },
    #[error("{what}: {path} has SHA-256 {found}, but the adapter recorded {expected} at export; refusing a mismatched {what}")]
    HashMismatch {
        what: String,
        path: String,
        expected: String,
        found: String,
    },
    #[error("design {design} cannot be {purpose}: module {module}: {reason}")]
    NotLoraOnly {
        design: String,
        module: String,
        purpose: &'static str,
        reason: String,
    },
    /// A module the target format has no exact equivalent for; never approximated.
    #[error("design {design} cannot be exported in {format} format: module {module}: {reason}")]
    NoEquivalent {
        design: String,
        module: String,
        format: &'static str,
        reason: String,
    },
    /// The design trains backbone tensors, for which the format has no slot.
    #[error("design {design} cannot be exported in {format} format: it trains backbone parts {parts} (unfreeze), for which {format} has no slot; export in pets' own format")]
    BackboneTrained {
        design: String,
        format: &'static str,
        parts: String,
    },
    #[error("design {design} cannot be exported in PEFT format: it trains backbone parts {parts} (unfreeze), which a LoRA adapter file cannot carry; export in pets' own format, or merged")]
    UnfrozenBackbone { design: String, parts: String },
    #[error("{out} exists and is not empty; export with `force` to replace it")]
    OutputExists { out: String },
    /// Merging and another ecosystem's layout (PEFT, AdapterHub) were both asked for.
    #[error("a merged export writes a full model, the {format} layout only the adapter's tensors: pick one")]
    MergeAndPeft { format: &'static str },
    /// The study has no trial of that number.
    #[error("study {study} has no trial {trial}")]
    NoTrial { study: String, trial: usize },
    /// The trial's run folder has no tensors (a failed or pruned trial): only retraining helps.
    #[error("trial {trial} of study {study} kept no trained tensors ({folder}); retrain it first")]
    NoTrialTensors {
        study: String,
        trial: usize,
        folder: String,
    },
    /// The training protocol stored with the study does not parse (a store of another pets).
    #[error("study {study}: its stored protocol is unreadable: {message}")]
    Protocol { study: String, message: String },
    #[error(
        "{path} line {line}: label {label:?} is not one of the adapter's labels ({known}){hint}"
    )]
    UnknownLabel {
        path: String,
        line: u64,
        label: String,
        known: String,
        /// How to map the file's labels, when that can be said (starts with `; `).
        hint: String,
    },
}

impl ExportError {
    pub(crate) fn read(path: &Path) -> impl FnOnce(std::io::Error) -> ExportError + '_ {
        move |source| ExportError::Read {
            path: path.display().to_string(),
            source,
        }
    }

    pub(crate) fn write(path: &Path) -> impl FnOnce(std::io::Error) -> ExportError + '_ {
        move |source| ExportError::Write {
            path: path.display().to_string(),
            source,
        }
    }
}
