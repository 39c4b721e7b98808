//! The rules a design must meet on a backbone before any tensor exists: the shared ones here
//! (names, widths, numbers, layers, conflicts), each method's own through [`Method::check`].

use super::GraphError;
use crate::backbone::config::BackboneShape;
use crate::sites::{Insertion, Site};
use crate::spec::{Composition, Design, Init};
use std::collections::HashMap;

/// Checks a design against a backbone shape; returns each module's resolved layer list.
pub(super) fn check(design: &Design, shape: &BackboneShape) -> Result<Vec<Vec<usize>>, GraphError> {
    let mut seen_names = HashMap::new();
    let mut layer_sets = Vec::with_capacity(design.modules.len());
    for (i, m) in design.modules.iter().enumerate() {
        let module = design.module_label(i);
        if seen_names.insert(module.clone(), i).is_some() {
            return Err(GraphError::DuplicateName { name: module });
        }
        let method = m.method();
        if let Some(knob) = method.width() {
            let field = knob.field;
            if knob.value == 0 {
                return Err(GraphError::ZeroWidth { module, field });
            }
            if knob.value > shape.hidden {
                let (width, hidden) = (knob.value, shape.hidden);
                return Err(GraphError::TooWide {
                    module,
                    field,
                    width,
                    hidden,
                });
            }
        }
        method.check(m, shape).map_err(|r| GraphError::Rule {
            module: module.clone(),
            field: r.field,
            message: r.message,
        })?;
        if !m.site.takes_parallel() && m.insertion == Insertion::Parallel {
            return Err(GraphError::Rule {
                module,
                field: "insertion",
                message: "FfnActivation takes sequential modules only; a parallel one belongs on Projection(FfnIn)".into(),
            });
        }
        match m.effective_composition() {
            Composition::Scaled(s) | Composition::LearnedScale(s) => {
                check_number(&module, "composition", s)?
            }
            Composition::Add | Composition::Gated => {}
        }
        if let Init::Normal(std) = m.init {
            check_number(&module, "init", std)?;
        }
        let layers =
            m.layers
                .resolve(shape.layers)
                .map_err(|layer| GraphError::LayerOutOfRange {
                    module: module.clone(),
                    layer,
                    count: shape.layers,
                })?;
        if layers.is_empty() {
            return Err(GraphError::NoLayers { module });
        }
        layer_sets.push(layers);
    }
    check_conflicts(design, &layer_sets)?;
    Ok(layer_sets)
}

fn check_number(module: &str, field: &'static str, value: f32) -> Result<(), GraphError> {
    if value.is_finite() && value != 0.0 {
        Ok(())
    } else {
        Err(GraphError::BadNumber {
            module: module.to_string(),
            field,
            value,
        })
    }
}

/// Two modules fight over one site when their order or identity would be ambiguous: two prefixes
/// in a layer, two LoRAs on one matrix, or two sequential modules on one output (each method
/// says which claim it makes). Parallel modules at a site simply add.
fn check_conflicts(design: &Design, layer_sets: &[Vec<usize>]) -> Result<(), GraphError> {
    let mut claims: HashMap<(usize, &'static str, Site), usize> = HashMap::new();
    for (i, m) in design.modules.iter().enumerate() {
        let Some(claim) = m.method().claim(m.insertion) else {
            continue;
        };
        for &layer in &layer_sets[i] {
            let key = (layer, claim.kind, m.site);
            if let Some(&other) = claims.get(&key) {
                return Err(GraphError::Conflict {
                    first: design.module_label(other),
                    second: design.module_label(i),
                    layer,
                    site: format!("{:?}", m.site),
                    why: claim.why,
                });
            }
            claims.insert(key, i);
        }
    }
    Ok(())
}
