//! Fused multi-head attention on CPU/F32: softmax(q·kᵀ/√d_h + mask)·v for every head as one
//! custom op, reading the heads straight out of (b, t, d) projections, with a fused backward.
//!
//! Unfused, a layer's attention was ~15 graph nodes (scale, three head-split copies, two
//! batched matmuls, softmax, the merge copy), and candle's backward pays a zero-filled tensor
//! plus an add for every node. Here it is one node: forward keeps the probabilities for the
//! backward pass, which produces dq, dk and dv directly in their inputs' layouts. With no
//! module on q, k or v, the three can come packed from one projection (`attention_packed`).

mod kernel;
#[cfg(test)]
mod tests;

use candle_core::{
    bail, CpuStorage, CustomOp1, CustomOp3, DType, Device, Layout, Result, Shape, Storage, Tensor,
};
use kernel::{Dims, Heads, Input, Out};
use std::sync::OnceLock;

/// Whether `attention` can run fused for these inputs (CPU, F32).
pub fn fusable(q: &Tensor, k: &Tensor, v: &Tensor) -> bool {
    [q, k, v]
        .iter()
        .all(|t| t.device().is_cpu() && t.dtype() == DType::F32)
}

/// Multi-head attention. `q` is (b, t, d) and `k`, `v` are (b, s, d), heads side by side in the
/// last dim (any strides with a unit last stride, e.g. narrowed views), or (b, heads, s, d_h)
/// per head (prefix-extended keys/values). `mask` is additive, (b, 1, 1, s), never
/// differentiated; use a large finite negative for padding. Returns (b, t, d), heads merged.
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &Tensor,
    heads: usize,
) -> Result<Tensor> {
    let s = k.dim(k.rank() - 2)?;
    let op = Attention::new(q.dims3()?, s, mask, heads, [q, k, v])?;
    q.apply_op3(k, v, op)
}

/// `attention` of the q, k and v packed side by side in `qkv` (b, t, 3·d), as one projection
/// of the hidden states produces them; the backward pass returns one packed gradient.
pub fn attention_packed(qkv: &Tensor, mask: &Tensor, heads: usize) -> Result<Tensor> {
    let (b, t, d3) = qkv.dims3()?;
    if d3 % 3 != 0 {
        bail!("attention_packed: last dim {d3} is not 3·d");
    }
    let op = Attention::new((b, t, d3 / 3), t, mask, heads, [qkv])?;
    qkv.apply_op1(op)
}

struct Attention {
    heads: usize,
    /// (b, s) additive mask.
    mask: Vec<f32>,
    keep_probs: bool,
    /// (b, heads, t, s) softmax output, kept for the backward pass.
    probs: OnceLock<Vec<f32>>,
}

impl Attention {
    fn new<const N: usize>(
        (b, _, d): (usize, usize, usize),
        s: usize,
        mask: &Tensor,
        heads: usize,
        inputs: [&Tensor; N],
    ) -> Result<Self> {
        if heads == 0 || d % heads != 0 || mask.elem_count() != b * s {
            bail!(
                "attention: width {d}, {heads} heads, {s} keys, mask {:?}",
                mask.dims()
            );
        }
        let mask = mask
            .detach()
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1()?;
        Ok(Attention {
            heads,
            mask,
            keep_probs: inputs.iter().any(|t| t.track_op()),
            probs: OnceLock::new(),
        })
    }

    fn run(&self, [q, k, v]: [Input; 3], (b, t, d): (usize, usize, usize)) -> Result<CpuStorage> {
        let dims = Dims {
            b,
            t,
            s: k.heads.rows,
            d,
            heads: self.heads,
        };
        let (out, probs) = kernel::forward(q, k, v, &self.mask, dims)?;
        if self.keep_probs {
            let _ = self.probs.set(probs);
        }
        Ok(CpuStorage::F32(out))
    }

