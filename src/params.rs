//! Exact trainable-parameter accounting of a design on a backbone shape, known before any tensor exists.

use crate::backbone::config::BackboneShape;
use crate::graph::{self, GraphError};
use crate::spec::{Composition, Design, Form, Insertion, Module, Site};
use serde::Serialize;

/// Widths a module reads (`z`) and writes (`Δh`) at its site.
pub fn io_dims(module: &Module, shape: &BackboneShape) -> (usize, usize) {
    match module.site {
        Site::Projection(p) => {
            let (input, output) = shape.projection_dims(p);
            match module.insertion {
                Insertion::Parallel => (input, output),
                Insertion::Sequential => (output, output),
            }
        }
        Site::Attention | Site::AttentionHeads | Site::Ffn => (shape.hidden, shape.hidden),
    }
}

/// Trainable parameters one module adds to one layer.
pub fn module_params_per_layer(module: &Module, shape: &BackboneShape) -> usize {
    let (z_dim, out_dim) = io_dims(module, shape);
    let d = shape.hidden;
    let core = match &module.form {
        Form::Bottleneck { r, .. } => match (module.site, module.insertion) {
            // One bottleneck per head, width r/heads each: the down-projection reads all of x
            // (parallel) or only that head's output (sequential); each up-projection writes one head.
            (Site::AttentionHeads, Insertion::Parallel) => d * r + r + r * shape.head_dim() + d,
            (Site::AttentionHeads, Insertion::Sequential) => {
                shape.head_dim() * r + r + r * shape.head_dim() + d
            }
            _ => z_dim * r + r + r * out_dim + out_dim,
        },
        Form::Lora { r, .. } => z_dim * r + r * out_dim,
        Form::Prefix { l, reparam: None } => 2 * l * d,
        // Saturating: a space may offer any MLP width, and its cost is computed (to be
        // rejected as over budget) before validation bounds it.
        Form::Prefix {
            l,
            reparam: Some(m),
        } => (l * d + 2 * d).saturating_add(m.saturating_mul(3 * d + 1)),
    };
    let composition = match (&module.form, module.effective_composition()) {
        (Form::Prefix { .. }, _) => 0,
        (_, Composition::LearnedScale(_)) => 1,
        (_, Composition::Gated) => z_dim + 1,
        _ => 0,
    };
    core + composition
}

#[derive(Debug, Clone, Serialize)]
pub struct ModuleCost {
    pub label: String,
    pub description: String,
    pub per_layer: usize,
    pub layers: usize,
    pub total: usize,
}

/// The cost axis of a design: every count pets reports comes from here.
#[derive(Debug, Clone, Serialize)]
pub struct DesignCost {
    pub modules: Vec<ModuleCost>,
    /// Backbone tensors the design unfreezes.
    pub unfrozen: usize,
    /// Modules + unfrozen backbone tensors (the head excluded).
    pub trainable: usize,
    pub head: usize,
    pub backbone: usize,
}

impl DesignCost {
    pub fn percent(&self) -> f64 {
        100.0 * self.trainable as f64 / self.backbone as f64
    }
}

/// Parameters of the classification head (mean pooling → Linear(hidden, classes)).
pub fn head_params(shape: &BackboneShape, classes: usize) -> usize {
    shape.hidden * classes + classes
}

