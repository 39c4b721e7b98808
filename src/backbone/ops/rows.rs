//! Padding-free frozen products: inside [`real_rows_scope`], a frozen linear over a padded
//! (b, t, ·) batch multiplies only each sequence's real rows (its first `len` positions).
//!
//! In a post-LN encoder nothing at a padded position reaches a real one: attention gives padded
//! keys exactly zero weight (the additive −1e9 mask underflows in exp), every other op is
//! per position, and the pooled head masks them. So the real rows' outputs do not depend on
//! what padded rows hold, and their gradients are exactly zero. The frozen linears therefore
//! gather the real rows into one compact product, scatter the result back and write zeros at
//! padding (and the same in backward, where the true input gradient there is zero). With
//! dynamic padding of `mr` batches (padded to ~52 tokens for ~27 real ones on average) that is
//! about half the products of a training step.

use super::cpu::filled_with;
use candle_core::{Result, Tensor};
use rayon::prelude::*;
use std::cell::RefCell;
use std::sync::Arc;

/// The real length of each sequence of a (b, t) batch whose padding is at the end.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RealRows {
    pub(crate) t: usize,
    pub(crate) lens: Vec<usize>,
    /// Start of each sequence's rows in the compact layout, and the total.
    starts: Vec<usize>,
    pub(crate) total: usize,
}

impl RealRows {
    /// From a (b, t) 0/1 attention mask: `None` unless every row is ones then zeros, or when
    /// there is no padding at all (nothing to skip).
    pub(crate) fn from_mask(mask: &[f32], t: usize) -> Option<Self> {
        if t == 0 || !mask.len().is_multiple_of(t) {
            return None;
        }
        let mut lens = Vec::with_capacity(mask.len() / t);
        for row in mask.chunks(t) {
            let len = row.iter().take_while(|&&v| v == 1.0).count();
            if row[len..].iter().any(|&v| v != 0.0) {
                return None;
            }
            lens.push(len);
        }
        let starts: Vec<usize> = lens
            .iter()
            .scan(0, |acc, &l| {
                let s = *acc;
                *acc += l;
                Some(s)
            })
            .collect();
        let total = lens.iter().sum();
        (total < lens.len() * t).then_some(RealRows {
            t,
            lens,
            starts,
            total,
        })
    }

    /// Whether a tensor of these dims is a (b, t, width) batch of these sequences.
    pub(crate) fn fits(&self, dims: &[usize]) -> bool {
        matches!(dims, [b, t, _] if *b == self.lens.len() && *t == self.t)
    }

    /// The real rows of a padded (b·t × width) buffer, compact (total × width).
    pub(crate) fn gather(&self, x: &[f32], width: usize) -> Vec<f32> {
        // SAFETY: the real rows of all sequences are exactly `total` rows, each copied whole.
        unsafe {
            filled_with(self.total * width, |dst| {
                let dst = chunks_by_len(dst, &self.lens, width);
                dst.into_par_iter().enumerate().for_each(|(i, d)| {
                    let src = &x[i * self.t * width..][..d.len()];
                    d.write_copy_of_slice(src);
                });
            })
        }
    }

    /// A compact (total × width) buffer back in the padded layout, zeros at padding.
    pub(crate) fn scatter(&self, c: &[f32], width: usize) -> Vec<f32> {
        let b = self.lens.len();
        // SAFETY: every sequence's t rows are written: its real rows copied, the rest zeroed.
        unsafe {
            filled_with(b * self.t * width, |dst| {
                dst.par_chunks_mut((self.t * width).max(1))
                    .enumerate()
                    .for_each(|(i, d)| {
                        let n = self.lens[i] * width;
                        let src = &c[self.starts[i] * width..][..n];
                        d[..n].write_copy_of_slice(src);
                        d[n..].fill(std::mem::MaybeUninit::new(0.0));
                    });
            })
        }
    }
}

/// Splits `dst` into consecutive pieces of `lens[i] · width`.
fn chunks_by_len<'a, T>(mut dst: &'a mut [T], lens: &[usize], width: usize) -> Vec<&'a mut [T]> {
    let mut out = Vec::with_capacity(lens.len());
    for &l in lens {
        let (head, tail) = std::mem::take(&mut dst).split_at_mut(l * width);
        out.push(head);
        dst = tail;
    }
    out
}

thread_local! {
    static SCOPE: RefCell<Option<Arc<RealRows>>> = const { RefCell::new(None) };
}

