//! A prefix in AdapterHub `adapters` terms: a `prefix_tuning` config with `flat: true`, whose one
//! `control_trans` vector holds every layer's keys and values.
//!
//! adapters 1.3.0 (`methods/prefix_tuning.py`, `FlatPrefixTuning`) views `control_trans` as
//! `(l, layers·2, heads, head_dim)` and gives layer `i` the keys at `2i` and the values at
//! `2i+1`, prepended to the projected keys and values with an all-ones mask: pets' direct prefix.

use candle_core::{Result, Tensor};
use serde_json::{json, Value};

/// The `PrefixTuningConfig` of an `l`-long flat prefix on every layer.
pub fn prefix_config(l: usize) -> Value {
    json!({
        "architecture": "prefix_tuning",
        "encoder_prefix": true,
        "cross_prefix": true,
        "leave_out": [],
        "flat": true,
        "prefix_length": l,
        "bottleneck_size": 512,
        "non_linearity": "tanh",
        "dropout": 0.0,
        "use_gating": false,
        "shared_gating": true,
        "init_weights_seed": null,
    })
}

/// `control_trans` from each layer's `(keys, values)`, both `(l, hidden)`, in layer order.
pub fn flat_control(layers: &[(Tensor, Tensor)]) -> Result<Tensor> {
    let per_layer = layers
        .iter()
        .map(|(k, v)| Tensor::stack(&[k, v], 0))
        .collect::<Result<Vec<_>>>()?;
    // (layers, 2, l, hidden) → (l, layers, 2, hidden), flattened.
    Tensor::stack(&per_layer, 0)?
        .permute((2, 0, 1, 3))?
        .contiguous()?
        .flatten_all()
}

/// Every key under which adapters stores the shared `control_trans` of adapter `name`: once
/// per layer's attention (its pool) and once at the top.
pub fn control_keys(layers: usize, name: &str) -> Vec<String> {
    let at = format!("prefix_tunings.{name}.self_prefix.control_trans");
    let mut keys: Vec<String> = (0..layers)
        .map(|i| format!("encoder.layer.{i}.attention.self.prefix_tuning.pool.{at}"))
        .collect();
    keys.push(format!("prefix_tuning.{at}"));
    keys
}
