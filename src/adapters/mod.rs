//! Adapter modules, one file per functional form, and the per-layer plan the encoder consults.

pub mod bottleneck;
pub mod compose;
pub mod init;
pub mod lora;
pub mod prefix;

pub use bottleneck::{Bottleneck, HeadsBottleneck};
pub use compose::Composer;
pub use init::ParamStore;
pub use lora::Lora;
pub use prefix::Prefix;

use candle_core::{Result, Tensor};

/// The `f(z·W_down)·W_up` part of a module, for any form except prefixes.
pub enum Delta {
    Bottleneck(Bottleneck),
    HeadsBottleneck(HeadsBottleneck),
    Lora(Lora),
}

impl Delta {
    pub fn forward(&self, z: &Tensor) -> Result<Tensor> {
        match self {
            Delta::Bottleneck(m) => m.forward(z),
            Delta::HeadsBottleneck(m) => m.forward(z),
            Delta::Lora(m) => m.forward(z),
        }
    }
}

/// One module instance attached at one site of one layer.
pub struct Attached {
    pub label: String,
    pub delta: Delta,
    pub composer: Composer,
}

/// The modules writing to one site: parallel ones read the sublayer input and add; at most one
/// sequential module then reads the (already modified) output.
#[derive(Default)]
pub struct SiteModules {
    pub parallel: Vec<Attached>,
    pub sequential: Option<Attached>,
}

impl SiteModules {
    pub fn is_empty(&self) -> bool {
        self.parallel.is_empty() && self.sequential.is_none()
    }

    /// `h` modified by every module here; `z_parallel` is what parallel modules read.
    pub fn apply(&self, z_parallel: &Tensor, h: Tensor) -> Result<Tensor> {
        let mut out = h;
        for m in &self.parallel {
            let delta = m.delta.forward(z_parallel)?;
            out = m.composer.compose(&out, &delta, z_parallel)?;
        }
        if let Some(m) = &self.sequential {
            let delta = m.delta.forward(&out)?;
            out = m.composer.compose(&out, &delta, &out)?;
        }
        Ok(out)
    }
}

/// Everything a design attaches to one encoder layer.
#[derive(Default)]
pub struct LayerAdapters {
    pub prefix: Option<Prefix>,
    pub query: SiteModules,
    pub key: SiteModules,
    pub value: SiteModules,
    pub heads: SiteModules,
    pub output: SiteModules,
    pub attention: SiteModules,
    pub ffn_in: SiteModules,
    pub ffn_out: SiteModules,
    pub ffn: SiteModules,
}

impl LayerAdapters {
    pub fn is_empty(&self) -> bool {
        self.prefix.is_none()
            && [
                &self.query,
                &self.key,
                &self.value,
                &self.heads,
                &self.output,
                &self.attention,
                &self.ffn_in,
                &self.ffn_out,
                &self.ffn,
            ]
            .iter()
            .all(|s| s.is_empty())
    }
}
