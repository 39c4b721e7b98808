//! bf16 kernel against an f64 product of the same bf16-rounded inputs (only the fp32
//! accumulation differs) and against the fp32 product (the rounding's own error).

use super::*;

/// Deterministic values in [-1, 1).
fn values(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s as f32 / u32::MAX as f32) * 2.0 - 1.0
        })
        .collect()
}

fn round(x: f32) -> f64 {
    f64::from(from_bf16(to_bf16(x)))
}

#[test]
fn rounding_is_nearest_even() {
    assert_eq!(to_bf16(1.0), 0x3f80);
    // 1 + 2⁻⁸ lies halfway between 1 and 1 + 2⁻⁷: ties to the even (1.0).
    assert_eq!(to_bf16(1.0 + 1.0 / 256.0), 0x3f80);
    // Just above halfway rounds up.
    assert_eq!(to_bf16(f32::from_bits(0x3f80_8001)), 0x3f81);
    assert_eq!(from_bf16(to_bf16(-2.5)), -2.5);
    assert!(from_bf16(to_bf16(f32::NAN)).is_nan());
    assert_eq!(from_bf16(to_bf16(f32::INFINITY)), f32::INFINITY);
}

/// Every tail: rows not a multiple of 6, columns not a multiple of 64 or 16, odd k.
#[test]
fn product_matches_reference_on_every_tail() -> Result<()> {
    if !supported() {
        eprintln!("skipped: no AVX512-BF16 on this CPU");
        return Ok(());
    }
    for (m, n, k) in [
        (1, 1, 1),
        (7, 17, 3),
        (13, 64, 33),
        (6, 80, 384),
        (50, 130, 65),
    ] {
        let (a, w) = (values(m * k, 1), values(n * k, 2));
        let bias = values(n, 3);
        let got = product(&a, &Packed::rows_of(&w, n), Some(&bias))?;
        for r in 0..m {
            for j in 0..n {
                let exact: f64 = (0..k)
                    .map(|i| round(a[r * k + i]) * round(w[j * k + i]))
                    .sum();
                let want = exact + f64::from(bias[j]);
                let fp32: f64 = (0..k)
                    .map(|i| f64::from(a[r * k + i]) * f64::from(w[j * k + i]))
                    .sum::<f64>()
                    + f64::from(bias[j]);
                let g = f64::from(got[r * n + j]);
                // fp32 accumulation of k products of size ≤ 1: a few ulps of k.
                assert!(
                    (g - want).abs() < 1e-6 * k as f64,
                    "({m},{n},{k}) [{r},{j}]: {g} vs {want}"
                );
                // bf16 inputs: relative error 2⁻⁸ per factor, random signs: ~√k · 2⁻⁸.
                let bound = 2.0f64.powi(-7) * (k as f64).sqrt() + 1e-6;
                assert!(
                    (g - fp32).abs() < bound,
                    "({m},{n},{k}) [{r},{j}]: {g} vs fp32 {fp32}"
                );
            }
        }
    }
    Ok(())
}

/// The input-gradient orientation: g (m × n) · W (n × k) with W packed as its transpose.
#[test]
fn columns_of_gives_the_input_gradient() -> Result<()> {
    if !supported() {
        eprintln!("skipped: no AVX512-BF16 on this CPU");
        return Ok(());
    }
    let (m, n, k) = (9, 40, 70);
    let (g, w) = (values(m * n, 4), values(n * k, 5));
    let got = product(&g, &Packed::columns_of(&w, n), None)?;
    assert_eq!(got.len(), m * k);
    for r in 0..m {
        for i in 0..k {
            let want: f64 = (0..n)
                .map(|j| round(g[r * n + j]) * round(w[j * k + i]))
                .sum();
            let v = f64::from(got[r * k + i]);
            assert!(
                (v - want).abs() < 1e-6 * n as f64,
                "[{r},{i}]: {v} vs {want}"
            );
        }
    }
    Ok(())
}

#[test]
fn bad_shapes_are_errors() {
    let packed = Packed::rows_of(&values(12, 6), 3);
    assert!(product(&values(5, 7), &packed, None).is_err());
    assert!(product(&values(8, 7), &packed, Some(&[0.0; 2])).is_err());
}
