//! Prefix tuning (Li & Liang, 2021): learned keys and values prepended to every head's attention,
//! trained directly or through a reparameterising MLP.

pub mod adapterhub;
mod module;

pub use module::{Prefix, PrefixParams};

use super::{Building, Built, Claim, Method, MethodChoice, Refusal, WidthKnob};
use crate::backbone::config::BackboneShape;
use crate::sites::{Insertion, Point, Site, Width, Wiring};
use crate::spec::{Composition, Form, Init, Module};
use candle_core::Result;
use serde::{Deserialize, Serialize};

/// A prefix as a design writes it: `Prefix(l: 30)` or `Prefix(l: 30, reparam: Some(512))`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrefixConfig {
    /// Learned key/value vectors per layer and head.
    pub l: usize,
    /// `Some(m)` trains them through a per-layer MLP of hidden width `m` (Li & Liang), whose
    /// parameters then count as trainable.
    #[serde(default)]
    pub reparam: Option<usize>,
}

impl Method for PrefixConfig {
    fn name(&self) -> &'static str {
        "prefix"
    }

    fn width(&self) -> Option<WidthKnob> {
        WidthKnob::new("l", self.l)
    }

    fn with_width(&self, width: usize) -> Form {
        Form::Prefix(PrefixConfig { l: width, ..*self })
    }

    /// The gate is the attention mass on the prefix.
    fn default_composition(&self) -> Composition {
        Composition::Gated
    }

    fn composes(&self) -> bool {
        false
    }

    fn check(&self, module: &Module, shape: &BackboneShape) -> std::result::Result<(), Refusal> {
        if module.site != Site::AttentionHeads {
            let why = format!(
                "a prefix modifies per-head attention (AttentionHeads), not {:?}",
                module.site
            );
            return Err(Refusal::new("site", why));
        }
        if module.insertion == Insertion::Sequential {
            let why = "a prefix is parallel by nature (it attends from the sublayer input); Sequential is not defined";
            return Err(Refusal::new("insertion", why));
        }
        if let Some(c) = module.composition.filter(|c| *c != Composition::Gated) {
            let why = format!("a prefix is gated by the attention softmax; {c:?} is not defined");
            return Err(Refusal::new("composition", why));
        }
        match self.reparam {
            Some(0) => Err(Refusal::new("form.reparam", "width must be at least 1")),
            // Bounded: an unbounded MLP would overflow the accounting and ask for any memory.
            Some(m) if m > shape.ffn => Err(Refusal::new(
                "form.reparam",
                format!("width {m} is wider than the FFN size {}", shape.ffn),
            )),
            _ => Ok(()),
        }
    }

    fn claim(&self, _insertion: Insertion) -> Option<Claim> {
        Some(Claim {
            kind: "prefix",
            why: "two prefixes in one layer",
        })
    }

    /// A prefix joins the attention of the layer's queries and writes the heads' outputs.
    fn wiring(&self, _site: Site, _insertion: Insertion) -> Wiring {
        Wiring {
            reads: Point::Query,
            writes: Point::Heads,
            z_width: Width::Hidden,
            out_width: Width::Hidden,
        }
    }

    fn params(&self, _module: &Module, shape: &BackboneShape, _z: usize, _out: usize) -> usize {
        let (d, l) = (shape.hidden, self.l);
        match self.reparam {
            None => 2 * l * d,
            // Saturating: a space may offer any MLP width, and its cost is computed (to be
            // rejected as over budget) before validation bounds it.
            Some(m) => (l * d + 2 * d).saturating_add(m.saturating_mul(3 * d + 1)),
        }
    }

    fn build(&self, at: Building<'_>) -> Result<Built> {
        let Building {
            module,
            shape,
            store,
            name,
        } = at;
        let dims = (shape.hidden, shape.heads, self.l);
        let prefix = Prefix::new(store, name, dims, self.reparam, module.init)?;
        Ok(Built::Prefix(prefix))
    }

    fn describe(&self) -> String {
        match self.reparam {
            Some(m) => format!("prefix l={} (MLP {m})", self.l),
            None => format!("prefix l={}", self.l),
        }
    }

    /// A prefix attends from the sublayer input whatever the field says.
    fn insertion_words(&self, _insertion: Insertion) -> String {
        String::new()
    }

    fn sweep_words(&self) -> String {
        match self.reparam {
            None => "prefix keys and values ~ N(0, std²)".into(),
            Some(_) => "the reparameterising MLP's output weight ~ N(0, std²), biases zero (its \
                        embedding N(0, 1) and first layer Kaiming-uniform as always)"
                .into(),
        }
    }

    fn init_words(&self, init: Init) -> String {
        match (init, self.reparam) {
            (Init::Normal(s), _) => format!("N(0, {s}²)"),
            (Init::Default, None) => "N(0, 0.02²)".into(),
            (Init::Default, Some(_)) => "output weight N(0, 0.02²)".into(),
        }
    }
}

/// A search space's prefix option: `Prefix(reparam: [None, Some(64)])`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrefixChoice {
    /// The reparameterisation choices (`None`, or `Some(m)` for an MLP of width `m`). Default
    /// `[None]`.
    #[serde(default = "no_reparam")]
    pub reparam: Vec<Option<usize>>,
}

fn no_reparam() -> Vec<Option<usize>> {
    vec![None]
}

impl MethodChoice for PrefixChoice {
    fn variants(&self) -> usize {
        self.reparam.len()
    }

    fn form(&self, variant: usize, width: usize) -> Form {
        Form::Prefix(PrefixConfig {
            l: width,
            reparam: self.reparam[variant % self.reparam.len().max(1)],
        })
    }

    fn check(&self) -> std::result::Result<(), (&'static str, String)> {
        if self.reparam.contains(&Some(0)) {
            return Err(("form.reparam", "Some(0): an MLP needs a width ≥ 1".into()));
        }
        Ok(())
    }

    fn refuses_site(&self, site: Site) -> Option<String> {
        (site != Site::AttentionHeads)
            .then(|| format!("a prefix modifies AttentionHeads only, not {site:?}"))
    }

    fn fixed_insertion(&self) -> Option<Insertion> {
        Some(Insertion::Parallel)
    }

    fn refuses_composition(&self, c: Composition) -> Option<String> {
        (c != Composition::Gated)
            .then(|| format!("a prefix is gated by the attention softmax; {c:?} is not defined"))
    }
}
