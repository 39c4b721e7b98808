//! Frozen linear layers and GELU on CUDA/F32: cuBLAS for the product, one kernel for bias (+
//! GELU) forward and one for GELU's derivative backward; a frozen linear's backward gives dx
//! only, and the bias-add kernel replaces the copy that hung the product on the graph.

use super::{cuda_only, cuda_storage, elementwise_config, held, kernel, view, NULL};
use crate::backbone::ops::{frozen_input_grad, linear_reference};
use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{CudaView, PushKernelArg};
use candle_core::cuda_backend::WrapErr;
use candle_core::{bail, CudaStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

/// act(x · weightᵀ + bias) for a frozen weight and (if any) frozen bias; act is GELU (erf) when
/// `gelu`, else the identity.
pub(crate) fn linear(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    gelu: bool,
) -> Result<Tensor> {
    // The product off the graph: x's gradient comes from BiasAct's backward.
    let product = linear_reference(&x.detach(), weight, None)?;
    let op = BiasAct {
        bias: bias.map(|b| b.contiguous()).transpose()?,
        gelu,
        weight: Some(weight.clone()),
    };
    x.apply_op2(&product, op)
}

/// GELU, erf form.
pub(crate) fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(BiasAct {
        bias: None,
        gelu: true,
        weight: None,
    })
}

/// y ↦ act(y + bias). As a unary op (plain GELU) y is the input; as a binary op (x, y) it
/// stands for a frozen linear's product y = x · Wᵀ, and backward returns dx through W.
struct BiasAct {
    bias: Option<Tensor>,
    gelu: bool,
    weight: Option<Tensor>,
}

/// Columns (the last dim) of an element-wise bias kernel's rows.
fn columns(l: &Layout) -> usize {
    l.dims().last().copied().unwrap_or(1).max(1)
}

/// Runs `name` over n elements: (y, bias|null, [g,] out, n, cols[, gelu]).
fn launch(
    name: &str,
    y: (&CudaStorage, &Layout),
    bias: Option<&CudaView<f32>>,
    upstream: Option<&CudaView<f32>>,
    gelu: Option<bool>,
) -> Result<CudaStorage> {
    let dev = y.0.device();
    let (n, cols) = (y.1.shape().elem_count(), columns(y.1));
    if let Some(b) = bias.filter(|b| b.len() != cols) {
        bail!("bias of {} for rows of {cols}", b.len());
    }
    let func = kernel!(dev, name)?;
    // SAFETY: the kernel writes every one of the n elements.
    let out = unsafe { dev.alloc::<f32>(n)? };
    let y_view = view(y.0, y.1)?;
    let (n_arg, cols_arg, gelu_arg) = (n as i64, cols as i32, i32::from(gelu.unwrap_or(false)));
    let mut args = func.builder();
    args.arg(&y_view);
    match bias {
        Some(b) => args.arg(b),
        None => args.arg(&NULL),
    };
    if let Some(g) = upstream {
        args.arg(g);
    }
    args.arg(&out).arg(&n_arg).arg(&cols_arg);
    if gelu.is_some() {
        args.arg(&gelu_arg);
    }
    // SAFETY: the argument lists match the kernels' signatures; every view holds n floats and
    // the bias `cols`.
    unsafe { args.launch(elementwise_config(n)) }.w()?;
    Ok(CudaStorage::wrap_cuda_slice(out, dev.clone()))
}

/// `launch` with the bias an op holds as a tensor.
fn launch_held(
    name: &str,
    y: (&CudaStorage, &Layout),
    bias: Option<&Tensor>,
    upstream: Option<&CudaView<f32>>,
    gelu: Option<bool>,
) -> Result<(CudaStorage, Shape)> {
    let guard = bias.map(held).transpose()?;
    let bias = match &guard {
        Some((s, l)) => Some(view(cuda_storage(s)?, l)?),
        None => None,
    };
    let out = launch(name, y, bias.as_ref(), upstream, gelu)?;
    Ok((out, y.1.shape().clone()))
}

/// y + bias on every row of y (contiguous, rows of bias.len()).
pub(super) fn bias_add(
    y: &CudaStorage,
    ly: &Layout,
    (b, lb): (&CudaStorage, &Layout),
) -> Result<CudaStorage> {
    launch(
        "pets_bias_act_fwd",
        (y, ly),
        Some(&view(b, lb)?),
        None,
        Some(false),
    )
}

impl BiasAct {
    fn forward(&self, y: &CudaStorage, l: &Layout) -> Result<(CudaStorage, Shape)> {
        launch_held(
            "pets_bias_act_fwd",
            (y, l),
            self.bias.as_ref(),
            None,
            Some(self.gelu),
        )
    }

    /// The gradient with respect to y (the pre-bias product, or the GELU input).
    fn grad_y(&self, y: &Tensor, grad: &Tensor) -> Result<Tensor> {
        if !self.gelu {
            return Ok(grad.clone());
        }
        let op = GeluGrad {
            bias: self.bias.clone(),
        };
        y.contiguous()?.apply_op2_no_bwd(&grad.contiguous()?, &op)
    }
}

impl CustomOp1 for BiasAct {
    fn name(&self) -> &'static str {
        "pets-cuda-gelu"
    }

    cuda_only!(CustomOp1);

    fn cuda_fwd(&self, y: &CudaStorage, l: &Layout) -> Result<(CudaStorage, Shape)> {
        self.forward(y, l)
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(self.grad_y(x, grad)?))
    }
}

impl CustomOp2 for BiasAct {
    fn name(&self) -> &'static str {
        "pets-cuda-frozen-linear"
    }

    cuda_only!(CustomOp2);

    fn cuda_fwd(
        &self,
        _x: &CudaStorage,
        _: &Layout,
        y: &CudaStorage,
        l: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        self.forward(y, l)
    }

    fn bwd(
        &self,
        x: &Tensor,
        y: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let Some(weight) = &self.weight else {
            bail!(
                "{}: no weight to take the input gradient through",
                CustomOp2::name(self)
            )
        };
        let grad = self.grad_y(y, grad)?;
        Ok((frozen_input_grad(x, weight, &grad)?, None))
    }
}

/// (y, g) ↦ g ⊙ gelu'(y + bias).
struct GeluGrad {
    bias: Option<Tensor>,
}

impl CustomOp2 for GeluGrad {
    fn name(&self) -> &'static str {
        "pets-cuda-gelu-grad"
    }

    cuda_only!(CustomOp2);

    fn cuda_fwd(
        &self,
        y: &CudaStorage,
        ly: &Layout,
        g: &CudaStorage,
        lg: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        if ly.shape() != lg.shape() {
            bail!("gelu grad: {:?} vs {:?}", ly.dims(), lg.dims());
        }
        let g = view(g, lg)?;
        launch_held(
            "pets_bias_gelu_bwd",
            (y, ly),
            self.bias.as_ref(),
            Some(&g),
            None,
        )
    }
}
