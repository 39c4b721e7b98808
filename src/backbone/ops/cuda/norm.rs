//! Layer norm on CUDA/F32, of x or of a residual sum a + b: one kernel forward, one backward
//! (dx, and x̂ for dγ/dβ when they are trained).

use super::{cuda_only, cuda_storage, held, kernel, rows_config, view, NULL};
use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{CudaView, PushKernelArg};
use candle_core::cuda_backend::{CudaDevice, WrapErr};
use candle_core::{bail, CudaStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

/// Launches a layer-norm kernel over `rows` rows of `d`: forward (out = y) or backward (out =
/// dx [, x̂]). `b` is the residual operand of LN(a + b).
struct NormLaunch<'a> {
    dev: &'a CudaDevice,
    rows: usize,
    d: usize,
    eps: f32,
}

impl NormLaunch<'_> {
    fn forward(
        &self,
        a: &CudaView<f32>,
        b: Option<&CudaView<f32>>,
        gamma: &CudaView<f32>,
        beta: &CudaView<f32>,
    ) -> Result<CudaStorage> {
        let func = kernel!(self.dev, "pets_layer_norm_fwd")?;
        // SAFETY: the kernel writes every element (all rows × d).
        let y = unsafe { self.dev.alloc::<f32>(self.rows * self.d)? };
        let (rows, d) = (self.rows as i64, self.d as i32);
        let mut args = func.builder();
        args.arg(a);
        match b {
            Some(b) => args.arg(b),
            None => args.arg(&NULL),
        };
        args.arg(gamma)
            .arg(beta)
            .arg(&y)
            .arg(&rows)
            .arg(&d)
            .arg(&self.eps);
        // SAFETY: the argument list matches the kernel's signature; the views hold rows × d.
        unsafe { args.launch(rows_config(self.rows)) }.w()?;
        Ok(CudaStorage::wrap_cuda_slice(y, self.dev.clone()))
    }

    /// dx, followed by x̂ when `with_xhat` (both rows × d).
    fn backward(
        &self,
        a: &CudaView<f32>,
        b: Option<&CudaView<f32>>,
        grad: &CudaView<f32>,
        gamma: &CudaView<f32>,
        with_xhat: bool,
    ) -> Result<CudaStorage> {
        let func = kernel!(self.dev, "pets_layer_norm_bwd")?;
        let n = self.rows * self.d;
        // SAFETY: the kernel writes every element of dx, and of x̂ when asked for it.
        let out = unsafe { self.dev.alloc::<f32>(if with_xhat { 2 * n } else { n })? };
        {
            let (dx, xhat) = (out.slice(..n), out.slice(n..));
            let (rows, d) = (self.rows as i64, self.d as i32);
            let mut args = func.builder();
            args.arg(a);
            match b {
                Some(b) => args.arg(b),
                None => args.arg(&NULL),
            };
            args.arg(grad).arg(gamma).arg(&dx);
            match with_xhat {
                true => args.arg(&xhat),
                false => args.arg(&NULL),
            };
            args.arg(&rows).arg(&d).arg(&self.eps);
            // SAFETY: the argument list matches the kernel's signature; the views hold rows × d.
            unsafe { args.launch(rows_config(self.rows)) }.w()?;
        }
        Ok(CudaStorage::wrap_cuda_slice(out, self.dev.clone()))
    }
}

fn norm_launch<'a>(dev: &'a CudaDevice, l: &Layout, gamma: &Layout, eps: f32) -> NormLaunch<'a> {
    let d = gamma.shape().elem_count();
    NormLaunch {
        dev,
        rows: l.shape().elem_count() / d.max(1),
        d,
        eps,
    }
}

pub(super) struct LayerNorm {
    pub(super) eps: f32,
}

