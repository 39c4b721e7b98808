//! Parameter-efficient methods, one folder each (as peft keeps its tuners), behind one trait.
//!
//! A method is a functional form of the unified view: its config (the RON under a design's
//! `form:`), the rules a site must meet, its exact cost, the candle modules it builds, its width
//! knob for budget fitting, its words for reports and what it exports to. Everything else —
//! which point a site reads and writes ([`crate::sites`]), composition, the per-layer plan the
//! encoder consults, the parameter store — is shared machinery here.
//!
//! Adding a method: a folder `src/methods/<name>/` implementing [`Method`] (and [`MethodChoice`]
//! for search spaces), one variant in [`crate::spec::Form`], one in [`registry::FormChoice`], and
//! their arms in [`registry`].

pub mod bottleneck;
pub mod compose;
pub mod fit;
pub mod ia3;
pub mod lora;
pub mod plan;
pub mod prefix;
pub mod registry;
pub mod store;

pub use compose::Composer;
pub use plan::{Attached, Join, LayerPlan, LayerPrefix, SiteModules};
pub use registry::{FormChoice, METHODS};
pub use store::{Fill, ParamStore};

use crate::backbone::config::BackboneShape;
use crate::sites::{Insertion, Site, Wiring};
use crate::spec::{Composition, Form, Init, Module};
use candle_core::{Result, Tensor};

/// A design rule a module breaks: the field at fault and why (the graph adds the module's name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub field: &'static str,
    pub message: String,
}

impl Refusal {
    /// A refusal of `field` with `message`.
    pub fn new(field: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            field,
            message: message.into(),
        }
    }
}

/// The width knob of a method: the config field that holds it and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WidthKnob {
    pub field: &'static str,
    pub value: usize,
}

impl WidthKnob {
    /// The knob `field` at `value`.
    pub fn new(field: &'static str, value: usize) -> Option<WidthKnob> {
        Some(WidthKnob { field, value })
    }
}

/// A claim a module makes on a site of a layer that no second module may make there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    /// Modules making claims of the same kind on the same site and layer conflict.
    pub kind: &'static str,
    /// Why, in words, for the error.
    pub why: &'static str,
}

/// One instance being built: its module, the backbone's shape, the store its tensors go in and
/// their name prefix (`<label>.layer<i>`).
pub struct Building<'a> {
    pub module: &'a Module,
    pub shape: &'a BackboneShape,
    pub store: &'a mut ParamStore,
    pub name: &'a str,
}

impl Building<'_> {
    /// The widths the module reads and writes.
    pub fn widths(&self) -> (usize, usize) {
        let wiring = self.module.wiring();
        (
            self.shape.width(wiring.z_width),
            self.shape.width(wiring.out_width),
        )
    }
}

/// What a method builds for one layer.
pub enum Built {
    /// `Δh = f(z)`, joined to `h` by the module's composition.
    Delta(Box<dyn Delta>),
    /// `h ⊙ l`: a learned vector rescaling the site's value in place.
    Rescale(Tensor),
    /// Learned keys and values prepended to the layer's attention.
    Prefix(prefix::Prefix),
}

/// The `f(z·W_down)·W_up` part of a module.
pub trait Delta: Send + Sync {
    /// `Δh` for `z` (b, t, z width).
    fn forward(&self, z: &Tensor) -> Result<Tensor>;
    /// The update as one matrix (out, in) added to the projection it sits on, where the module
    /// is linear in `z` (LoRA's `s·B·A`); `None` otherwise.
    fn merged_weight(&self) -> Option<Result<Tensor>> {
        None
    }
    /// The module as `s·(f(z·Aᵀ + a)·Bᵀ + b)` where it has that form (LoRA, whole-site
    /// bottlenecks): what lets a pack run one batched product for all its designs at a site.
    fn low_rank(&self) -> Option<LowRank<'_>> {
        None
    }
}

/// A module's tensors in the form `s·(f(z·Aᵀ + a)·Bᵀ + b)`, borrowed from the module.
pub struct LowRank<'a> {
    /// `A`: (r, in).
    pub down: &'a Tensor,
    /// `a`: (r,), if the module has one.
    pub down_bias: Option<&'a Tensor>,
    /// `B`: (out, r).
    pub up: &'a Tensor,
    /// `b`: (out,), if the module has one.
    pub up_bias: Option<&'a Tensor>,
    /// `f`.
    pub activation: bottleneck::Activation,
    /// `s`.
    pub scale: f64,
}

