//! Fused layer norm on CPU/F32, plain or of a residual sum LN(a + b), with one-pass backward
//! kernels that read the inputs in place and return dx (and dγ, dβ when they are trained).

use super::cpu::{filled_with, slice, task_rows};
use super::simd::{lane_sum, simd_fn};
use candle_core::{
    bail, CpuStorage, CustomOp2, CustomOp3, Device, Layout, Result, Shape, Storage, Tensor,
};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Centres `row` in place (row ← row − mean) and returns 1/√(var + eps), two passes as the
/// reference does.
#[inline(always)]
fn center(row: &mut [f32], eps: f32) -> f32 {
    let n = row.len() as f32;
    let mean = lane_sum([&*row], |[v]| v) / n;
    for v in row.iter_mut() {
        *v -= mean;
    }
    let var = lane_sum([&*row], |[v]| v * v) / n;
    1.0 / (var + eps).sqrt()
}

/// Writes a (+ b when `b` is not empty) into `row` and returns it, initialised.
#[inline(always)]
#[allow(clippy::needless_range_loop)]
fn load<'r>(row: &'r mut [MaybeUninit<f32>], a: &[f32], b: &[f32]) -> &'r mut [f32] {
    let d = row.len();
    if b.is_empty() {
        return row.write_copy_of_slice(&a[..d]);
    }
    let (a, b) = (&a[..d], &b[..d]);
    for j in 0..d {
        row[j].write(a[j] + b[j]);
    }
    // SAFETY: every element was written just above.
    unsafe { row.assume_init_mut() }
}

simd_fn! {
    /// Rows of width γ.len(): out ← LN(a [+ b])·γ + β.
    #[allow(clippy::needless_range_loop)]
    fn forward_rows(
        out: &mut [MaybeUninit<f32>],
        a: &[f32],
        b: &[f32],
        gamma: &[f32],
        beta: &[f32],
        eps: f32,
    ) {
        let d = gamma.len();
        let beta = &beta[..d];
        for (r, o) in out.chunks_exact_mut(d).enumerate() {
            let rows = r * d..(r + 1) * d;
            let o = load(o, &a[rows.clone()], if b.is_empty() { b } else { &b[rows] });
            let rstd = center(o, eps);
            for j in 0..d {
                o[j] = o[j] * rstd * gamma[j] + beta[j];
            }
        }
    }
}

simd_fn! {
    /// Rows of width γ.len(): dx of LN(a [+ b]) for upstream `grad`; when `acc` holds 2·d
    /// floats, dγ and dβ of these rows are added to it.
    #[allow(clippy::needless_range_loop)]
    fn backward_rows(
        dx: &mut [MaybeUninit<f32>],
        a: &[f32],
        b: &[f32],
        grad: &[f32],
        gamma: &[f32],
        eps: f32,
        acc: &mut [f32],
    ) {
        let d = gamma.len();
        for (r, h) in dx.chunks_exact_mut(d).enumerate() {
            let rows = r * d..(r + 1) * d;
            let u = &grad[rows.clone()];
            let h = load(h, &a[rows.clone()], if b.is_empty() { b } else { &b[rows] });
            let rstd = center(h, eps);
            for j in 0..d {
                h[j] *= rstd; // h is x̂ now
            }
            let mean_ug = lane_sum([u, gamma], |[u, w]| u * w) / d as f32;
            let mean_ugh = lane_sum([u, gamma, &*h], |[u, w, h]| u * w * h) / d as f32;
            if acc.len() == 2 * d {
                let (ag, ab) = acc.split_at_mut(d);
                for j in 0..d {
                    ag[j] += u[j] * h[j];
                    ab[j] += u[j];
                }
            }
            for j in 0..d {
                h[j] = rstd * (u[j] * gamma[j] - mean_ug - h[j] * mean_ugh);
            }
        }
    }
}

/// LN(a [+ b])·γ + β over contiguous rows, split across rayon tasks.
fn forward(a: &[f32], b: &[f32], gamma: &[f32], beta: &[f32], eps: f32) -> Vec<f32> {
    let step = gamma.len() * task_rows(gamma.len());
    // SAFETY: the chunks cover the buffer, and forward_rows writes all of its chunk (whole
    // rows: the length is a multiple of d).
    unsafe {
        filled_with(a.len(), |out| {
            out.par_chunks_mut(step).enumerate().for_each(|(i, o)| {
                let part = i * step..i * step + o.len();
                let b = if b.is_empty() { b } else { &b[part.clone()] };
                forward_rows(o, &a[part], b, gamma, beta, eps);
            })
        })
    }
}