impl CustomOp3 for LayerNorm {
    fn name(&self) -> &'static str {
        "pets-cuda-layer-norm"
    }

    cuda_only!(CustomOp3);

    fn cuda_fwd(
        &self,
        x: &CudaStorage,
        lx: &Layout,
        g: &CudaStorage,
        lg: &Layout,
        b: &CudaStorage,
        lb: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let launch = norm_launch(x.device(), lx, lg, self.eps);
        let y = launch.forward(&view(x, lx)?, None, &view(g, lg)?, &view(b, lb)?)?;
        Ok((y, lx.shape().clone()))
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
        let op = NormGrad {
            eps: self.eps,
            gamma: gamma.clone(),
            with_xhat: affine,
        };
        let out = x.apply_op2_no_bwd(&grad.contiguous()?, &op)?;
        if !affine {
            return Ok((x.track_op().then_some(out), None, None));
        }
        let d = gamma.elem_count();
        let (dx, xhat) = (out.get(0)?, out.get(1)?);
        let rows = grad.elem_count() / d;
        let grad = grad.reshape((rows, d))?;
        let dgamma = (&grad * xhat.reshape((rows, d))?)?.sum(0)?;
        let dbeta = grad.sum(0)?;
        Ok((
            x.track_op().then_some(dx),
            gamma.track_op().then_some(dgamma),
            beta.track_op().then_some(dbeta),
        ))
    }
}

pub(super) struct AddLayerNorm {
    pub(super) eps: f32,
    pub(super) gamma: Tensor,
    pub(super) beta: Tensor,
}

impl CustomOp2 for AddLayerNorm {
    fn name(&self) -> &'static str {
        "pets-cuda-add-layer-norm"
    }

    cuda_only!(CustomOp2);

    fn cuda_fwd(
        &self,
        a: &CudaStorage,
        la: &Layout,
        b: &CudaStorage,
        lb: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        if la.shape() != lb.shape() {
            bail!("add-layer-norm: {:?} + {:?}", la.dims(), lb.dims());
        }
        let ((sg, lg), (sb, lbeta)) = (held(&self.gamma)?, held(&self.beta)?);
        let (g, beta) = (
            view(cuda_storage(&sg)?, &lg)?,
            view(cuda_storage(&sb)?, &lbeta)?,
        );
        let launch = norm_launch(a.device(), la, &lg, self.eps);
        let y = launch.forward(&view(a, la)?, Some(&view(b, lb)?), &g, &beta)?;
        Ok((y, la.shape().clone()))
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let op = NormGrad {
            eps: self.eps,
            gamma: self.gamma.clone(),
            with_xhat: false,
        };
        let dx = a.apply_op3_no_bwd(b, &grad.contiguous()?, &op)?;
        Ok((a.track_op().then(|| dx.clone()), b.track_op().then_some(dx)))
    }
}

/// Layer-norm input gradient: (x, grad) for LN(x), (a, b, grad) for LN(a + b). With
/// `with_xhat` the result is (2, ...): dx, then x̂.
struct NormGrad {
    eps: f32,
    gamma: Tensor,
    with_xhat: bool,
}

impl NormGrad {
    fn run(
        &self,
        a: (&CudaStorage, &Layout),
        b: Option<(&CudaStorage, &Layout)>,
        grad: (&CudaStorage, &Layout),
    ) -> Result<(CudaStorage, Shape)> {
        let (sg, lg) = held(&self.gamma)?;
        let gamma = view(cuda_storage(&sg)?, &lg)?;
        let b = b.map(|(s, l)| view(s, l)).transpose()?;
        let launch = norm_launch(a.0.device(), a.1, &lg, self.eps);
        let out = launch.backward(
            &view(a.0, a.1)?,
            b.as_ref(),
            &view(grad.0, grad.1)?,
            &gamma,
            self.with_xhat,
        )?;
        let shape = match self.with_xhat {
            true => Shape::from([&[2], a.1.dims()].concat()),
            false => a.1.shape().clone(),
        };
        Ok((out, shape))
    }
}

impl CustomOp2 for NormGrad {
    fn name(&self) -> &'static str {
        "pets-cuda-layer-norm-grad"
    }

    cuda_only!(CustomOp2);

    fn cuda_fwd(
        &self,
        x: &CudaStorage,
        lx: &Layout,
        g: &CudaStorage,
        lg: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        self.run((x, lx), None, (g, lg))
    }
}

impl CustomOp3 for NormGrad {
    fn name(&self) -> &'static str {
        "pets-cuda-add-layer-norm-grad"
    }

    cuda_only!(CustomOp3);

    fn cuda_fwd(
        &self,
        a: &CudaStorage,
        la: &Layout,
        b: &CudaStorage,
        lb: &Layout,
        g: &CudaStorage,
        lg: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        self.run((a, la), Some((b, lb)), (g, lg))
    }
}