/// Runs `f` (an encoder pass over a batch whose (b, t) 0/1 `attention_mask` has its padding at
/// the end) with padding-free frozen products; a frozen linear built inside keeps the rows
/// for its backward pass. Masks of other devices or forms leave `f` as it is. Nests (the
/// innermost batch wins).
pub fn real_rows_scope<R>(attention_mask: &Tensor, f: impl FnOnce() -> Result<R>) -> Result<R> {
    let rows = match (attention_mask.device().is_cpu(), attention_mask.dims2()) {
        (true, Ok((_, t))) if !padded_products() => {
            let mask = attention_mask
                .to_dtype(candle_core::DType::F32)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            RealRows::from_mask(&mask, t).map(Arc::new)
        }
        _ => None,
    };
    struct Restore(Option<Arc<RealRows>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            SCOPE.with(|s| *s.borrow_mut() = self.0.take());
        }
    }
    let _restore = Restore(SCOPE.with(|s| s.replace(rows)));
    f()
}

/// `PETS_PADDED_PRODUCTS=1`: multiply padded rows too (the earlier behaviour, for comparison).
fn padded_products() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("PETS_PADDED_PRODUCTS").is_ok_and(|v| v == "1"))
}

/// The rows of the innermost scope, if any.
pub(crate) fn current() -> Option<Arc<RealRows>> {
    SCOPE.with(|s| s.borrow().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_from_masks() {
        let rows = RealRows::from_mask(&[1., 1., 0., 1., 0., 0.], 3).expect("padded");
        assert_eq!((rows.lens.clone(), rows.total), (vec![2, 1], 3));
        assert!(rows.fits(&[2, 3, 7]) && !rows.fits(&[2, 4, 7]) && !rows.fits(&[6, 7]));
        // No padding: nothing to skip. A hole in a row: not end-padded.
        assert_eq!(RealRows::from_mask(&[1., 1., 1., 1.], 2), None);
        assert_eq!(RealRows::from_mask(&[0., 1., 1., 1.], 2), None);
    }

    #[test]
    fn gather_then_scatter_zeroes_padding() {
        let rows = RealRows::from_mask(&[1., 1., 0., 1., 0., 0.], 3).expect("padded");
        let x: Vec<f32> = (0..12).map(|v| v as f32).collect(); // (2·3) × 2
        let c = rows.gather(&x, 2);
        assert_eq!(c, [0., 1., 2., 3., 6., 7.]);
        let back = rows.scatter(&c, 2);
        assert_eq!(back, [0., 1., 2., 3., 0., 0., 6., 7., 0., 0., 0., 0.]);
    }

    /// Inside the scope a frozen linear (plain and with GELU) gives the same real rows, zeros at
    /// padding, and the same input gradient at real rows (zero at padding, where the masked
    /// loss puts none).
    #[test]
    fn frozen_linear_skips_padding_exactly() -> Result<()> {
        let dev = &candle_core::Device::Cpu;
        let mask = Tensor::new(&[[1f32, 1., 0.], [1., 0., 0.]], dev)?;
        let x = candle_core::Var::from_tensor(&Tensor::randn(0f32, 1., (2, 3, 8), dev)?)?;
        let (w, b) = (
            Tensor::randn(0f32, 1., (5, 8), dev)?,
            Tensor::randn(0f32, 1., 5, dev)?,
        );
        let keep = mask.unsqueeze(2)?;
        for gelu in [false, true] {
            let run = || {
                let y = match gelu {
                    true => super::super::linear_gelu(&x, &w, Some(&b))?,
                    false => super::super::linear(&x, &w, Some(&b))?,
                };
                let dx = y.broadcast_mul(&keep)?.sqr()?.sum_all()?.backward()?;
                Ok((y, dx.get(&x).cloned().expect("x gets a gradient")))
            };
            let (y_all, dx_all) = run()?;
            let (y_real, dx_real) = real_rows_scope(&mask, run)?;
            let close = |a: &Tensor, b: &Tensor| -> Result<f32> {
                a.broadcast_mul(&keep)?
                    .sub(b)?
                    .abs()?
                    .max_all()?
                    .to_scalar::<f32>()
            };
            assert!(close(&y_all, &y_real)? < 1e-5, "gelu {gelu}: outputs");
            assert!(
                close(&dx_all, &dx_real)? < 1e-5,
                "gelu {gelu}: input gradients"
            );
        }
        Ok(())
    }

    #[test]
    fn scope_nests_and_restores() -> Result<()> {
        let dev = &candle_core::Device::Cpu;
        let outer = Tensor::new(&[[1f32, 0.], [1., 1.]], dev)?;
        let inner = Tensor::new(&[[1f32, 1., 0.]], dev)?;
        real_rows_scope(&outer, || {
            assert_eq!(current().map(|r| r.lens.clone()), Some(vec![1, 2]));
            real_rows_scope(&inner, || {
                assert_eq!(current().map(|r| r.lens.clone()), Some(vec![2]));
                Ok(())
            })?;
            assert_eq!(current().map(|r| r.t), Some(2));
            Ok(())
        })?;
        assert!(current().is_none());
        Ok(())
    }
}
