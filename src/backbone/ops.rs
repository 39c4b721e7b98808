//! Encoder and adapter kernels with a backward pass: layer norm (plain and of a residual sum),
//! masked softmax, frozen linear (optionally with GELU), trainable linear (`affine`), GELU.
//!
//! candle's fused layer norm and softmax have no backward (they silently cut the graph), its
//! matmul backward always builds the weight gradient, even for frozen weights, and every graph
//! node costs a zero-filled gradient plus an add in backward. The ops here are fused custom ops
//! with hand-written backward kernels on CPU/F32 (vectorised through `simd`) and, with the `cuda`
//! feature, on CUDA/F32 (`cuda`); elsewhere they fall back to the `*_reference` versions built
//! from primitive ops, which are also the test oracle.

pub(crate) mod bf16;
mod cpu;
#[cfg(feature = "cuda")]
pub(crate) mod cuda;
mod gelu;
mod linear;
mod norm;
mod rows;
pub(crate) mod simd;

use candle_core::backend::BackendStorage;
use candle_core::{
    bail, CpuStorage, CudaStorage, CustomOp2, DType, Layout, MetalStorage, Result, Shape, Tensor, D,
};
use cpu::MaskedSoftmax;
use linear::{Affine, FrozenLinear};
use norm::{AddLayerNorm, LayerNorm};
pub use rows::real_rows_scope;

