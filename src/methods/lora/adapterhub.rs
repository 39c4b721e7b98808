//! A LoRA module in AdapterHub `adapters` terms: its `LoRAConfig` fields and tensor names.
//!
//! adapters 1.3.0 (`methods/lora.py`) adds `x·Aᵀ·Bᵀ·(alpha/r)` to the adapted projection's
//! output, as pets does; `attn_matrices` picks the query, key and value projections.

use crate::sites::Projection;
use serde_json::{json, Value};

/// AdapterHub's `attn_matrices` letter of a projection, or why it has none here.
pub fn matrix(projection: Projection) -> Result<&'static str, String> {
    match projection {
        Projection::Query => Ok("q"),
        Projection::Key => Ok("k"),
        Projection::Value => Ok("v"),
        other => Err(format!(
            "LoRA on {other:?} is not mapped to AdapterHub (only the query, key and value \
             projections are, and checked)"
        )),
    }
}

/// The `LoRAConfig` of LoRA modules of rank `r` and scale `alpha/r` on `matrices`.
pub fn lora_config(r: usize, alpha: f64, matrices: &[&str], leave_out: &[usize]) -> Value {
    json!({
        "architecture": "lora",
        "selfattn_lora": true,
        "intermediate_lora": false,
        "output_lora": false,
        "attn_matrices": matrices,
        "r": r,
        "alpha": alpha,
        "dropout": 0.0,
        "composition_mode": "add",
        "init_weights": "lora",
        "init_weights_seed": null,
        "use_gating": false,
        "use_dora": false,
        "dtype": null,
        "vera_b": null,
        "vera_d": null,
        "leave_out": leave_out,
    })
}

/// pets' tensor suffixes and AdapterHub's for the LoRA on `module_path`
/// (`encoder.layer.0.attention.self.query`) of the adapter `name`.
pub fn tensor_names(module_path: &str, name: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "lora_A.weight",
            format!("{module_path}.loras.{name}.lora_A"),
        ),
        (
            "lora_B.weight",
            format!("{module_path}.loras.{name}.lora_B"),
        ),
    ]
}
