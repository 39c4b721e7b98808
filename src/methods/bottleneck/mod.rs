//! Bottleneck adapters (Houlsby, Pfeiffer, He et al.'s parallel adapter): `f(z·W_down)·W_up` over
//! the whole hidden state, or one per attention head.

pub mod adapterhub;
mod module;

pub use module::{activate, Bottleneck, HeadsBottleneck};

use super::{pair_fills, Building, Built, Method, MethodChoice, Refusal, WidthKnob};
use crate::backbone::config::BackboneShape;
use crate::sites::{Insertion, Site};
use crate::spec::{Form, Module};
use candle_core::Result;
use serde::{Deserialize, Serialize};

/// The nonlinearity `f` between the two projections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Activation {
    Relu,
    Gelu,
    Silu,
    Tanh,
    Identity,
}

/// A bottleneck module as a design writes it: `Bottleneck(r: 16, activation: Relu)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BottleneckConfig {
    /// The bottleneck width; on `AttentionHeads` it is split evenly across the heads.
    pub r: usize,
    /// The nonlinearity between the projections.
    pub activation: Activation,
}

impl Method for BottleneckConfig {
    fn name(&self) -> &'static str {
        "bottleneck"
    }

    fn width(&self) -> Option<WidthKnob> {
        WidthKnob::new("r", self.r)
    }

    fn with_width(&self, width: usize) -> Form {
        Form::Bottleneck(BottleneckConfig { r: width, ..*self })
    }

    fn width_step(&self, site: Site, shape: &BackboneShape) -> usize {
        // Per-head bottlenecks split their width over the heads.
        if site == Site::AttentionHeads {
            shape.heads
        } else {
            1
        }
    }

    fn check(&self, module: &Module, shape: &BackboneShape) -> std::result::Result<(), Refusal> {
        if module.site == Site::AttentionHeads && !self.r.is_multiple_of(shape.heads) {
            let (r, heads) = (self.r, shape.heads);
            return Err(Refusal::new(
                "form.r",
                format!("a per-head bottleneck splits r={r} across {heads} heads; r must be a multiple of {heads}"),
            ));
        }
        Ok(())
    }

    fn params(&self, module: &Module, shape: &BackboneShape, z: usize, out: usize) -> usize {
        let (d, r, head) = (shape.hidden, self.r, shape.head_dim());
        match (module.site, module.insertion) {
            // One bottleneck per head, width r/heads each: the down-projection reads all of x
            // (parallel) or only that head's output (sequential); each up-projection writes one head.
            (Site::AttentionHeads, Insertion::Parallel) => d * r + r + r * head + d,
            (Site::AttentionHeads, Insertion::Sequential) => head * r + r + r * head + d,
            _ => z * r + r + r * out + out,
        }
    }

    fn build(&self, at: Building<'_>) -> Result<Built> {
        let (z, out) = at.widths();
        let Building {
            module,
            shape,
            store,
            name,
        } = at;
        if module.site == Site::AttentionHeads {
            let dims = (shape.hidden, shape.heads, self.r);
            let parallel = module.insertion == Insertion::Parallel;
            let heads =
                HeadsBottleneck::new(store, name, dims, parallel, self.activation, module.init)?;
            return Ok(Built::Delta(Box::new(heads)));
        }
        let fills = pair_fills(module.init, z);
        let bottleneck = Bottleneck::new(store, name, (z, self.r, out), self.activation, fills)?;
        Ok(Built::Delta(Box::new(bottleneck)))
    }

    fn describe(&self) -> String {
        format!("{:?} bottleneck r={}", self.activation, self.r)
    }

    fn sweep_words(&self) -> String {
        "W_down and W_up ~ N(0, std²), biases zero".into()
    }
}

/// A search space's bottleneck option: `Bottleneck(activations: [Relu, Gelu])`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BottleneckChoice {
    /// The choices of `f`.
    pub activations: Vec<Activation>,
}

impl MethodChoice for BottleneckChoice {
    fn variants(&self) -> usize {
        self.activations.len()
    }

    fn form(&self, variant: usize, width: usize) -> Form {
        Form::Bottleneck(BottleneckConfig {
            r: width,
            activation: self.activations[variant % self.activations.len().max(1)],
        })
    }
}