/// Layer norm over the last dim; gradients flow to x, and to gamma/beta only when they are vars
/// (or computed from vars: anything with `track_op()`).
pub fn layer_norm(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64) -> Result<Tensor> {
    let d = x.dim(D::Minus1)?;
    let shapes_ok = gamma.dims() == [d] && beta.dims() == [d];
    #[cfg(feature = "cuda")]
    if shapes_ok && cuda::fusable(&[x, gamma, beta]) && x.elem_count() > 0 {
        return cuda::layer_norm(x, gamma, beta, eps);
    }
    if !fusable(&[x, gamma, beta]) || x.elem_count() == 0 {
        return layer_norm_reference(x, gamma, beta, eps);
    }
    if !shapes_ok {
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

/// LN(a + b) over the last dim: the post-LN residual. Fused (one pass, one gradient shared by
/// a and b) for frozen γ and β on CPU/F32; otherwise the add and `layer_norm`.
pub fn add_layer_norm(
    a: &Tensor,
    b: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
) -> Result<Tensor> {
    let frozen = !gamma.track_op() && !beta.track_op();
    let d = a.dim(D::Minus1)?;
    let shapes_ok = a.dims() == b.dims() && gamma.dims() == [d] && beta.dims() == [d];
    #[cfg(feature = "cuda")]
    if frozen && shapes_ok && cuda::fusable(&[a, b, gamma, beta]) && a.elem_count() > 0 {
        return cuda::add_layer_norm(a, b, gamma, beta, eps);
    }
    if !frozen || !shapes_ok || !fusable(&[a, b, gamma, beta]) || a.elem_count() == 0 {
        return layer_norm(&(a + b)?, gamma, beta, eps);
    }
    let op = AddLayerNorm {
        eps: eps as f32,
        gamma: gamma.contiguous()?,
        beta: beta.contiguous()?,
    };
    a.contiguous()?.apply_op2(&b.contiguous()?, op)
}

/// softmax(scores + mask) over the last dim. scores (b, h, q, k); mask additive, broadcastable
/// as (b, 1, 1, k), never differentiated. Pad with a large finite negative (e.g. −1e9): padded
/// keys get exactly 0 and a fully padded row comes out uniform, never NaN (an all −∞ row gives
/// zeros on the fused path).
pub fn masked_softmax(scores: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let mask = mask.detach();
    #[cfg(feature = "cuda")]
    if cuda::fusable(&[scores, &mask]) && scores.elem_count() > 0 {
        if let Some(probs) = cuda::masked_softmax(scores, &mask)? {
            return Ok(probs);
        }
    }
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
    frozen_linear(x, weight, bias, false)
}

/// gelu_erf(linear(x, weight, bias)) with GELU fused into the frozen linear on CPU/F32 (no
/// separate GELU node; its derivative is applied inside the linear's backward).
pub fn linear_gelu(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    frozen_linear(x, weight, bias, true)
}

fn frozen_linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, gelu: bool) -> Result<Tensor> {
    let activate = |y: Tensor| if gelu { gelu_erf(&y) } else { Ok(y) };
    if weight.track_op() {
        return activate(linear_reference(x, weight, bias)?);
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
    let fuse_gelu = gelu && bias.is_none_or(|b| !b.track_op());
    let y = match fused_frozen_linear(x, weight, frozen_bias, fuse_gelu)? {
        Some(y) if fuse_gelu => return Ok(y),
        Some(y) => y,
        None => {
            // Any device/dtype: compute y off the graph, then hang it on x with a copy whose
            // backward is dx only.
            let y = linear_reference(&x.detach(), weight, frozen_bias)?.contiguous()?;
            if x.track_op() {
                x.apply_op2(&y, AttachInputGrad(weight.clone()))?
            } else {
                y
            }
        }
    };
    activate(match bias {
        Some(b) if b.track_op() => y.broadcast_add(b)?,
        _ => y,
    })
}

/// The frozen linear as one fused op (GELU applied when `gelu`) on CPU/F32 or CUDA/F32; `None`
/// elsewhere. Shapes were checked by the caller.
fn fused_frozen_linear(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    gelu: bool,
) -> Result<Option<Tensor>> {
    if x.elem_count() == 0 || weight.dim(1)? == 0 {
        return Ok(None);
    }
    #[cfg(feature = "cuda")]
    if cuda::fusable(&[x, weight]) && bias.is_none_or(|b| cuda::fusable(&[b])) {
        return cuda::linear(x, weight, bias, gelu).map(Some);
    }
    if !fusable(&[x, weight]) || bias.is_some_and(|b| !fusable(&[b])) {
        return Ok(None);
    }
    let op = FrozenLinear {
        weight: weight.contiguous()?,
        bias: bias.map(|b| b.contiguous()).transpose()?,
        gelu,
        keep: gelu && x.track_op(),
        gelu_grad: Default::default(),
        rows: rows::current().filter(|r| r.fits(x.dims())),
    };
    x.contiguous()?.apply_op1(op).map(Some)
}

/// x (..., in) · weightᵀ (+ bias) for trained weights: on CPU/F32 one node whose backward
/// gives dx, dW and db together; elsewhere `linear_reference`.
pub fn affine(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let (n, k) = weight.dims2()?;
    let mut args = vec![x, weight];
    args.extend(bias);
    let shapes_ok = x.dim(D::Minus1)? == k && bias.is_none_or(|b| b.dims() == [n]);
    #[cfg(feature = "cuda")]
    if cuda::fusable(&args) && shapes_ok && x.elem_count() > 0 && k > 0 && n > 0 {
        return cuda::affine(x, weight, bias);
    }
    if !fusable(&args) || !shapes_ok || x.elem_count() == 0 || k == 0 || n == 0 {
        return linear_reference(x, weight, bias);
    }
    let (x, weight) = (x.contiguous()?, weight.contiguous()?);
    match bias {
        Some(b) => x.apply_op3(&weight, &b.contiguous()?, Affine),
        None => x.apply_op2(&weight, Affine),
    }
}

/// GELU, erf form (`x·Φ(x)`), fused on CPU/F32 with a vectorised erf; candle's `gelu_erf`
/// elsewhere (which is also the reference).
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    #[cfg(feature = "cuda")]
    if cuda::fusable(&[x]) && x.elem_count() > 0 {
        return cuda::gelu_erf(x);
    }
    if !fusable(&[x]) || x.elem_count() == 0 {
        return x.gelu_erf();
    }
    x.contiguous()?.apply_op1(gelu::Gelu {
        keep: x.track_op(),
        grad: Default::default(),
    })
}

/// h + s·delta: one node on CUDA/F32, the two primitive ops elsewhere.
pub fn scaled_add(h: &Tensor, delta: &Tensor, s: f64) -> Result<Tensor> {
    #[cfg(feature = "cuda")]
    if cuda::fusable(&[h, delta]) && h.dims() == delta.dims() && h.elem_count() > 0 {
        return cuda::scaled_add(h, delta, s);
    }
    h + (delta * s)?
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

/// dx = grad · W for a frozen weight W (out, in); the only gradient a frozen linear needs.
fn frozen_input_grad(x: &Tensor, weight: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
    let n = weight.dim(0)?;
    let dx = grad.reshape((grad.elem_count() / n, n))?.matmul(weight)?;
    Ok(Some(dx.reshape(x.shape())?))
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

#[cfg(test)]
mod tests;
