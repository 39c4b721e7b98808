//! A post-LN BERT encoder of our own, loaded from HF safetensors, whose layers consult a per-layer
//! adapter plan at every insertion point (projections, heads, sublayer outputs, prefixes).

use super::attention;
use super::bmm::batched_matmul;
use super::config::BertConfig;
use super::ops;
use super::trace;
use crate::methods::{LayerPlan, SiteModules};
use crate::sites::{Point, Projection, Site};
use candle_core::{Result, Tensor, D};
use std::cell::Cell;
use weights::{Layer, Norm};

mod weights;

/// Additive mask value for padding: large and finite, so a row never becomes all −inf (NaN).
pub(crate) const MASKED: f32 = -1e9;

/// How the frozen encoder runs: dropout is an explicit choice (off keeps it deterministic).
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    pub dropout: f32,
}

/// Cloning shares the frozen tensors (candle tensors are reference-counted): a pack of designs
/// trains on clones of one encoder.
#[derive(Clone)]
pub struct Encoder {
    pub config: BertConfig,
    word: Tensor,
    position: Tensor,
    token_type: Tensor,
    embedding_norm: Norm,
    layers: Vec<Layer>,
    pub options: RunOptions,
}

impl Encoder {
    /// Hidden states of the last layer, (b, t, hidden). `plan` holds one entry per layer.
    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        plan: &[LayerPlan],
        train: bool,
    ) -> Result<Tensor> {
        let x = self.dropout(&self.embed(input_ids)?, train)?;
        self.forward_from(0, &x, attention_mask, plan, train)
    }

    /// The (normalised) embeddings of `input_ids` (b, t): what enters layer 0.
    fn embed(&self, input_ids: &Tensor) -> Result<Tensor> {
        let (b, t) = input_ids.dims2()?;
        let d = self.config.hidden_size;
        let words = self
            .word
            .index_select(&input_ids.flatten_all()?, 0)?
            .reshape((b, t, d))?;
        // Position and token-type rows are the same for every sequence: add them once (t, d),
        // and add the words inside the fused norm.
        let shared = self
            .position
            .narrow(0, 0, t)?
            .broadcast_add(&self.token_type.narrow(0, 0, 1)?)?
            .broadcast_as((b, t, d))?;
        let (gamma, beta) = (&self.embedding_norm.gamma, &self.embedding_norm.beta);
        ops::add_layer_norm(&words, &shared, gamma, beta, self.config.layer_norm_eps)
    }

    /// Runs layers `first..` on `x`, the hidden states entering layer `first` (b, t, hidden).
    pub fn forward_from(
        &self,
        first: usize,
        x: &Tensor,
        attention_mask: &Tensor,
        plan: &[LayerPlan],
        train: bool,
    ) -> Result<Tensor> {
        let mask = additive_mask(attention_mask)?;
        ops::real_rows_scope(attention_mask, || {
            self.run_layers(first..self.layers.len(), x, &mask, plan, train)
        })
    }

    /// The hidden states entering layer `layer` (b, t, hidden) of the encoder without modules
    /// and without dropout, computed without a graph: what a design that leaves the layers
    /// below `layer` untouched sees there, whatever its trainable tensors hold.
    pub fn hidden_before(
        &self,
        layer: usize,
        input_ids: &Tensor,
        attention_mask: &Tensor,
    ) -> Result<Tensor> {
        let below = 0..layer.min(self.layers.len());
        let mask = additive_mask(attention_mask)?;
        let run = || self.run_layers(below, &self.embed(input_ids)?, &mask, &[], false);
        no_grad(|| ops::real_rows_scope(attention_mask, run)).map(|x| x.detach())
    }

    /// Layers `range` in order; a layer without an entry in `plan` runs without modules.
    fn run_layers(
        &self,
        range: std::ops::Range<usize>,
        x: &Tensor,
        mask: &Tensor,
        plan: &[LayerPlan],
        train: bool,
    ) -> Result<Tensor> {
        let empty = LayerPlan::default();
        let mut x = x.clone();
        for i in range {
            let Some(layer) = self.layers.get(i) else {
                break;
            };
            trace::layer(i);
            x = self.layer_forward(layer, &x, mask, plan.get(i).unwrap_or(&empty), train)?;
        }
        Ok(x)
    }

    fn layer_forward(
        &self,
        w: &Layer,
        x: &Tensor,
        mask: &Tensor,
        ad: &LayerPlan,
        train: bool,
    ) -> Result<Tensor> {
        let eps = self.config.layer_norm_eps;
        let probs_dropout = train && self.options.dropout > 0.0;
        let at = |p: Projection| ad.at(Site::Projection(p));
        trace::point(Point::LayerInput, x);
        let context = if w.packed_qkv(ad, x) && !probs_dropout {
            let heads = self.config.num_attention_heads;
            attention::attention_packed(&w.qkv.forward(x)?, mask, heads)?
        } else {
            let frozen = |p: Point, linear: &weights::Linear| {
                let y = linear.forward(x)?;
                trace::point(p, &y);
                Ok::<_, candle_core::Error>(y)
            };
            let q = site(at(Projection::Query), x, frozen(Point::Query, &w.query)?)?;
            let k = site(at(Projection::Key), x, frozen(Point::Key, &w.key)?)?;
            let v = site(at(Projection::Value), x, frozen(Point::Value, &w.value)?)?;
            let context = self.attention(&q, &k, &v, mask, ad, train)?;
            if let Some(prefix) = &ad.prefix {
                trace::prefix(prefix.label(), &q, &context);
            }
            context
        };
        trace::point(Point::Heads, &context);
        let context = site(ad.at(Site::AttentionHeads), x, context)?;
        let attended = w.output.forward(&context)?;
        trace::point(Point::Output, &attended);
        let attended = site(at(Projection::Output), &context, attended)?;
        let attended = self.dropout(&site(ad.at(Site::Attention), x, attended)?, train)?;
        let a = ops::add_layer_norm(
            &attended,
            x,
            &w.attention_norm.gamma,
            &w.attention_norm.beta,
            eps,
        )?;
        trace::point(Point::AttentionNorm, &a);
        let inner = match self.config.hidden_act.as_str() {
            // No module reads the pre-activation: GELU runs inside the linear op.
            "gelu" if at(Projection::FfnIn).is_empty() => {
                ops::linear_gelu(&a, &w.ffn_in.weight, Some(&w.ffn_in.bias))?
            }
            act => {
                let pre = w.ffn_in.forward(&a)?;
                trace::point(Point::FfnIn, &pre);
                let inner = site(at(Projection::FfnIn), &a, pre)?;
                match act {
                    "relu" => inner.relu()?,
                    "gelu_new" => inner.gelu()?,
                    _ => ops::gelu_erf(&inner)?,
                }
            }
        };
        trace::point(Point::FfnActivation, &inner);
        // Only sequential modules sit here (validation refuses parallel ones): they read the
        // activation itself, so `z` is `inner` either way.
        let inner = site(ad.at(Site::FfnActivation), &inner, inner.clone())?;
        let out = w.ffn_out.forward(&inner)?;
        trace::point(Point::FfnOut, &out);
        let out = site(at(Projection::FfnOut), &inner, out)?;
        let out = self.dropout(&site(ad.at(Site::Ffn), &a, out)?, train)?;
        let y = ops::add_layer_norm(&out, &a, &w.ffn_norm.gamma, &w.ffn_norm.beta, eps)?;
        trace::point(Point::FfnNorm, &y);
        Ok(y)
    }

    /// Multi-head attention of projected q, k, v (b, t, d) → merged heads (b, t, d), with the
    /// layer's prefix (if any) prepended to keys and values.
    fn attention(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        mask: &Tensor,
        ad: &LayerPlan,
        train: bool,
    ) -> Result<Tensor> {
        let (b, t, d) = q.dims3()?;
        let heads = self.config.num_attention_heads;
        let head_dim = d / heads;
        // Views (b, heads, t, head_dim): the fused op reads them in place.
        let per_head = |y: &Tensor| y.reshape((b, t, heads, head_dim))?.transpose(1, 2);
        let probs_dropout = train && self.options.dropout > 0.0;
        if attention::fusable(q, k, v) && !probs_dropout {
            return match &ad.prefix {
                Some(prefix) => {
                    let (k, v, mask) = prefix.extend(&per_head(k)?, &per_head(v)?, mask)?;
                    attention::attention(q, &cut(k), &cut(v), &mask, heads)
                }
                None => attention::attention(q, k, v, mask, heads),
            };
        }
        #[cfg(feature = "cuda")]
        if ops::cuda::fusable(&[q, k, v, mask]) && !probs_dropout {
            let (k, v, mask) = match &ad.prefix {
                Some(prefix) => prefix.extend_merged(k, v, mask)?,
                None => (k.clone(), v.clone(), mask.clone()),
            };
            if let Some(context) = ops::cuda::attention(q, &cut(k), &cut(v), &mask, heads)? {
                return Ok(context);
            }
        }
        let split = |y: Tensor| {
            y.reshape((b, t, heads, head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = split((q * (1.0 / (head_dim as f64).sqrt()))?)?;
        let (k, v) = (split(k.clone())?, split(v.clone())?);
        let (k, v, mask) = match &ad.prefix {
            Some(prefix) => prefix.extend(&k, &v, mask)?,
            None => (k, v, mask.clone()),
        };
        let scores = batched_matmul(&q, &k, true)?;
        let probs = self.dropout(&ops::masked_softmax(&scores, &mask)?, train)?;
        batched_matmul(&probs, &v, false)?
            .transpose(1, 2)?
            .reshape((b, t, d))
    }

    fn dropout(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if train && self.options.dropout > 0.0 {
            candle_nn::ops::dropout(x, self.options.dropout)
        } else {
            Ok(x.clone())
        }
    }
}

/// (1 − mask) · MASKED, shaped (b, 1, 1, t) for every head and query.
fn additive_mask(attention_mask: &Tensor) -> Result<Tensor> {
    let (b, t) = attention_mask.dims2()?;
    ((attention_mask.ones_like()? - attention_mask)? * MASKED as f64)?.reshape((b, 1, 1, t))
}

thread_local! {
    static NO_GRAD: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` without recording an autograd graph through the encoder (like torch.no_grad):
/// what leaves each adapter site or prefix is detached. A forward-only pass (evaluation,
/// prediction) then keeps no intermediates alive until its output is dropped, and the fused
/// ops skip what only a backward pass needs. Nests; `f` must not expect encoder gradients.
pub fn no_grad<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            NO_GRAD.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(NO_GRAD.with(|c| c.replace(true)));
    f()
}

/// `t`, detached inside `no_grad`.
fn cut(t: Tensor) -> Tensor {
    if NO_GRAD.with(Cell::get) {
        t.detach()
    } else {
        t
    }
}

/// `h` modified by the modules of one site (reading `z`), cut from the graph inside `no_grad`.
fn site(modules: &SiteModules, z: &Tensor, h: Tensor) -> Result<Tensor> {
    Ok(cut(modules.apply(z, h)?))
}

/// Mean of the hidden states over real tokens: (b, t, d), mask (b, t) → (b, d).
pub fn mean_pool(hidden: &Tensor, attention_mask: &Tensor) -> Result<Tensor> {
    let mask = attention_mask.unsqueeze(D::Minus1)?;
    let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
    let counts = mask.sum(1)?.clamp(1.0, f64::MAX)?;
    summed.broadcast_div(&counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{make_batch, TokenizedSplit};
    use crate::model::AdaptedModel;
    use crate::spec::{parse_ron, Design};
    use candle_core::Device;

    #[test]
    fn no_grad_gives_the_same_output_without_a_graph() -> crate::Result<()> {
        let design: Design = parse_ron(
            r#"Design(name: "t", modules: [
                Module(form: Lora(r: 4, alpha: 8.0), site: Projection(Query), init: Normal(0.1)),
                Module(form: Prefix(l: 3), site: AttentionHeads),
                Module(form: Bottleneck(r: 8, activation: Gelu), site: Ffn, insertion: Parallel),
            ])"#,
            "test",
        )?;
        let model = AdaptedModel::build(super::super::tiny::tiny_encoder(1)?, &design, 2, 0)?;
        let split = TokenizedSplit {
            ids: vec![vec![1, 5, 9, 2], vec![1, 7, 2]],
            labels: vec![0, 1],
        };
        let batch = make_batch(&split, &[0, 1], 0, &Device::Cpu)?;
        let with_graph = model.pooled(&batch, false)?;
        let without = no_grad(|| model.pooled(&batch, false))?;
        assert!(with_graph.track_op() && !without.track_op());
        let diff = (with_graph - &without)?
            .abs()?
            .max_all()?
            .to_scalar::<f32>()?;
        assert_eq!(diff, 0.0);
        // The flag is restored: the graph is recorded again afterwards.
        assert!(model.pooled(&batch, false)?.track_op());
        Ok(())
    }
}
