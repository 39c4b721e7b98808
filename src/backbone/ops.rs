//! Encoder kernels with a backward pass: layer norm, masked softmax, frozen linear (fused on CPU).
//!
//! candle's fused layer norm and softmax have no backward (they silently cut the graph) and its
//! matmul backward always builds the weight gradient, even for frozen weights. The ops here are
//! fused custom ops with hand-written backward kernels on CPU/F32; elsewhere they fall back to the
//! `*_reference` versions built from primitive ops, which are also the oracle in the tests.

use candle_core::backend::BackendStorage;
use candle_core::{
    bail, CpuStorage, CudaStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, MetalStorage,
    Result, Shape, Storage, Tensor, D,
};
use rayon::prelude::*;

/// Layer norm over the last dim; gradients flow to x, and to gamma/beta only when they are vars.
pub fn layer_norm(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64) -> Result<Tensor> {
    if !fusable(&[x, gamma, beta]) || x.elem_count() == 0 {
        return layer_norm_reference(x, gamma, beta, eps);
    }
    let d = x.dim(D::Minus1)?;
    if gamma.dims() != [d] || beta.dims() != [d] {
        bail!(
            "layer_norm: gamma {:?} / beta {:?} must be ({d},)",
            gamma.dims(),
            beta.dims()
        );
    }
    let op = LayerNorm { eps: eps as f32 };
    x.contiguous()?
        .apply_op3(&gamma.contiguous()?, &beta.contiguous()?, op)
}

/// softmax(scores + mask) over the last dim. scores (b, h, q, k); mask additive, broadcastable
/// as (b, 1, 1, k), never differentiated.
pub fn masked_softmax(scores: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let mask = mask.detach();
    if !fusable(&[scores, &mask]) || scores.elem_count() == 0 {
        return masked_softmax_reference(scores, &mask);
    }
    // A stride-0 broadcast view lets the kernel read the (b, 1, 1, k) mask in place.
    let mask = mask.broadcast_as(scores.shape())?;
    let mask = if mask.stride().last() == Some(&1) {
        mask
    } else {
        mask.contiguous()?
    };
    scores.contiguous()?.apply_op2(&mask, MaskedSoftmax)
}

/// x (..., in) · weightᵀ + bias, weight (out, in). When weight is not a var, the backward pass
/// computes only the input gradient (no wasted weight gradient).
pub fn linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    if weight.track_op() {
        return linear_reference(x, weight, bias);
    }
    let (n, k) = weight.dims2()?;
    if x.dim(D::Minus1)? != k || bias.is_some_and(|b| b.dims() != [n]) {
        bail!(
            "linear: x {:?}, weight {:?}, bias {:?}",
            x.dims(),
            weight.dims(),
            bias.map(|b| b.dims())
        );
    }
    // A trainable bias (BitFit) is added outside the op so candle reduces its gradient.
    let frozen_bias = bias.filter(|b| !b.track_op());
    let y = if fusable(&[x, weight]) && frozen_bias.is_none_or(|b| fusable(&[b])) {
        let bias = frozen_bias.map(|b| b.contiguous()).transpose()?;
        x.contiguous()?.apply_op1(FrozenLinear {
            weight: weight.contiguous()?,
            bias,
        })?
    } else {
        // Any device/dtype: compute y off the graph, then hang it on x with a copy whose
        // backward is dx only.
        let y = linear_reference(&x.detach(), weight, frozen_bias)?.contiguous()?;
        if x.track_op() {
            x.apply_op2(&y, AttachInputGrad(weight.clone()))?
        } else {
            y
        }
    };
    match bias {
        Some(b) if b.track_op() => y.broadcast_add(b),
        _ => Ok(y),
    }
}

/// Layer norm from primitive ops (two-pass variance, like the fused kernel).
pub fn layer_norm_reference(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64) -> Result<Tensor> {
    let xc = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?;
    let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
    xc.broadcast_div(&(var + eps)?.sqrt()?)?
        .broadcast_mul(gamma)?
        .broadcast_add(beta)
}

/// Masked softmax from primitive ops. The row max is detached: softmax is shift-invariant, so
/// its gradient through the max is zero anyway.
pub fn masked_softmax_reference(scores: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let v = scores.broadcast_add(&mask.detach().to_dtype(scores.dtype())?)?;
    let e = v
        .broadcast_sub(&v.max_keepdim(D::Minus1)?.detach())?
        .exp()?;
    e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
}

