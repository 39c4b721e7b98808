//! Every fused op against its reference built from primitive candle ops: forward values,
//! gradients, and no gradients built for frozen tensors; on the CPU, and on the GPU too when
//! built with the `cuda` feature on a machine that has one.

use super::*;
use candle_core::{Device, Var};

#[derive(Clone, Copy)]
enum Kind {
    Ln,
    Softmax,
    Linear,
    Gelu,
    AddLn,
    LinGelu,
    Aff,
    ScaledAdd,
}
use DType::{F32, F64};
use Kind::{AddLn, Aff, Gelu, LinGelu, Linear, Ln, ScaledAdd, Softmax};

/// Argument flags: a var or a constant (frozen), optionally passed as a transposed view.
const C: u8 = 0;
const V: u8 = 1;
const VT: u8 = 3;

/// Name, dtype, op, and per argument its final shape and flags.
type Case = (&'static str, DType, Kind, &'static [(&'static [usize], u8)]);

#[rustfmt::skip]
const CASES: &[Case] = &[
    ("ln all vars",          F32, Ln,      &[(&[8, 50, 64], V), (&[64], V), (&[64], V)]),
    ("ln strided x",         F32, Ln,      &[(&[3, 7, 32], VT), (&[32], C), (&[32], C)]),
    ("ln var gamma",         F32, Ln,      &[(&[5, 384], C), (&[384], V), (&[384], C)]),
    ("softmax",              F32, Softmax, &[(&[4, 3, 50, 40], V)]),
    ("softmax strided",      F32, Softmax, &[(&[3, 2, 7, 9], VT)]),
    ("lin frozen w, b",      F32, Linear,  &[(&[8, 40, 64], V), (&[96, 64], C), (&[96], C)]),
    ("lin strided x",        F32, Linear,  &[(&[2, 5, 48], VT), (&[16, 48], C)]),
    ("lin frozen w, var b",  F32, Linear,  &[(&[2, 5, 48], V), (&[16, 48], C), (&[16], V)]),
    ("lin var w",            F32, Linear,  &[(&[2, 5, 48], V), (&[16, 48], V), (&[16], V)]),
    ("lin f64 (any device)", F64, Linear,  &[(&[2, 5, 48], VT), (&[16, 48], C), (&[16], C)]),
    ("add-ln frozen γ, β",   F32, AddLn,   &[(&[8, 50, 64], V), (&[8, 50, 64], V), (&[64], C), (&[64], C)]),
    ("add-ln strided, const", F32, AddLn,  &[(&[3, 7, 32], VT), (&[3, 7, 32], C), (&[32], C), (&[32], C)]),
    ("add-ln var γ",         F32, AddLn,   &[(&[5, 384], V), (&[5, 384], V), (&[384], V), (&[384], C)]),
    ("lin+gelu frozen",      F32, LinGelu, &[(&[8, 40, 64], V), (&[96, 64], C), (&[96], C)]),
    ("lin+gelu strided",     F32, LinGelu, &[(&[2, 5, 48], VT), (&[16, 48], C)]),
    ("lin+gelu var b",       F32, LinGelu, &[(&[2, 5, 48], V), (&[16, 48], C), (&[16], V)]),
    ("affine all vars",      F32, Aff,     &[(&[8, 40, 64], V), (&[12, 64], V), (&[12], V)]),
    ("affine const x",       F32, Aff,     &[(&[2, 5, 48], C), (&[16, 48], V)]),
    ("affine strided x, w",  F32, Aff,     &[(&[3, 7, 32], VT), (&[24, 32], VT), (&[24], V)]),
    ("affine f64",           F64, Aff,     &[(&[2, 5, 48], V), (&[16, 48], V), (&[16], V)]),
    ("gelu",                 F32, Gelu,    &[(&[3, 70_001], V)]),
    ("gelu strided",         F32, Gelu,    &[(&[4, 6, 10], VT)]),
    ("gelu f64 (any device)", F64, Gelu,   &[(&[4, 6, 10], V)]),
    ("scaled add",           F32, ScaledAdd, &[(&[8, 50, 64], V), (&[8, 50, 64], V)]),
    ("scaled add strided Δ", F32, ScaledAdd, &[(&[2, 5, 48], V), (&[2, 5, 48], VT)]),
];

/// The CPU, and GPU 0 when the `cuda` feature is on and a GPU answers.
fn devices() -> Vec<Device> {
    let mut all = vec![Device::Cpu];
    if cfg!(feature = "cuda") {
        all.extend(crate::run::open_device("cuda").ok().flatten());
    }
    all
}

fn apply(kind: Kind, a: &[Tensor], fused: bool) -> Result<Tensor> {
    match (kind, fused) {
        (Ln, true) => layer_norm(&a[0], &a[1], &a[2], 1e-12),
        (Ln, false) => layer_norm_reference(&a[0], &a[1], &a[2], 1e-12),
        (AddLn, true) => add_layer_norm(&a[0], &a[1], &a[2], &a[3], 1e-12),
        (AddLn, false) => layer_norm_reference(&(&a[0] + &a[1])?, &a[2], &a[3], 1e-12),
        (Softmax, _) => {
            let mask = pad_mask(a[0].dim(0)?, a[0].dim(3)?)?.to_device(a[0].device())?;
            let s = (&a[0] * 3.0)?;
            if fused {
                masked_softmax(&s, &mask)
            } else {
                masked_softmax_reference(&s, &mask)
            }
        }
        (Linear, true) => linear(&a[0], &a[1], a.get(2)),
        (Linear, false) => linear_reference(&a[0], &a[1], a.get(2)),
        (LinGelu, true) => linear_gelu(&a[0], &a[1], a.get(2)),
        (LinGelu, false) => linear_reference(&a[0], &a[1], a.get(2))?.gelu_erf(),
        (Aff, true) => affine(&a[0], &a[1], a.get(2)),
        (Aff, false) => linear_reference(&a[0], &a[1], a.get(2)),
        // Scaled so the inputs reach every branch of the erf approximation.
        (Gelu, true) => gelu_erf(&(&a[0] * 3.0)?),
        (Gelu, false) => (&a[0] * 3.0)?.gelu_erf(),
        (ScaledAdd, true) => scaled_add(&a[0], &a[1], 0.7),
        (ScaledAdd, false) => &a[0] + (&a[1] * 0.7)?,
    }
}

/// (b, 1, 1, k) additive mask: batch i pads its last i keys with −1e9.
fn pad_mask(b: usize, k: usize) -> Result<Tensor> {
    let v: Vec<f32> = (0..b * k)
        .map(|j| if j % k + j / k >= k { -1e9 } else { 0.0 })
        .collect();
    Tensor::from_vec(v, (b, 1, 1, k), &Device::Cpu)
}

fn max_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    let d = (a - b)?.abs()?.flatten_all()?.max(0)?;
    d.to_dtype(F32)?.to_scalar::<f32>()
}

fn make(shape: &[usize], flags: u8, dtype: DType, dev: &Device) -> Result<(Tensor, Option<Var>)> {
    let (mut dims, strided) = (shape.to_vec(), flags & 2 != 0);
    let r = dims.len();
    if strided {
        dims.swap(r - 2, r - 1);
    }
    let t = Tensor::randn(0f32, 1f32, dims, &Device::Cpu)?
        .to_dtype(dtype)?
        .to_device(dev)?;
    let v = (flags & 1 != 0).then(|| Var::from_tensor(&t)).transpose()?;
    let t = v.as_ref().map_or(t, |v| v.as_tensor().clone());
    let t = if strided {
        t.transpose(r - 2, r - 1)?
    } else {
        t
    };
    Ok((t, v))
}

#[test]
fn fused_ops_match_reference_forward_and_backward() -> Result<()> {
    for dev in devices() {
        for &(name, dtype, kind, shapes) in CASES {
            fused_op_matches_reference(&format!("{name} on {dev:?}"), dtype, kind, shapes, &dev)?;
        }
    }
    Ok(())
}

fn fused_op_matches_reference(
    name: &str,
    dtype: DType,
    kind: Kind,
    shapes: &[(&[usize], u8)],
    dev: &Device,
) -> Result<()> {
    {
        let made: Vec<_> = shapes
            .iter()
            .map(|&(s, f)| make(s, f, dtype, dev))
            .collect::<Result<_>>()?;
        let args: Vec<Tensor> = made.iter().map(|(t, _)| t.clone()).collect();
        let (fused, reference) = (apply(kind, &args, true)?, apply(kind, &args, false)?);
        let diff = max_diff(&fused, &reference)?;
        assert!(diff < 1e-5, "{name}: forward differs by {diff}");
        // A weighted sum: the plain sum of a softmax or layer norm has (near) zero gradient.
        let w = Tensor::randn(0f32, 1f32, fused.shape(), &Device::Cpu)?
            .to_dtype(dtype)?
            .to_device(dev)?;
        let fg = (&fused * &w)?.sum_all()?.backward()?;
        let rg = (&reference * &w)?.sum_all()?.backward()?;
        // Only the vars (and the loss weight w) may hold gradients: candle's plain ops would
        // also leave full-size entries for a frozen weight's transpose or a broadcast bias.
        let mut wanted: Vec<_> = made
            .iter()
            .filter_map(|(_, v)| v.as_ref())
            .map(|v| v.id())
            .collect();
        wanted.push(w.id());
        let wasted = fg.get_ids().filter(|id| !wanted.contains(id)).count();
        assert_eq!(wasted, 0, "{name}: gradients built for frozen tensors");
        for (i, (arg, var)) in made.iter().enumerate() {
            let Some(v) = var else {
                assert!(fg.get(arg).is_none(), "{name}: frozen arg {i} got a grad");
                continue;
            };
            let (Some(f), Some(r)) = (fg.get(v), rg.get(v)) else {
                panic!("{name}: arg {i} is a var without a gradient");
            };
            let diff = max_diff(f, r)?;
            assert!(diff < 1e-4, "{name}: grad of arg {i} differs by {diff}");
        }
    }
    Ok(())
}

#[test]
fn masked_softmax_padding_rows_stay_finite() -> Result<()> {
    for dev in devices() {
        padding_rows_stay_finite(&dev)?;
    }
    Ok(())
}

fn padding_rows_stay_finite(dev: &Device) -> Result<()> {
    let (neg, k) = (-1e9f32, 5);
    // batch 0: only key 2 is real; batch 1: every key padded; batch 2: every key −inf.
    let mut m = vec![neg; 3 * k];
    m[2] = 0.0;
    m[2 * k..].fill(f32::NEG_INFINITY);
    let mask = Tensor::from_vec(m, (3, 1, 1, k), dev)?;
    let scores = Tensor::randn(0f32, 4f32, (3, 2, 3, k), &Device::Cpu)?;
    let scores = Var::from_tensor(&scores.to_device(dev)?)?;
    let y = masked_softmax(&scores, &mask)?;
    let reference = masked_softmax_reference(&scores.narrow(0, 0, 2)?, &mask.narrow(0, 0, 2)?)?;
    assert!(max_diff(&y.narrow(0, 0, 2)?, &reference)? < 1e-6);
    let rows = y.reshape((3, 6, k))?.to_vec3::<f32>()?;
    for (b, row) in rows.iter().flatten().enumerate() {
        let want: &[f32] = match b / 6 {
            0 => &[0.0, 0.0, 1.0, 0.0, 0.0],
            1 => &[0.2; 5],
            _ => &[0.0; 5],
        };
        assert_eq!(row.as_slice(), want, "row {b} on {dev:?}");
    }
    let w = Tensor::randn(0f32, 1f32, y.shape(), &Device::Cpu)?.to_device(dev)?;
    let grads = (&y * &w)?.sum_all()?.backward()?;
    let g = grads
        .get(&scores)
        .expect("scores grad")
        .flatten_all()?
        .to_vec1::<f32>()?;
    assert!(g.iter().all(|v| v.is_finite()));
    assert!(grads.get(&mask).is_none());
    Ok(())
}
