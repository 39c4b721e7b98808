//! Bottleneck modules `f(z·W_down + b)·W_up + b`: one over the whole hidden state, or one per head.

use super::Activation;
use crate::methods::{affine, pair_fills, Delta, Fill, LowRank, ParamStore};
use candle_core::{Result, Tensor};

/// `f(x)` for a bottleneck's activation.
pub fn activate(x: &Tensor, activation: Activation) -> Result<Tensor> {
    match activation {
        Activation::Relu => x.relu(),
        Activation::Gelu => crate::backbone::ops::gelu_erf(x),
        Activation::Silu => x.silu(),
        Activation::Tanh => x.tanh(),
        Activation::Identity => Ok(x.clone()),
    }
}

/// A bottleneck over the whole site: `f(z·W_downᵀ + b_down)·W_upᵀ + b_up`.
pub struct Bottleneck {
    down_w: Tensor,
    down_b: Tensor,
    up_w: Tensor,
    up_b: Tensor,
    activation: Activation,
}

impl Bottleneck {
    /// Creates the four tensors of an `input → r → output` bottleneck.
    pub fn new(
        store: &mut ParamStore,
        prefix: &str,
        (input, r, output): (usize, usize, usize),
        activation: Activation,
        (down, up): (Fill, Fill),
    ) -> Result<Self> {
        Ok(Bottleneck {
            down_w: store.var(&format!("{prefix}.down.weight"), &[r, input], down)?,
            down_b: store.var(&format!("{prefix}.down.bias"), &[r], Fill::Zeros)?,
            up_w: store.var(&format!("{prefix}.up.weight"), &[output, r], up)?,
            up_b: store.var(&format!("{prefix}.up.bias"), &[output], Fill::Zeros)?,
            activation,
        })
    }
}

impl Delta for Bottleneck {
    fn forward(&self, z: &Tensor) -> Result<Tensor> {
        let hidden = activate(
            &affine(z, &self.down_w, Some(&self.down_b))?,
            self.activation,
        )?;
        affine(&hidden, &self.up_w, Some(&self.up_b))
    }

    fn low_rank(&self) -> Option<LowRank<'_>> {
        Some(LowRank {
            down: &self.down_w,
            down_bias: Some(&self.down_b),
            up: &self.up_w,
            up_bias: Some(&self.up_b),
            activation: self.activation,
            scale: 1.0,
        })
    }
}

/// One bottleneck per attention head (multi-head PA): head `i` gets width `r/heads`, writes only
/// that head's slice of the concatenated head outputs, and reads all of `x` (parallel) or only
/// its own head's output (sequential).
pub struct HeadsBottleneck {
    /// parallel: (r, d); sequential: (heads, head_dim, r/heads)
    down_w: Tensor,
    down_b: Tensor,
    /// (heads, r/heads, head_dim)
    up_w: Tensor,
    up_b: Tensor,
    heads: usize,
    parallel: bool,
    activation: Activation,
}

impl HeadsBottleneck {
    /// Creates the tensors of `r/heads`-wide bottlenecks on each of `heads` heads.
    pub fn new(
        store: &mut ParamStore,
        prefix: &str,
        (hidden, heads, r): (usize, usize, usize),
        parallel: bool,
        activation: Activation,
        init: crate::spec::Init,
    ) -> Result<Self> {
        let head_dim = hidden / heads;
        let per_head = r / heads;
        let (down_fill, up_fill) = pair_fills(init, if parallel { hidden } else { head_dim });
        let down_shape: Vec<usize> = if parallel {
            vec![r, hidden]
        } else {
            vec![heads, head_dim, per_head]
        };
        Ok(HeadsBottleneck {
            down_w: store.var(&format!("{prefix}.down.weight"), &down_shape, down_fill)?,
            down_b: store.var(&format!("{prefix}.down.bias"), &[r], Fill::Zeros)?,
            up_w: store.var(
                &format!("{prefix}.up.weight"),
                &[heads, per_head, head_dim],
                up_fill,
            )?,
            up_b: store.var(&format!("{prefix}.up.bias"), &[hidden], Fill::Zeros)?,
            heads,
            parallel,
            activation,
        })
    }
}

impl Delta for HeadsBottleneck {
    /// z: (b, t, d) → Δ: (b, t, d) laid out as concatenated heads.
    fn forward(&self, z: &Tensor) -> Result<Tensor> {
        let (b, t, d) = z.dims3()?;
        let (heads, head_dim) = (self.heads, d / self.heads);
        let r = self.down_b.dim(0)?;
        let down = if self.parallel {
            affine(z, &self.down_w, None)?
                .reshape((b * t, heads, r / heads))?
                .transpose(0, 1)?
        } else {
            let per_head = z
                .reshape((b * t, heads, head_dim))?
                .transpose(0, 1)?
                .contiguous()?;
            per_head.matmul(&self.down_w)?
        };
        // down: (heads, b·t, r/heads); the bias is laid out head-major like the weights.
        let bias = self.down_b.reshape((heads, 1, r / heads))?;
        let hidden = activate(&down.contiguous()?.broadcast_add(&bias)?, self.activation)?;
        let up = hidden.matmul(&self.up_w)?; // (heads, b·t, head_dim)
        up.transpose(0, 1)?
            .reshape((b, t, d))?
            .broadcast_add(&self.up_b)
    }
}
