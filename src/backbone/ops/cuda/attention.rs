//! Multi-head attention on CUDA/F32 as one graph node. The forward pass runs off the graph
//! (cuBLAS batched products and the masked-softmax kernel) and keeps what backward needs; the
//! node's own forward is the final head merge, a copy the unfused path makes anyway. Built from
//! primitive ops, attention is ~17 nodes a layer (splits, scale, products, softmax, merge), and
//! candle's backward pays a zero-fill and an add for each.

use super::softmax::SoftmaxGrad;
use super::{cuda_only, cuda_storage, held};
use crate::backbone::bmm::batched_matmul;
use candle_core::backend::BackendStorage;
use candle_core::{bail, CudaStorage, CustomOp3, DType, Layout, Result, Shape, Tensor, D};

/// softmax(q·kᵀ/√d + mask)·v, heads merged back to (b, t, h·d). q is (b, t, h·d); k and v are
/// (b, t', h·d), or already per head (b, h, t', d) (a layer's prefix prepended); the mask is
/// additive (b, 1, 1, t'). `None` for other shapes (the caller builds it from primitive ops).
pub(crate) fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &Tensor,
    heads: usize,
) -> Result<Option<Tensor>> {
    let (b, t, hd) = q.dims3()?;
    if heads == 0 || hd % heads != 0 || mask.dtype() != DType::F32 {
        return Ok(None);
    }
    let head_dim = hd / heads;
    let per_head = |x: &Tensor| -> Result<Option<Tensor>> {
        let x = x.detach();
        match *x.dims() {
            [xb, xt, xhd] if xb == b && xhd == hd => Ok(Some(split(&x, heads, xt)?)),
            [xb, xh, _, xd] if xb == b && xh == heads && xd == head_dim => {
                Ok(Some(x.contiguous()?))
            }
            _ => Ok(None),
        }
    };
    let (Some(kh), Some(vh)) = (per_head(k)?, per_head(v)?) else {
        return Ok(None);
    };
    if kh.dims() != vh.dims() {
        return Ok(None);
    }
    let scale = 1.0 / (head_dim as f64).sqrt();
    let qh = split(&(q.detach() * scale)?, heads, t)?;
    let scores = batched_matmul(&qh, &kh, true)?;
    let Some(probs) = super::masked_softmax(&scores, mask)? else {
        return Ok(None);
    };
    let context = batched_matmul(&probs, &vh, false)?;
    let op = Attention {
        heads,
        scale,
        qh,
        kh,
        vh,
        probs,
        context,
    };
    q.apply_op3(k, v, op).map(Some)
}

/// (b, t, h·d) → (b, h, t, d), contiguous.
fn split(x: &Tensor, heads: usize, t: usize) -> Result<Tensor> {
    let (b, hd) = (x.dim(0)?, x.dim(D::Minus1)?);
    x.reshape((b, t, heads, hd / heads))?
        .transpose(1, 2)?
        .contiguous()
}

/// (b, h, t, d) → (b, t, h·d), contiguous.
fn merge(x: &Tensor) -> Result<Tensor> {
    let (b, h, t, d) = x.dims4()?;
    x.transpose(1, 2)?.contiguous()?.reshape((b, t, h * d))
}

/// (q, k, v) ↦ the merged context computed off the graph, with what backward needs.
struct Attention {
    heads: usize,
    scale: f64,
    /// q · scale, per head.
    qh: Tensor,
    kh: Tensor,
    vh: Tensor,
    probs: Tensor,
    /// probs · v, per head: the result before the merge.
    context: Tensor,
}