/// One functional form of the unified space.
pub trait Method {
    /// The registry name (`bottleneck`, `lora`, `prefix`, `ia3`).
    fn name(&self) -> &'static str;
    /// The width knob, `None` for a method of fixed size.
    fn width(&self) -> Option<WidthKnob>;
    /// The same method at width `width` (LoRA keeps its `α/r` scale). A fixed-size method
    /// returns itself.
    fn with_width(&self, width: usize) -> Form;
    /// The step between legal widths of a module at `site` (per-head bottlenecks: the heads).
    fn width_step(&self, _site: Site, _shape: &BackboneShape) -> usize {
        1
    }
    /// The composition used when a module writes none.
    fn default_composition(&self) -> Composition {
        Composition::Add
    }
    /// Whether `h` and `Δh` are joined by a composition (its gate or scale then counts); prefixes
    /// and rescaling vectors join in their own way.
    fn composes(&self) -> bool {
        true
    }
    /// The method's own rules for `module` on `shape` (sites, insertion, numbers), checked
    /// after the shared ones (width bounds, layers, names).
    fn check(&self, module: &Module, shape: &BackboneShape) -> std::result::Result<(), Refusal>;
    /// The claim a module of this method makes on its site, if any.
    fn claim(&self, insertion: Insertion) -> Option<Claim> {
        (insertion == Insertion::Sequential).then_some(Claim {
            kind: "sequential",
            why: "two sequential modules on one output have no defined order",
        })
    }
    /// Where a module of this method at `site` reads and writes.
    fn wiring(&self, site: Site, insertion: Insertion) -> Wiring {
        Wiring::of(site, insertion)
    }
    /// Trainable parameters of one instance, composition excluded; `z` and `out` are the widths
    /// read and written.
    fn params(&self, module: &Module, shape: &BackboneShape, z: usize, out: usize) -> usize;
    /// Creates one instance's tensors in `at.store` under `at.name`.
    fn build(&self, at: Building<'_>) -> Result<Built>;
    /// The form in words (`LoRA r=8 α=16`).
    fn describe(&self) -> String;
    /// How a module's insertion reads in its description (`parallel `).
    fn insertion_words(&self, insertion: Insertion) -> String {
        format!("{insertion:?} ").to_lowercase()
    }
    /// How a module's composition reads in its description (`scale 4`).
    fn join_words(&self, composition: Composition) -> String {
        match composition {
            Composition::Add => "add".to_string(),
            Composition::Scaled(s) => format!("scale {s}"),
            Composition::LearnedScale(s) => format!("learned scale from {s}"),
            Composition::Gated => "gated".to_string(),
        }
    }
    /// What `Init::Normal(std)` sets, in words (the init sweep of `pets analyse`).
    fn sweep_words(&self) -> String;
    /// What a module of this method starts from under `init`, in words.
    fn init_words(&self, init: Init) -> String {
        match init {
            Init::Normal(s) => format!("N(0, {s}²)"),
            Init::Default => "down Kaiming-uniform, up zero".into(),
        }
    }
    /// LoRA's `(r, α)` where the method is a low-rank update of one matrix (merging, PEFT).
    fn low_rank(&self) -> Option<(usize, f32)> {
        None
    }
}

/// A method's option in a search space: the choices of its own parameters.
pub trait MethodChoice {
    /// How many values the method's own parameter takes (activations, α values, MLP widths);
    /// 1 for a method without one.
    fn variants(&self) -> usize;
    /// The concrete form for one variant index (taken modulo the count) and a width.
    fn form(&self, variant: usize, width: usize) -> Form;
    /// Whether variant `variant` makes `form` (at `form`'s own width).
    fn makes(&self, variant: usize, form: &Form) -> bool {
        let width = form.method().width().map_or(0, |w| w.value);
        self.form(variant, width) == *form
    }
    /// The option's backbone-independent rules on the method's own choices, as (field, message).
    fn check(&self) -> std::result::Result<(), (&'static str, String)> {
        Ok(())
    }
    /// Whether the method has a width knob (the option then needs a `width`).
    fn has_width(&self) -> bool {
        true
    }
    /// Why the method cannot sit at `site`, if it cannot (space validation).
    fn refuses_site(&self, _site: Site) -> Option<String> {
        None
    }
    /// The insertion the method is fixed to, if any (space validation).
    fn fixed_insertion(&self) -> Option<Insertion> {
        None
    }
    /// Why the method cannot take composition `c`, if it cannot (space validation).
    fn refuses_composition(&self, _c: Composition) -> Option<String> {
        None
    }
}

/// What an `Init` makes of a (down, up) pair: Kaiming-uniform down and zero up by default (a
/// fresh module leaves the model unchanged), N(0, std²) for both otherwise.
pub fn pair_fills(init: Init, fan_in: usize) -> (Fill, Fill) {
    match init {
        // Kaiming-uniform with a=√5 (torch's Linear default) gives bound 1/√fan_in.
        Init::Default => (Fill::Uniform(1.0 / (fan_in as f32).sqrt()), Fill::Zeros),
        Init::Normal(std) => (Fill::Normal(std), Fill::Normal(std)),
    }
}

/// `x·Wᵀ + b` over the last dim for trainable weights: one fused node on CPU/F32 (dx, dW, db
/// from a single backward), leading dims flattened into one matmul.
pub fn affine(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    crate::backbone::ops::affine(x, weight, bias)
}

impl Module {
    /// The method of this module's form.
    pub fn method(&self) -> &dyn Method {
        self.form.method()
    }

    /// Where this module reads and writes.
    pub fn wiring(&self) -> Wiring {
        self.method().wiring(self.site, self.insertion)
    }
}
