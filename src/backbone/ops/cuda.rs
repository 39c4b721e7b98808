//! The fused ops on CUDA/F32 (`cuda` feature): layer norm (plain and of a residual sum) and
//! masked softmax, each one kernel forward and one backward, plus the launch plumbing shared
//! with `gelu` (bias + GELU of frozen linears) and the AdamW kernels of `train::adamw`.
//!
//! On the GPU a step is bound by launches, not arithmetic: built from primitive candle ops, a
//! layer norm is ~9 kernels forward and ~30 backward (every node's gradient is zero-filled and
//! added), a masked softmax ~6 and ~20. The kernels live in `cuda/kernels.cu`, compiled to PTX
//! by build.rs.

mod affine;
mod attention;
mod gelu;
mod norm;
mod scaled_add;
mod softmax;

pub(crate) use affine::affine;
pub(crate) use attention::attention;
pub(crate) use gelu::{gelu_erf, linear};
use norm::{AddLayerNorm, LayerNorm};
pub(crate) use scaled_add::scaled_add;
use softmax::MaskedSoftmax;

use candle_core::cuda_backend::cudarc::driver::{CudaView, LaunchConfig};
use candle_core::cuda_backend::{CudaDevice, WrapErr};
use candle_core::{bail, CudaStorage, DType, Layout, Result, Storage, Tensor};

pub(crate) const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/pets_kernels.ptx"));
pub(crate) const MODULE: &str = "pets_kernels";
/// Row kernels run one warp per row, this many warps per block.
const WARPS_PER_BLOCK: usize = 4;

/// Readies a freshly opened GPU for pets: buffers come and go by the thousand per step, each on
/// the per-thread stream of the thread that drives it.
pub(crate) fn prepare_device(dev: &CudaDevice) -> Result<()> {
    use candle_core::cuda_backend::cudarc::driver::{result, sys};
    // SAFETY: a run's tensors are made, used and freed by the one thread that trains it (a
    // search trial's too: `search::claim_loop` frees them before handing back the metrics), on
    // that thread's stream, so no buffer is shared between streams. Tracking would create and
    // destroy two CUDA events per buffer, i.e. per op.
    unsafe { dev.disable_event_tracking() };
    // The stream-ordered allocator hands freed memory back to the driver at every
    // synchronisation (one per step: the loss is read) unless told to keep it; every step would
    // then map its activations afresh.
    let mut keep = u64::MAX;
    let device = dev.cuda_stream().context().cu_device();
    // SAFETY: the device comes from a live context, and the release threshold is a u64.
    unsafe {
        let pool = result::device::get_default_mem_pool(device).w()?;
        let attr = sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD;
        result::mem_pool::set_attribute(pool, attr, (&raw mut keep).cast()).w()?;
    }
    Ok(())
}

/// Makes the device's context current on the calling thread (see `run::bind_thread`).
pub(crate) fn bind_to_thread(dev: &CudaDevice) -> Result<()> {
    dev.cuda_stream().context().bind_to_thread().w()
}

/// Whether every tensor is a CUDA f32 tensor (so the kernels here apply).
pub(crate) fn fusable(ts: &[&Tensor]) -> bool {
    ts.iter()
        .all(|t| t.device().is_cuda() && t.dtype() == DType::F32)
}

/// One of pets' kernels on a `CudaDevice` (candle loads the module once per device). A macro:
/// candle does not export the type of the function it returns.
macro_rules! kernel {
    ($dev:expr, $name:expr) => {
        $dev.get_or_load_custom_func(
            $name,
            $crate::backbone::ops::cuda::MODULE,
            $crate::backbone::ops::cuda::PTX,
        )
    };
}
pub(crate) use kernel;

