//! Frozen products in bf16 with fp32 accumulation, on CPUs with AVX512-BF16 (`vdpbf16ps`).
//!
//! Opt-in (`PETS_FROZEN_BF16=1`, or `pets --frozen-bf16`, which sets it): the frozen linears'
//! forward product x·Wᵀ and their input gradient g·W then round W and x (or g) to bf16
//! (round to nearest even) and accumulate in fp32; everything else stays fp32. W is packed once
//! per weight tensor (both orientations, kept in a small cache keyed by the tensor's id): blocks
//! of 16 output columns, and in each block, for every pair of reduction indices, the 16 columns'
//! two bf16 values side by side, which is the operand layout `vdpbf16ps` multiplies against a
//! broadcast pair of the activation row. CPUs without AVX512-BF16 ignore the setting.

use super::cpu::{filled_with, task_rows};
use candle_core::{bail, Result, TensorId};
use rayon::prelude::*;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

#[cfg(target_arch = "x86_64")]
mod kernel;

/// Output columns per packed block (one zmm of f32).
const LANES: usize = 16;
/// Blocks per micro-tile: the packed data is padded to a multiple of this many blocks.
const GROUP: usize = 4;
/// Activation rows per micro-tile.
const ROWS: usize = 6;

/// Whether frozen products run in bf16: the setting is on and the CPU has AVX512-BF16.
pub(crate) fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| requested() && supported())
}

/// `PETS_FROZEN_BF16` is set to something other than empty or `0`.
fn requested() -> bool {
    std::env::var("PETS_FROZEN_BF16").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// AVX-512 (F, BW, VL) with the BF16 dot products, detected at run time.
pub(crate) fn supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::is_x86_feature_detected as has;
        has!("avx512f") && has!("avx512bw") && has!("avx512vl") && has!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// f32 → bf16 bits, round to nearest even (NaN stays a quiet NaN).
#[inline(always)]
pub(crate) fn to_bf16(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) | 0x40) as u16;
    }
    ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

