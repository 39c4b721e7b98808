//! AdamW over the trainable vars, as candle-nn's (same update, same bias correction): candle-nn's
//! itself on CPU; on CUDA/F32 (`cuda` feature) two fused in-place kernels per tensor, where
//! candle-nn's element-wise ops cost ~18 kernel launches per tensor and step.

use candle_core::{backprop::GradStore, Result, Var};
use candle_nn::optim::{Optimizer, ParamsAdamW};

/// The optimizer of `pets train` and `pets bench`.
pub struct AdamW(Inner);

enum Inner {
    Candle(candle_nn::optim::AdamW),
    #[cfg(feature = "cuda")]
    Fused(fused::FusedAdamW),
}

impl AdamW {
    pub fn new(vars: Vec<Var>, params: ParamsAdamW) -> Result<Self> {
        #[cfg(feature = "cuda")]
        if !vars.is_empty() && vars.iter().all(|v| fused::supported(v)) {
            return Ok(Self(Inner::Fused(fused::FusedAdamW::new(vars, params)?)));
        }
        Ok(Self(Inner::Candle(candle_nn::optim::AdamW::new(
            vars, params,
        )?)))
    }

    pub fn set_learning_rate(&mut self, lr: f64) {
        match &mut self.0 {
            Inner::Candle(o) => o.set_learning_rate(lr),
            #[cfg(feature = "cuda")]
            Inner::Fused(o) => o.params.lr = lr,
        }
    }

    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        match &mut self.0 {
            Inner::Candle(o) => o.step(grads),
            #[cfg(feature = "cuda")]
            Inner::Fused(o) => o.step(grads),
        }
    }
}

#[cfg(feature = "cuda")]
mod fused {
    use crate::backbone::ops::cuda::{elementwise_config, kernel, view};
    use candle_core::backend::BackendStorage;
    use candle_core::cuda_backend::cudarc::driver::PushKernelArg;
    use candle_core::cuda_backend::WrapErr;
    use candle_core::{
        backprop::GradStore, bail, CpuStorage, CudaStorage, DType, InplaceOp2, Layout, Result,
        Tensor, Var,
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

        pub(super) fn step(&mut self, grads: &GradStore) -> Result<()> {
            self.step_t += 1;
            let p = &self.params;
            let moments = Moments {
                beta1: p.beta1 as f32,
                beta2: p.beta2 as f32,
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
        let func = kernel(&dev, name)?;
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

    /// Moments (2, n) ← β-weighted update with the gradient (n).
    struct Moments {
        beta1: f32,
        beta2: f32,
    }

    impl InplaceOp2 for Moments {
        fn name(&self) -> &'static str {
            "pets-adamw-moments"
        }

        fn cpu_fwd(
            &self,
            _: &mut CpuStorage,
            _: &Layout,
            _: &CpuStorage,
            _: &Layout,
        ) -> Result<()> {
            bail!("{} runs on CUDA only", self.name())
        }

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
            let betas = [self.beta1, self.beta2];
            launch("pets_adamw_moments", (state, ls), (grad, lg), n, &betas)
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

        fn cpu_fwd(
            &self,
            _: &mut CpuStorage,
            _: &Layout,
            _: &CpuStorage,
            _: &Layout,
        ) -> Result<()> {
            bail!("{} runs on CUDA only", self.name())
        }

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
}
