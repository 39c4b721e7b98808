//! A study trial as an export's source: its run folder, kept by the search, or a run retrained
//! at the study's full fidelity (search trials may have trained at a lower one).

use super::ExportError;
use crate::assets::Cache;
use crate::search::store::Storage;
use crate::search::study::{trial_folder_in, Protocol};
use std::path::PathBuf;

/// One trial of a study in a store.
#[derive(Debug, Clone)]
pub struct StudyTrial {
    /// The study store: a SQLite path or a `postgres://` URL.
    pub storage: String,
    /// The study's name.
    pub study: String,
    /// The trial's number (as in the study's `trials.csv`).
    pub trial: usize,
    /// The folder of the study's trial run folders; `None`: the store's default.
    pub trials_dir: Option<PathBuf>,
}

/// The run folder of `t`, ready for [`super::AdapterSource::from_run`]. With `retrain`, the
/// trial's design is first trained again under the study's stored protocol into a folder beside
/// the trial's (`<number>-retrained`), on the CPU.
pub fn trial_run_folder(t: &StudyTrial, retrain: bool, cache: &Cache) -> crate::Result<PathBuf> {
    let storage = Storage::parse(&t.storage)?;
    let store = storage.open()?;
    let id = store.study_id(&t.study)?;
    let row = store
        .trials(id)?
        .into_iter()
        .find(|row| row.number == t.trial)
        .ok_or_else(|| ExportError::NoTrial {
            study: t.study.clone(),
            trial: t.trial,
        })?;
    let trials_dir = t
        .trials_dir
        .clone()
        .unwrap_or_else(|| storage.default_trials_dir());
    let folder = trial_folder_in(&trials_dir, &t.study, t.trial);
    if !retrain {
        if !folder.join("adapter.safetensors").exists() {
            return Err(ExportError::NoTrialTensors {
                study: t.study.clone(),
                trial: t.trial,
                folder: folder.display().to_string(),
            }
            .into());
        }
        return Ok(folder);
    }
    let protocol: Protocol =
        serde_json::from_value(store.settings(id)?).map_err(|e| ExportError::Protocol {
            study: t.study.clone(),
            message: e.to_string(),
        })?;
    let settings = protocol.settings(candle_core::Device::Cpu);
    let task = crate::run::PreparedTask::prepare(&settings, cache)?;
    let out = folder.with_file_name(format!("{}-retrained", t.trial));
    crate::progress::note(&format!(
        "retraining trial {} ({}) at full fidelity into {}",
        t.trial,
        row.design.name,
        out.display()
    ));
    crate::run::train_design(&row.design, &task, &settings, Some(&out))?;
    Ok(out)
}
