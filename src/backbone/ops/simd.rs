//! Vectorisable f32 math for the fused kernels (exp, normal CDF, GELU and its derivative) and
//! `simd_fn!`, which compiles a kernel a second time for AVX-512 and picks it at run time.
//!
//! The crate is built for baseline x86-64 (SSE2, no FMA), so plain loops vectorise 4 wide and
//! `mul_add` is a libm call (on an AVX2 machine that call alone was 38% of a training step).
//! Kernels written as branch-free scalar code inside `simd_fn!` are re-compiled with AVX-512 +
//! FMA enabled, where LLVM vectorises them 16 wide, and with AVX2 + FMA (8 wide); other CPUs
//! run the baseline copy. Helpers called from a kernel must be `#[inline(always)]` so they are
//! compiled inside the AVX-512 copy.

use std::sync::OnceLock;

/// Which compiled copy of a `simd_fn!` kernel this CPU runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    /// AVX-512 (F, VL, BW, DQ) with FMA: 16 lanes.
    V4,
    /// AVX2 with FMA: 8 lanes.
    V3,
    /// Baseline x86-64 (or another architecture).
    Base,
}

/// The CPU's level, detected once.
pub(crate) fn level() -> Level {
    static LEVEL: OnceLock<Level> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            use std::is_x86_feature_detected as has;
            let fma = has!("fma");
            if fma && has!("avx512f") && has!("avx512vl") && has!("avx512bw") && has!("avx512dq") {
                return Level::V4;
            }
            if fma && has!("avx2") {
                return Level::V3;
            }
        }
        Level::Base
    })
}

