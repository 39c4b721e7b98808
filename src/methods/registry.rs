//! The registry: every method pets knows, and the dispatch from a design's form (or a search
//! space's form choice) to its method. The only place that matches on every form.

use super::bottleneck::BottleneckChoice;
use super::ia3::{Ia3, Ia3Choice};
use super::lora::LoraChoice;
use super::prefix::PrefixChoice;
use super::{Method, MethodChoice};
use crate::spec::Form;
use serde::{Deserialize, Serialize};

/// The registry names of the methods, in the order reports list them.
pub const METHODS: [&str; 4] = ["bottleneck", "lora", "prefix", "ia3"];

impl Form {
    /// The method this form is a config of.
    pub fn method(&self) -> &dyn Method {
        match self {
            Form::Bottleneck(c) => c,
            Form::Lora(c) => c,
            Form::Prefix(c) => c,
            Form::Ia3 => &Ia3,
        }
    }
}

/// A search space's functional form with the choices of its own parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FormChoice {
    /// A bottleneck `f(z·W_down)·W_up`; `activations` lists the choices of `f`.
    Bottleneck(BottleneckChoice),
    /// LoRA; `alpha` gives the choices of α (the update is scaled by α/r).
    Lora(LoraChoice),
    /// A prefix; `reparam` lists the reparameterisation choices.
    Prefix(PrefixChoice),
    /// IA³ rescaling vectors (no parameters of their own).
    Ia3,
}

impl FormChoice {
    /// The choice's method-side rules and expansions.
    pub fn choice(&self) -> &dyn MethodChoice {
        match self {
            FormChoice::Bottleneck(c) => c,
            FormChoice::Lora(c) => c,
            FormChoice::Prefix(c) => c,
            FormChoice::Ia3 => &Ia3Choice,
        }
    }

    /// How many values the method's own parameter takes.
    pub fn variants(&self) -> usize {
        self.choice().variants()
    }

    /// The concrete form for one variant index and a width.
    pub fn form(&self, variant: usize, width: usize) -> Form {
        self.choice().form(variant, width)
    }

    /// The registry name of the method.
    pub fn kind(&self) -> &'static str {
        match self {
            FormChoice::Bottleneck(_) => "bottleneck",
            FormChoice::Lora(_) => "lora",
            FormChoice::Prefix(_) => "prefix",
            FormChoice::Ia3 => "ia3",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_choice_makes_forms_of_its_own_method_and_the_registry_lists_it() {
        let choices = [
            FormChoice::Bottleneck(BottleneckChoice {
                activations: vec![super::super::bottleneck::Activation::Relu],
            }),
            FormChoice::Lora(LoraChoice {
                alpha: super::super::lora::AlphaChoice::Ratio(vec![2.0]),
            }),
            FormChoice::Prefix(PrefixChoice {
                reparam: vec![None],
            }),
            FormChoice::Ia3,
        ];
        let names: Vec<&str> = choices.iter().map(FormChoice::kind).collect();
        assert_eq!(names, METHODS);
        for c in &choices {
            let form = c.choice().form(0, 8);
            assert!(c.choice().makes(0, &form), "{form:?}");
            assert_eq!(form.method().name(), c.kind());
            assert_eq!(form.method().width().is_some(), c.choice().has_width());
        }
    }
}
