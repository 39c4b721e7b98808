//! RON types for one design of the unified space: a union of modules, each a point on the
//! functional-form, insertion, modified-representation, composition and width dimensions.

pub use crate::methods::bottleneck::{Activation, BottleneckConfig};
pub use crate::methods::lora::LoraConfig;
pub use crate::methods::prefix::PrefixConfig;
pub use crate::sites::{BackbonePart, Insertion, Projection, Site};
use serde::{Deserialize, Serialize};
use std::path::Path;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum SpecError {
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("cannot read design {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// One design: the modules joined to the frozen encoder, plus backbone parts left trainable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Design {
    pub name: String,
    #[serde(default)]
    pub modules: Vec<Module>,
    /// Backbone tensors trained alongside the modules (Houlsby trains the layer norms; BitFit the
    /// biases; full fine-tuning everything).
    #[serde(default)]
    pub unfreeze: Vec<BackbonePart>,
    /// The learning rate this design trains best with (full fine-tuning wants far less than
    /// adapters); `pets train --lr` overrides it. Positive and finite.
    #[serde(default, deserialize_with = "positive_learning_rate")]
    pub learning_rate: Option<f64>,
}

/// Whether a learning rate can train: positive and finite (0, negatives, NaN and ∞ cannot).
pub fn is_usable_learning_rate(lr: f64) -> bool {
    lr.is_finite() && lr > 0.0
}

/// `learning_rate` as written, refused at its line and column unless usable.
fn positive_learning_rate<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let lr = Option::<f64>::deserialize(d)?;
    match lr {
        Some(v) if !is_usable_learning_rate(v) => Err(serde::de::Error::custom(format!(
            "learning_rate {v}: expected a positive, finite learning rate"
        ))),
        _ => Ok(lr),
    }
}

/// One module: `Δh = f(z·W_down)·W_up` (or a prefix), read from `z` and joined to `h` at a site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Module {
    /// A short label used in tensor names and reports; defaults to `m<index>`.
    #[serde(default)]
    pub name: Option<String>,
    pub form: Form,
    /// The representation the module modifies.
    pub site: Site,
    #[serde(default)]
    pub insertion: Insertion,
    /// `None` takes the form's own: add for bottlenecks and LoRA (LoRA always scales by α/r),
    /// gated for prefixes (the gate is the attention mass on the prefix).
    #[serde(default)]
    pub composition: Option<Composition>,
    #[serde(default)]
    pub layers: Layers,
    #[serde(default)]
    pub init: Init,
}

/// The functional form `f` and its width knob: one variant per method, each holding that
/// method's config (`src/methods/<name>/`). RON writes a config inside its variant without extra
/// parentheses: `Lora(r: 8, alpha: 16.0)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Form {
    Bottleneck(BottleneckConfig),
    Lora(LoraConfig),
    Prefix(PrefixConfig),
    /// IA³ rescaling vectors: sequential, one module per rescaled site.
    Ia3,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Composition {
    /// `h + Δh`
    Add,
    /// `h + s·Δh` with fixed `s`
    Scaled(f32),
    /// `h + s·Δh` with `s` trained, starting at the given value
    LearnedScale(f32),
    /// `h + λ·Δh`, `λ = σ(z·w_g + b_g)` per token (UniPELT's gate; for a prefix, the attention
    /// softmax itself gates as `(1−λ)h + λΔh`)
    Gated,
}

/// Which encoder layers get the module (0-based).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Layers {
    #[default]
    All,
    /// Inclusive range `first..=last`.
    Range(usize, usize),
    List(Vec<usize>),
    AllExcept(Vec<usize>),
}

impl Layers {
    /// The selected layer indices, in order, for an encoder of `count` layers; indices out of
    /// range are returned in `Err` for the caller to report.
    pub fn resolve(&self, count: usize) -> Result<Vec<usize>, usize> {
        let picked: Vec<usize> = match self {
            Layers::All => (0..count).collect(),
            Layers::Range(first, last) => (*first..=*last).collect(),
            Layers::List(list) => {
                let mut list = list.clone();
                list.sort_unstable();
                list.dedup();
                list
            }
            Layers::AllExcept(skip) => (0..count).filter(|i| !skip.contains(i)).collect(),
        };
        let out_of_range = match self {
            Layers::AllExcept(skip) => skip.iter().copied().find(|&i| i >= count),
            _ => picked.iter().copied().find(|&i| i >= count),
        };
        match out_of_range {
            Some(i) => Err(i),
            None => Ok(picked),
        }
    }
}