/// `fn name(args) -> ret { body }` whose body runs compiled for AVX-512 + FMA, or else AVX2 +
/// FMA, when the CPU has them (see the module docs); the signature may not use generics or `impl Trait`.
macro_rules! simd_fn {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn generic($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,bmi1,bmi2")]
            fn v4($($arg: $ty),*) $(-> $ret)? {
                generic($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            fn v3($($arg: $ty),*) $(-> $ret)? {
                generic($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            match $crate::backbone::ops::simd::level() {
                // SAFETY: each copy needs only the CPU features that level() detected.
                $crate::backbone::ops::simd::Level::V4 => return unsafe { v4($($arg),*) },
                $crate::backbone::ops::simd::Level::V3 => return unsafe { v3($($arg),*) },
                $crate::backbone::ops::simd::Level::Base => {}
            }
            generic($($arg),*)
        }
    };
}
pub(crate) use simd_fn;

/// Σ f over 16 independent lanes: LLVM may not reorder a serial f32 sum, so it never vectorises.
#[inline(always)]
pub(crate) fn lane_sum<const K: usize>(xs: [&[f32]; K], f: impl Fn([f32; K]) -> f32) -> f32 {
    const L: usize = 16;
    let n = xs.iter().map(|s| s.len()).min().unwrap_or(0);
    let blocks = xs.map(|s| s[..n].as_chunks::<L>().0);
    let mut acc = [0f32; L];
    for j in 0..n / L {
        let b = blocks.map(|c| &c[j]);
        for (l, a) in acc.iter_mut().enumerate() {
            *a += f(b.map(|b| b[l]));
        }
    }
    let tail = (n - n % L..n).map(|i| f(xs.map(|s| s[i])));
    acc.iter().sum::<f32>() + tail.sum::<f32>()
}

/// Horner evaluation of c[0] + c[1]·x + … (coefficients in ascending order).
#[inline(always)]
fn poly<const N: usize>(x: f32, c: [f32; N]) -> f32 {
    c.iter().rev().fold(0.0, |acc, &k| acc.mul_add(x, k))
}

/// 1.5·2²³: adding it rounds to an integer in the low bits.
pub(crate) const EXP_ROUND: f32 = 12_582_912.0;
/// exp(r) ≈ 1 + r + r²·P(r) on |r| ≤ ln2/2 (Cephes).
pub(crate) const EXP_P: [f32; 6] = [
    0.5,
    0.166_666_65,
    4.166_579_6e-2,
    8.333_452e-3,
    1.398_2e-3,
    1.987_569_2e-4,
];

/// expf for x ≤ 0 (Cephes polynomial, ~1 ulp) written branch-free so it vectorises; libm's
/// scalar expf dominated the softmax. Underflows to exactly 0, so masked keys get exactly 0;
/// NaN stays NaN.
#[inline(always)]
pub(crate) fn exp_neg(x: f32) -> f32 {
    const P: [f32; 6] = EXP_P;
    const ROUND: f32 = EXP_ROUND;
    let xc = if x < -87.0 { -87.0 } else { x };
    let t = xc * std::f32::consts::LOG2_E + ROUND;
    let n = t - ROUND;
    let r = xc - n * 0.693_359_4 + n * 2.121_944_4e-4; // x − n·ln 2 in two parts
    let scale = f32::from_bits(((t.to_bits() as i32 - 0x4B40_0000 + 127) << 23) as u32); // 2ⁿ
    let e = (1.0 + r + r * r * poly(r, P)) * scale;
    if x < -87.0 {
        0.0
    } else {
        e
    }
}

// erf pieces from FreeBSD's s_erff.c (Sun Microsystems, freely redistributable), bit for bit
// the coefficients of libm's scalar erff: a rational in u² near 0, one in |u|−1 around 1, and
// exp(−u² − 0.5625 + R/S)/|u| for the tail. All are evaluated and the right one selected.
const fn b(bits: u32) -> f32 {
    f32::from_bits(bits)
}
pub(crate) const ERX: f32 = b(0x3f58560b);
pub(crate) const PP: [f32; 5] = [
    b(0x3e0375d4),
    b(0xbea66beb),
    b(0xbce9528f),
    b(0xbbbd1489),
    b(0xb7c756b1),
];
pub(crate) const QQ: [f32; 6] = [
    1.0,
    b(0x3ecbbbce),
    b(0x3d852a63),
    b(0x3ba68116),
    b(0x390aee49),
    b(0xb684e21a),
];
pub(crate) const PA: [f32; 7] = [
    b(0xbb1acdc6),
    b(0x3ed46805),
    b(0xbebe9208),
    b(0x3ea2fe54),
    b(0xbde31cc2),
    b(0x3d1151b3),
    b(0xbb0df9c0),
];
pub(crate) const QA: [f32; 7] = [
    1.0,
    b(0x3dd9f331),
    b(0x3f0a5785),
    b(0x3d931ae7),
    b(0x3e013307),
    b(0x3c5f6e13),
    b(0x3c445aa3),
];
/// Tail numerators/denominators for |u| < 1/0.35 (A) and beyond (B, zero-padded to match).
pub(crate) const RA: [f32; 8] = [
    b(0xbc21a093),
    b(0xbf31a0b7),
    b(0xc128f022),
    b(0xc2798057),
    b(0xc322658c),
    b(0xc3389ae7),
    b(0xc2a2932b),
    b(0xc11d077e),
];
pub(crate) const RB: [f32; 8] = [
    b(0xbc21a092),
    b(0xbf4c9dd4),
    b(0xc18e104b),
    b(0xc320a2ea),
    b(0xc41f6441),
    b(0xc480230b),
    b(0xc3f1c275),
    0.0,
];
pub(crate) const SA: [f32; 9] = [
    1.0,
    b(0x419d35ce),
    b(0x4309a863),
    b(0x43d9486f),
    b(0x442158c9),
    b(0x43d6810b),
    b(0x42d9451f),
    b(0x40d23f7c),
    b(0xbd777f97),
];
pub(crate) const SB: [f32; 9] = [
    1.0,
    b(0x41f2b459),
    b(0x43a2e571),
    b(0x44c01759),
    b(0x4547fdbb),
    b(0x451f90ce),
    b(0x43ed43a7),
    b(0xc1b38712),
    0.0,
];

/// Φ(x), the standard normal CDF, = ½(1 + erf(x/√2)); absolute error < 1e-7, and the lower
/// tail is computed as ½·erfc directly, so it keeps its relative accuracy.
///
/// Every piece's rational is evaluated, but numerator and denominator are selected before the
/// one shared division: divisions, not the polynomials, bound the vectorised throughput.
#[inline(always)]
pub(crate) fn normal_cdf(x: f32) -> f32 {
    let u = x * std::f32::consts::FRAC_1_SQRT_2;
    let a = u.abs();
    let (small, mid) = (a < 0.843_75, a < 1.25);
    // Tail: clamp so the unused lanes stay finite; beyond |u| = 10 erfc is far below 1e-38.
    let at = a.clamp(1.25, 10.0);
    let inv_at = 1.0 / at;
    let t = inv_at * inv_at;
    let near = at < 1.0 / 0.35;
    let (mut r, mut q) = (0f32, 0f32);
    for i in (0..9).rev() {
        if i < 8 {
            r = r.mul_add(t, if near { RA[i] } else { RB[i] });
        }
        q = q.mul_add(t, if near { SA[i] } else { SB[i] });
    }
    let (z, s) = (u * u, a - 1.0);
    let num = if small {
        poly(z, PP)
    } else if mid {
        poly(s, PA)
    } else {
        r
    };
    let den = if small {
        poly(z, QQ)
    } else if mid {
        poly(s, QA)
    } else {
        q
    };
    let ratio = num / den;
    let erfc_tail = exp_neg(-(at * at) - 0.5625 + ratio) * inv_at;
    let erf_mid = if u < 0.0 { -(ERX + ratio) } else { ERX + ratio };
    let upper = if small {
        0.5 + 0.5 * (u + u * ratio)
    } else if mid {
        0.5 + 0.5 * erf_mid
    } else if u < 0.0 {
        0.5 * erfc_tail
    } else {
        1.0 - 0.5 * erfc_tail
    };
    if x.is_nan() {
        x
    } else {
        upper
    }
}

/// GELU (erf form): x·Φ(x).
#[inline(always)]
pub(crate) fn gelu(x: f32) -> f32 {
    x * normal_cdf(x)
}

/// (gelu(x), gelu'(x)) sharing one Φ(x): gelu' = Φ(x) + x·φ(x), φ(x) = e^(−x²/2)/√(2π).
#[inline(always)]
pub(crate) fn gelu_and_grad(x: f32) -> (f32, f32) {
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    let c = normal_cdf(x);
    (x * c, c + x * INV_SQRT_2PI * exp_neg(-0.5 * x * x))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::cpu::erf::{erf_f64, erfc_f64};

    /// Φ in f64; the lower tail through erfc, which keeps its relative accuracy.
    fn cdf64(x: f64) -> f64 {
        let u = x / std::f64::consts::SQRT_2;
        if u < -0.5 {
            0.5 * erfc_f64(-u)
        } else {
            0.5 * (1.0 + erf_f64(u))
        }
    }

    simd_fn! {
        fn cdf_all(xs: &[f32], out: &mut [f32]) {
            out.iter_mut().zip(xs).for_each(|(o, &x)| *o = normal_cdf(x));
        }
    }

    #[test]
    fn exp_neg_matches_libm() {
        for i in 0..=200_000 {
            let x = -90.0 * i as f32 / 200_000.0;
            let (got, want) = (exp_neg(x), x.exp());
            let tol = if x < -87.0 { 2e-38 } else { 3e-7 * want };
            assert!((got - want).abs() <= tol, "exp({x}) = {got}, want {want}");
        }
        assert_eq!(exp_neg(-1e9), 0.0);
        assert!(exp_neg(f32::NAN).is_nan());
    }

    #[test]
    fn normal_cdf_and_gelu_match_f64_reference() {
        // Both the scalar (baseline) and the dispatched (AVX-512 where present) code paths.
        let xs: Vec<f32> = (-400_000..=400_000).map(|i| i as f32 * 3e-5).collect();
        let mut vectorised = vec![0f32; xs.len()];
        cdf_all(&xs, &mut vectorised);
        let (mut worst_cdf, mut worst_grad) = (0f64, 0f64);
        for (&x, &v) in xs.iter().zip(&vectorised) {
            let want = cdf64(x as f64);
            for got in [normal_cdf(x), v] {
                worst_cdf = worst_cdf.max((got as f64 - want).abs());
            }
            let xd = x as f64;
            let grad =
                cdf64(xd) + xd * (-0.5 * xd * xd).exp() / (2.0 * std::f64::consts::PI).sqrt();
            let (g, d) = gelu_and_grad(x);
            worst_grad = worst_grad.max((d as f64 - grad).abs());
            assert_eq!(g, gelu(x));
            let g = g as f64;
            assert!(
                (g - xd * want).abs() <= 1.5e-7 * xd.abs().max(1.0),
                "gelu({x})"
            );
        }
        assert!(worst_cdf < 1e-7, "normal_cdf abs error {worst_cdf}");
        assert!(worst_grad < 3e-7, "gelu_grad abs error {worst_grad}");
        // Far tails: exact limits, tiny lower tail keeps its sign and relative accuracy.
        assert_eq!(normal_cdf(40.0), 1.0);
        assert_eq!(normal_cdf(-40.0), 0.0);
        let tail = normal_cdf(-8.0) as f64;
        assert!((tail / cdf64(-8.0) - 1.0).abs() < 1e-5, "Φ(-8) = {tail}");
        assert!(normal_cdf(f32::NAN).is_nan());
    }
}
