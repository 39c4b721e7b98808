//! Softmax with an additive key mask on CUDA/F32: one kernel forward, one backward.

use super::{cuda_only, kernel, rows_config, view};
use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::PushKernelArg;
use candle_core::cuda_backend::WrapErr;
use candle_core::{bail, CudaStorage, CustomOp2, Layout, Result, Shape, Tensor};

/// (scores (b, h, q, k), mask (b, 1, 1, k)) ↦ softmax(scores + mask); the mask gets no gradient.
pub(super) struct MaskedSoftmax {
    /// Score rows (h · q) that share one mask row.
    pub(super) rows_per_mask: usize,
}

fn keys(l: &Layout) -> usize {
    l.dims().last().copied().unwrap_or(1).max(1)
}

impl CustomOp2 for MaskedSoftmax {
    fn name(&self) -> &'static str {
        "pets-cuda-masked-softmax"
    }

    cuda_only!(CustomOp2);

    fn cuda_fwd(
        &self,
        x: &CudaStorage,
        lx: &Layout,
        m: &CudaStorage,
        lm: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let (dev, k) = (x.device(), keys(lx));
        let rows = lx.shape().elem_count() / k;
        if self.rows_per_mask == 0 || lm.shape().elem_count() * self.rows_per_mask != rows * k {
            bail!(
                "masked softmax: mask {:?} for scores {:?}",
                lm.dims(),
                lx.dims()
            );
        }
        let func = kernel!(dev, "pets_masked_softmax_fwd")?;
        // SAFETY: the kernel writes every element (all rows × k).
        let y = unsafe { dev.alloc::<f32>(rows * k)? };
        let (x, m) = (view(x, lx)?, view(m, lm)?);
        let (rows_arg, k_arg, per) = (rows as i64, k as i32, self.rows_per_mask as i64);
        let mut args = func.builder();
        args.arg(&x)
            .arg(&m)
            .arg(&y)
            .arg(&rows_arg)
            .arg(&k_arg)
            .arg(&per);
        // SAFETY: the argument list matches the kernel's signature; sizes were checked above.
        unsafe { args.launch(rows_config(rows)) }.w()?;
        Ok((
            CudaStorage::wrap_cuda_slice(y, dev.clone()),
            lx.shape().clone(),
        ))
    }

    fn bwd(
        &self,
        _scores: &Tensor,
        _mask: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((
            Some(res.apply_op2_no_bwd(&grad.contiguous()?, &SoftmaxGrad)?),
            None,
        ))
    }
}

/// (y, g) ↦ y ⊙ (g − Σ g·y) row by row.
pub(super) struct SoftmaxGrad;

impl CustomOp2 for SoftmaxGrad {
    fn name(&self) -> &'static str {
        "pets-cuda-softmax-grad"
    }

    cuda_only!(CustomOp2);

    fn cuda_fwd(
        &self,
        y: &CudaStorage,
        ly: &Layout,
        g: &CudaStorage,
        lg: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let (dev, k) = (y.device(), keys(ly));
        let n = ly.shape().elem_count();
        if lg.shape() != ly.shape() {
            bail!("softmax grad: {:?} vs {:?}", lg.dims(), ly.dims());
        }
        let func = kernel!(dev, "pets_softmax_bwd")?;
        // SAFETY: the kernel writes every element.
        let dx = unsafe { dev.alloc::<f32>(n)? };
        let (y, g) = (view(y, ly)?, view(g, lg)?);
        let (rows, k_arg) = ((n / k) as i64, k as i32);
        let mut args = func.builder();
        args.arg(&y).arg(&g).arg(&dx).arg(&rows).arg(&k_arg);
        // SAFETY: the argument list matches the kernel's signature; y and g hold n floats.
        unsafe { args.launch(rows_config(n / k)) }.w()?;
        Ok((
            CudaStorage::wrap_cuda_slice(dx, dev.clone()),
            ly.shape().clone(),
        ))
    }
}
