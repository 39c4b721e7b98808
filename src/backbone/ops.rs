//! Encoder kernels with a backward pass: layer norm, masked softmax, frozen linear (fused on CPU).
//!
//! candle's fused layer norm and softmax have no backward (they silently cut the graph) and its
//! matmul backward always builds the weight gradient, even for frozen weights. The ops here are
//! fused custom ops with hand-written backward kernels on CPU/F32; elsewhere they fall back to the
//! `*_reference` versions built from primitive ops, which are also the oracle in the tests.

mod cpu;
mod gelu;
mod linear;
mod norm;
pub(crate) mod simd;

use candle_core::backend::BackendStorage;
use candle_core::{
    bail, CpuStorage, CudaStorage, CustomOp2, DType, Layout, MetalStorage, Result, Shape, Tensor, D,
};
use cpu::MaskedSoftmax;
use linear::{Affine, FrozenLinear};
use norm::{AddLayerNorm, LayerNorm};

/// Layer norm over the last dim; gradients flow to x, and to gamma/beta only when they are vars
/// (or computed from vars: anything with `track_op()`).
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
    if !frozen
        || !fusable(&[a, b, gamma, beta])
        || a.elem_count() == 0
        || a.dims() != b.dims()
        || gamma.dims() != [d]
        || beta.dims() != [d]
    {
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
    let cpu = fusable(&[x, weight]) && frozen_bias.is_none_or(|b| fusable(&[b]));
    let y = if cpu && x.elem_count() > 0 && k > 0 {
        let fuse_gelu = gelu && bias.is_none_or(|b| !b.track_op());
        let y = x.contiguous()?.apply_op1(FrozenLinear {
            weight: weight.contiguous()?,
            bias: frozen_bias.map(|b| b.contiguous()).transpose()?,
            gelu: fuse_gelu,
            keep: fuse_gelu && x.track_op(),
            gelu_grad: Default::default(),
        })?;
        if fuse_gelu {
            return Ok(y);
        }
        y
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
    activate(match bias {
        Some(b) if b.track_op() => y.broadcast_add(b)?,
        _ => y,
    })
}

/// x (..., in) · weightᵀ (+ bias) for trained weights: on CPU/F32 one node whose backward
/// gives dx, dW and db together; elsewhere `linear_reference`.
pub fn affine(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let (n, k) = weight.dims2()?;
    let mut args = vec![x, weight];
    args.extend(bias);
    let shapes_ok = x.dim(D::Minus1)? == k && bias.is_none_or(|b| b.dims() == [n]);
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
    if !fusable(&[x]) || x.elem_count() == 0 {
        return x.gelu_erf();
    }
    x.contiguous()?.apply_op1(gelu::Gelu {
        keep: x.track_op(),
        grad: Default::default(),
    })
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
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[derive(Clone, Copy)]
    enum Kind {
        Ln,
        Softmax,
        Linear,
        Gelu,
        AddLn,
        LinGelu,
        Aff,
    }
    use DType::{F32, F64};
    use Kind::{AddLn, Aff, Gelu, LinGelu, Linear, Ln, Softmax};

    /// Argument flags: a var or a constant (frozen), optionally passed as a transposed view.
    const C: u8 = 0;
    const V: u8 = 1;
    const VT: u8 = 3;

    /// Name, dtype, op, and per argument its final shape and flags.
    type Case = (&'static str, DType, Kind, &'static [(&'static [usize], u8)]);

    #[rustfmt::skip]
    const CASES: &[Case] = &[
        ("ln all vars",          F32, Ln,      &[(&[8, 50, 64], V), (&[64], V), (&[64], V)]),
        ("ln strided x",         F32, Ln,      &[(&[3, 7, 32], VT), (&[32], C), (&[32], C)]),
        ("ln var gamma",         F32, Ln,      &[(&[5, 384], C), (&[384], V), (&[384], C)]),
        ("softmax",              F32, Softmax, &[(&[4, 3, 50, 40], V)]),
        ("softmax strided",      F32, Softmax, &[(&[3, 2, 7, 9], VT)]),
        ("lin frozen w, b",      F32, Linear,  &[(&[8, 40, 64], V), (&[96, 64], C), (&[96], C)]),
        ("lin strided x",        F32, Linear,  &[(&[2, 5, 48], VT), (&[16, 48], C)]),
        ("lin frozen w, var b",  F32, Linear,  &[(&[2, 5, 48], V), (&[16, 48], C), (&[16], V)]),
        ("lin var w",            F32, Linear,  &[(&[2, 5, 48], V), (&[16, 48], V), (&[16], V)]),
        ("lin f64 (any device)", F64, Linear,  &[(&[2, 5, 48], VT), (&[16, 48], C), (&[16], C)]),
        ("add-ln frozen γ, β",   F32, AddLn,   &[(&[8, 50, 64], V), (&[8, 50, 64], V), (&[64], C), (&[64], C)]),
        ("add-ln strided, const", F32, AddLn,  &[(&[3, 7, 32], VT), (&[3, 7, 32], C), (&[32], C), (&[32], C)]),
        ("add-ln var γ",         F32, AddLn,   &[(&[5, 384], V), (&[5, 384], V), (&[384], V), (&[384], C)]),
        ("lin+gelu frozen",      F32, LinGelu, &[(&[8, 40, 64], V), (&[96, 64], C), (&[96], C)]),
        ("lin+gelu strided",     F32, LinGelu, &[(&[2, 5, 48], VT), (&[16, 48], C)]),
        ("lin+gelu var b",       F32, LinGelu, &[(&[2, 5, 48], V), (&[16, 48], C), (&[16], V)]),
        ("affine all vars",      F32, Aff,     &[(&[8, 40, 64], V), (&[12, 64], V), (&[12], V)]),
        ("affine const x",       F32, Aff,     &[(&[2, 5, 48], C), (&[16, 48], V)]),
        ("affine strided x, w",  F32, Aff,     &[(&[3, 7, 32], VT), (&[24, 32], VT), (&[24], V)]),
        ("affine f64",           F64, Aff,     &[(&[2, 5, 48], V), (&[16, 48], V), (&[16], V)]),
        ("gelu",                 F32, Gelu,    &[(&[3, 70_001], V)]),
        ("gelu strided",         F32, Gelu,    &[(&[4, 6, 10], VT)]),
        ("gelu f64 (any device)", F64, Gelu,   &[(&[4, 6, 10], V)]),
    ];

    fn apply(kind: Kind, a: &[Tensor], fused: bool) -> Result<Tensor> {
        match (kind, fused) {
            (Ln, true) => layer_norm(&a[0], &a[1], &a[2], 1e-12),
            (Ln, false) => layer_norm_reference(&a[0], &a[1], &a[2], 1e-12),
            (AddLn, true) => add_layer_norm(&a[0], &a[1], &a[2], &a[3], 1e-12),
            (AddLn, false) => layer_norm_reference(&(&a[0] + &a[1])?, &a[2], &a[3], 1e-12),
            (Softmax, _) => {
                let (s, m) = ((&a[0] * 3.0)?, pad_mask(a[0].dim(0)?, a[0].dim(3)?)?);
                if fused {
                    masked_softmax(&s, &m)
                } else {
                    masked_softmax_reference(&s, &m)
                }
            }
            (Linear, true) => linear(&a[0], &a[1], a.get(2)),
            (Linear, false) => linear_reference(&a[0], &a[1], a.get(2)),
            (LinGelu, true) => linear_gelu(&a[0], &a[1], a.get(2)),
            (LinGelu, false) => linear_reference(&a[0], &a[1], a.get(2))?.gelu_erf(),
            (Aff, true) => affine(&a[0], &a[1], a.get(2)),
            (Aff, false) => linear_reference(&a[0], &a[1], a.get(2)),
            // Scaled so the inputs reach every branch of the erf approximation.
            (Gelu, true) => gelu_erf(&(&a[0] * 3.0)?),
            (Gelu, false) => (&a[0] * 3.0)?.gelu_erf(),
        }
    }

    /// (b, 1, 1, k) additive mask: batch i pads its last i keys with −1e9.
    fn pad_mask(b: usize, k: usize) -> Result<Tensor> {
        let v: Vec<f32> = (0..b * k)
            .map(|j| if j % k + j / k >= k { -1e9 } else { 0.0 })
            .collect();
        Tensor::from_vec(v, (b, 1, 1, k), &Device::Cpu)
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
        let d = (a - b)?.abs()?.flatten_all()?.max(0)?;
        d.to_dtype(F32)?.to_scalar::<f32>()
    }

    fn make(shape: &[usize], flags: u8, dtype: DType) -> Result<(Tensor, Option<Var>)> {
        let (mut dims, strided) = (shape.to_vec(), flags & 2 != 0);
        let r = dims.len();
        if strided {
            dims.swap(r - 2, r - 1);
        }
        let t = Tensor::randn(0f32, 1f32, dims, &Device::Cpu)?.to_dtype(dtype)?;
        let v = (flags & 1 != 0).then(|| Var::from_tensor(&t)).transpose()?;
        let t = v.as_ref().map_or(t, |v| v.as_tensor().clone());
        let t = if strided {
            t.transpose(r - 2, r - 1)?
        } else {
            t
        };
        Ok((t, v))
    }

    #[test]
    fn fused_ops_match_reference_forward_and_backward() -> Result<()> {
        for &(name, dtype, kind, shapes) in CASES {
            let made: Vec<_> = shapes
                .iter()
                .map(|&(s, f)| make(s, f, dtype))
                .collect::<Result<_>>()?;
            let args: Vec<Tensor> = made.iter().map(|(t, _)| t.clone()).collect();
            let (fused, reference) = (apply(kind, &args, true)?, apply(kind, &args, false)?);
            let diff = max_diff(&fused, &reference)?;
            assert!(diff < 1e-5, "{name}: forward differs by {diff}");
            // A weighted sum: the plain sum of a softmax or layer norm has (near) zero gradient.
            let w = Tensor::randn(0f32, 1f32, fused.shape(), &Device::Cpu)?.to_dtype(dtype)?;
            let fg = (&fused * &w)?.sum_all()?.backward()?;
            let rg = (&reference * &w)?.sum_all()?.backward()?;
            // Only the vars (and the loss weight w) may hold gradients: candle's plain ops would
            // also leave full-size entries for a frozen weight's transpose or a broadcast bias.
            let mut wanted: Vec<_> = made
                .iter()
                .filter_map(|(_, v)| v.as_ref())
                .map(|v| v.id())
                .collect();
            wanted.push(w.id());
            let wasted = fg.get_ids().filter(|id| !wanted.contains(id)).count();
            assert_eq!(wasted, 0, "{name}: gradients built for frozen tensors");
            for (i, (arg, var)) in made.iter().enumerate() {
                let Some(v) = var else {
                    assert!(fg.get(arg).is_none(), "{name}: frozen arg {i} got a grad");
                    continue;
                };
                let (Some(f), Some(r)) = (fg.get(v), rg.get(v)) else {
                    panic!("{name}: arg {i} is a var without a gradient");
                };
                let diff = max_diff(f, r)?;
                assert!(diff < 1e-4, "{name}: grad of arg {i} differs by {diff}");
            }
        }
        Ok(())
    }

    #[test]
    fn masked_softmax_padding_rows_stay_finite() -> Result<()> {
        let (neg, k) = (-1e9f32, 5);
        // batch 0: only key 2 is real; batch 1: every key padded; batch 2: every key −inf.
        let mut m = vec![neg; 3 * k];
        m[2] = 0.0;
        m[2 * k..].fill(f32::NEG_INFINITY);
        let mask = Tensor::from_vec(m, (3, 1, 1, k), &Device::Cpu)?;
        let scores = Var::from_tensor(&Tensor::randn(0f32, 4f32, (3, 2, 3, k), &Device::Cpu)?)?;
        let y = masked_softmax(&scores, &mask)?;
        let reference = masked_softmax_reference(&scores.narrow(0, 0, 2)?, &mask.narrow(0, 0, 2)?)?;
        assert!(max_diff(&y.narrow(0, 0, 2)?, &reference)? < 1e-6);
        let rows = y.reshape((3, 6, k))?.to_vec3::<f32>()?;
        for (b, row) in rows.iter().flatten().enumerate() {
            let want: &[f32] = match b / 6 {
                0 => &[0.0, 0.0, 1.0, 0.0, 0.0],
                1 => &[0.2; 5],
                _ => &[0.0; 5],
            };
            assert_eq!(row.as_slice(), want, "row {b}");
        }
        let w = Tensor::randn(0f32, 1f32, y.shape(), &Device::Cpu)?;
        let grads = (&y * &w)?.sum_all()?.backward()?;
        let g = grads
            .get(&scores)
            .expect("scores grad")
            .flatten_all()?
            .to_vec1::<f32>()?;
        assert!(g.iter().all(|v| v.is_finite()));
        assert!(grads.get(&mask).is_none());
        Ok(())
    }
}
