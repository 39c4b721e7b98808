//! Fused GELU (erf form) on CPU/F32: one vectorised pass forward, one pass backward.
//!
//! candle's `gelu_erf` runs libm's scalar erff (~10% of a step) and its backward builds the
//! derivative from ~8 element-wise ops, each a fresh tensor. Here the forward and the input
//! gradient g·(Φ(x) + x·φ(x)) are single kernels (erf as in `simd::normal_cdf`).

use super::cpu::{slice, uninit};
use super::simd::{gelu, gelu_grad, simd_fn};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Elements per rayon task for element-wise kernels.
const CHUNK: usize = 16 * 1024;

// Index loops, not iterator chains: std's `fold` would stay an out-of-line call compiled
// without AVX-512 (see `simd_fn!`).
simd_fn! {
    /// y = gelu(x), element-wise.
    #[allow(clippy::needless_range_loop)]
    pub(super) fn gelu_slice(x: &[f32], y: &mut [f32]) {
        let n = x.len().min(y.len());
        let (x, y) = (&x[..n], &mut y[..n]);
        for i in 0..n {
            y[i] = gelu(x[i]);
        }
    }
}

simd_fn! {
    /// dx = g · gelu'(x), element-wise.
    #[allow(clippy::needless_range_loop)]
    pub(super) fn gelu_grad_slice(x: &[f32], g: &[f32], dx: &mut [f32]) {
        let n = x.len().min(g.len()).min(dx.len());
        let (x, g, dx) = (&x[..n], &g[..n], &mut dx[..n]);
        for i in 0..n {
            dx[i] = g[i] * gelu_grad(x[i]);
        }
    }
}

/// y = gelu(x) over a whole buffer, split across rayon tasks.
pub(super) fn gelu_par(x: &[f32]) -> Vec<f32> {
    // SAFETY: the chunks cover y and gelu_slice writes every element of its chunk.
    let mut y = unsafe { uninit(x.len()) };
    y.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(y, x)| gelu_slice(x, y));
    y
}

/// dx = g · gelu'(x) over a whole buffer, split across rayon tasks.
pub(super) fn gelu_grad_par(x: &[f32], g: &[f32]) -> Vec<f32> {
    // SAFETY: the chunks cover dx and gelu_grad_slice writes every element of its chunk.
    let mut dx = unsafe { uninit(x.len()) };
    dx.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK).zip(g.par_chunks(CHUNK)))
        .for_each(|(d, (x, g))| gelu_grad_slice(x, g, d));
    dx
}

pub(super) struct Gelu;

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "pets-gelu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        Ok((CpuStorage::F32(gelu_par(slice(s, l)?)), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(x.apply_op2_no_bwd(&grad.contiguous()?, &GeluBwd)?))
    }
}

/// (x, g) ↦ g · gelu'(x).
pub(super) struct GeluBwd;

impl CustomOp2 for GeluBwd {
    fn name(&self) -> &'static str {
        "pets-gelu-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, g) = (slice(s1, l1)?, slice(s2, l2)?);
        if x.len() != g.len() {
            candle_core::bail!("gelu backward: {} values but {} grads", x.len(), g.len());
        }
        Ok((CpuStorage::F32(gelu_grad_par(x, g)), l1.shape().clone()))
    }
}
