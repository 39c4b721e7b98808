//! Linear layers on CPU/F32, each a single graph node: frozen (backward gives dx only; GELU
//! optionally fused into the output; products in bf16 when `bf16::enabled`; only the real
//! rows of a padded batch inside `rows::real_rows_scope`) and trainable (dx, dW and db from
//! one backward).
//!
//! gemm writes straight into fresh buffers, the bias pre-filled as the accumulator, so there
//! is no zero-fill and no separate bias pass; unfused, candle's graph adds reshape, transpose
//! and broadcast-add nodes, each a zero-filled tensor and an add in backward.

use super::cpu::{filled_with, slice, task_rows};
use super::gelu::{gelu_par, times};
use super::rows::RealRows;
use candle_core::{
    bail, CpuStorage, CustomOp1, CustomOp2, CustomOp3, Device, Layout, Result, Shape, Storage,
    Tensor,
};
use rayon::prelude::*;
use std::mem::MaybeUninit;
use std::sync::{Arc, OnceLock};

/// lhs (m×k) · rhs (k×n) [+ `bias` on every row] as a fresh row-major (m×n) buffer, element
/// (r, c) of lhs at lhs[r·lrs + c·lcs] and likewise for rhs. gemm writes straight into the
/// buffer (the bias, if any, pre-filled as its accumulator) and threads over rayon when the
/// product is big enough.
fn product(
    (m, n, k): (usize, usize, usize),
    lhs: &[f32],
    (lrs, lcs): (usize, usize),
    rhs: &[f32],
    (rrs, rcs): (usize, usize),
    bias: Option<&[f32]>,
) -> Result<Vec<f32>> {
    let last = |rs: usize, cs: usize, r: usize, c: usize| (r - 1) * rs + (c - 1) * cs;
    let empty = m == 0 || n == 0 || k == 0;
    if bias.is_some_and(|b| b.len() != n)
        || (!empty && (lhs.len() <= last(lrs, lcs, m, k) || rhs.len() <= last(rrs, rcs, k, n)))
    {
        bail!("linear: gemm extents ({m}, {n}, {k}) exceed the buffers");
    }
    let fill_rows = |dst: &mut [MaybeUninit<f32>]| {
        dst.par_chunks_mut(n.max(1) * task_rows(n)).for_each(|c| {
            for row in c.chunks_mut(n.max(1)) {
                match bias {
                    Some(b) => {
                        row.write_copy_of_slice(b);
                    }
                    None => row.fill(MaybeUninit::new(0.0)),
                }
            }
        })
    };
    // SAFETY: every element is written: by fill_rows, or by gemm, which writes all m×n
    // elements when it does not read dst (m, n, k > 0); with a bias it accumulates onto the
    // rows fill_rows wrote. The extents were checked against the slices above.
    Ok(unsafe {
        filled_with(m * n, |dst| {
            if bias.is_some() || empty {
                fill_rows(dst);
            }
            if empty {
                return;
            }
            gemm::gemm(
                m,
                n,
                k,
                dst.as_mut_ptr().cast::<f32>(),
                1,
                n as isize,
                bias.is_some(),
                lhs.as_ptr(),
                lcs as isize,
                lrs as isize,
                rhs.as_ptr(),
                rcs as isize,
                rrs as isize,
                1.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::Rayon(rayon::current_num_threads()),
            )
        })
    })
}

/// y (rows×n) = x (rows×k) · wᵀ + bias, for w stored (n, k).
fn forward(x: &[f32], w: &[f32], bias: Option<&[f32]>, n: usize) -> Result<Vec<f32>> {
    let k = w.len() / n.max(1);
    let rows = x.len().checked_div(k).unwrap_or(0);
    product((rows, n, k), x, (k, 1), w, (1, k), bias)
}

/// dx (rows×k) = g (rows×n) · w, for w stored (n, k).
fn input_grad(g: &[f32], w: &[f32], n: usize) -> Result<Vec<f32>> {
    let k = w.len() / n.max(1);
    let rows = g.len() / n.max(1);
    product((rows, k, n), g, (n, 1), w, (k, 1), None)
}

/// dw (n×k) = gᵀ (n×rows) · x (rows×k).
fn weight_grad(g: &[f32], x: &[f32], n: usize, k: usize) -> Result<Vec<f32>> {
    let rows = g.len() / n.max(1);
    product((n, k, rows), g, (1, n), x, (k, 1), None)
}

/// db (n) = Σ over rows of g.
fn bias_grad(g: &[f32], n: usize) -> Vec<f32> {
    g.par_chunks(n * task_rows(n))
        .map(|c| {
            let mut acc = vec![0f32; n];
            c.chunks(n)
                .for_each(|r| acc.iter_mut().zip(r).for_each(|(a, v)| *a += v));
            acc
        })
        .reduce(
            || vec![0f32; n],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
                a
            },
        )
}

/// The data of a contiguous CPU f32 tensor, from its storage guard.
fn cpu<'a>(storage: &'a Storage, layout: &Layout) -> Result<&'a [f32]> {
    match storage {
        Storage::Cpu(s) => slice(s, layout),
        _ => bail!("linear: expected a CPU tensor"),
    }
}

fn out_shape(x: &Layout, n: usize) -> Shape {
    let mut dims = x.dims().to_vec();
    if let Some(d) = dims.last_mut() {
        *d = n;
    }
    Shape::from(dims)
}

