//! The fused attention against attention built from primitive candle ops.

use super::*;
use crate::backbone::ops::masked_softmax_reference;
use candle_core::Device;
use candle_core::Var;

/// Attention from primitive ops (the unfused encoder path).
fn reference(q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor, heads: usize) -> Result<Tensor> {
    let (b, t, d) = q.dims3()?;
    let dh = d / heads;
    let per_head = |y: &Tensor| -> Result<Tensor> {
        if y.rank() == 4 {
            return y.contiguous();
        }
        let s = y.dim(1)?;
        y.reshape((b, s, heads, dh))?.transpose(1, 2)?.contiguous()
    };
    let scores = per_head(&(q / (dh as f64).sqrt())?)?.matmul(&per_head(k)?.t()?)?;
    masked_softmax_reference(&scores, mask)?
        .matmul(&per_head(v)?)?
        .transpose(1, 2)?
        .reshape((b, t, d))
}

fn max_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()
}

/// (b, 1, 1, s) mask: batch i pads its last i keys with −1e9.
fn pad_mask(b: usize, s: usize) -> Result<Tensor> {
    let m: Vec<f32> = (0..b * s)
        .map(|j| if j % s + j / s >= s { -1e9 } else { 0.0 })
        .collect();
    Tensor::from_vec(m, (b, 1, 1, s), &Device::Cpu)
}

#[test]
fn fused_attention_matches_reference_forward_and_backward() -> Result<()> {
    let dev = &Device::Cpu;
    let (b, t, d, heads) = (3, 7, 24, 4);
    // (name, key rows, per-head 4-D keys/values, q read through a narrowed wider tensor)
    for (name, s, four_d, narrowed) in [
        ("plain", 7, false, false),
        ("prefix-like 4-D k/v", 10, true, false),
        ("strided q", 7, false, true),
    ] {
        let wide = Var::randn(0f32, 1.0, (b, t, 2 * d), dev)?;
        let qv = Var::randn(0f32, 1.0, (b, t, d), dev)?;
        let q = if narrowed {
            wide.as_tensor().narrow(2, d, d)?
        } else {
            qv.as_tensor().clone()
        };
        let kshape: Vec<usize> = if four_d {
            vec![b, heads, s, d / heads]
        } else {
            vec![b, s, d]
        };
        let k = Var::randn(0f32, 2.0, kshape.clone(), dev)?;
        let v = Var::randn(0f32, 1.0, kshape, dev)?;
        let mask = pad_mask(b, s)?;
        let fused = attention(&q, k.as_tensor(), v.as_tensor(), &mask, heads)?;
        let want = reference(&q, k.as_tensor(), v.as_tensor(), &mask, heads)?;
        let diff = max_diff(&fused, &want)?;
        assert!(diff < 1e-5, "{name}: forward differs by {diff}");
        let w = Tensor::randn(0f32, 1.0, fused.shape(), dev)?;
        let fg = (&fused * &w)?.sum_all()?.backward()?;
        let rg = (&want * &w)?.sum_all()?.backward()?;
        let qvar = if narrowed { &wide } else { &qv };
        for (i, var) in [qvar, &k, &v].into_iter().enumerate() {
            let (Some(f), Some(r)) = (fg.get(var), rg.get(var)) else {
                panic!("{name}: input {i} got no gradient");
            };
            let diff = max_diff(f, r)?;
            assert!(diff < 1e-4, "{name}: grad of input {i} differs by {diff}");
        }
    }
    Ok(())
}

#[test]
fn packed_attention_matches_reference_forward_and_backward() -> Result<()> {
    let dev = &Device::Cpu;
    let (b, t, d, heads) = (3, 6, 24, 4);
    let qkv = Var::randn(0f32, 1.5, (b, t, 3 * d), dev)?;
    let part = |i: usize| qkv.as_tensor().narrow(2, i * d, d);
    let mask = pad_mask(b, t)?;
    let fused = attention_packed(qkv.as_tensor(), &mask, heads)?;
    let want = reference(&part(0)?, &part(1)?, &part(2)?, &mask, heads)?;
    let diff = max_diff(&fused, &want)?;
    assert!(diff < 1e-5, "forward differs by {diff}");
    let w = Tensor::randn(0f32, 1.0, fused.shape(), dev)?;
    let fg = (&fused * &w)?.sum_all()?.backward()?;
    let rg = (&want * &w)?.sum_all()?.backward()?;
    let (Some(f), Some(r)) = (fg.get(&qkv), rg.get(&qkv)) else {
        panic!("qkv got no gradient");
    };
    let diff = max_diff(f, r)?;
    assert!(diff < 1e-4, "grad differs by {diff}");
    Ok(())
}
