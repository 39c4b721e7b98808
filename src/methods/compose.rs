//! Composition of `Δh` with `h`: add, fixed scale, learned scale, or a per-token gate.

use super::store::{Fill, ParamStore};
use crate::spec::Composition;
use candle_core::{Result, Tensor};

pub enum Composer {
    Add,
    Scaled(f64),
    /// A trained scalar, shape (1,).
    Learned(Tensor),
    /// `λ = σ(z·w + b)`: w (in, 1), b (1,).
    Gated {
        w: Tensor,
        b: Tensor,
    },
}

impl Composer {
    pub fn new(
        store: &mut ParamStore,
        prefix: &str,
        composition: Composition,
        z_dim: usize,
    ) -> Result<Self> {
        Ok(match composition {
            Composition::Add => Composer::Add,
            Composition::Scaled(s) => Composer::Scaled(s as f64),
            Composition::LearnedScale(s) => {
                Composer::Learned(store.var(&format!("{prefix}.scale"), &[1], Fill::Const(s))?)
            }
            Composition::Gated => Composer::Gated {
                w: store.var(&format!("{prefix}.gate.weight"), &[z_dim, 1], Fill::Zeros)?,
                b: store.var(&format!("{prefix}.gate.bias"), &[1], Fill::Zeros)?,
            },
        })
    }

    /// `s` where the composition is `h + s·Δh` with `s` fixed (add, scaled); `None` for a
    /// learned scale or a gate.
    pub fn fixed_scale(&self) -> Option<f64> {
        match self {
            Composer::Add => Some(1.0),
            Composer::Scaled(s) => Some(*s),
            Composer::Learned(_) | Composer::Gated { .. } => None,
        }
    }

    /// `h ⊕ Δh`; `z` is what the module read (the gate reads it too).
    pub fn compose(&self, h: &Tensor, delta: &Tensor, z: &Tensor) -> Result<Tensor> {
        match self {
            Composer::Add => h + delta,
            Composer::Scaled(s) => crate::backbone::ops::scaled_add(h, delta, *s),
            Composer::Learned(s) => h + delta.broadcast_mul(s)?,
            Composer::Gated { w, b } => {
                let logit = z.broadcast_matmul(w)?.broadcast_add(b)?;
                // σ from primitive ops, which all have a backward pass.
                let gate = (logit.neg()?.exp()? + 1.0)?.recip()?;
                h + delta.broadcast_mul(&gate)?
            }
        }
    }
}
