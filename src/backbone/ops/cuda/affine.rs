//! Trained linear layers on CUDA/F32 (adapters, LoRA, the head) as one graph node: cuBLAS
//! forward (+ a bias kernel), and dx, dW, db from one backward. Built from primitive ops, the
//! reshapes, transpose, product and broadcast add are five nodes, and candle's backward pays a
//! zero-fill and an add per node.

use super::cuda_only;
use super::gelu::bias_add;
use candle_core::backend::BackendStorage;
use candle_core::{CudaStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

/// x (..., k) · weightᵀ (+ bias) for weight (n, k); shapes checked by the caller.
pub(crate) fn affine(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let (x, weight) = (x.contiguous()?, weight.contiguous()?);
    match bias {
        Some(b) => x.apply_op3(&weight, &b.contiguous()?, Affine),
        None => x.apply_op2(&weight, Affine),
    }
}

struct Affine;

impl Affine {
    fn forward(
        (x, lx): (&CudaStorage, &Layout),
        (w, lw): (&CudaStorage, &Layout),
        bias: Option<(&CudaStorage, &Layout)>,
    ) -> Result<(CudaStorage, Shape)> {
        let (n, k) = lw.shape().dims2()?;
        let m = lx.shape().elem_count() / k.max(1);
        let x2 = Layout::contiguous_with_offset((m, k), lx.start_offset());
        let wt = Layout::contiguous_with_offset((n, k), lw.start_offset()).transpose(0, 1)?;
        let y = x.matmul(w, (1, m, n, k), &x2, &wt)?;
        let mut dims = lx.dims().to_vec();
        if let Some(last) = dims.last_mut() {
            *last = n;
        }
        let y = match bias {
            Some(b) => bias_add(&y, &Layout::contiguous((m, n)), b)?,
            None => y,
        };
        Ok((y, Shape::from(dims)))
    }

    /// (dx, dW, db), each only for an input that tracks gradients.
    fn grads(
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        grad: &Tensor,
    ) -> Result<[Option<Tensor>; 3]> {
        let (n, k) = w.dims2()?;
        let g = grad.detach().reshape((grad.elem_count() / n, n))?;
        let dx = match x.track_op() {
            true => Some(g.matmul(&w.detach())?.reshape(x.shape())?),
            false => None,
        };
        let dw = match w.track_op() {
            true => Some(
                g.t()?
                    .matmul(&x.detach().reshape((x.elem_count() / k, k))?)?,
            ),
            false => None,
        };
        let db = match b.is_some_and(|b| b.track_op()) {
            true => Some(g.sum(0)?),
            false => None,
        };
        Ok([dx, dw, db])
    }
}

impl CustomOp2 for Affine {
    fn name(&self) -> &'static str {
        "pets-cuda-affine"
    }

    cuda_only!(CustomOp2);

    fn cuda_fwd(
        &self,
        x: &CudaStorage,
        lx: &Layout,
        w: &CudaStorage,
        lw: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        Affine::forward((x, lx), (w, lw), None)
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
        "pets-cuda-affine-bias"
    }

    cuda_only!(CustomOp3);

    fn cuda_fwd(
        &self,
        x: &CudaStorage,
        lx: &Layout,
        w: &CudaStorage,
        lw: &Layout,
        b: &CudaStorage,
        lb: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        Affine::forward((x, lx), (w, lw), Some((b, lb)))
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
