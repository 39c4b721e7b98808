//! Exact trainable-parameter accounting of a design on a backbone shape, known before any tensor exists.

use crate::backbone::config::BackboneShape;
use crate::graph::{self, GraphError};
use crate::spec::{Composition, Design, Module};
use serde::Serialize;

/// Trainable parameters one module adds to one layer: its method's tensors, plus a learned
/// scale or gate where the method composes by one.
pub fn module_params_per_layer(module: &Module, shape: &BackboneShape) -> usize {
    let method = module.method();
    let wiring = module.wiring();
    let (z, out) = (shape.width(wiring.z_width), shape.width(wiring.out_width));
    let core = method.params(module, shape, z, out);
    let composition = match module.effective_composition() {
        _ if !method.composes() => 0,
        Composition::LearnedScale(_) => 1,
        Composition::Gated => z + 1,
        Composition::Add | Composition::Scaled(_) => 0,
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
    let graph = graph::validate(design, shape)?;
    let mut modules: Vec<ModuleCost> = design
        .modules
        .iter()
        .enumerate()
        .map(|(i, module)| ModuleCost {
            label: design.module_label(i),
            description: module.describe(),
            per_layer: module_params_per_layer(module, shape),
            layers: 0,
            total: 0,
        })
        .collect();
    // Each instance in the graph is one layer's copy of its module.
    for instance in graph.instances() {
        if let Some(cost) = modules.get_mut(instance.module) {
            cost.layers += 1;
            cost.total += cost.per_layer;
        }
    }
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
    use crate::spec::{
        Activation, BottleneckConfig, Form, Insertion, Layers, LoraConfig, PrefixConfig,
        Projection, Site,
    };

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
        let bottleneck = |r| {
            Form::Bottleneck(BottleneckConfig {
                r,
                activation: Activation::Relu,
            })
        };
        let lora = |r| Form::Lora(LoraConfig { r, alpha: 16.0 });
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
                    Form::Prefix(PrefixConfig {
                        l: 16,
                        reparam: None,
                    }),
                    Site::AttentionHeads,
                    par,
                )],
                2 * 16 * d,
            ),
            (
                "ia3 k,v,ffn",
                vec![
                    module(Form::Ia3, proj(Projection::Key), Insertion::Sequential),
                    module(Form::Ia3, proj(Projection::Value), Insertion::Sequential),
                    module(Form::Ia3, Site::FfnActivation, Insertion::Sequential),
                ],
                2 * d + s.ffn,
            ),
        ];
        // IA³ on minilm-l6: (2·384 + 1536)·6 = 13,824, as Liu et al.'s 2d + d_ffn per layer.
        assert_eq!((2 * d + s.ffn) * s.layers, 13_824);
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
            Form::Bottleneck(BottleneckConfig {
                r: 24,
                activation: Activation::Relu,
            }),
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
            Form::Lora(LoraConfig { r: 8, alpha: 16.0 }),
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
