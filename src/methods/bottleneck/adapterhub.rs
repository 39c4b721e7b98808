//! A bottleneck module in AdapterHub `adapters` terms: its `BnConfig` and its tensors' names.
//!
//! Read from adapters 1.3.0 (`methods/modeling.py`, `Adapter`/`ParallelAdapter`): with
//! `original_ln_before: false` and `residual_before_ln: true` a sequential adapter reads the
//! sublayer's output `h` (after W_o or the second FFN projection, before residual and layer norm)
//! and returns `h + s·f(h)`; a parallel one reads the sublayer's input `x` and returns
//! `h + s·f(x)`; `original_ln_after: true` then applies the backbone's own `LN(· + x)`. That is
//! pets' `Attention`/`Ffn` site, Sequential or Parallel, composed by `Add` or `Scaled(s)`.

use super::{Activation, BottleneckConfig};
use crate::sites::{Insertion, Site};
use crate::spec::Composition;
use serde_json::{json, Value};

/// The slot AdapterHub puts a bottleneck in: `mh_adapter` (after attention) or
/// `output_adapter` (after the FFN), and the BERT submodule holding it.
pub fn slot(site: Site) -> Result<(&'static str, &'static str), String> {
    match site {
        Site::Attention => Ok(("mh_adapter", "attention.output")),
        Site::Ffn => Ok(("output_adapter", "output")),
        Site::AttentionHeads => Err("a per-head bottleneck (one per attention head) has no \
             AdapterHub equivalent: its bottlenecks span the whole hidden state"
            .into()),
        other => Err(format!(
            "AdapterHub places bottlenecks after the attention or FFN sublayer only, not at {other:?}"
        )),
    }
}

/// The `reduction_factor` giving width `r` on a `hidden`-wide site: `hidden / r` when it is an
/// integer; otherwise the float `hidden / (r + ½)`, for which adapters'
/// `int(hidden // reduction_factor)` is exactly `r`.
pub fn reduction_factor(hidden: usize, r: usize) -> Value {
    if r > 0 && hidden.is_multiple_of(r) {
        json!(hidden / r)
    } else {
        json!(hidden as f64 / (r as f64 + 0.5))
    }
}

/// AdapterHub's `non_linearity` name of an activation (transformers' `ACT2FN` keys; its
/// `gelu` is the erf form, as pets').
fn non_linearity(activation: Activation) -> &'static str {
    match activation {
        Activation::Relu => "relu",
        Activation::Gelu => "gelu",
        Activation::Silu => "silu",
        Activation::Tanh => "tanh",
        Activation::Identity => "linear",
    }
}

/// The full `BnConfig` of one bottleneck module at `site`, or why it has none. `leave_out`
/// lists the layers without the module.
pub fn bn_config(
    config: &BottleneckConfig,
    (site, insertion, composition): (Site, Insertion, Composition),
    hidden: usize,
    leave_out: &[usize],
) -> Result<Value, String> {
    let (slot, _) = slot(site)?;
    let scaling = match composition {
        Composition::Add => 1.0,
        Composition::Scaled(s) => s as f64,
        Composition::Gated => {
            return Err(
                "its gate is per token; AdapterHub's `use_gating` averages the gate \
                 over the sequence"
                    .into(),
            )
        }
        Composition::LearnedScale(_) => {
            return Err("a learned scale is not mapped to AdapterHub's `scaling: learned`".into())
        }
    };
    Ok(json!({
        "mh_adapter": slot == "mh_adapter",
        "output_adapter": slot == "output_adapter",
        "reduction_factor": reduction_factor(hidden, config.r),
        "non_linearity": non_linearity(config.activation),
        "is_parallel": insertion == Insertion::Parallel,
        "scaling": scaling,
        "original_ln_before": false,
        "original_ln_after": true,
        "residual_before_ln": true,
        "adapter_residual_before_ln": false,
        "ln_before": false,
        "ln_after": false,
        "use_gating": false,
        "init_weights": "bert",
        "init_weights_seed": null,
        "dropout": 0.0,
        "leave_out": leave_out,
        "inv_adapter": null,
        "inv_adapter_reduction_factor": null,
        "cross_adapter": false,
        "phm_layer": false,
        "phm_dim": 4,
        "factorized_phm_W": true,
        "shared_W_phm": false,
        "shared_phm_rule": true,
        "factorized_phm_rule": false,
        "phm_c_init": "normal",
        "phm_init_range": 0.0001,
        "learn_phm": true,
        "hypercomplex_nonlinearity": "glorot-uniform",
        "phm_rank": 1,
        "phm_bias": true,
        "stochastic_depth": 0.0,
    }))
}

/// pets' tensor suffixes and AdapterHub's, for the bottleneck of `layer` in `submodule`
/// (from [`slot`]) of the adapter `name`.
pub fn tensor_names(submodule: &str, layer: usize, name: &str) -> Vec<(&'static str, String)> {
    let at = format!("encoder.layer.{layer}.{submodule}.adapters.{name}");
    vec![
        ("down.weight", format!("{at}.adapter_down.0.weight")),
        ("down.bias", format!("{at}.adapter_down.0.bias")),
        ("up.weight", format!("{at}.adapter_up.weight")),
        ("up.bias", format!("{at}.adapter_up.bias")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_round_trip_through_adapters_floor_division() {
        for r in 1..=384 {
            let rf = reduction_factor(384, r).as_f64().unwrap();
            assert_eq!((384.0 / rf).floor() as usize, r, "r={r}");
        }
        assert_eq!(reduction_factor(384, 24), json!(16));
    }
}