    /// Fills `outs` (pointers into the caller's gradient buffers, of `lens` elements) with
    /// dq, dk, dv for upstream `grad`.
    fn grads(
        &self,
        inputs: [Input; 3],
        grad: &Tensor,
        outs: [(Out, Heads, usize); 3],
    ) -> Result<()> {
        let Some(probs) = self.probs.get() else {
            bail!("attention: backward without kept probabilities");
        };
        let grad = grad.contiguous()?;
        let (gs, _) = grad.storage_and_layout();
        let (b, t, d) = grad.dims3()?;
        let dims = Dims {
            b,
            t,
            s: inputs[1].heads.rows,
            d,
            heads: self.heads,
        };
        for (_, heads, len) in &outs {
            heads.check(*len, (b, self.heads, d / self.heads))?;
        }
        // SAFETY: each output's blocks were checked against its buffer just above; their
        // (batch, head) blocks are disjoint (separate buffers, or separate column ranges of
        // one packed buffer).
        unsafe {
            kernel::backward(
                inputs,
                probs,
                cpu_f32(&gs)?,
                dims,
                outs.map(|(o, h, _)| (o, h)),
            )
        }
    }
}

fn cpu_f32(t: &Storage) -> Result<&[f32]> {
    match t {
        Storage::Cpu(s) => s.as_slice::<f32>(),
        _ => bail!("attention: expected CPU storage"),
    }
}

impl CustomOp3 for Attention {
    fn name(&self) -> &'static str {
        "pets-attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let [q, k, v] = [(s1, l1), (s2, l2), (s3, l3)].map(|(s, l)| {
            Ok::<_, candle_core::Error>(Input {
                data: s.as_slice::<f32>()?,
                heads: Heads::of(l, self.heads)?,
            })
        });
        let out = self.run([q?, k?, v?], l1.shape().dims3()?)?;
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let guards = [q, k, v].map(|t| t.storage_and_layout());
        let mut inputs = Vec::with_capacity(3);
        for (s, l) in &guards {
            inputs.push(Input {
                data: cpu_f32(s)?,
                heads: Heads::of(l, self.heads)?,
            });
        }
        let [mut dq, mut dk, mut dv] = [q, k, v].map(|t| vec![0f32; t.elem_count()]);
        let out = |buf: &mut Vec<f32>, t: &Tensor| -> Result<(Out, Heads, usize)> {
            Ok((
                Out(buf.as_mut_ptr()),
                Heads::packed(t.layout(), self.heads)?,
                buf.len(),
            ))
        };
        let outs = [out(&mut dq, q)?, out(&mut dk, k)?, out(&mut dv, v)?];
        self.grads([inputs[0], inputs[1], inputs[2]], grad, outs)?;
        drop(guards);
        let make = |data: Vec<f32>, like: &Tensor| {
            like.track_op()
                .then(|| Tensor::from_vec(data, like.shape(), &Device::Cpu))
                .transpose()
        };
        Ok((make(dq, q)?, make(dk, k)?, make(dv, v)?))
    }
}

impl CustomOp1 for Attention {
    fn name(&self) -> &'static str {
        "pets-attention-packed"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, t, d3) = l.shape().dims3()?;
        let (data, d) = (s.as_slice::<f32>()?, d3 / 3);
        // Heads::of reads a (b, t, 3·d) layout as 3·d/heads wide heads; they are d/heads wide.
        let heads = Heads {
            sh: d / self.heads,
            ..Heads::of(l, self.heads)?
        };
        let input = |i: usize| Input {
            data,
            heads: heads.shifted(i * d),
        };
        let out = self.run([input(0), input(1), input(2)], (b, t, d))?;
        Ok((out, Shape::from((b, t, d))))
    }

    fn bwd(&self, qkv: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let (s, l) = qkv.storage_and_layout();
        let d = qkv.dim(2)? / 3;
        let heads = Heads {
            sh: d / self.heads,
            ..Heads::of(l, self.heads)?
        };
        let data = cpu_f32(&s)?;
        let inputs = [0, 1, 2].map(|i| Input {
            data,
            heads: heads.shifted(i * d),
        });
        let mut dqkv = vec![0f32; qkv.elem_count()];
        let packed = Heads::packed(qkv.layout(), self.heads)?;
        let packed = Heads {
            sh: d / self.heads,
            ..packed
        };
        let ptr = Out(dqkv.as_mut_ptr());
        let len = dqkv.len();
        self.grads(
            inputs,
            grad,
            [0, 1, 2].map(|i| (ptr, packed.shifted(i * d), len)),
        )?;
        drop(s);
        Ok(Some(Tensor::from_vec(dqkv, qkv.shape(), &Device::Cpu)?))
    }
}
