//! h + s·Δh on CUDA/F32 as one node (the scaled composition of He et al.'s parallel adapter and
//! MAM): one kernel forward; backward hands g to h and s·g to Δh. From primitive ops it is a
//! scale node and an add node, each paying candle's zero-fill and add in backward.

use super::{cuda_only, elementwise_config, kernel, view};
use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::PushKernelArg;
use candle_core::cuda_backend::WrapErr;
use candle_core::{bail, CudaStorage, CustomOp2, Layout, Result, Shape, Tensor};

/// h + s·delta for same-shaped h and delta.
pub(crate) fn scaled_add(h: &Tensor, delta: &Tensor, s: f64) -> Result<Tensor> {
    h.contiguous()?
        .apply_op2(&delta.contiguous()?, ScaledAdd { s: s as f32 })
}

struct ScaledAdd {
    s: f32,
}

impl CustomOp2 for ScaledAdd {
    fn name(&self) -> &'static str {
        "pets-cuda-scaled-add"
    }

    cuda_only!(CustomOp2);

    fn cuda_fwd(
        &self,
        h: &CudaStorage,
        lh: &Layout,
        d: &CudaStorage,
        ld: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        if lh.shape() != ld.shape() {
            bail!("scaled add: {:?} + s·{:?}", lh.dims(), ld.dims());
        }
        let (dev, n) = (h.device(), lh.shape().elem_count());
        let func = kernel!(dev, "pets_scaled_add")?;
        // SAFETY: the kernel writes every one of the n elements.
        let out = unsafe { dev.alloc::<f32>(n)? };
        let (h, d) = (view(h, lh)?, view(d, ld)?);
        let n_arg = n as i64;
        let mut args = func.builder();
        args.arg(&h).arg(&d).arg(&out).arg(&n_arg).arg(&self.s);
        // SAFETY: the argument list matches the kernel's signature; h and d hold n floats.
        unsafe { args.launch(elementwise_config(n)) }.w()?;
        Ok((
            CudaStorage::wrap_cuda_slice(out, dev.clone()),
            lh.shape().clone(),
        ))
    }

    fn bwd(
        &self,
        h: &Tensor,
        delta: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dh = h.track_op().then(|| grad.clone());
        let dd = match delta.track_op() {
            true => Some((grad * f64::from(self.s))?),
            false => None,
        };
        Ok((dh, dd))
    }
}
