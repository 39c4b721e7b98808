//! AdamW over the trainable vars with global-norm gradient clipping, as `clip_grad_norm` and
//! candle-nn's AdamW compute them (same update, same bias correction): those two on CPU; on
//! CUDA/F32 (`cuda` feature) fused kernels instead, one per tensor for the norm and two for the
//! update, where candle-nn's element-wise ops cost ~18 launches per tensor and step.

#[cfg(feature = "cuda")]
mod fused;

use super::clip_grad_norm;
use candle_core::{backprop::GradStore, Result, Var};
use candle_nn::optim::{Optimizer, ParamsAdamW};

/// The optimizer of `pets train` and `pets bench`.
pub struct AdamW(Inner);

enum Inner {
    /// candle-nn's optimizer, and the vars `clip_grad_norm` scales the gradients of.
    Candle(candle_nn::optim::AdamW, Vec<Var>),
    #[cfg(feature = "cuda")]
    Fused(fused::FusedAdamW),
}

impl AdamW {
    pub fn new(vars: Vec<Var>, params: ParamsAdamW) -> Result<Self> {
        #[cfg(feature = "cuda")]
        if !vars.is_empty() && vars.iter().all(fused::supported) {
            return Ok(Self(Inner::Fused(fused::FusedAdamW::new(vars, params)?)));
        }
        let optimizer = candle_nn::optim::AdamW::new(vars.clone(), params)?;
        Ok(Self(Inner::Candle(optimizer, vars)))
    }

    pub fn set_learning_rate(&mut self, lr: f64) {
        match &mut self.0 {
            Inner::Candle(o, _) => o.set_learning_rate(lr),
            #[cfg(feature = "cuda")]
            Inner::Fused(o) => o.params.lr = lr,
        }
    }

    /// One update from `grads`, first scaled so their global L2 norm is at most
    /// `max_grad_norm` (torch's `clip_grad_norm_`; `<= 0` for no clipping).
    pub fn step(&mut self, grads: &mut GradStore, max_grad_norm: f64) -> Result<()> {
        match &mut self.0 {
            Inner::Candle(o, vars) => {
                if max_grad_norm > 0.0 {
                    clip_grad_norm(grads, vars, max_grad_norm)?;
                }
                o.step(grads)
            }
            #[cfg(feature = "cuda")]
            Inner::Fused(o) => o.step(grads, max_grad_norm),
        }
    }
}