/// Linear from primitive ops; the weight gets a gradient whenever the graph reaches it.
pub fn linear_reference(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let (n, k) = weight.dims2()?;
    let mut dims = x.dims().to_vec();
    if dims.last() != Some(&k) {
        bail!(
            "linear: x {dims:?} does not end in {k} (weight {:?})",
            weight.dims()
        );
    }
    let y = x.reshape((x.elem_count() / k, k))?.matmul(&weight.t()?)?;
    if let Some(l) = dims.last_mut() {
        *l = n;
    }
    let y = y.reshape(dims)?;
    match bias {
        Some(b) => y.broadcast_add(b),
        None => Ok(y),
    }
}

fn fusable(ts: &[&Tensor]) -> bool {
    ts.iter()
        .all(|t| t.device().is_cpu() && t.dtype() == DType::F32)
}

/// Rows per rayon task: ~16k floats, so tiny rows (softmax over 48 keys) amortise scheduling.
fn task_rows(width: usize) -> usize {
    (16_384 / width.max(1)).max(1)
}

fn slice<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&s.as_slice::<f32>()?[a..b]),
        None => bail!("fused op: non-contiguous input {:?}", l.stride()),
    }
}

/// Σ f over 16 independent lanes: LLVM may not reorder a serial f32 sum, so it never vectorises.
#[inline]
fn lane_sum<const K: usize>(xs: [&[f32]; K], f: impl Fn([f32; K]) -> f32) -> f32 {
    const L: usize = 16;
    let n = xs.iter().map(|s| s.len()).min().unwrap_or(0);
    let body = n - n % L;
    let mut acc = [0f32; L];
    for c in (0..body).step_by(L) {
        for (l, a) in acc.iter_mut().enumerate() {
            *a += f(xs.map(|s| s[c + l]));
        }
    }
    acc.iter().sum::<f32>() + (body..n).map(|i| f(xs.map(|s| s[i]))).sum::<f32>()
}

/// Writes x − mean(x) into `out` and returns 1/√(var + eps) (two passes, as the reference).
#[inline]
fn center(out: &mut [f32], x: &[f32], eps: f32) -> f32 {
    let n = x.len() as f32;
    let mean = lane_sum([x], |[v]| v) / n;
    out.iter_mut().zip(x).for_each(|(o, &v)| *o = v - mean);
    let var = lane_sum([&*out], |[v]| v * v) / n;
    1.0 / (var + eps).sqrt()
}

struct LayerNorm {
    eps: f32,
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
        let d = g.len();
        let mut out = vec![0f32; x.len()];
        let step = d * task_rows(d);
        out.par_chunks_mut(step)
            .zip(x.par_chunks(step))
            .for_each(|(o, x)| {
                for (o, x) in o.chunks_mut(d).zip(x.chunks(d)) {
                    let rstd = center(o, x, self.eps);
                    for ((o, &g), &b) in o.iter_mut().zip(g).zip(b) {
                        *o = *o * rstd * g + b;
                    }
                }
            });
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
        let op = LayerNormBwd {
            eps: self.eps,
            affine,
        };
        let out = x.apply_op3_no_bwd(gamma, &grad.contiguous()?, &op)?;
        let rows = x.elem_count() / gamma.elem_count();
        // Without the affine rows the kernel already returns dx in x's shape.
        let dx = if affine {
            out.narrow(0, 0, rows)?.reshape(x.shape())?
        } else {
            out.clone()
        };
        let keep = |t: &Tensor, i| t.track_op().then(|| out.get(rows + i)).transpose();
        Ok((x.track_op().then_some(dx), keep(gamma, 0)?, keep(beta, 1)?))
    }
}

/// dx of layer norm on (x, gamma, grad); when `affine`, two extra rows hold dgamma and dbeta,
/// so one pass over the data serves all three gradients.
struct LayerNormBwd {
    eps: f32,
    affine: bool,
}

