//! Fused GELU (erf form) on CPU/F32: one vectorised pass forward, one multiply backward.
//!
//! candle's `gelu_erf` runs libm's scalar erff (~10% of a step) and its backward builds the
//! derivative from ~8 element-wise ops, each a fresh tensor. Here the forward pass computes
//! gelu(x) and, when a backward pass will follow, gelu'(x) from the same Φ(x) (erf as in
//! `simd::normal_cdf`); backward is then just g · gelu'(x).

use super::cpu::{slice, uninit};
use super::simd::{gelu, gelu_and_grad, simd_fn};
use candle_core::{CpuStorage, CustomOp1, Device, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::sync::OnceLock;

/// Elements per rayon task for element-wise kernels.
const CHUNK: usize = 16 * 1024;

// Index loops, not iterator chains: std's `fold` would stay an out-of-line call compiled
// without AVX-512 (see `simd_fn!`).
simd_fn! {
    /// y = gelu(x), element-wise.
    #[allow(clippy::needless_range_loop)]
    fn gelu_slice(x: &[f32], y: &mut [f32]) {
        let n = x.len().min(y.len());
        let (x, y) = (&x[..n], &mut y[..n]);
        for i in 0..n {
            y[i] = gelu(x[i]);
        }
    }
}

simd_fn! {
    /// y = gelu(x) and d = gelu'(x), element-wise.
    #[allow(clippy::needless_range_loop)]
    fn gelu_grad_slice(x: &[f32], y: &mut [f32], d: &mut [f32]) {
        let n = x.len().min(y.len()).min(d.len());
        let (x, y, d) = (&x[..n], &mut y[..n], &mut d[..n]);
        for i in 0..n {
            (y[i], d[i]) = gelu_and_grad(x[i]);
        }
    }
}

/// gelu(x) over a whole buffer, and gelu'(x) too when `with_grad` (split across rayon tasks).
pub(super) fn gelu_par(x: &[f32], with_grad: bool) -> (Vec<f32>, Option<Vec<f32>>) {
    // SAFETY: the chunks cover y (and d), and the kernels write every element of their chunk.
    let mut y = unsafe { uninit(x.len()) };
    if !with_grad {
        y.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .for_each(|(y, x)| gelu_slice(x, y));
        return (y, None);
    }
    // SAFETY: as above.
    let mut d = unsafe { uninit(x.len()) };
    y.par_chunks_mut(CHUNK)
        .zip(d.par_chunks_mut(CHUNK))
        .zip(x.par_chunks(CHUNK))
        .for_each(|((y, d), x)| gelu_grad_slice(x, y, d));
    (y, Some(d))
}

/// g ⊙ d, element-wise (the input gradient through a GELU whose derivative is `d`).
pub(super) fn times(g: &[f32], d: &[f32]) -> Result<Vec<f32>> {
    if g.len() != d.len() {
        candle_core::bail!("gelu backward: {} grads for {} values", g.len(), d.len());
    }
    let mut out = vec![0f32; g.len()];
    out.par_chunks_mut(CHUNK)
        .zip(g.par_chunks(CHUNK).zip(d.par_chunks(CHUNK)))
        .for_each(|(o, (g, d))| {
            o.iter_mut()
                .zip(g)
                .zip(d)
                .for_each(|((o, g), d)| *o = g * d)
        });
    Ok(out)
}

/// The GELU node; `keep` (a backward pass will come) makes it store gelu'(x).
pub(super) struct Gelu {
    pub(super) keep: bool,
    pub(super) grad: OnceLock<Vec<f32>>,
}

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "pets-gelu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (y, d) = gelu_par(slice(s, l)?, self.keep);
        if let Some(d) = d {
            let _ = self.grad.set(d);
        }
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let Some(d) = self.grad.get() else {
            candle_core::bail!("gelu: backward without the kept derivative");
        };
        let grad = grad.contiguous()?;
        let (gs, gl) = grad.storage_and_layout();
        let candle_core::Storage::Cpu(gs) = &*gs else {
            candle_core::bail!("gelu: expected a CPU gradient");
        };
        let dx = times(slice(gs, gl)?, d)?;
        Ok(Some(Tensor::from_vec(dx, x.shape(), &Device::Cpu)?))
    }
}
