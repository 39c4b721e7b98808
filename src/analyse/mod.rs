//! Questions asked of a trained design (Houlsby et al., 2019): which layers' modules carry the
//! result ([`layers`]: every contiguous span switched off, as a table, CSV and heat map).

pub mod cli;
pub mod layers;

pub use layers::{layer_ablation, LayerAblation};