/// The `cpu_fwd` of an op that runs on CUDA only (the functions that apply it never hand it CPU
/// tensors): an error naming the op. The argument is the trait being implemented.
macro_rules! cuda_only {
    (CustomOp1) => {
        fn cpu_fwd(
            &self,
            _: &candle_core::CpuStorage,
            _: &candle_core::Layout,
        ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
            candle_core::bail!("{} runs on CUDA only", candle_core::CustomOp1::name(self))
        }
    };
    (CustomOp2) => {
        fn cpu_fwd(
            &self,
            _: &candle_core::CpuStorage,
            _: &candle_core::Layout,
            _: &candle_core::CpuStorage,
            _: &candle_core::Layout,
        ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
            candle_core::bail!("{} runs on CUDA only", candle_core::CustomOp2::name(self))
        }
    };
    (CustomOp3) => {
        fn cpu_fwd(
            &self,
            _: &candle_core::CpuStorage,
            _: &candle_core::Layout,
            _: &candle_core::CpuStorage,
            _: &candle_core::Layout,
            _: &candle_core::CpuStorage,
            _: &candle_core::Layout,
        ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
            candle_core::bail!("{} runs on CUDA only", candle_core::CustomOp3::name(self))
        }
    };
    (InplaceOp2) => {
        fn cpu_fwd(
            &self,
            _: &mut candle_core::CpuStorage,
            _: &candle_core::Layout,
            _: &candle_core::CpuStorage,
            _: &candle_core::Layout,
        ) -> candle_core::Result<()> {
            candle_core::bail!("{} runs on CUDA only", candle_core::InplaceOp2::name(self))
        }
    };
}
pub(crate) use cuda_only;

/// The elements of a contiguous f32 storage as a device view.
pub(crate) fn view<'a>(s: &'a CudaStorage, l: &Layout) -> Result<CudaView<'a, f32>> {
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(s.as_cuda_slice::<f32>()?.slice(start..end)),
        None => bail!("pets cuda op: non-contiguous input {:?}", l.stride()),
    }
}

/// The CUDA storage of a tensor held by an op (γ, β, a bias).
pub(crate) fn held(t: &Tensor) -> Result<(impl std::ops::Deref<Target = Storage> + '_, Layout)> {
    let (storage, layout) = t.storage_and_layout();
    if !matches!(&*storage, Storage::Cuda(_)) {
        bail!("pets cuda op: a held tensor is on {:?}", t.device());
    }
    Ok((storage, layout.clone()))
}

pub(crate) fn cuda_storage(s: &Storage) -> Result<&CudaStorage> {
    match s {
        Storage::Cuda(s) => Ok(s),
        _ => bail!("pets cuda op: expected a CUDA tensor"),
    }
}

fn rows_config(rows: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (rows.div_ceil(WARPS_PER_BLOCK) as u32, 1, 1),
        block_dim: (32 * WARPS_PER_BLOCK as u32, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Grid-stride element-wise launches: enough blocks to fill the GPU, never more than needed.
pub(crate) fn elementwise_config(n: usize) -> LaunchConfig {
    const THREADS: usize = 256;
    LaunchConfig {
        grid_dim: (n.div_ceil(THREADS).clamp(1, 65_535) as u32, 1, 1),
        block_dim: (THREADS as u32, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// What the kernels take for an absent pointer argument.
pub(crate) const NULL: u64 = 0;

/// Layer norm over the last dim of x; γ and β may be trained (their gradients are reduced from
/// the backward kernel's x̂ with candle ops).
pub(crate) fn layer_norm(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64) -> Result<Tensor> {
    let op = LayerNorm { eps: eps as f32 };
    x.contiguous()?
        .apply_op3(&gamma.contiguous()?, &beta.contiguous()?, op)
}

/// LN(a + b) for frozen γ and β: one kernel forward, one gradient for both a and b.
pub(crate) fn add_layer_norm(
    a: &Tensor,
    b: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
) -> Result<Tensor> {
    let op = AddLayerNorm {
        eps: eps as f32,
        gamma: gamma.contiguous()?,
        beta: beta.contiguous()?,
    };
    a.contiguous()?.apply_op2(&b.contiguous()?, op)
}

/// softmax(scores + mask) for scores (b, h, q, k) and a (b, 1, 1, k) mask; `None` for any other
/// mask shape (the caller then builds it from primitive ops).
pub(crate) fn masked_softmax(scores: &Tensor, mask: &Tensor) -> Result<Option<Tensor>> {
    let dims = scores.dims();
    let [b, h, q, k] = *dims else { return Ok(None) };
    if mask.dims() != [b, 1, 1, k] || mask.dtype() != DType::F32 {
        return Ok(None);
    }
    let op = MaskedSoftmax {
        rows_per_mask: h * q,
    };
    Ok(Some(
        scores.contiguous()?.apply_op2(&mask.contiguous()?, op)?,
    ))
}
