//! AdamW with global-norm clipping on CUDA/F32: per tensor one kernel for its squared norm and
//! two in-place kernels for the update (the clipping scale folded into the first), and one read
//! of all the norms per step.

use crate::backbone::ops::cuda::{cuda_only, elementwise_config, kernel, view};
use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::WrapErr;
use candle_core::{
    backprop::GradStore, bail, CudaStorage, DType, InplaceOp2, Layout, Result, Tensor, Var,
};
use candle_nn::optim::ParamsAdamW;

pub(super) fn supported(v: &Var) -> bool {
    v.device().is_cuda() && v.dtype() == DType::F32 && v.is_contiguous()
}

/// Each var with its moments packed as one (2, n) tensor: m, then v.
pub(super) struct FusedAdamW {
    vars: Vec<(Var, Tensor)>,
    pub(super) params: ParamsAdamW,
    step_t: i32,
}

impl FusedAdamW {
    pub(super) fn new(vars: Vec<Var>, params: ParamsAdamW) -> Result<Self> {
        let vars = vars
            .into_iter()
            .map(|v| {
                let state = Tensor::zeros((2, v.elem_count()), DType::F32, v.device())?;
                Ok((v, state))
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            vars,
            params,
            step_t: 0,
        })
    }

    pub(super) fn step(&mut self, grads: &GradStore, max_grad_norm: f64) -> Result<()> {
        self.step_t += 1;
        let gscale = match max_grad_norm > 0.0 {
            true => clip_scale(self.global_norm(grads)?, max_grad_norm),
            false => 1.0,
        };
        let p = &self.params;
        let moments = Moments {
            beta1: p.beta1 as f32,
            beta2: p.beta2 as f32,
            gscale: gscale as f32,
        };
        let apply = Apply {
            lr: p.lr as f32,
            decay: (1.0 - p.lr * p.weight_decay) as f32,
            scale_m: (1.0 / (1.0 - p.beta1.powi(self.step_t))) as f32,
            scale_v: (1.0 / (1.0 - p.beta2.powi(self.step_t))) as f32,
            eps: p.eps as f32,
        };
        for (var, state) in &self.vars {
            if let Some(g) = grads.get(var) {
                state.inplace_op2(&g.contiguous()?, &moments)?;
                var.as_tensor().inplace_op2(state, &apply)?;
            }
        }
        Ok(())
    }

    /// The gradients' global L2 norm: one squared norm per tensor on the device, one read.
    fn global_norm(&self, grads: &GradStore) -> Result<f64> {
        let Some((first, _)) = self.vars.first() else {
            return Ok(0.0);
        };
        let squares = Tensor::zeros(self.vars.len(), DType::F32, first.device())?;
        for (slot, (var, _)) in self.vars.iter().enumerate() {
            if let Some(g) = grads.get(var) {
                squares.inplace_op2(&g.contiguous()?, &SumSquares { slot })?;
            }
        }
        let squares = squares.to_vec1::<f32>()?;
        Ok(squares.iter().map(|&s| f64::from(s)).sum::<f64>().sqrt())
    }
}

/// The factor `clip_grad_norm` scales gradients by for a global norm `norm`.
fn clip_scale(norm: f64, max_norm: f64) -> f64 {
    match norm > max_norm {
        // torch's epsilon, as clip_grad_norm.
        true => max_norm / (norm + 1e-6),
        false => 1.0,
    }
}

/// squares[slot] ← Σ g², by one block of threads (a fixed order of additions).
struct SumSquares {
    slot: usize,
}

