//! Compiles a validated design into candle modules: one `LayerAdapters` plan per encoder layer,
//! with every trainable tensor created in a `ParamStore`.

use crate::adapters::{
    Attached, Bottleneck, Composer, Delta, HeadsBottleneck, LayerAdapters, Lora, ParamStore,
    Prefix, SiteModules,
};
use crate::backbone::config::BackboneShape;
use crate::graph::{self, GraphError};
use crate::params;
use crate::spec::{Design, Form, Insertion, Projection, Site};
use candle_core::Result;

/// The compiled modules of a design, ready for the encoder.
pub struct CompiledDesign {
    pub layers: Vec<LayerAdapters>,
}

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
    let layer_sets = graph::validate(design, shape)?;
    let mut layers: Vec<LayerAdapters> = (0..shape.layers)
        .map(|_| LayerAdapters::default())
        .collect();
    for (index, (module, set)) in design.modules.iter().zip(&layer_sets).enumerate() {
        let label = design.module_label(index);
        for &layer in set {
            let name = format!("{label}.layer{layer}");
            attach(module, shape, store, &name, &mut layers[layer])?;
        }
    }
    Ok(CompiledDesign { layers })
}

fn attach(
    module: &crate::spec::Module,
    shape: &BackboneShape,
    store: &mut ParamStore,
    name: &str,
    layer: &mut LayerAdapters,
) -> Result<()> {
    let (z_dim, out_dim) = params::io_dims(module, shape);
    let delta = match &module.form {
        Form::Prefix { l, reparam } => {
            let dims = (shape.hidden, shape.heads, *l);
            layer.prefix = Some(Prefix::new(store, name, dims, *reparam, module.init)?);
            return Ok(());
        }
        Form::Lora { r, alpha } => Delta::Lora(Lora::new(
            store,
            name,
            (z_dim, *r, out_dim),
            *alpha,
            module.init,
        )?),
        Form::Bottleneck { r, activation } if module.site == Site::AttentionHeads => {
            let dims = (shape.hidden, shape.heads, *r);
            let parallel = module.insertion == Insertion::Parallel;
            Delta::HeadsBottleneck(HeadsBottleneck::new(
                store,
                name,
                dims,
                parallel,
                *activation,
                module.init,
            )?)
        }
        Form::Bottleneck { r, activation } => Delta::Bottleneck(Bottleneck::new(
            store,
            name,
            (z_dim, *r, out_dim),
            *activation,
            module.init,
        )?),
    };
    let composer = Composer::new(store, name, module.effective_composition(), z_dim)?;
    let attached = Attached {
        label: name.to_string(),
        delta,
        composer,
    };
    let site = site_modules(layer, module.site);
    match module.insertion {
        Insertion::Parallel => site.parallel.push(attached),
        Insertion::Sequential => site.sequential = Some(attached),
    }
    Ok(())
}

fn site_modules(layer: &mut LayerAdapters, site: Site) -> &mut SiteModules {
    match site {
        Site::Attention => &mut layer.attention,
        Site::AttentionHeads => &mut layer.heads,
        Site::Ffn => &mut layer.ffn,
        Site::Projection(p) => match p {
            Projection::Query => &mut layer.query,
            Projection::Key => &mut layer.key,
            Projection::Value => &mut layer.value,
            Projection::Output => &mut layer.output,
            Projection::FfnIn => &mut layer.ffn_in,
            Projection::FfnOut => &mut layer.ffn_out,
        },
    }
}