impl CustomOp3 for LayerNormBwd {
    fn name(&self) -> &'static str {
        "pets-layer-norm-bwd"
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
        let (x, g, gr) = (slice(s1, l1)?, slice(s2, l2)?, slice(s3, l3)?);
        let (d, extra) = (g.len(), if self.affine { 2 * g.len() } else { 0 });
        let mut out = vec![0f32; x.len() + extra];
        let (dx, tail) = out.split_at_mut(x.len());
        let step = d * task_rows(d);
        let partials: Vec<Vec<f32>> = (dx.par_chunks_mut(step).zip(x.par_chunks(step)))
            .zip(gr.par_chunks(step))
            .map(|((dx, x), gr)| {
                let mut acc = vec![0f32; extra];
                for ((dx, x), gr) in dx.chunks_mut(d).zip(x.chunks(d)).zip(gr.chunks(d)) {
                    let rstd = center(dx, x, self.eps);
                    dx.iter_mut().for_each(|v| *v *= rstd); // dx now holds x̂
                    let a = lane_sum([gr, g], |[u, w]| u * w) / d as f32;
                    let b = lane_sum([gr, g, &*dx], |[u, w, h]| u * w * h) / d as f32;
                    if self.affine {
                        let (ag, ab) = acc.split_at_mut(d);
                        for (((ag, ab), &u), &h) in ag.iter_mut().zip(ab).zip(gr).zip(&*dx) {
                            *ag += u * h;
                            *ab += u;
                        }
                    }
                    for ((v, &u), &w) in dx.iter_mut().zip(gr).zip(g) {
                        *v = rstd * (u * w - a - *v * b);
                    }
                }
                acc
            })
            .collect();
        for p in partials {
            tail.iter_mut().zip(&p).for_each(|(t, v)| *t += v);
        }
        let shape = if self.affine {
            Shape::from((x.len() / d + 2, d))
        } else {
            l1.shape().clone()
        };
        Ok((CpuStorage::F32(out), shape))
    }
}

struct MaskedSoftmax;

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
                if max == f32::NEG_INFINITY {
                    o.fill(0.0); // every key masked with −inf: attend to nothing, not NaN
                    continue;
                }
                o.iter_mut().for_each(|v| *v = (*v - max).exp());
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

/// dx = grad · W for a frozen weight W (out, in); the only gradient a frozen linear needs.
fn frozen_input_grad(x: &Tensor, weight: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
    let n = weight.dim(0)?;
    let dx = grad.reshape((grad.elem_count() / n, n))?.matmul(weight)?;
    Ok(Some(dx.reshape(x.shape())?))
}

/// CPU frozen linear on x: gemm straight from the weight's storage, bias added in place.
struct FrozenLinear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl CustomOp1 for FrozenLinear {
    fn name(&self) -> &'static str {
        "pets-frozen-linear"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (ws, wl) = self.weight.storage_and_layout();
        let Storage::Cpu(ws) = &*ws else {
            bail!("frozen linear: weight is not on the CPU")
        };
        let (n, k) = wl.shape().dims2()?;
        let (Some(_), rows) = (l.contiguous_offsets(), l.shape().elem_count() / k) else {
            bail!("frozen linear: non-contiguous input {:?}", l.stride());
        };
        let xl = Layout::contiguous_with_offset((rows, k), l.start_offset());
        let CpuStorage::F32(mut y) = s.matmul(ws, (1, rows, n, k), &xl, &wl.transpose(0, 1)?)?
        else {
            bail!("frozen linear: matmul did not return f32");
        };
        if let Some(bias) = &self.bias {
            let (bs, bl) = bias.storage_and_layout();
            let Storage::Cpu(bs) = &*bs else {
                bail!("frozen linear: bias is not on the CPU")
            };
            let b = slice(bs, bl)?;
            y.par_chunks_mut(n * task_rows(n)).for_each(|c| {
                c.chunks_mut(n)
                    .for_each(|r| r.iter_mut().zip(b).for_each(|(o, &b)| *o += b))
            });
        }
        let mut dims = l.dims().to_vec();
        if let Some(d) = dims.last_mut() {
            *d = n;
        }
        Ok((CpuStorage::F32(y), Shape::from(dims)))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        frozen_input_grad(x, &self.weight, grad)
    }
}

/// Any-device frozen linear: (x, y) ↦ copy of y, whose backward is grad · W for x only.
struct AttachInputGrad(Tensor);

impl AttachInputGrad {
    fn copy<S: BackendStorage>(s: &S, l: &Layout) -> Result<(S, Shape)> {
        if l.contiguous_offsets() != Some((0, l.shape().elem_count())) {
            bail!("attach-input-grad: y must be a fresh contiguous tensor");
        }
        Ok((s.try_clone(l)?, l.shape().clone()))
    }
}

impl CustomOp2 for AttachInputGrad {
    fn name(&self) -> &'static str {
        "pets-attach-input-grad"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        s: &CpuStorage,
        l: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        Self::copy(s, l)
    }

    fn cuda_fwd(
        &self,
        _: &CudaStorage,
        _: &Layout,
        s: &CudaStorage,
        l: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        Self::copy(s, l)
    }

    fn metal_fwd(
        &self,
        _: &MetalStorage,
        _: &Layout,
        s: &MetalStorage,
        l: &Layout,
    ) -> Result<(MetalStorage, Shape)> {
        Self::copy(s, l)
    }

    fn bwd(
        &self,
        x: &Tensor,
        _y: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((frozen_input_grad(x, &self.0, grad)?, None))
    }
}
