//! LoRA: a parallel low-rank update `s·(z·Aᵀ)·Bᵀ` of one projection, with `s = α/r`.

use super::bottleneck::affine;
use super::init::ParamStore;
use candle_core::{Result, Tensor};

pub struct Lora {
    /// (r, in), Kaiming-uniform
    a: Tensor,
    /// (out, r), zero: a fresh LoRA leaves the projection unchanged
    b: Tensor,
    scale: f64,
}

impl Lora {
    pub fn new(
        store: &mut ParamStore,
        prefix: &str,
        (input, r, output): (usize, usize, usize),
        alpha: f32,
        init: crate::spec::Init,
    ) -> Result<Self> {
        let (a_fill, b_fill) = super::bottleneck::fills(init, input);
        Ok(Lora {
            a: store.var(&format!("{prefix}.lora_A.weight"), &[r, input], a_fill)?,
            b: store.var(&format!("{prefix}.lora_B.weight"), &[output, r], b_fill)?,
            scale: alpha as f64 / r as f64,
        })
    }

    /// The update alone; the frozen projection's output is never scaled.
    pub fn forward(&self, z: &Tensor) -> Result<Tensor> {
        affine(&affine(z, &self.a, None)?, &self.b, None)? * self.scale
    }

    /// `s·B·A`, shaped like the frozen weight (out, in): what merging adds to it.
    pub fn merged_delta(&self) -> Result<Tensor> {
        self.b.matmul(&self.a)? * self.scale
    }
}
