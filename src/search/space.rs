//! The search-space RON format: module slots, each a list of options with choices per design
//! dimension, parsed with `file:line:col` errors and validated with errors naming slot/option/field.

use super::error::SearchError;
pub use super::rate::LrChoice;
pub use crate::methods::bottleneck::BottleneckChoice;
pub use crate::methods::lora::{AlphaChoice, LoraChoice};
pub use crate::methods::prefix::PrefixChoice;
pub use crate::methods::registry::FormChoice;
use crate::spec::{parse_ron, BackbonePart, Composition, Init, Insertion, Layers, Site, SpecError};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// A search space: the designs it holds are one module group per slot (or none where the slot is
/// optional), the choices of each dimension taken independently, plus one `unfreeze` choice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchSpace {
    /// Names the space; sampled designs are named `<name>-<first 8 hex of their canonical hash>`.
    /// Letters, digits, `_` and `-`.
    pub name: String,
    /// The module slots, in order. Slot names must be unique; a design holds at least one module.
    pub slots: Vec<Slot>,
    /// Choices of backbone parts trained alongside the modules; each choice is a set, `[]` trains
    /// none. Default `[[]]`.
    #[serde(default = "no_unfreeze")]
    pub unfreeze: Vec<Vec<BackbonePart>>,
    /// Choices of the learning rate written into each design; empty (the default) writes none, so
    /// the trainer's default or `--lr` applies. A design whose modules' options choose a rate
    /// (`ModuleOption::learning_rate`) takes that one instead.
    #[serde(default)]
    pub learning_rate: Vec<f64>,
}

/// One place for a group of modules: at most one of its options is used per design.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slot {
    /// Names the slot's modules: `<slot>` for a single site, `<slot>.<site>` for a site set.
    /// Letters, digits and `_` (no `.`, which separates the site).
    pub name: String,
    /// Whether "no module here" is a choice, drawn as often as each option. Default `false`.
    #[serde(default)]
    pub optional: bool,
    /// The alternatives for this slot; at least one.
    pub options: Vec<ModuleOption>,
}

/// One alternative of a slot: a functional form and the choices of every other dimension. A design
/// takes one value per list (one site set, one insertion, …); one width serves every site of the set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleOption {
    /// The functional form and its own parameter choices.
    pub form: FormChoice,
    /// Site-set choices: each inner list is one choice, producing one module per site (`[[Query,
    /// Value]]` is LoRA on W_q and W_v as a single choice). Sites within a set must differ.
    pub sites: Vec<Vec<Site>>,
    /// Insertion choices. Default `[Parallel]`; prefixes and LoRA allow only `Parallel`, IA³ only
    /// `Sequential`.
    #[serde(default = "parallel_only")]
    pub insertion: Vec<Insertion>,
    /// Composition choices. Default `[Default]` (the form's own composition).
    #[serde(default = "form_default")]
    pub composition: Vec<CompositionChoice>,
    /// The width (bottleneck/rank `r`, prefix length `l`); values the backbone cannot host (wider
    /// than the hidden size, per-head widths not a multiple of the head count) are never proposed.
    /// Required for methods with a width; left out for those without (IA³).
    #[serde(default)]
    pub width: WidthChoice,
    /// Layer-set choices. Default `[All]`.
    #[serde(default = "all_layers")]
    pub layers: Vec<LayerChoice>,
    /// Initialisation choices. Default `[Default]`.
    #[serde(default = "default_init")]
    pub init: Vec<Init>,
    /// Learning-rate choices, `List([…])` or `LogRange(min, max)` (log-uniform). A design trains
    /// with one rate: that of its module from the first slot (in slot order) whose option sets
    /// one; when none does, the space's top-level `learning_rate` choice. Default `Inherit`.
    #[serde(default, skip_serializing_if = "LrChoice::is_inherit")]
    pub learning_rate: LrChoice,
}

/// One composition choice; lists inside expand into one choice per value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CompositionChoice {
    /// The form's own: add for bottlenecks and LoRA, gated for prefixes (writes `None`).
    Default,
    /// `h + Δh`.
    Add,
    /// `h + s·Δh` for each listed fixed `s`.
    Scaled(Vec<f32>),
    /// `h + s·Δh` with `s` learned, for each listed starting value.
    LearnedScale(Vec<f32>),
    /// A learned per-token gate (for prefixes, the attention softmax).
    Gated,
}

/// Width choices.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub enum WidthChoice {
    /// No width: the option's method has a fixed size (IA³). What an option without `width`
    /// means.
    #[default]
    Fixed,
    /// Exactly these widths.
    List(Vec<usize>),
    /// Integers in `min..=max` drawn log-uniformly (each octave equally likely).
    LogRange(usize, usize),
}

