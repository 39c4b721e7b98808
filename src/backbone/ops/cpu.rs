//! Shared CPU/F32 helpers of the fused ops (slices, row chunking, uninitialised outputs) and
//! the masked softmax op with its fused backward (used where attention cannot run fused).
//!
//! Kernels read contiguous f32 slices (callers make inputs contiguous), work row by row over
//! the last dim and split rows across rayon tasks.

use super::simd::{exp_neg, lane_sum};
use candle_core::{bail, CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Rows per rayon task: ~16k floats, so tiny rows (softmax over 48 keys) amortise scheduling.
pub(super) fn task_rows(width: usize) -> usize {
    (16_384 / width.max(1)).max(1)
}

pub(super) fn slice<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&s.as_slice::<f32>()?[a..b]),
        None => bail!("fused op: non-contiguous input {:?}", l.stride()),
    }
}

/// `n` floats written by `fill`, without the zero-fill pass of `vec![0.0; n]` (which, for the
/// large activations here, costs about as much as the kernel that then overwrites it).
///
/// # Safety
/// `fill` must initialise every element of the slice it is given.
pub(super) unsafe fn filled_with(n: usize, fill: impl FnOnce(&mut [MaybeUninit<f32>])) -> Vec<f32> {
    let mut v = Vec::with_capacity(n);
    fill(&mut v.spare_capacity_mut()[..n]);
    // SAFETY: the caller guarantees that `fill` initialised all n elements.
    unsafe { v.set_len(n) };
    v
}

pub(super) struct MaskedSoftmax;

/// Storage offset of each last-dim row of a (possibly broadcast) layout.
fn row_offsets(l: &Layout) -> Vec<usize> {
    let (dims, strides) = (l.dims(), l.stride());
    let lead = dims.len().saturating_sub(1);
    let rows: usize = dims[..lead].iter().product();
    (0..rows)
        .map(|mut r| {
            let mut off = l.start_offset();
            for i in (0..lead).rev() {
                off += (r % dims[i]) * strides[i];
                r /= dims[i];
            }
            off
        })
        .collect()
}

impl CustomOp2 for MaskedSoftmax {
    fn name(&self) -> &'static str {
        "pets-masked-softmax"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, mask, offs) = (slice(s1, l1)?, s2.as_slice::<f32>()?, row_offsets(l2));
        let k = l1.dims().last().copied().unwrap_or(1);
        let rpt = task_rows(k);
        let mut out = vec![0f32; x.len()];
        (out.par_chunks_mut(k * rpt)
            .zip(x.par_chunks(k * rpt))
            .enumerate())
        .for_each(|(t, (o, x))| {
            for (r, (o, x)) in o.chunks_mut(k).zip(x.chunks(k)).enumerate() {
                let m = &mask[offs[t * rpt + r]..][..k];
                o.iter_mut()
                    .zip(x)
                    .zip(m)
                    .for_each(|((o, &x), &m)| *o = x + m);
                let max = o.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
                if max == f32::NEG_INFINITY && o.iter().all(|&v| v == max) {
                    o.fill(0.0); // every key masked with −inf: attend to nothing, not NaN
                    continue;
                }
                o.iter_mut().for_each(|v| *v = exp_neg(*v - max));
                let inv = 1.0 / lane_sum([&*o], |[v]| v);
                o.iter_mut().for_each(|v| *v *= inv);
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _scores: &Tensor,
        _mask: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((
            Some(res.apply_op2_no_bwd(&grad.contiguous()?, &SoftmaxBwd)?),
            None,
        ))
    }
}

/// Softmax input gradient y ⊙ (g − Σ g·y), fused so no (b, h, q, k) temporaries are allocated.
struct SoftmaxBwd;

impl CustomOp2 for SoftmaxBwd {
    fn name(&self) -> &'static str {
        "pets-softmax-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (y, g) = (slice(s1, l1)?, slice(s2, l2)?);
        let k = l1.dims().last().copied().unwrap_or(1);
        let step = k * task_rows(k);
        let mut out = vec![0f32; y.len()];
        (out.par_chunks_mut(step)
            .zip(y.par_chunks(step))
            .zip(g.par_chunks(step)))
        .for_each(|((o, y), g)| {
            for ((o, y), g) in o.chunks_mut(k).zip(y.chunks(k)).zip(g.chunks(k)) {
                let dot = lane_sum([g, y], |[g, y]| g * y);
                o.iter_mut()
                    .zip(y)
                    .zip(g)
                    .for_each(|((o, &y), &g)| *o = y * (g - dot));
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}
