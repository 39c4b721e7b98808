//! Fused multi-head attention on CPU/F32: softmax(q·kᵀ/√d_h + mask)·v for every head as one
//! custom op, reading the heads straight out of (b, t, d) projections, with a fused backward.
//!
//! Unfused, a layer's attention was ~15 graph nodes (scale, three head-split copies, two
//! batched matmuls, softmax, the merge copy), and candle's backward pays a zero-filled tensor
//! plus an add for every node. Here it is one node: forward keeps the probabilities for the
//! backward pass, which produces dq, dk and dv directly in their inputs' layouts.

use crate::backbone::ops::simd::{exp_neg, lane_sum, simd_fn};
use candle_core::{
    bail, CpuStorage, CustomOp3, DType, Device, Layout, Result, Shape, Storage, Tensor,
};
use rayon::prelude::*;
use std::sync::OnceLock;

/// Whether `attention` can run fused for these inputs (CPU, F32, no probability dropout).
pub fn fusable(q: &Tensor, k: &Tensor, v: &Tensor) -> bool {
    [q, k, v]
        .iter()
        .all(|t| t.device().is_cpu() && t.dtype() == DType::F32)
}

/// Multi-head attention. `q` is (b, t, d) and `k`, `v` are (b, s, d), heads side by side in the
/// last dim (any strides with a unit last stride, e.g. narrowed views), or (b, heads, s, d_h)
/// per head (prefix-extended keys/values). `mask` is additive, (b, 1, 1, s), never
/// differentiated; use a large finite negative for padding. Returns (b, t, d), heads merged.
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &Tensor,
    heads: usize,
) -> Result<Tensor> {
    let (b, _, d) = q.dims3()?;
    let s = k.dim(k.rank() - 2)?;
    if heads == 0 || d % heads != 0 || mask.elem_count() != b * s {
        bail!(
            "attention: q {:?}, k {:?}, mask {:?}, {heads} heads",
            q.dims(),
            k.dims(),
            mask.dims()
        );
    }
    let mask = mask
        .detach()
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1()?;
    let op = Attention {
        heads,
        mask,
        keep_probs: q.track_op() || k.track_op() || v.track_op(),
        probs: OnceLock::new(),
    };
    q.apply_op3(k, v, op)
}

/// Head `h` of batch `i` of a tensor starts at `start + i·sb + h·sh`; its rows are `ss` apart.
#[derive(Clone, Copy, Debug)]
struct Heads {
    start: usize,
    sb: usize,
    sh: usize,
    ss: usize,
    rows: usize,
}

impl Heads {
    fn of(l: &Layout, heads: usize) -> Result<Self> {
        let (dims, st) = (l.dims(), l.stride());
        let h = match (dims, st) {
            (&[_, rows, d], &[sb, ss, 1]) => Heads {
                start: l.start_offset(),
                sb,
                sh: d / heads,
                ss,
                rows,
            },
            (&[_, hs, rows, _], &[sb, sh, ss, 1]) if hs == heads => Heads {
                start: l.start_offset(),
                sb,
                sh,
                ss,
                rows,
            },
            _ => bail!("attention: unsupported layout {dims:?} / {st:?}"),
        };
        Ok(h)
    }

    /// The same shape stored contiguously (where gradients are written).
    fn packed(l: &Layout, heads: usize) -> Result<Self> {
        Heads::of(&Layout::contiguous(l.shape()), heads)
    }

    fn at(&self, i: usize, h: usize) -> usize {
        self.start + i * self.sb + h * self.sh
    }
}

/// A raw pointer that tasks write through, each to its own disjoint head block.
#[derive(Clone, Copy)]
struct Out(*mut f32);
// SAFETY: every parallel task writes a disjoint set of elements (one (batch, head) block).
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

impl Out {
    /// The pointer `offset` elements in (closures calling this capture the whole `Out`, which
    /// is Send, rather than its raw-pointer field).
    fn at(self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }
}