/// A layer-set choice, relative to the backbone's layer count `n` where it says so.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum LayerChoice {
    All,
    /// The last ⌈n/2⌉ layers.
    TopHalf,
    /// The first ⌈n/2⌉ layers.
    BottomHalf,
    /// The last `k` layers (all of them when `k ≥ n`).
    Top(usize),
    /// The first `k` layers (all of them when `k ≥ n`).
    Bottom(usize),
    /// Inclusive `first..=last`; skipped on backbones without layer `last`.
    Range(usize, usize),
    /// These layers; skipped on backbones without one of them.
    List(Vec<usize>),
    /// All layers but these; skipped on backbones without one of them.
    AllExcept(Vec<usize>),
}

fn no_unfreeze() -> Vec<Vec<BackbonePart>> {
    vec![vec![]]
}
fn parallel_only() -> Vec<Insertion> {
    vec![Insertion::Parallel]
}
fn form_default() -> Vec<CompositionChoice> {
    vec![CompositionChoice::Default]
}
fn all_layers() -> Vec<LayerChoice> {
    vec![LayerChoice::All]
}
fn default_init() -> Vec<Init> {
    vec![Init::Default]
}

impl LayerChoice {
    /// The design's layer set on an encoder of `n` layers; `None` when the choice does not fit.
    pub fn resolve(&self, n: usize) -> Option<Layers> {
        let half = n.div_ceil(2);
        let layers = match self {
            LayerChoice::All => Layers::All,
            LayerChoice::TopHalf => Layers::Range(n - half, n.checked_sub(1)?),
            LayerChoice::BottomHalf => Layers::Range(0, half.checked_sub(1)?),
            LayerChoice::Top(k) => Layers::Range(n - (*k).min(n), n.checked_sub(1)?),
            LayerChoice::Bottom(k) => Layers::Range(0, (*k).min(n).checked_sub(1)?),
            LayerChoice::Range(a, b) => Layers::Range(*a, *b),
            LayerChoice::List(l) => Layers::List(l.clone()),
            LayerChoice::AllExcept(l) => Layers::AllExcept(l.clone()),
        };
        match layers.resolve(n) {
            Ok(picked) if !picked.is_empty() => Some(layers),
            _ => None,
        }
    }
}

impl ModuleOption {
    /// The composition choices with their value lists expanded (`None` is the form's default).
    pub fn compositions(&self) -> Vec<Option<Composition>> {
        let mut out = Vec::new();
        for c in &self.composition {
            match c {
                CompositionChoice::Default => out.push(None),
                CompositionChoice::Add => out.push(Some(Composition::Add)),
                CompositionChoice::Gated => out.push(Some(Composition::Gated)),
                CompositionChoice::Scaled(v) => {
                    out.extend(v.iter().map(|s| Some(Composition::Scaled(*s))))
                }
                CompositionChoice::LearnedScale(v) => {
                    out.extend(v.iter().map(|s| Some(Composition::LearnedScale(*s))))
                }
            }
        }
        out
    }
}

impl SearchSpace {
    /// Parses and validates a space from RON text; `origin` names the source in errors.
    pub fn from_ron(text: &str, origin: &str) -> Result<SearchSpace, SearchError> {
        let space: SearchSpace = parse_ron(text, origin)?;
        space.validate()?;
        Ok(space)
    }

    pub fn from_file(path: &Path) -> Result<SearchSpace, SearchError> {
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
            path: path.display().to_string(),
            source,
        })?;
        SearchSpace::from_ron(&text, &path.display().to_string())
    }

    /// The backbone-independent rules: non-empty choice lists, usable numbers, and no choice the
    /// form cannot take (a sequential LoRA, a prefix off the attention heads, …). Width and layer
    /// fit depend on the backbone and are handled by the samplers.
    pub fn validate(&self) -> Result<(), SearchError> {
        let err = |location: String, message: String| SearchError::Space {
            space: self.name.clone(),
            location,
            message,
        };
        let top = |field: &str| format!("field `{field}`");
        if !is_name(&self.name, true) {
            let msg = format!("{:?} must be letters, digits, `_` or `-`", self.name);
            return Err(err(top("name"), msg));
        }
        if self.slots.is_empty() {
            return Err(err(top("slots"), "lists no slot".into()));
        }
        if self.unfreeze.is_empty() {
            return Err(err(top("unfreeze"), "lists no choice (write [[]])".into()));
        }
        if let Some(lr) = self
            .learning_rate
            .iter()
            .find(|v| !(v.is_finite() && **v > 0.0))
        {
            let msg = format!("{lr} must be positive and finite");
            return Err(err(top("learning_rate"), msg));
        }
        for (s, slot) in self.slots.iter().enumerate() {
            let at = format!("slot {}", slot.name);
            if !is_name(&slot.name, false) {
                let msg = format!("{:?} must be letters, digits or `_`", slot.name);
                return Err(err(format!("slot {s}: field `name`"), msg));
            }
            if self.slots[..s].iter().any(|o| o.name == slot.name) {
                return Err(err(at, "two slots have this name".into()));
            }
            if slot.options.is_empty() {
                return Err(err(
                    format!("{at}: field `options`"),
                    "lists no option".into(),
                ));
            }
            for (o, option) in slot.options.iter().enumerate() {
                let at = format!("{at}, option {o} ({})", option.form.kind());
                check_option(option)
                    .map_err(|(field, message)| err(format!("{at}: field `{field}`"), message))?;
            }
        }
        Ok(())
    }
}