/// Initialisation of a module's weights.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub enum Init {
    /// Down-projections Kaiming-uniform, up-projections zero (a fresh design is the frozen
    /// model exactly); prefixes N(0, 0.02²).
    #[default]
    Default,
    /// Every weight N(0, std²), biases zero (Houlsby's near-identity init uses a small std).
    Normal(f32),
}

impl Design {
    /// Parses a design from RON text; `origin` names the source in errors.
    pub fn from_ron(text: &str, origin: &str) -> Result<Design, SpecError> {
        parse_ron(text, origin)
    }

    pub fn from_file(path: &Path) -> Result<Design, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Design::from_ron(&text, &path.display().to_string())
    }

    pub fn to_ron(&self) -> String {
        let config = ron::ser::PrettyConfig::new().struct_names(true);
        ron_options()
            .to_string_pretty(self, config)
            .unwrap_or_else(|e| format!("/* {e} */"))
    }

    /// Each module's label: its `name`, else `m<index>`.
    pub fn module_label(&self, index: usize) -> String {
        self.modules
            .get(index)
            .and_then(|m| m.name.clone())
            .unwrap_or_else(|| format!("m{index}"))
    }
}

/// The RON dialect of designs and spaces: a method's config sits inside its `Form` variant
/// without a second pair of parentheses, read and written alike.
pub fn ron_options() -> ron::Options {
    ron::Options::default()
        .with_default_extension(ron::extensions::Extensions::UNWRAP_VARIANT_NEWTYPES)
}

/// A preset shipped in `search_spaces/presets/` (tests).
#[cfg(test)]
pub(crate) fn shipped_preset(name: &str) -> Design {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("search_spaces/presets")
        .join(format!("{name}.ron"));
    Design::from_file(&path).expect("shipped preset parses")
}

pub fn parse_ron<T: serde::de::DeserializeOwned>(text: &str, origin: &str) -> Result<T, SpecError> {
    ron_options()
        .from_str(text)
        .map_err(|e: ron::error::SpannedError| SpecError::Parse {
            path: origin.to_string(),
            line: e.span.start.line,
            column: e.span.start.col,
            message: e.code.to_string(),
        })
}

/// RON parsing shared by designs and search spaces, with `file:line:column` errors.
/// The type name a RON text starts with (`Design`, `SearchSpace`, `Plan`), after whitespace,
/// comments and `#![enable(…)]` attributes; `None` when it starts with something else.
pub fn ron_type_name(text: &str) -> Option<&str> {
    let mut rest = text;
    loop {
        rest = rest.trim_start();
        if let Some(line) = rest.strip_prefix("//") {
            rest = line.split_once('\n').map_or("", |(_, after)| after);
        } else if let Some(block) = rest.strip_prefix("/*") {
            rest = block.split_once("*/").map_or("", |(_, after)| after);
        } else if let Some(attribute) = rest.strip_prefix("#!") {
            rest = attribute.split_once(']').map_or("", |(_, after)| after);
        } else {
            break;
        }
    }
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    (end > 0).then(|| &rest[..end])
}

impl Form {
    /// The width knob's value (bottleneck or rank `r`, prefix length `l`); 0 for a method of
    /// fixed size.
    pub fn width(&self) -> usize {
        self.method().width().map_or(0, |w| w.value)
    }

    /// The method's registry name.
    pub fn kind(&self) -> &'static str {
        self.method().name()
    }
}

impl Module {
    /// The composition actually used: the explicit one, else the method's default.
    pub fn effective_composition(&self) -> Composition {
        self.composition
            .unwrap_or_else(|| self.method().default_composition())
    }

    /// One line in words, for tables and reports.
    pub fn describe(&self) -> String {
        let method = self.method();
        let site = match self.site {
            Site::Projection(p) => format!("{p:?}"),
            s => format!("{s:?}"),
        };
        let layers = match &self.layers {
            Layers::All => String::new(),
            other => format!(", layers {other:?}"),
        };
        format!(
            "{}{} on {site}, {}{layers}",
            method.insertion_words(self.insertion),
            method.describe(),
            method.join_words(self.effective_composition()),
        )
    }
}

#[cfg(test)]
#[path = "spec_tests.rs"]
mod tests;