/// x · Wᵀ + b for frozen W and b, optionally followed by GELU; backward gives dx only.
pub(super) struct FrozenLinear {
    pub(super) weight: Tensor,
    pub(super) bias: Option<Tensor>,
    pub(super) gelu: bool,
    /// With `gelu` and a backward pass to come: keep gelu'(pre-activation).
    pub(super) keep: bool,
    pub(super) gelu_grad: OnceLock<Vec<f32>>,
    /// Multiply only these rows of a padded batch (zeros at padding), forward and backward.
    pub(super) rows: Option<Arc<RealRows>>,
}

impl FrozenLinear {
    /// rows × k of `x` (compact when `rows` is set) · Wᵀ [+ bias], in bf16 when enabled.
    fn product(&self, x: &[f32], w: &[f32], bias: Option<&[f32]>, n: usize) -> Result<Vec<f32>> {
        if super::bf16::enabled() {
            let packed = super::bf16::packed(self.weight.id(), w, n);
            return super::bf16::product(x, &packed.0, bias);
        }
        forward(x, w, bias, n)
    }

    /// g · W, likewise.
    fn input_grad(&self, g: &[f32], w: &[f32], n: usize) -> Result<Vec<f32>> {
        if super::bf16::enabled() {
            let packed = super::bf16::packed(self.weight.id(), w, n);
            return super::bf16::product(g, &packed.1, None);
        }
        input_grad(g, w, n)
    }
}

impl CustomOp1 for FrozenLinear {
    fn name(&self) -> &'static str {
        "pets-frozen-linear"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (ws, wl) = self.weight.storage_and_layout();
        let (w, (n, k)) = (cpu(&ws, wl)?, wl.shape().dims2()?);
        let bias_guard = self.bias.as_ref().map(|b| b.storage_and_layout());
        let bias = match &bias_guard {
            Some((s, l)) => Some(cpu(s, l)?),
            None => None,
        };
        let x = slice(s, l)?;
        let z = match &self.rows {
            Some(rows) => self.product(&rows.gather(x, k), w, bias, n)?,
            None => self.product(x, w, bias, n)?,
        };
        let y = if self.gelu {
            let (y, d) = gelu_par(&z, self.keep);
            if let Some(d) = d {
                let _ = self.gelu_grad.set(d);
            }
            y
        } else {
            z
        };
        let y = match &self.rows {
            Some(rows) => rows.scatter(&y, n),
            None => y,
        };
        Ok((CpuStorage::F32(y), out_shape(l, n)))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let grad = grad.contiguous()?;
        let ((gs, gl), (ws, wl)) = (grad.storage_and_layout(), self.weight.storage_and_layout());
        let (g, w, (n, k)) = (cpu(&gs, gl)?, cpu(&ws, wl)?, wl.shape().dims2()?);
        let compact;
        let g = match &self.rows {
            Some(rows) => {
                compact = rows.gather(g, n);
                &compact[..]
            }
            None => g,
        };
        let through_gelu;
        let g = if self.gelu {
            let Some(d) = self.gelu_grad.get() else {
                bail!("frozen linear: backward without the kept GELU derivative");
            };
            through_gelu = times(g, d)?;
            &through_gelu[..]
        } else {
            g
        };
        let dx = self.input_grad(g, w, n)?;
        let dx = match &self.rows {
            Some(rows) => rows.scatter(&dx, k),
            None => dx,
        };
        Ok(Some(Tensor::from_vec(dx, x.shape(), &Device::Cpu)?))
    }
}

/// x · Wᵀ (+ b) for trained W (and b): one node whose backward gives dx, dW and db.
pub(super) struct Affine;

impl Affine {
    fn fwd(
        x: (&CpuStorage, &Layout),
        w: (&CpuStorage, &Layout),
        b: Option<(&CpuStorage, &Layout)>,
    ) -> Result<(CpuStorage, Shape)> {
        let n = w.1.dims()[0];
        let bias = b.map(|(s, l)| slice(s, l)).transpose()?;
        let y = forward(slice(x.0, x.1)?, slice(w.0, w.1)?, bias, n)?;
        Ok((CpuStorage::F32(y), out_shape(x.1, n)))
    }

    /// (dx, dW, db), each only for an input that tracks gradients.
    fn grads(
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        grad: &Tensor,
    ) -> Result<[Option<Tensor>; 3]> {
        let grad = grad.contiguous()?;
        let ((gs, gl), (xs, xl), (ws, wl)) = (
            grad.storage_and_layout(),
            x.storage_and_layout(),
            w.storage_and_layout(),
        );
        let (g, xd, wd) = (cpu(&gs, gl)?, cpu(&xs, xl)?, cpu(&ws, wl)?);
        let (n, k) = w.dims2()?;
        let dev = &Device::Cpu;
        let dx = x
            .track_op()
            .then(|| Tensor::from_vec(input_grad(g, wd, n)?, x.shape(), dev));
        let dw = w
            .track_op()
            .then(|| Tensor::from_vec(weight_grad(g, xd, n, k)?, (n, k), dev));
        let db = b
            .filter(|b| b.track_op())
            .map(|_| Tensor::from_vec(bias_grad(g, n), n, dev));
        Ok([dx.transpose()?, dw.transpose()?, db.transpose()?])
    }
}

impl CustomOp2 for Affine {
    fn name(&self) -> &'static str {
        "pets-affine"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        Affine::fwd((s1, l1), (s2, l2), None)
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let [dx, dw, _] = Affine::grads(x, w, None, grad)?;
        Ok((dx, dw))
    }
}

impl CustomOp3 for Affine {
    fn name(&self) -> &'static str {
        "pets-affine-bias"
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
        Affine::fwd((s1, l1), (s2, l2), Some((s3, l3)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let [dx, dw, db] = Affine::grads(x, w, Some(b), grad)?;
        Ok((dx, dw, db))
    }
}
