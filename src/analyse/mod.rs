//! Questions asked of a trained design (Houlsby et al., 2019): which layers' modules carry the
//! result ([`layers`]: every contiguous span switched off, as a table, CSV and heat map), and
//! how fragile it is ([`noise`]: accuracy under Gaussian noise on the module tensors).

pub mod cli;
pub mod layers;
pub mod noise;

pub use layers::{layer_ablation, LayerAblation};
pub use noise::{noise_sweep, NoiseSweep};

use crate::error::io_err;
use std::path::{Path, PathBuf};

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
