//! The AVX512-BF16 micro-kernel: a tile of `ROWS` activation rows × `GROUP` blocks of 16
//! columns, 24 fp32 accumulators, one `vdpbf16ps` per (row, block) and reduction pair.

use super::{GROUP, LANES, ROWS};
use std::arch::x86_64::*;

/// C rows (stride `ldc`) = A rows (bf16 pairs, `pairs` words per row) · panel [+ bias]:
/// all rows of `a`, the first `cols` (≤ GROUP·LANES) columns of the panel.
///
/// # Safety
/// The CPU has AVX-512 F/BW/VL and BF16; `c` points at a writable (rows × ldc) region whose
/// first `cols` columns of every row of `a` may be written; the panel holds GROUP blocks of
/// `pairs × LANES` words; bias, if any, holds `cols` values.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
pub(super) unsafe fn rows(
    a: &[u32],
    panel: &[u32],
    pairs: usize,
    bias: Option<&[f32]>,
    c: *mut f32,
    ldc: usize,
    cols: usize,
) {
    debug_assert!(panel.len() >= GROUP * pairs * LANES && cols <= GROUP * LANES);
    let m = a.len() / pairs.max(1);
    let mut r = 0;
    while r < m {
        let a = a[r * pairs..].as_ptr();
        let c = c.add(r * ldc);
        // SAFETY (all arms): as for this function; `r + rows ≤ m`.
        match m - r {
            1 => tile::<1>(a, panel.as_ptr(), pairs, bias, c, ldc, cols),
            2 => tile::<2>(a, panel.as_ptr(), pairs, bias, c, ldc, cols),
            3 => tile::<3>(a, panel.as_ptr(), pairs, bias, c, ldc, cols),
            4 => tile::<4>(a, panel.as_ptr(), pairs, bias, c, ldc, cols),
            5 => tile::<5>(a, panel.as_ptr(), pairs, bias, c, ldc, cols),
            _ => tile::<ROWS>(a, panel.as_ptr(), pairs, bias, c, ldc, cols),
        }
        r += ROWS;
    }
}

/// `R` rows × GROUP·LANES columns (stores limited to `cols`).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
#[inline]
unsafe fn tile<const R: usize>(
    a: *const u32,
    b: *const u32,
    pairs: usize,
    bias: Option<&[f32]>,
    c: *mut f32,
    ldc: usize,
    cols: usize,
) {
    let block = pairs * LANES;
    let mut acc = [[_mm512_setzero_ps(); GROUP]; R];
    for p in 0..pairs {
        let bp = b.add(p * LANES);
        let bv: [__m512bh; GROUP] = std::array::from_fn(|j| {
            std::mem::transmute(_mm512_loadu_si512(bp.add(j * block).cast()))
        });
        for (i, row) in acc.iter_mut().enumerate() {
            let av: __m512bh = std::mem::transmute(_mm512_set1_epi32(*a.add(i * pairs + p) as i32));
            for (x, &w) in row.iter_mut().zip(&bv) {
                *x = _mm512_dpbf16_ps(*x, av, w);
            }
        }
    }
    for (i, row) in acc.iter().enumerate() {
        for (j, &x) in row.iter().enumerate() {
            let col = j * LANES;
            if col >= cols {
                break;
            }
            let left = cols - col;
            let mask: __mmask16 = if left >= LANES {
                0xffff
            } else {
                (1u16 << left) - 1
            };
            let v = match bias {
                Some(b) => _mm512_add_ps(x, _mm512_maskz_loadu_ps(mask, b.as_ptr().add(col))),
                None => x,
            };
            _mm512_mask_storeu_ps(c.add(i * ldc + col), mask, v);
        }
    }
}