impl InplaceOp2 for SumSquares {
    fn name(&self) -> &'static str {
        "pets-sum-squares"
    }

    cuda_only!(InplaceOp2);

    fn cuda_fwd(
        &self,
        squares: &mut CudaStorage,
        ls: &Layout,
        grad: &CudaStorage,
        lg: &Layout,
    ) -> Result<()> {
        let Some((start, end)) = ls.contiguous_offsets() else {
            bail!("sum of squares: non-contiguous output {:?}", ls.stride())
        };
        if start + self.slot >= end {
            bail!("sum of squares: slot {} of {}", self.slot, end - start);
        }
        let dev = squares.device().clone();
        let func = kernel!(&dev, "pets_sum_squares")?;
        let g = view(grad, lg)?;
        let at = start + self.slot;
        let mut out = squares.as_cuda_slice_mut::<f32>()?.slice_mut(at..at + 1);
        let n = lg.shape().elem_count() as i64;
        let mut args = func.builder();
        args.arg(&mut out).arg(&g).arg(&n);
        let one_block = LaunchConfig {
            grid_dim: (1, 1, 1),
            block_dim: (1024, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: the argument list matches the kernel's signature; g holds n floats and out one.
        unsafe { args.launch(one_block) }.w()?;
        Ok(())
    }
}

/// Launches an AdamW kernel `(dst, src, n, scalars…)` over n parameters; the caller has
/// checked that dst and src hold what the kernel reads for n.
fn launch(
    name: &str,
    (dst, ld): (&mut CudaStorage, &Layout),
    (src, ls): (&CudaStorage, &Layout),
    n: usize,
    scalars: &[f32],
) -> Result<()> {
    let Some((start, end)) = ld.contiguous_offsets() else {
        bail!("adamw: a non-contiguous tensor {:?}", ld.stride())
    };
    let dev = dst.device().clone();
    let func = kernel!(&dev, name)?;
    let src = view(src, ls)?;
    let mut dst = dst.as_cuda_slice_mut::<f32>()?.slice_mut(start..end);
    let n_arg = n as i64;
    let mut args = func.builder();
    args.arg(&mut dst).arg(&src).arg(&n_arg);
    for s in scalars {
        args.arg(s);
    }
    // SAFETY: the argument lists match the kernels' signatures and the sizes were checked.
    unsafe { args.launch(elementwise_config(n)) }.w()?;
    Ok(())
}

/// Moments (2, n) ← β-weighted update with the gradient (n) times `gscale`.
struct Moments {
    beta1: f32,
    beta2: f32,
    gscale: f32,
}

impl InplaceOp2 for Moments {
    fn name(&self) -> &'static str {
        "pets-adamw-moments"
    }

    cuda_only!(InplaceOp2);

    fn cuda_fwd(
        &self,
        state: &mut CudaStorage,
        ls: &Layout,
        grad: &CudaStorage,
        lg: &Layout,
    ) -> Result<()> {
        let n = lg.shape().elem_count();
        if ls.shape().elem_count() != 2 * n {
            bail!(
                "adamw: moments {:?} for a gradient {:?}",
                ls.dims(),
                lg.dims()
            );
        }
        let scalars = [self.beta1, self.beta2, self.gscale];
        launch("pets_adamw_moments", (state, ls), (grad, lg), n, &scalars)
    }
}

/// θ ← θ·(1 − lr·λ) − lr·m̂/(√v̂ + ε) from the (2, n) moments.
struct Apply {
    lr: f32,
    decay: f32,
    scale_m: f32,
    scale_v: f32,
    eps: f32,
}

impl InplaceOp2 for Apply {
    fn name(&self) -> &'static str {
        "pets-adamw-apply"
    }

    cuda_only!(InplaceOp2);

    fn cuda_fwd(
        &self,
        theta: &mut CudaStorage,
        lt: &Layout,
        state: &CudaStorage,
        ls: &Layout,
    ) -> Result<()> {
        let n = lt.shape().elem_count();
        if ls.shape().elem_count() != 2 * n {
            bail!(
                "adamw: moments {:?} for a tensor {:?}",
                ls.dims(),
                lt.dims()
            );
        }
        let scalars = [self.lr, self.decay, self.scale_m, self.scale_v, self.eps];
        launch("pets_adamw_apply", (theta, lt), (state, ls), n, &scalars)
    }
}
