//! Encoder kernels with a backward pass: layer norm, masked softmax, frozen linear (fused on CPU).
//! (Owned by the kernels work; interface below is the contract.)

use candle_core::{Result, Tensor};

/// Layer norm over the last dim; gradients flow to x, and to gamma/beta only when they are vars.
pub fn layer_norm(_x: &Tensor, _gamma: &Tensor, _beta: &Tensor, _eps: f64) -> Result<Tensor> {
    todo!()
}

/// softmax(scores + mask) over the last dim. scores (b, h, q, k); mask additive, broadcastable
/// as (b, 1, 1, k), never differentiated.
pub fn masked_softmax(_scores: &Tensor, _mask: &Tensor) -> Result<Tensor> {
    todo!()
}

/// x (..., in) · weightᵀ + bias, weight (out, in). When weight is not a var, the backward pass
/// computes only the input gradient (no wasted weight gradient).
pub fn linear(_x: &Tensor, _weight: &Tensor, _bias: Option<&Tensor>) -> Result<Tensor> {
    todo!()
}
