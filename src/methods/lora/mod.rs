//! LoRA (Hu et al., 2021): a parallel low-rank update `(α/r)·B·A` of one projection.

pub mod adapterhub;
mod module;

pub use module::Lora;

use super::{pair_fills, Building, Built, Claim, Method, MethodChoice, Refusal, WidthKnob};
use crate::backbone::config::BackboneShape;
use crate::sites::{Insertion, Site};
use crate::spec::{Form, Module};
use candle_core::Result;
use serde::{Deserialize, Serialize};

/// A LoRA module as a design writes it: `Lora(r: 8, alpha: 16.0)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraConfig {
    /// The rank.
    pub r: usize,
    /// The update is scaled by `alpha / r`.
    pub alpha: f32,
}

impl Method for LoraConfig {
    fn name(&self) -> &'static str {
        "lora"
    }

    fn width(&self) -> Option<WidthKnob> {
        WidthKnob::new("r", self.r)
    }

    /// Keeps the scale `α/r`, so only the size changes.
    fn with_width(&self, width: usize) -> Form {
        Form::Lora(LoraConfig {
            r: width,
            alpha: self.alpha * width as f32 / self.r.max(1) as f32,
        })
    }

    fn check(&self, module: &Module, _shape: &BackboneShape) -> std::result::Result<(), Refusal> {
        if module.site == Site::AttentionHeads {
            let why = "LoRA is a low-rank update of one matrix; AttentionHeads has none";
            return Err(Refusal::new("site", why));
        }
        if module.insertion == Insertion::Sequential {
            let why = "LoRA reads the projection's input (Parallel); Sequential is not defined";
            return Err(Refusal::new("insertion", why));
        }
        if !(self.alpha.is_finite() && self.alpha != 0.0) {
            let why = format!("{} must be finite and non-zero", self.alpha);
            return Err(Refusal::new("form.alpha", why));
        }
        Ok(())
    }

    fn claim(&self, _insertion: Insertion) -> Option<Claim> {
        Some(Claim {
            kind: "lora",
            why: "two LoRA updates of one matrix",
        })
    }

    fn params(&self, _module: &Module, _shape: &BackboneShape, z: usize, out: usize) -> usize {
        z * self.r + self.r * out
    }

    fn build(&self, at: Building<'_>) -> Result<Built> {
        let (z, out) = at.widths();
        let Building {
            module,
            store,
            name,
            ..
        } = at;
        let fills = pair_fills(module.init, z);
        let lora = Lora::new(store, name, (z, self.r, out), self.alpha, fills)?;
        Ok(Built::Delta(Box::new(lora)))
    }

    fn describe(&self) -> String {
        format!("LoRA r={} α={}", self.r, self.alpha)
    }

    fn sweep_words(&self) -> String {
        "A and B ~ N(0, std²) (so B is no longer zero at the start)".into()
    }

    fn low_rank(&self) -> Option<(usize, f32)> {
        Some((self.r, self.alpha))
    }
}

/// A search space's LoRA option: `Lora(alpha: Ratio([2.0]))`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraChoice {
    /// The choices of α.
    pub alpha: AlphaChoice,
}

/// LoRA's α choices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AlphaChoice {
    /// α = ratio · r, so the scale α/r is the ratio whatever the rank (`Ratio([4.0])`: s = 4).
    Ratio(Vec<f32>),
    /// α fixed, so the scale α/r shrinks as the rank grows (the LoRA paper's convention).
    Fixed(Vec<f32>),
}

impl LoraChoice {
    fn values(&self) -> &[f32] {
        match &self.alpha {
            AlphaChoice::Ratio(v) | AlphaChoice::Fixed(v) => v,
        }
    }
}

impl MethodChoice for LoraChoice {
    fn variants(&self) -> usize {
        self.values().len()
    }

    fn form(&self, variant: usize, width: usize) -> Form {
        let values = self.values();
        let value = values[variant % values.len().max(1)];
        let alpha = match self.alpha {
            AlphaChoice::Ratio(_) => value * width as f32,
            AlphaChoice::Fixed(_) => value,
        };
        Form::Lora(LoraConfig { r: width, alpha })
    }

    /// α compared with a relative tolerance: a ratio times the rank is rounded in f32.
    fn makes(&self, variant: usize, form: &Form) -> bool {
        let Form::Lora(c) = form else { return false };
        match self.form(variant, c.r) {
            Form::Lora(made) => (made.alpha - c.alpha).abs() <= 1e-4 * made.alpha.abs().max(1.0),
            _ => false,
        }
    }

    fn check(&self) -> std::result::Result<(), (&'static str, String)> {
        match self
            .values()
            .iter()
            .find(|a| !(a.is_finite() && **a != 0.0))
        {
            Some(a) => Err(("form.alpha", format!("{a} must be finite and non-zero"))),
            None => Ok(()),
        }
    }

    fn refuses_site(&self, site: Site) -> Option<String> {
        (site == Site::AttentionHeads)
            .then(|| "LoRA updates one matrix; AttentionHeads has none".into())
    }

    fn fixed_insertion(&self) -> Option<Insertion> {
        Some(Insertion::Parallel)
    }
}
