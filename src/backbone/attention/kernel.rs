//! The attention kernels on raw f32 buffers: heads addressed through strides (no split or
//! merge copies), one rayon task per (batch, head), small single-threaded gemms inside.

use crate::backbone::ops::simd::{exp_neg, lane_sum, simd_fn};
use candle_core::{bail, Layout, Result};
use rayon::prelude::*;

/// One attention input: its data and where each (batch, head) block sits in it.
#[derive(Clone, Copy)]
pub(super) struct Input<'a> {
    pub(super) data: &'a [f32],
    pub(super) heads: Heads,
}

/// Sizes: batch, query rows, key rows, model width, heads.
#[derive(Clone, Copy)]
pub(super) struct Dims {
    pub(super) b: usize,
    pub(super) t: usize,
    pub(super) s: usize,
    pub(super) d: usize,
    pub(super) heads: usize,
}

impl Dims {
    fn dh(&self) -> usize {
        self.d / self.heads
    }

    fn check(&self, q: &Input, k: &Input, v: &Input) -> Result<()> {
        let dims = (self.b, self.heads, self.dh());
        q.heads.check(q.data.len(), dims)?;
        k.heads.check(k.data.len(), dims)?;
        v.heads.check(v.data.len(), dims)?;
        if q.heads.rows != self.t || k.heads.rows != self.s || v.heads.rows != self.s {
            bail!(
                "attention: {} queries, {} keys, {} values",
                q.heads.rows,
                k.heads.rows,
                v.heads.rows
            );
        }
        Ok(())
    }
}

/// (context (b, t, d) with heads merged, probabilities (b, heads, t, s)).
pub(super) fn forward(
    q: Input,
    k: Input,
    v: Input,
    mask: &[f32],
    z: Dims,
) -> Result<(Vec<f32>, Vec<f32>)> {
    z.check(&q, &k, &v)?;
    if mask.len() != z.b * z.s {
        bail!(
            "attention: mask of {} for {} × {} keys",
            mask.len(),
            z.b,
            z.s
        );
    }
    let (t, s, d, dh, heads) = (z.t, z.s, z.d, z.dh(), z.heads);
    let scale = 1.0 / (dh as f32).sqrt();
    let mut probs = vec![0f32; z.b * heads * t * s];
    let mut out = vec![0f32; z.b * t * d];
    let dst = Out(out.as_mut_ptr());
    probs
        .par_chunks_mut(t * s)
        .enumerate()
        .for_each(|(task, p)| {
            let (i, h) = (task / heads, task % heads);
            // SAFETY: the q/k/v blocks were checked to lie inside their data; this task
            // writes only its own p and the rows of head h of batch i in `out`.
            unsafe {
                let (qp, kp) = (
                    q.data.as_ptr().add(q.heads.at(i, h)),
                    k.data.as_ptr().add(k.heads.at(i, h)),
                );
                small_gemm(
                    (t, s, dh),
                    p.as_mut_ptr(),
                    s,
                    qp,
                    (q.heads.ss, 1),
                    kp,
                    (1, k.heads.ss),
                    scale,
                );
            }
            softmax_rows(p, s, &mask[i * s..(i + 1) * s]);
            // SAFETY: as above; out rows are d apart, head h occupies columns h·dh..+dh.
            unsafe {
                let vp = v.data.as_ptr().add(v.heads.at(i, h));
                let o = dst.at(i * t * d + h * dh);
                small_gemm(
                    (t, dh, s),
                    o,
                    d,
                    p.as_ptr(),
                    (s, 1),
                    vp,
                    (v.heads.ss, 1),
                    1.0,
                );
            }
        });
    Ok((out, probs))
}

