//! Fused GELU (erf form) on CPU/F32: one vectorised pass forward, one multiply backward.
//!
//! candle's `gelu_erf` runs libm's scalar erff (~10% of a step) and its backward builds the
//! derivative from ~8 element-wise ops, each a fresh tensor. Here the forward pass computes
//! gelu(x) and, when a backward pass will follow, gelu'(x) from the same Φ(x) (erf as in
//! `simd::normal_cdf`); backward is then just g · gelu'(x).

#[cfg(target_arch = "x86_64")]
mod avx2;

use super::cpu::{filled_with, slice};
use super::simd::{gelu, gelu_and_grad, simd_fn};
use candle_core::{CpuStorage, CustomOp1, Device, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::mem::MaybeUninit;
use std::sync::OnceLock;

/// Elements per rayon task for element-wise kernels.
const CHUNK: usize = 16 * 1024;

// The fallback on CPUs without AVX2+FMA (those with it run `avx2`), so no `simd_fn!` copies.
/// y = gelu(x), element-wise.
fn portable_gelu_slice(x: &[f32], y: &mut [MaybeUninit<f32>]) {
    for (y, &x) in y.iter_mut().zip(x) {
        y.write(gelu(x));
    }
}

/// y = gelu(x) and d = gelu'(x), element-wise.
fn portable_gelu_grad_slice(x: &[f32], y: &mut [MaybeUninit<f32>], d: &mut [MaybeUninit<f32>]) {
    for ((y, d), &x) in y.iter_mut().zip(d.iter_mut()).zip(x) {
        let (g, dg) = gelu_and_grad(x);
        y.write(g);
        d.write(dg);
    }
}

/// Whether the AVX2 intrinsics run (any CPU with AVX2+FMA, AVX-512 ones included).
#[cfg(target_arch = "x86_64")]
fn use_avx2() -> bool {
    super::simd::level() != super::simd::Level::Base
}

/// y = gelu(x), element-wise.
fn gelu_slice(x: &[f32], y: &mut [MaybeUninit<f32>]) {
    #[cfg(target_arch = "x86_64")]
    if use_avx2() {
        // SAFETY: level() found AVX2 and FMA.
        return unsafe { avx2::gelu_slice(x, y) };
    }
    portable_gelu_slice(x, y)
}

/// y = gelu(x) and d = gelu'(x), element-wise.
fn gelu_grad_slice(x: &[f32], y: &mut [MaybeUninit<f32>], d: &mut [MaybeUninit<f32>]) {
    #[cfg(target_arch = "x86_64")]
    if use_avx2() {
        // SAFETY: level() found AVX2 and FMA.
        return unsafe { avx2::gelu_grad_slice(x, y, d) };
    }
    portable_gelu_grad_slice(x, y, d)
}

/// gelu(x) over a whole buffer, and gelu'(x) too when `with_grad` (split across rayon tasks).
pub(super) fn gelu_par(x: &[f32], with_grad: bool) -> (Vec<f32>, Option<Vec<f32>>) {
    let n = x.len();
    if !with_grad {
        // SAFETY: the chunks cover the buffer and gelu_slice writes all of its chunk.
        let y = unsafe {
            filled_with(n, |y| {
                y.par_chunks_mut(CHUNK)
                    .zip(x.par_chunks(CHUNK))
                    .for_each(|(y, x)| gelu_slice(x, y))
            })
        };
        return (y, None);
    }
    let mut d = Vec::with_capacity(n);
    // SAFETY: the chunks cover both buffers and gelu_grad_slice writes all of its chunks.
    let y = unsafe {
        filled_with(n, |y| {
            y.par_chunks_mut(CHUNK)
                .zip(d.spare_capacity_mut()[..n].par_chunks_mut(CHUNK))
                .zip(x.par_chunks(CHUNK))
                .for_each(|((y, d), x)| gelu_grad_slice(x, y, d))
        })
    };
    // SAFETY: written above, chunk by chunk, together with y.
    unsafe { d.set_len(n) };
    (y, Some(d))
}

/// g ⊙ d, element-wise (the input gradient through a GELU whose derivative is `d`).
pub(super) fn times(g: &[f32], d: &[f32]) -> Result<Vec<f32>> {
    if g.len() != d.len() {
        candle_core::bail!("gelu backward: {} grads for {} values", g.len(), d.len());
    }
    // SAFETY: the chunks cover the buffer and every element of each is written.
    Ok(unsafe {
        filled_with(g.len(), |out| {
            out.par_chunks_mut(CHUNK)
                .zip(g.par_chunks(CHUNK).zip(d.par_chunks(CHUNK)))
                .for_each(|(o, (g, d))| times_slice(g, d, o))
        })
    })
}

simd_fn! {
    /// out = g ⊙ d, element-wise.
    #[allow(clippy::needless_range_loop)]
    fn times_slice(g: &[f32], d: &[f32], out: &mut [MaybeUninit<f32>]) {
        let n = g.len().min(d.len()).min(out.len());
        let (g, d, out) = (&g[..n], &d[..n], &mut out[..n]);
        for i in 0..n {
            out[i].write(g[i] * d[i]);
        }
    }
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
