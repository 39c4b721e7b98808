//! Questions asked of a trained design (Houlsby et al., 2019): which layers' modules carry the
//! result ([`layers`]: every contiguous span switched off, as a table, CSV and heat map), and
//! how fragile it is ([`noise`]: accuracy under Gaussian noise on the module tensors).

pub mod cli;
pub mod layers;
pub mod noise;

pub use layers::{layer_ablation, LayerAblation};
pub use noise::{noise_sweep, NoiseSweep};
