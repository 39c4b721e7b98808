//! Compiles a design by walking its graph: each module instance becomes candle modules in the
//! per-layer plan the encoder consults, with every trainable tensor created in a `ParamStore`.

use crate::backbone::config::BackboneShape;
use crate::graph::{self, GraphError, Instance};
use crate::methods::{Attached, Building, Built, Composer, Join, LayerPlan, ParamStore};
use crate::spec::{Design, Insertion};
use candle_core::Result;

/// The compiled modules of a design, ready for the encoder.
pub struct CompiledDesign {
    pub layers: Vec<LayerPlan>,
}

/// A design that could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error(transparent)]
    Invalid(#[from] GraphError),
    #[error("creating module tensors: {0}")]
    Tensor(#[from] candle_core::Error),
}

/// Validates `design` on `shape` and builds its modules, registering their vars in `store`.
pub fn compile(
    design: &Design,
    shape: &BackboneShape,
    store: &mut ParamStore,
) -> std::result::Result<CompiledDesign, CompileError> {
    let graph = graph::validate(design, shape)?;
    let mut layers: Vec<LayerPlan> = (0..shape.layers).map(|_| LayerPlan::default()).collect();
    for instance in graph.instances() {
        // Validation built the instance from this module, so the index is in range.
        let Some(module) = design.modules.get(instance.module) else {
            continue;
        };
        if let Some(plan) = layers.get_mut(instance.layer) {
            attach(module, instance, shape, store, plan)?;
        }
    }
    Ok(CompiledDesign { layers })
}

fn attach(
    module: &crate::spec::Module,
    instance: &Instance,
    shape: &BackboneShape,
    store: &mut ParamStore,
    plan: &mut LayerPlan,
) -> Result<()> {
    let name = &instance.name;
    let building = Building {
        module,
        shape,
        store,
        name,
    };
    let join = match module.method().build(building)? {
        Built::Prefix(prefix) => {
            plan.prefix = Some(prefix.into());
            return Ok(());
        }
        Built::Rescale(scale) => Join::Rescale(scale),
        Built::Delta(delta) => {
            let z_width = shape.width(module.wiring().z_width);
            let composer = Composer::new(store, name, instance.composition, z_width)?;
            Join::Composed { delta, composer }
        }
    };
    let attached = Attached {
        label: name.clone(),
        join,
    };
    let site = plan.at_mut(instance.site);
    match instance.insertion {
        Insertion::Parallel => site.parallel.push(attached),
        Insertion::Sequential => site.sequential = Some(attached),
    }
    Ok(())
}
