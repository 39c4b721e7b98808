//! A prefix's tensors: `l` learned keys and values per head prepended to a layer's attention.

use crate::methods::{affine, Fill, ParamStore};
use candle_core::{Result, Tensor};

/// Where a prefix's keys and values come from.
pub enum PrefixParams {
    /// Trained directly.
    Direct { keys: Tensor, values: Tensor },
    /// Li & Liang's reparameterisation: an embedding through a tanh MLP gives keys and values.
    Mlp {
        embedding: Tensor,
        w1: Tensor,
        b1: Tensor,
        w2: Tensor,
        b2: Tensor,
    },
}

/// One layer's prefix.
pub struct Prefix {
    label: String,
    params: PrefixParams,
    heads: usize,
}

impl Prefix {
    /// Creates the prefix's tensors under `prefix` (`<label>.layer<i>`), which also labels it.
    pub fn new(
        store: &mut ParamStore,
        prefix: &str,
        (hidden, heads, l): (usize, usize, usize),
        reparam: Option<usize>,
        init: crate::spec::Init,
    ) -> Result<Self> {
        let std = match init {
            crate::spec::Init::Default => 0.02,
            crate::spec::Init::Normal(s) => s,
        };
        let params = match reparam {
            None => PrefixParams::Direct {
                keys: store.var(&format!("{prefix}.keys"), &[l, hidden], Fill::Normal(std))?,
                values: store.var(&format!("{prefix}.values"), &[l, hidden], Fill::Normal(std))?,
            },
            Some(m) => PrefixParams::Mlp {
                embedding: store.var(
                    &format!("{prefix}.embedding"),
                    &[l, hidden],
                    Fill::Normal(1.0),
                )?,
                w1: store.var(
                    &format!("{prefix}.mlp1.weight"),
                    &[m, hidden],
                    Fill::Uniform(1.0 / (hidden as f32).sqrt()),
                )?,
                b1: store.var(&format!("{prefix}.mlp1.bias"), &[m], Fill::Zeros)?,
                w2: store.var(
                    &format!("{prefix}.mlp2.weight"),
                    &[2 * hidden, m],
                    Fill::Normal(std),
                )?,
                b2: store.var(&format!("{prefix}.mlp2.bias"), &[2 * hidden], Fill::Zeros)?,
            },
        };
        Ok(Prefix {
            label: prefix.to_string(),
            params,
            heads,
        })
    }

    /// `<module label>.layer<i>`.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// (keys, values) each (l, hidden).
    pub(crate) fn key_values(&self) -> Result<(Tensor, Tensor)> {
        match &self.params {
            PrefixParams::Direct { keys, values } => Ok((keys.clone(), values.clone())),
            PrefixParams::Mlp {
                embedding,
                w1,
                b1,
                w2,
                b2,
            } => {
                let hidden = embedding.dim(1)?;
                let kv = affine(&affine(embedding, w1, Some(b1))?.tanh()?, w2, Some(b2))?;
                Ok((kv.narrow(1, 0, hidden)?, kv.narrow(1, hidden, hidden)?))
            }
        }
    }

    /// Prepends the prefix to keys and values (b, t, hidden), heads not yet split, and extends
    /// the additive mask like `extend`: two nodes per tensor where the per-head form has five
    /// (the fused CUDA attention splits the heads itself).
    pub fn extend_merged(
        &self,
        k: &Tensor,
        v: &Tensor,
        mask: &Tensor,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let (b, _, hidden) = k.dims3()?;
        let (pk, pv) = self.key_values()?;
        let l = pk.dim(0)?;
        let batch = |p: Tensor| p.unsqueeze(0)?.broadcast_as((b, l, hidden));
        let k = Tensor::cat(&[&batch(pk)?, k], 1)?;
        let v = Tensor::cat(&[&batch(pv)?, v], 1)?;
        Ok((k, v, extend_mask(mask, l)?))
    }

    /// Prepends the prefix to per-head keys and values (b, heads, t, head_dim) and extends the
    /// additive mask (b, 1, 1, t) with zeros: every query may attend to the prefix.
    pub fn extend(
        &self,
        k: &Tensor,
        v: &Tensor,
        mask: &Tensor,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let (b, heads, _, head_dim) = k.dims4()?;
        let (pk, pv) = self.key_values()?;
        let l = pk.dim(0)?;
        let per_head = |p: Tensor| -> Result<Tensor> {
            p.reshape((1, l, heads, head_dim))?
                .transpose(1, 2)?
                .broadcast_as((b, self.heads, l, head_dim))?
                .contiguous()
        };
        let k = Tensor::cat(&[&per_head(pk)?, k], 2)?;
        let v = Tensor::cat(&[&per_head(pv)?, v], 2)?;
        Ok((k, v, extend_mask(mask, l)?))
    }
}

/// The additive mask (b, 1, 1, t) with l zeros in front: every query may attend to the prefix.
fn extend_mask(mask: &Tensor, l: usize) -> Result<Tensor> {
    let zeros = Tensor::zeros((mask.dim(0)?, 1, 1, l), mask.dtype(), mask.device())?;
    Tensor::cat(&[&zeros, mask], 3)
}