/// Writes dq, dk, dv for upstream `g` (b, t, d) through `outs` (pointer, block layout; the
/// caller's buffers, each block written by exactly one task).
///
/// # Safety
/// Each `outs` pointer must address a buffer that its `Heads` fit (checked like the inputs by
/// the caller), and the blocks of all three must be disjoint.
pub(super) unsafe fn backward(
    [q, k, v]: [Input; 3],
    probs: &[f32],
    g: &[f32],
    z: Dims,
    outs: [(Out, Heads); 3],
) -> Result<()> {
    z.check(&q, &k, &v)?;
    let (t, s, d, dh, heads) = (z.t, z.s, z.d, z.dh(), z.heads);
    if probs.len() != z.b * heads * t * s || g.len() != z.b * t * d {
        bail!(
            "attention backward: {} probabilities, {} grads",
            probs.len(),
            g.len()
        );
    }
    let scale = 1.0 / (dh as f32).sqrt();
    let [(pq, gq), (pk, gk), (pv, gv)] = outs;
    (0..z.b * heads).into_par_iter().for_each_init(
        || vec![0f32; t * s],
        |ds, task| {
            let (i, h) = (task / heads, task % heads);
            let p = &probs[task * t * s..(task + 1) * t * s];
            // SAFETY: inputs checked above, outputs guaranteed by the caller; this task writes
            // only head h of batch i of dq, dk and dv.
            unsafe {
                let gp = g.as_ptr().add(i * t * d + h * dh);
                let qp = q.data.as_ptr().add(q.heads.at(i, h));
                let kp = k.data.as_ptr().add(k.heads.at(i, h));
                let vp = v.data.as_ptr().add(v.heads.at(i, h));
                // dv = pᵀ·g
                small_gemm(
                    (s, dh, t),
                    pv.at(gv.at(i, h)),
                    gv.ss,
                    p.as_ptr(),
                    (1, s),
                    gp,
                    (d, 1),
                    1.0,
                );
                // dp = g·vᵀ, then ds = p ⊙ (dp − Σ dp·p) (softmax backward)
                small_gemm(
                    (t, s, dh),
                    ds.as_mut_ptr(),
                    s,
                    gp,
                    (d, 1),
                    vp,
                    (1, v.heads.ss),
                    1.0,
                );
                softmax_grad_rows(ds, p, s);
                // dq = scale·ds·k, dk = scale·dsᵀ·q
                small_gemm(
                    (t, dh, s),
                    pq.at(gq.at(i, h)),
                    gq.ss,
                    ds.as_ptr(),
                    (s, 1),
                    kp,
                    (k.heads.ss, 1),
                    scale,
                );
                small_gemm(
                    (s, dh, t),
                    pk.at(gk.at(i, h)),
                    gk.ss,
                    ds.as_ptr(),
                    (1, s),
                    qp,
                    (q.heads.ss, 1),
                    scale,
                );
            }
        },
    );
    Ok(())
}

/// Head `h` of batch `i` of a tensor starts at `start + i·sb + h·sh`; its rows are `ss` apart.
#[derive(Clone, Copy, Debug)]
pub(super) struct Heads {
    pub(super) start: usize,
    pub(super) sb: usize,
    pub(super) sh: usize,
    pub(super) ss: usize,
    pub(super) rows: usize,
}

impl Heads {
    /// Heads of a (b, s, d) layout (side by side in the last dim) or a (b, heads, s, d_h) one.
    pub(super) fn of(l: &Layout, heads: usize) -> Result<Self> {
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
    pub(super) fn packed(l: &Layout, heads: usize) -> Result<Self> {
        Heads::of(&Layout::contiguous(l.shape()), heads)
    }

    /// Heads `offset` elements further along the last dim (q, k, v of a packed projection).
    pub(super) fn shifted(self, offset: usize) -> Self {
        Heads {
            start: self.start + offset,
            ..self
        }
    }

    fn at(&self, i: usize, h: usize) -> usize {
        self.start + i * self.sb + h * self.sh
    }

    /// Errors unless every (batch, head) block of `rows` × `dh` lies inside `len` elements.
    pub(super) fn check(&self, len: usize, (b, heads, dh): (usize, usize, usize)) -> Result<()> {
        let blocks = b * heads * self.rows * dh;
        let last = self.start + (b.max(1) - 1) * self.sb + (heads.max(1) - 1) * self.sh;
        if blocks > 0 && last + (self.rows - 1) * self.ss + dh > len {
            bail!("attention: heads {self:?} reach past {len} elements");
        }
        Ok(())
    }
}

/// A raw pointer that tasks write through, each to its own disjoint head block.
#[derive(Clone, Copy)]
pub(super) struct Out(pub(super) *mut f32);
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