/// dst (m×n, rows dst_rs apart) = alpha·dst (when `acc`) + beta · lhs (m×k) · rhs (k×n), with
/// element (r, c) of lhs at lhs[r·lrs + c·lcs], likewise for rhs; single-threaded.
#[allow(clippy::too_many_arguments)]
unsafe fn small_gemm(
    (m, n, k): (usize, usize, usize),
    dst: *mut f32,
    dst_rs: usize,
    lhs: *const f32,
    (lrs, lcs): (usize, usize),
    rhs: *const f32,
    (rrs, rcs): (usize, usize),
    beta: f32,
) {
    // SAFETY: forwarded from the caller, who guarantees the extents.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs as isize,
            false,
            lhs,
            lcs as isize,
            lrs as isize,
            rhs,
            rcs as isize,
            rrs as isize,
            0.0,
            beta,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

struct Attention {
    heads: usize,
    /// (b, s) additive mask.
    mask: Vec<f32>,
    keep_probs: bool,
    /// (b, heads, t, s) softmax output, kept for the backward pass.
    probs: OnceLock<Vec<f32>>,
}

fn cpu_f32(t: &Storage) -> Result<&[f32]> {
    match t {
        Storage::Cpu(s) => s.as_slice::<f32>(),
        _ => bail!("attention: expected CPU storage"),
    }
}

impl CustomOp3 for Attention {
    fn name(&self) -> &'static str {
        "pets-attention"
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
        let (q, k, v) = (
            s1.as_slice::<f32>()?,
            s2.as_slice::<f32>()?,
            s3.as_slice::<f32>()?,
        );
        let (b, t, d) = l1.shape().dims3()?;
        let (qh, kh, vh) = (
            Heads::of(l1, self.heads)?,
            Heads::of(l2, self.heads)?,
            Heads::of(l3, self.heads)?,
        );
        let (s, dh, heads) = (kh.rows, d / self.heads, self.heads);
        if vh.rows != s || self.mask.len() != b * s {
            bail!(
                "attention: {} keys, {} values, mask {}",
                s,
                vh.rows,
                self.mask.len()
            );
        }
        let scale = 1.0 / (dh as f32).sqrt();
        let mut probs = vec![0f32; b * heads * t * s];
        let mut out = vec![0f32; b * t * d];
        let dst = Out(out.as_mut_ptr());
        probs
            .par_chunks_mut(t * s)
            .enumerate()
            .for_each(|(task, p)| {
                let (i, h) = (task / heads, task % heads);
                // SAFETY: q/k/v blocks lie inside their storages (layouts checked by candle);
                // this task writes only rows of head h of batch i in `out`.
                unsafe {
                    let (qp, kp) = (q.as_ptr().add(qh.at(i, h)), k.as_ptr().add(kh.at(i, h)));
                    small_gemm(
                        (t, s, dh),
                        p.as_mut_ptr(),
                        s,
                        qp,
                        (qh.ss, 1),
                        kp,
                        (1, kh.ss),
                        scale,
                    );
                }
                softmax_rows(p, s, &self.mask[i * s..(i + 1) * s]);
                // SAFETY: as above; out rows are d apart, head h occupies columns h·dh..+dh.
                unsafe {
                    let vp = v.as_ptr().add(vh.at(i, h));
                    let o = dst.at(i * t * d + h * dh);
                    small_gemm((t, dh, s), o, d, p.as_ptr(), (s, 1), vp, (vh.ss, 1), 1.0);
                }
            });
        if self.keep_probs {
            let _ = self.probs.set(probs);
        }
        Ok((CpuStorage::F32(out), Shape::from((b, t, d))))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let Some(probs) = self.probs.get() else {
            bail!("attention: backward without kept probabilities");
        };
        let grad = grad.contiguous()?;
        let (gs, _) = grad.storage_and_layout();
        let g = cpu_f32(&gs)?;
        let (qs, ql) = q.storage_and_layout();
        let (ks, kl) = k.storage_and_layout();
        let (vs, vl) = v.storage_and_layout();
        let (qd, kd, vd) = (cpu_f32(&qs)?, cpu_f32(&ks)?, cpu_f32(&vs)?);
        let (qh, kh, vh) = (
            Heads::of(ql, self.heads)?,
            Heads::of(kl, self.heads)?,
            Heads::of(vl, self.heads)?,
        );
        let (gq, gk, gv) = (
            Heads::packed(ql, self.heads)?,
            Heads::packed(kl, self.heads)?,
            Heads::packed(vl, self.heads)?,
        );
        let (b, t, d) = q.dims3()?;
        let (s, heads) = (kh.rows, self.heads);
        let dh = d / heads;
        let scale = 1.0 / (dh as f32).sqrt();
        let mut dq = vec![0f32; q.elem_count()];
        let mut dk = vec![0f32; k.elem_count()];
        let mut dv = vec![0f32; v.elem_count()];
        let (pq, pk, pv) = (
            Out(dq.as_mut_ptr()),
            Out(dk.as_mut_ptr()),
            Out(dv.as_mut_ptr()),
        );
        (0..b * heads).into_par_iter().for_each_init(
            || vec![0f32; t * s],
            |ds, task| {
                let (i, h) = (task / heads, task % heads);
                let p = &probs[task * t * s..(task + 1) * t * s];
                // SAFETY: all blocks lie inside their buffers; this task writes only head h of
                // batch i of dq, dk and dv.
                unsafe {
                    let gp = g.as_ptr().add(i * t * d + h * dh);
                    let (qp, kp) = (qd.as_ptr().add(qh.at(i, h)), kd.as_ptr().add(kh.at(i, h)));
                    let vp = vd.as_ptr().add(vh.at(i, h));
                    // dv = pᵀ·g
                    let o = pv.at(gv.at(i, h));
                    small_gemm((s, dh, t), o, gv.ss, p.as_ptr(), (1, s), gp, (d, 1), 1.0);
                    // dp = g·vᵀ, then ds = p ⊙ (dp − Σ dp·p) (softmax backward)
                    small_gemm(
                        (t, s, dh),
                        ds.as_mut_ptr(),
                        s,
                        gp,
                        (d, 1),
                        vp,
                        (1, vh.ss),
                        1.0,
                    );
                    softmax_grad_rows(ds, p, s);
                    // dq = scale·ds·k, dk = scale·dsᵀ·q
                    let o = pq.at(gq.at(i, h));
                    small_gemm(
                        (t, dh, s),
                        o,
                        gq.ss,
                        ds.as_ptr(),
                        (s, 1),
                        kp,
                        (kh.ss, 1),
                        scale,
                    );
                    let o = pk.at(gk.at(i, h));
                    small_gemm(
                        (s, dh, t),
                        o,
                        gk.ss,
                        ds.as_ptr(),
                        (1, s),
                        qp,
                        (qh.ss, 1),
                        scale,
                    );
                }
            },
        );
        let make = |data: Vec<f32>, like: &Tensor| {
            like.track_op()
                .then(|| Tensor::from_vec(data, like.shape(), &Device::Cpu))
                .transpose()
        };
        Ok((make(dq, q)?, make(dk, k)?, make(dv, v)?))
    }
}

