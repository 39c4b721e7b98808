//! Questions asked of a trained design (Houlsby et al., 2019): which layers' modules carry the
//! result ([`layers`]: every contiguous span switched off, as a table, CSV and heat map), and
//! how fragile it is ([`noise`]: accuracy under Gaussian noise on the module tensors); and how
//! much its initialisation matters ([`init`]: the design retrained over a sweep of init stds).

pub mod init;
mod init_report;
pub mod layers;
pub mod noise;
pub mod subject;

pub use layers::{layer_ablation, LayerAblation};
pub use noise::{noise_sweep, NoiseSweep};

use crate::error::io_err;
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum AnalyseError {
    /// The task's classes are not the ones the head was trained on: its logits would be read
    /// against the wrong names.
    #[error(
        "{analysed} was trained on classes {trained:?}, but task {task} has classes {found:?}: \
         pass the task it was trained on (with its text and label columns for a data file)"
    )]
    LabelMismatch {
        analysed: String,
        task: String,
        trained: Vec<String>,
        found: Vec<String>,
    },
    #[error(
        "stds: {value} is not a usable initial standard deviation (it must be finite and > 0)"
    )]
    BadStd { value: f64 },
    #[error("stds: give at least one standard deviation")]
    NoStds,
    #[error("seeds must be at least 1")]
    NoSeeds,
}

/// Writes `<stem>.md`, `<stem>.csv` and `<stem>.svg` into `dir`; returns the Markdown path.
fn write_outputs(
    dir: &Path,
    stem: &str,
    md: String,
    csv: String,
    svg: String,
) -> crate::Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
    for (ext, text) in [("md", md), ("csv", csv), ("svg", svg)] {
        let path = dir.join(format!("{stem}.{ext}"));
        std::fs::write(&path, text).map_err(io_err(format!("writing {}", path.display())))?;
    }
    Ok(dir.join(format!("{stem}.md")))
}