fn is_name(name: &str, dash: bool) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || (dash && c == '-'))
}

/// A scale, α or std that can train: finite and non-zero.
fn number(field: &'static str, v: f32) -> Result<(), (&'static str, String)> {
    if v.is_finite() && v != 0.0 {
        Ok(())
    } else {
        Err((field, format!("{v} must be finite and non-zero")))
    }
}

/// One option's rules, as (field, message).
fn check_option(o: &ModuleOption) -> Result<(), (&'static str, String)> {
    let empty = |field: &'static str| Err((field, "lists no choice".to_string()));
    let choice = o.form.choice();
    if choice.variants() == 0 {
        return empty("form");
    }
    choice.check()?;
    for (field, len) in [
        ("sites", o.sites.len()),
        ("insertion", o.insertion.len()),
        ("composition", o.compositions().len()),
        ("layers", o.layers.len()),
        ("init", o.init.len()),
    ] {
        if len == 0 {
            return empty(field);
        }
    }
    for (i, set) in o.sites.iter().enumerate() {
        if set.is_empty() {
            return Err(("sites", format!("choice {i} is an empty site set")));
        }
        if set.iter().enumerate().any(|(j, s)| set[..j].contains(s)) {
            return Err(("sites", format!("choice {i} names a site twice")));
        }
        if let Some(m) = set.iter().find_map(|s| choice.refuses_site(*s)) {
            return Err(("sites", m));
        }
        if set.iter().any(|s| !s.takes_parallel()) && o.insertion.contains(&Insertion::Parallel) {
            let m = "FfnActivation takes sequential modules only; drop Parallel".into();
            return Err(("sites", m));
        }
    }
    if let Some(fixed) = choice.fixed_insertion() {
        if let Some(other) = o.insertion.iter().find(|i| **i != fixed) {
            let (kind, fixed) = (o.form.kind(), format!("{fixed:?}").to_lowercase());
            let m = format!("a {kind} is {fixed} only; drop {other:?}");
            return Err(("insertion", m));
        }
    }
    for c in o.compositions().into_iter().flatten() {
        if let Composition::Scaled(s) | Composition::LearnedScale(s) = c {
            number("composition", s)?;
        }
        if let Some(m) = choice.refuses_composition(c) {
            return Err(("composition", m));
        }
    }
    match (&o.width, choice.has_width()) {
        (WidthChoice::Fixed, true) => {
            let m = format!("a {} module needs a width: List or LogRange", o.form.kind());
            return Err(("width", m));
        }
        (WidthChoice::Fixed, false) => {}
        (_, false) => {
            let m = format!("a {} module has no width; drop the field", o.form.kind());
            return Err(("width", m));
        }
        _ => {}
    }
    match &o.width {
        WidthChoice::List(v) if v.is_empty() => return empty("width"),
        WidthChoice::List(v) if v.contains(&0) => {
            return Err(("width", "widths must be at least 1".into()))
        }
        WidthChoice::LogRange(lo, hi) if *lo == 0 || lo > hi => {
            let m = format!("LogRange({lo}, {hi}) needs 1 ≤ min ≤ max");
            return Err(("width", m));
        }
        _ => {}
    }
    check_layers_and_init(o)?;
    o.learning_rate.check().map_err(|m| ("learning_rate", m))
}

/// The layer and init choices' rules.
fn check_layers_and_init(o: &ModuleOption) -> Result<(), (&'static str, String)> {
    for layers in &o.layers {
        let bad = match layers {
            LayerChoice::Top(0) | LayerChoice::Bottom(0) => Some("selects no layer"),
            LayerChoice::Range(a, b) if a > b => Some("Range(first, last) needs first ≤ last"),
            LayerChoice::List(l) if l.is_empty() => Some("List([]) selects no layer"),
            _ => None,
        };
        if let Some(m) = bad {
            return Err(("layers", format!("{layers:?}: {m}")));
        }
    }
    for init in &o.init {
        if let Init::Normal(std) = init {
            number("init", *std)?;
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "space_tests.rs"]
mod tests;