/// The data of a contiguous CPU f32 tensor, from its storage guard.
fn cpu<'a>(storage: &'a Storage, layout: &Layout) -> Result<&'a [f32]> {
    match storage {
        Storage::Cpu(s) => slice(s, layout),
        _ => bail!("layer norm: expected a CPU tensor"),
    }
}

/// Gradients of LN(a [+ b]): dx shaped like `a`, and (dγ, dβ) when `affine`.
fn backward(
    a: &Tensor,
    b: Option<&Tensor>,
    gamma: &Tensor,
    grad: &Tensor,
    eps: f32,
    affine: bool,
) -> Result<(Tensor, Option<(Tensor, Tensor)>)> {
    let (grad, b) = (grad.contiguous()?, b.map(|b| b.contiguous()).transpose()?);
    let ((sa, la), (sg, lg), (su, lu)) = (
        a.storage_and_layout(),
        gamma.storage_and_layout(),
        grad.storage_and_layout(),
    );
    let (xa, gamma_s, u) = (cpu(&sa, la)?, cpu(&sg, lg)?, cpu(&su, lu)?);
    let b_guard = b.as_ref().map(|b| b.storage_and_layout());
    let xb = match &b_guard {
        Some((s, l)) => cpu(s, l)?,
        None => &[],
    };
    let d = gamma_s.len();
    let step = d * task_rows(d);
    let extra = if affine { 2 * d } else { 0 };
    let mut partials: Vec<Vec<f32>> = Vec::new();
    // SAFETY: the chunks cover the buffer, and backward_rows writes all of its chunk (whole
    // rows: the length is a multiple of d).
    let dx = unsafe {
        filled_with(xa.len(), |dx| {
            partials = dx
                .par_chunks_mut(step)
                .enumerate()
                .map(|(i, out)| {
                    let part = i * step..i * step + out.len();
                    let xb = if xb.is_empty() { xb } else { &xb[part.clone()] };
                    let mut acc = vec![0f32; extra];
                    backward_rows(out, &xa[part.clone()], xb, &u[part], gamma_s, eps, &mut acc);
                    acc
                })
                .collect()
        })
    };
    let mut acc = vec![0f32; extra];
    for p in partials {
        acc.iter_mut().zip(&p).for_each(|(t, v)| *t += v);
    }
    let dx = Tensor::from_vec(dx, a.shape(), &Device::Cpu)?;
    let params = if affine {
        let both = Tensor::from_vec(acc, (2, d), &Device::Cpu)?;
        Some((both.get(0)?, both.get(1)?))
    } else {
        None
    };
    Ok((dx, params))
}

/// LN(x)·γ + β; γ and β may be trained.
pub(super) struct LayerNorm {
    pub(super) eps: f32,
}

impl CustomOp3 for LayerNorm {
    fn name(&self) -> &'static str {
        "pets-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, g, b) = (slice(s1, l1)?, slice(s2, l2)?, slice(s3, l3)?);
        let out = forward(x, &[], g, b, self.eps);
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let affine = gamma.track_op() || beta.track_op();
        let (dx, params) = backward(x, None, gamma, grad, self.eps, affine)?;
        let (dg, db) = params.unzip();
        Ok((
            x.track_op().then_some(dx),
            dg.filter(|_| gamma.track_op()),
            db.filter(|_| beta.track_op()),
        ))
    }
}

/// LN(a + b)·γ + β for frozen γ, β: the residual add and the norm in one pass, and one
/// gradient (the same for a and b) in backward.
pub(super) struct AddLayerNorm {
    pub(super) eps: f32,
    pub(super) gamma: Tensor,
    pub(super) beta: Tensor,
}

impl CustomOp2 for AddLayerNorm {
    fn name(&self) -> &'static str {
        "pets-add-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (a, b) = (slice(s1, l1)?, slice(s2, l2)?);
        if a.len() != b.len() {
            bail!("add-layer-norm: {:?} + {:?}", l1.dims(), l2.dims());
        }
        let ((sg, lg), (sb, lb)) = (
            self.gamma.storage_and_layout(),
            self.beta.storage_and_layout(),
        );
        let out = forward(a, b, cpu(&sg, lg)?, cpu(&sb, lb)?, self.eps);
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, _) = backward(a, Some(b), &self.gamma, grad, self.eps, false)?;
        Ok((a.track_op().then(|| dx.clone()), b.track_op().then_some(dx)))
    }
}