impl CustomOp3 for Attention {
    fn name(&self) -> &'static str {
        "pets-cuda-attention"
    }

    cuda_only!(CustomOp3);

    fn cuda_fwd(
        &self,
        _q: &CudaStorage,
        lq: &Layout,
        _: &CudaStorage,
        _: &Layout,
        _: &CudaStorage,
        _: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let (b, h, t, d) = self.context.dims4()?;
        if h != self.heads || lq.dims() != [b, t, h * d] {
            bail!(
                "attention: context {:?} for q {:?}",
                self.context.dims(),
                lq.dims()
            );
        }
        let (storage, layout) = held(&self.context)?;
        let context = cuda_storage(&storage)?;
        // The (b, h, t, d) context read as (b, t, h, d): one strided copy merges the heads.
        let merged = layout.transpose(1, 2)?;
        // SAFETY: copy_strided_src writes all b·t·h·d elements below.
        let out = unsafe { context.device().alloc::<f32>(b * t * h * d)? };
        let mut out = CudaStorage::wrap_cuda_slice(out, context.device().clone());
        context.copy_strided_src(&mut out, 0, &merged)?;
        Ok((out, lq.shape().clone()))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let t = q.dim(1)?;
        let g = split(&grad.detach(), self.heads, t)?;
        let dprobs = batched_matmul(&g, &self.vh, true)?;
        let dscores = self.probs.apply_op2_no_bwd(&dprobs, &SoftmaxGrad)?;
        // Each gradient in its input's layout: merged (b, t, h·d) or per head.
        let shaped = |grad_h: Tensor, like: &Tensor| match like.rank() {
            3 => merge(&grad_h),
            _ => Ok(grad_h),
        };
        let dq = match q.track_op() {
            true => Some(merge(
                &(batched_matmul(&dscores, &self.kh, false)? * self.scale)?,
            )?),
            false => None,
        };
        let dk = match k.track_op() {
            true => {
                let dk = batched_matmul(&dscores.transpose(2, 3)?.contiguous()?, &self.qh, false)?;
                Some(shaped(dk, k)?)
            }
            false => None,
        };
        let dv = match v.track_op() {
            true => {
                let dv = batched_matmul(&self.probs.transpose(2, 3)?.contiguous()?, &g, false)?;
                Some(shaped(dv, v)?)
            }
            false => None,
        };
        Ok((dq, dk, dv))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backbone::ops::masked_softmax_reference;
    use candle_core::{Device, Var};

    /// The same attention from primitive ops (k, v merged or per head).
    fn reference(
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        mask: &Tensor,
        heads: usize,
    ) -> Result<Tensor> {
        let (_, t, hd) = q.dims3()?;
        let per_head = |x: &Tensor| match x.rank() {
            3 => split(x, heads, x.dim(1)?),
            _ => Ok(x.clone()),
        };
        let qh = split(&(q / ((hd / heads) as f64).sqrt())?, heads, t)?;
        let scores = qh.matmul(&per_head(k)?.t()?)?;
        let probs = masked_softmax_reference(&scores, mask)?;
        merge(&probs.matmul(&per_head(v)?)?)
    }

    #[test]
    fn attention_matches_primitive_ops_forward_and_backward() -> Result<()> {
        let Some(dev) = crate::run::open_device("cuda").ok().flatten() else {
            eprintln!("no GPU: skipped");
            return Ok(());
        };
        let (b, t, heads, hd) = (3, 7, 4, 32);
        let var = |dims: &[usize]| -> Result<Var> {
            let x = Tensor::randn(0f32, 1f32, dims, &Device::Cpu)?;
            Var::from_tensor(&x.to_device(&dev)?)
        };
        let (q, k_var, v_var) = (var(&[b, t, hd])?, var(&[b, t, hd])?, var(&[b, t, hd])?);
        // Batch i pads its last i keys.
        let m: Vec<f32> = (0..b * t)
            .map(|j| if j % t + j / t >= t { -1e9 } else { 0.0 })
            .collect();
        let mask = Tensor::from_vec(m, (b, 1, 1, t), &dev)?;
        for per_head_kv in [false, true] {
            let (k, v) = match per_head_kv {
                true => (split(&k_var, heads, t)?, split(&v_var, heads, t)?),
                false => (k_var.as_tensor().clone(), v_var.as_tensor().clone()),
            };
            let Some(fused) = attention(&q, &k, &v, &mask, heads)? else {
                panic!("the fused path refused (b, t, h·d) inputs");
            };
            let want = reference(&q, &k, &v, &mask, heads)?;
            let diff = (&fused - &want)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(
                diff < 1e-5,
                "per head {per_head_kv}: forward differs by {diff}"
            );
            let w = Tensor::randn(0f32, 1f32, fused.shape(), &Device::Cpu)?.to_device(&dev)?;
            let fg = (&fused * &w)?.sum_all()?.backward()?;
            let rg = (&want * &w)?.sum_all()?.backward()?;
            for (name, x) in [("q", &q), ("k", &k_var), ("v", &v_var)] {
                let (Some(f), Some(r)) = (fg.get(x), rg.get(x)) else {
                    panic!("per head {per_head_kv}: no gradient for {name}");
                };
                let diff = (f - r)?.abs()?.max_all()?.to_scalar::<f32>()?;
                assert!(
                    diff < 1e-4,
                    "per head {per_head_kv}: d{name} differs by {diff}"
                );
            }
        }
        Ok(())
    }
}
