//! IA³ (Liu et al., 2022): learned vectors rescaling a site's value in place — in the paper the
//! keys, the values and the FFN's activation after its nonlinearity.

pub mod peft;

use super::{Building, Built, Fill, Method, MethodChoice, Refusal, WidthKnob};
use crate::backbone::config::BackboneShape;
use crate::sites::{Insertion, Site};
use crate::spec::{Composition, Form, Init, Module};
use candle_core::Result;

/// IA³ as a design writes it: `form: Ia3` with `insertion: Sequential`, one module per site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ia3;

impl Method for Ia3 {
    fn name(&self) -> &'static str {
        "ia3"
    }

    /// One scale per channel of the site: no width to choose.
    fn width(&self) -> Option<WidthKnob> {
        None
    }

    fn with_width(&self, _width: usize) -> Form {
        Form::Ia3
    }

    fn composes(&self) -> bool {
        false
    }

    fn check(&self, module: &Module, _shape: &BackboneShape) -> std::result::Result<(), Refusal> {
        if module.insertion != Insertion::Sequential {
            let why = "IA³ rescales the value at its site (Sequential); Parallel is not defined";
            return Err(Refusal::new("insertion", why));
        }
        if let Some(c) = module.composition {
            let why = format!("IA³ multiplies by its vector; {c:?} is not defined");
            return Err(Refusal::new("composition", why));
        }
        if module.site == Site::AttentionHeads {
            let why =
                "IA³ rescales one tensor; use Projection(Key), Projection(Value) or FfnActivation";
            return Err(Refusal::new("site", why));
        }
        Ok(())
    }

    /// `l` has the width of the value it rescales.
    fn params(&self, _module: &Module, _shape: &BackboneShape, _z: usize, out: usize) -> usize {
        out
    }

    fn build(&self, at: Building<'_>) -> Result<Built> {
        let (_, width) = at.widths();
        let Building {
            module,
            store,
            name,
            ..
        } = at;
        let fill = match module.init {
            // Ones: a fresh module leaves the model unchanged.
            Init::Default => Fill::Const(1.0),
            Init::Normal(std) => Fill::NormalAround(1.0, std),
        };
        Ok(Built::Rescale(store.var(
            &format!("{name}.ia3_l"),
            &[width],
            fill,
        )?))
    }

    fn describe(&self) -> String {
        "IA³ rescaling".into()
    }

    fn join_words(&self, _composition: Composition) -> String {
        "rescaled".into()
    }

    fn sweep_words(&self) -> String {
        "the rescaling vector ~ N(1, std²)".into()
    }

    fn init_words(&self, init: Init) -> String {
        match init {
            Init::Normal(s) => format!("N(1, {s}²)"),
            Init::Default => "ones".into(),
        }
    }
}

/// A search space's IA³ option: `form: Ia3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ia3Choice;

impl MethodChoice for Ia3Choice {
    fn variants(&self) -> usize {
        1
    }

    fn form(&self, _variant: usize, _width: usize) -> Form {
        Form::Ia3
    }

    fn has_width(&self) -> bool {
        false
    }

    fn refuses_site(&self, site: Site) -> Option<String> {
        (site == Site::AttentionHeads).then(|| "IA³ rescales one tensor, not per head".into())
    }

    fn fixed_insertion(&self) -> Option<Insertion> {
        Some(Insertion::Sequential)
    }

    fn refuses_composition(&self, c: Composition) -> Option<String> {
        Some(format!(
            "IA³ multiplies by its vector; {c:?} is not defined"
        ))
    }
}