/// bf16 bits → f32 (exact).
#[cfg(test)]
pub(crate) fn from_bf16(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

/// Two bf16 values in one 32-bit word, the lower index in the low half (`vdpbf16ps` order).
#[inline(always)]
fn pair(lo: f32, hi: f32) -> u32 {
    u32::from(to_bf16(lo)) | (u32::from(to_bf16(hi)) << 16)
}

/// A frozen (n × k) matrix B, packed for C = A·Bᵀ.
pub(crate) struct Packed {
    n: usize,
    k: usize,
    /// Pairs per column: ⌈k / 2⌉ (an odd k is padded with a zero).
    pairs: usize,
    /// Blocks (padded to a multiple of `GROUP`) × pairs × `LANES` words.
    data: Vec<u32>,
}

impl Packed {
    /// Packs the (n × k) matrix whose element (j, i) is `get(j, i)`.
    pub(crate) fn new(n: usize, k: usize, get: impl Fn(usize, usize) -> f32 + Sync) -> Self {
        let pairs = k.div_ceil(2);
        let blocks = n.div_ceil(LANES).div_ceil(GROUP) * GROUP;
        let at = |j: usize, i: usize| if j < n && i < k { get(j, i) } else { 0.0 };
        let mut data = vec![0u32; blocks * pairs * LANES];
        data.par_chunks_mut(pairs * LANES)
            .enumerate()
            .for_each(|(block, words)| {
                for (p, lanes) in words.chunks_mut(LANES).enumerate() {
                    for (l, w) in lanes.iter_mut().enumerate() {
                        let j = block * LANES + l;
                        *w = pair(at(j, 2 * p), at(j, 2 * p + 1));
                    }
                }
            });
        Packed { n, k, pairs, data }
    }

    /// B = W for a row-major (n × k) W: the forward product x·Wᵀ.
    pub(crate) fn rows_of(w: &[f32], n: usize) -> Self {
        let k = w.len() / n.max(1);
        Packed::new(n, k, |j, i| w[j * k + i])
    }

    /// B = Wᵀ for a row-major (n × k) W: the input gradient g·W.
    pub(crate) fn columns_of(w: &[f32], n: usize) -> Self {
        let k = w.len() / n.max(1);
        Packed::new(k, n, |i, j| w[j * k + i])
    }
}

/// A (m × k, row-major) as bf16 pairs, row stride `pairs` words.
fn pack_rows(a: &[f32], k: usize, pairs: usize) -> Vec<u32> {
    let m = a.len() / k.max(1);
    let mut out = vec![0u32; m * pairs];
    out.par_chunks_mut(pairs * task_rows(k))
        .zip(a.par_chunks(k * task_rows(k)))
        .for_each(|(o, a)| convert_rows(a, o, k, pairs));
    out
}

super::simd::simd_fn! {
    fn convert_rows(a: &[f32], out: &mut [u32], k: usize, pairs: usize) {
        for (o, row) in out.chunks_mut(pairs).zip(a.chunks(k)) {
            let (full, tail) = row.as_chunks::<2>();
            for (w, v) in o.iter_mut().zip(full) {
                *w = pair(v[0], v[1]);
            }
            if let [last] = tail {
                o[full.len()] = pair(*last, 0.0);
            }
        }
    }
}

/// C (m × n) = A (m × k) · Bᵀ [+ bias on every row], A row-major f32, B packed.
pub(crate) fn product(a: &[f32], b: &Packed, bias: Option<&[f32]>) -> Result<Vec<f32>> {
    let (n, k) = (b.n, b.k);
    if k == 0 || !a.len().is_multiple_of(k) || bias.is_some_and(|v| v.len() != n) {
        bail!("bf16 product: A of {} for k = {k}, n = {n}", a.len());
    }
    if !supported() {
        bail!("bf16 product: this CPU has no AVX512-BF16");
    }
    let m = a.len() / k;
    let rows = pack_rows(a, k, b.pairs);
    let groups = n.div_ceil(LANES * GROUP);
    // Tasks: a run of rows (a multiple of ROWS) × one group of GROUP·LANES columns.
    let chunk = ROWS * 16;
    let tasks = m.div_ceil(chunk) * groups;
    let panel_len = GROUP * b.pairs * LANES;
    // SAFETY: every element of C is written: the tasks cover all (row run, group) pairs and
    // each stores all its rows (< m) and valid columns (< n); tasks write disjoint tiles.
    Ok(unsafe {
        filled_with(m * n, |dst| {
            let out = Out(dst.as_mut_ptr().cast::<f32>());
            (0..tasks).into_par_iter().for_each(|t| {
                let (r0, g) = ((t / groups) * chunk, t % groups);
                let r1 = (r0 + chunk).min(m);
                let col0 = g * GROUP * LANES;
                let cols = (n - col0).min(GROUP * LANES);
                let panel = &b.data[g * panel_len..][..panel_len];
                let bias = bias.map(|v| &v[col0..col0 + cols]);
                let a = &rows[r0 * b.pairs..r1 * b.pairs];
                let c = out.at(r0 * n + col0);
                #[cfg(target_arch = "x86_64")]
                // SAFETY: supported() found AVX512-BF16; the tile of C at c (r1 − r0 rows of
                // stride n, `cols` columns) lies inside the buffer and is this task's alone.
                kernel::rows(a, panel, b.pairs, bias, c, n, cols);
                #[cfg(not(target_arch = "x86_64"))]
                let _ = (a, panel, bias, c);
            });
        })
    })
}

/// The output pointer, shared by tasks that write disjoint tiles.
#[derive(Clone, Copy)]
struct Out(*mut f32);

impl Out {
    /// The pointer `offset` floats on (a method, so closures capture the whole `Out`).
    fn at(self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }
}
// SAFETY: tasks write disjoint tiles of one buffer that outlives them.
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

/// Packed weights of frozen tensors: (forward, input gradient), keyed by the weight's id.
type Both = Arc<(Packed, Packed)>;

/// The packed forms of frozen weight `id` ((n × k) data `w`), packed on first use. The cache
/// is emptied when it exceeds 256 weights (models built and dropped one after another).
pub(crate) fn packed(id: TensorId, w: &[f32], n: usize) -> Both {
    static CACHE: OnceLock<Mutex<HashMap<TensorId, Both>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(p) = cache.lock().ok().and_then(|c| c.get(&id).cloned()) {
        return p;
    }
    let both = Arc::new((Packed::rows_of(w, n), Packed::columns_of(w, n)));
    if let Ok(mut c) = cache.lock() {
        if c.len() >= 256 {
            c.clear();
        }
        c.insert(id, both.clone());
    }
    both
}

#[cfg(test)]
mod tests;