/// Validates the design and counts its trainable parameters.
pub fn design_cost(
    design: &Design,
    shape: &BackboneShape,
    classes: usize,
) -> Result<DesignCost, GraphError> {
    let layer_sets = graph::validate(design, shape)?;
    let modules: Vec<ModuleCost> = design
        .modules
        .iter()
        .zip(&layer_sets)
        .enumerate()
        .map(|(i, (module, layers))| {
            let per_layer = module_params_per_layer(module, shape);
            ModuleCost {
                label: design.module_label(i),
                description: module.describe(),
                per_layer,
                layers: layers.len(),
                total: per_layer * layers.len(),
            }
        })
        .collect();
    let unfrozen = shape.unfrozen_params(&design.unfreeze);
    let trainable = modules.iter().map(|m| m.total).sum::<usize>() + unfrozen;
    Ok(DesignCost {
        modules,
        unfrozen,
        trainable,
        head: head_params(shape, classes),
        backbone: shape.backbone_params(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Activation, Layers, Projection};

    fn shape() -> BackboneShape {
        BackboneShape::MINILM_L6
    }

    fn module(form: Form, site: Site, insertion: Insertion) -> Module {
        Module {
            name: None,
            form,
            site,
            insertion,
            composition: None,
            layers: Layers::All,
            init: Default::default(),
        }
    }

    fn design(modules: Vec<Module>) -> Design {
        Design {
            name: "t".into(),
            modules,
            unfreeze: vec![],
            learning_rate: None,
        }
    }

    /// The formulas of DESIGN.md, per layer: Houlsby `2md+d+m` per adapter, LoRA `4rd` on q and
    /// v and `10rd` on the FFN pair, prefix `2ld`.
    #[test]
    fn counts_match_the_papers_formulas() {
        let s = shape();
        let d = s.hidden;
        let bottleneck = |r| Form::Bottleneck {
            r,
            activation: Activation::Relu,
        };
        let lora = |r| Form::Lora { r, alpha: 16.0 };
        let proj = |p| Site::Projection(p);
        let par = Insertion::Parallel;
        let cases: Vec<(&str, Vec<Module>, usize)> = vec![
            (
                "houlsby m=12",
                vec![
                    module(bottleneck(12), Site::Attention, Insertion::Sequential),
                    module(bottleneck(12), Site::Ffn, Insertion::Sequential),
                ],
                2 * (2 * 12 * d + d + 12),
            ),
            (
                "pfeiffer m=24",
                vec![module(bottleneck(24), Site::Ffn, Insertion::Sequential)],
                2 * 24 * d + d + 24,
            ),
            (
                "lora q,v r=8",
                vec![
                    module(lora(8), proj(Projection::Query), par),
                    module(lora(8), proj(Projection::Value), par),
                ],
                4 * 8 * d,
            ),
            (
                "lora ffn pair r=4",
                vec![
                    module(lora(4), proj(Projection::FfnIn), par),
                    module(lora(4), proj(Projection::FfnOut), par),
                ],
                10 * 4 * d,
            ),
            (
                "prefix l=16",
                vec![module(
                    Form::Prefix {
                        l: 16,
                        reparam: None,
                    },
                    Site::AttentionHeads,
                    par,
                )],
                2 * 16 * d,
            ),
        ];
        for (name, modules, per_layer) in cases {
            let cost = design_cost(&design(modules), &s, 2).unwrap();
            assert_eq!(cost.trainable, per_layer * s.layers, "{name}");
        }
    }

    #[test]
    fn reference_percentages_of_assets_md() {
        // ASSETS.md: LoRA q,v r=8 is 0.33% and scaled PA r=24 0.50% of 22,565,376.
        let s = shape();
        let pa = module(
            Form::Bottleneck {
                r: 24,
                activation: Activation::Relu,
            },
            Site::Ffn,
            Insertion::Parallel,
        );
        let cost = design_cost(&design(vec![pa]), &s, 2).unwrap();
        assert_eq!(cost.trainable, 113_040);
        assert!((cost.percent() - 0.50).abs() < 0.005);
        assert_eq!(cost.head, 770);
    }

    #[test]
    fn gates_and_learned_scales_count() {
        let s = shape();
        let mut m = module(
            Form::Lora { r: 8, alpha: 16.0 },
            Site::Projection(Projection::FfnIn),
            Insertion::Parallel,
        );
        m.composition = Some(Composition::Gated);
        assert_eq!(
            module_params_per_layer(&m, &s),
            8 * 384 + 8 * 1536 + 384 + 1
        );
        m.composition = Some(Composition::LearnedScale(1.0));
        assert_eq!(module_params_per_layer(&m, &s), 8 * 384 + 8 * 1536 + 1);
    }
}
