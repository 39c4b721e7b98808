//! LoRA's tensors: a parallel low-rank update `s·(z·Aᵀ)·Bᵀ` of one projection, with `s = α/r`.

use crate::methods::bottleneck::Activation;
use crate::methods::{affine, Delta, Fill, LowRank, ParamStore};
use candle_core::{Result, Tensor};

/// One LoRA instance on one projection of one layer.
pub struct Lora {
    /// (r, in), Kaiming-uniform
    a: Tensor,
    /// (out, r), zero: a fresh LoRA leaves the projection unchanged
    b: Tensor,
    scale: f64,
}

impl Lora {
    /// Creates `A` (r, input) and `B` (output, r) with their fills.
    pub fn new(
        store: &mut ParamStore,
        prefix: &str,
        (input, r, output): (usize, usize, usize),
        alpha: f32,
        (a_fill, b_fill): (Fill, Fill),
    ) -> Result<Self> {
        Ok(Lora {
            a: store.var(&format!("{prefix}.lora_A.weight"), &[r, input], a_fill)?,
            b: store.var(&format!("{prefix}.lora_B.weight"), &[output, r], b_fill)?,
            scale: alpha as f64 / r as f64,
        })
    }
}

impl Delta for Lora {
    /// The update alone; the frozen projection's output is never scaled.
    fn forward(&self, z: &Tensor) -> Result<Tensor> {
        affine(&affine(z, &self.a, None)?, &self.b, None)? * self.scale
    }

    /// `s·B·A`, shaped like the frozen weight (out, in): what merging adds to it.
    fn merged_weight(&self) -> Option<Result<Tensor>> {
        Some(self.b.matmul(&self.a).and_then(|w| w * self.scale))
    }

    fn low_rank(&self) -> Option<LowRank<'_>> {
        Some(LowRank {
            down: &self.a,
            down_bias: None,
            up: &self.b,
            up_bias: None,
            activation: Activation::Identity,
            scale: self.scale,
        })
    }
}