simd_fn! {
    /// In place, each row of `s`: row ← softmax(row + mask). A row masked entirely with −∞
    /// becomes zeros, not NaN.
    #[allow(clippy::needless_range_loop)]
    fn softmax_rows(p: &mut [f32], s: usize, mask: &[f32]) {
        let mask = &mask[..s];
        for row in p.chunks_exact_mut(s) {
            let mut max = f32::NEG_INFINITY;
            for j in 0..s {
                row[j] += mask[j];
                max = max.max(row[j]);
            }
            if max == f32::NEG_INFINITY {
                row.fill(0.0);
                continue;
            }
            for j in 0..s {
                row[j] = exp_neg(row[j] - max);
            }
            let inv = 1.0 / lane_sum([&*row], |[x]| x);
            for j in 0..s {
                row[j] *= inv;
            }
        }
    }
}

simd_fn! {
    /// Softmax backward in place, each row of `s`: dp ← p ⊙ (dp − Σ dp·p).
    #[allow(clippy::needless_range_loop)]
    fn softmax_grad_rows(dp: &mut [f32], p: &[f32], s: usize) {
        for (dr, pr) in dp.chunks_exact_mut(s).zip(p.chunks_exact(s)) {
            let dot = lane_sum([&*dr, pr], |[a, b]| a * b);
            for j in 0..s {
                dr[j] = pr[j] * (dr[j] - dot);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backbone::ops::masked_softmax_reference;
    use candle_core::Var;

    /// Attention from primitive ops (the unfused encoder path).
    fn reference(
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        mask: &Tensor,
        heads: usize,
    ) -> Result<Tensor> {
        let (b, t, d) = q.dims3()?;
        let dh = d / heads;
        let per_head = |y: &Tensor| -> Result<Tensor> {
            if y.rank() == 4 {
                return y.contiguous();
            }
            let s = y.dim(1)?;
            y.reshape((b, s, heads, dh))?.transpose(1, 2)?.contiguous()
        };
        let scores = per_head(&(q / (dh as f64).sqrt())?)?.matmul(&per_head(k)?.t()?)?;
        masked_softmax_reference(&scores, mask)?
            .matmul(&per_head(v)?)?
            .transpose(1, 2)?
            .reshape((b, t, d))
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
        (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()
    }

    /// (b, 1, 1, s) mask: batch i pads its last i keys with −1e9.
    fn pad_mask(b: usize, s: usize) -> Result<Tensor> {
        let m: Vec<f32> = (0..b * s)
            .map(|j| if j % s + j / s >= s { -1e9 } else { 0.0 })
            .collect();
        Tensor::from_vec(m, (b, 1, 1, s), &Device::Cpu)
    }

    #[test]
    fn fused_attention_matches_reference_forward_and_backward() -> Result<()> {
        let dev = &Device::Cpu;
        let (b, t, d, heads) = (3, 7, 24, 4);
        // (name, key rows, per-head 4-D keys/values, q read through a narrowed wider tensor)
        for (name, s, four_d, narrowed) in [
            ("plain", 7, false, false),
            ("prefix-like 4-D k/v", 10, true, false),
            ("strided q", 7, false, true),
        ] {
            let wide = Var::randn(0f32, 1.0, (b, t, 2 * d), dev)?;
            let qv = Var::randn(0f32, 1.0, (b, t, d), dev)?;
            let q = if narrowed {
                wide.as_tensor().narrow(2, d, d)?
            } else {
                qv.as_tensor().clone()
            };
            let kshape: Vec<usize> = if four_d {
                vec![b, heads, s, d / heads]
            } else {
                vec![b, s, d]
            };
            let k = Var::randn(0f32, 2.0, kshape.clone(), dev)?;
            let v = Var::randn(0f32, 1.0, kshape, dev)?;
            let mask = pad_mask(b, s)?;
            let fused = attention(&q, k.as_tensor(), v.as_tensor(), &mask, heads)?;
            let want = reference(&q, k.as_tensor(), v.as_tensor(), &mask, heads)?;
            let diff = max_diff(&fused, &want)?;
            assert!(diff < 1e-5, "{name}: forward differs by {diff}");
            let w = Tensor::randn(0f32, 1.0, fused.shape(), dev)?;
            let fg = (&fused * &w)?.sum_all()?.backward()?;
            let rg = (&want * &w)?.sum_all()?.backward()?;
            let qvar = if narrowed { &wide } else { &qv };
            for (i, var) in [qvar, &k, &v].into_iter().enumerate() {
                let (Some(f), Some(r)) = (fg.get(var), rg.get(var)) else {
                    panic!("{name}: input {i} got no gradient");
                };
                let diff = max_diff(f, r)?;
                assert!(diff < 1e-4, "{name}: grad of input {i} differs by {diff}");
            }
        }
        Ok(())
    }
}
