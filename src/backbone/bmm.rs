//! Batched matmul of many small matrices (attention's q·kᵀ and p·v), parallel over the batch.
//!
//! candle's CPU matmul loops over the batch and asks gemm to parallelise each tiny product, so
//! every (batch × head) pair pays a thread-pool round trip; here each product runs on one
//! thread and rayon spreads whole products over the cores. The backward pass is the same op.

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// `a · b` over the last two dims, `a` (..., m, k), `b` (..., k, n) — or (..., n, k) when
/// `transpose_rhs`, read as its transpose without copying. Leading dims must match.
pub fn batched_matmul(a: &Tensor, b: &Tensor, transpose_rhs: bool) -> Result<Tensor> {
    if !a.device().is_cpu() || a.dtype() != DType::F32 || b.dtype() != DType::F32 {
        return if transpose_rhs {
            a.matmul(&b.t()?)
        } else {
            a.matmul(b)
        };
    }
    let op = Bmm {
        transpose_lhs: false,
        transpose_rhs,
    };
    a.contiguous()?.apply_op2(&b.contiguous()?, op)
}

#[derive(Clone, Copy)]
struct Bmm {
    transpose_lhs: bool,
    transpose_rhs: bool,
}

impl Bmm {
    /// (batch, m, k, n) from stored shapes.
    fn dims(&self, a: &Shape, b: &Shape) -> Result<(usize, usize, usize, usize)> {
        let (ad, bd) = (a.dims(), b.dims());
        if ad.len() < 2 || ad.len() != bd.len() || ad[..ad.len() - 2] != bd[..bd.len() - 2] {
            candle_core::bail!("batched_matmul: incompatible shapes {a:?} and {b:?}");
        }
        let r = ad.len();
        let batch = ad[..r - 2].iter().product();
        let (m, k) = if self.transpose_lhs {
            (ad[r - 1], ad[r - 2])
        } else {
            (ad[r - 2], ad[r - 1])
        };
        let (k2, n) = if self.transpose_rhs {
            (bd[r - 1], bd[r - 2])
        } else {
            (bd[r - 2], bd[r - 1])
        };
        if k != k2 {
            candle_core::bail!("batched_matmul: inner dims differ in {a:?} and {b:?}");
        }
        Ok((batch, m, k, n))
    }
}

impl CustomOp2 for Bmm {
    fn name(&self) -> &'static str {
        "pets-batched-matmul"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (a, b) = match (s1, s2, l1.contiguous_offsets(), l2.contiguous_offsets()) {
            (CpuStorage::F32(a), CpuStorage::F32(b), Some((a0, a1)), Some((b0, b1))) => {
                (&a[a0..a1], &b[b0..b1])
            }
            _ => candle_core::bail!("batched_matmul: expects contiguous f32 inputs"),
        };
        let (batch, m, k, n) = self.dims(l1.shape(), l2.shape())?;
        // Element (i, p) of the logical lhs sits at i·rs + p·cs of its stored matrix.
        let (lhs_rs, lhs_cs) = if self.transpose_lhs { (1, m) } else { (k, 1) };
        let (rhs_rs, rhs_cs) = if self.transpose_rhs { (1, k) } else { (n, 1) };
        let mut out = vec![0f32; batch * m * n];
        if m * n > 0 {
            out.par_chunks_mut(m * n).enumerate().for_each(|(i, dst)| {
                let (lhs, rhs) = (&a[i * m * k..], &b[i * k * n..]);
                // SAFETY: the slices hold m·k, k·n and m·n elements at the strides given above.
                unsafe {
                    gemm::gemm(
                        m,
                        n,
                        k,
                        dst.as_mut_ptr(),
                        1,
                        n as isize,
                        false,
                        lhs.as_ptr(),
                        lhs_cs as isize,
                        lhs_rs as isize,
                        rhs.as_ptr(),
                        rhs_cs as isize,
                        rhs_rs as isize,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    )
                }
            });
        }
        let mut dims = l1.dims().to_vec();
        let r = dims.len();
        (dims[r - 2], dims[r - 1]) = (m, n);
        Ok((CpuStorage::F32(out), Shape::from(dims)))
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let run = |x: &Tensor, y: &Tensor, transpose_lhs, transpose_rhs| {
            x.apply_op2_no_bwd(
                y,
                &Bmm {
                    transpose_lhs,
                    transpose_rhs,
                },
            )
        };
        // Only forward ops built with transpose_lhs = false ever get a backward pass.
        let da = if a.track_op() {
            // dA = G·Bᵀ, where B is stored as Bᵀ when transpose_rhs.
            Some(run(&grad, b, false, !self.transpose_rhs)?)
        } else {
            None
        };
        let db = if b.track_op() {
            Some(if self.transpose_rhs {
                run(&grad, a, true, false)? // stored Bᵀ gets Gᵀ·A
            } else {
                run(a, &grad, true, false)? // B gets Aᵀ·G
            })
        } else {
            None
        };
        Ok((da, db))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn close(a: &Tensor, b: &Tensor) -> Result<f32> {
        (a - b)?.abs()?.max_all()?.to_scalar::<f32>()
    }

    #[test]
    fn matches_candle_matmul_forward_and_backward() -> Result<()> {
        let dev = Device::Cpu;
        for transpose_rhs in [false, true] {
            let a = Var::randn(0f32, 1.0, (2, 3, 5, 4), &dev)?;
            let b_shape = if transpose_rhs {
                (2, 3, 6, 4)
            } else {
                (2, 3, 4, 6)
            };
            let b = Var::randn(0f32, 1.0, b_shape, &dev)?;
            let weights = Tensor::randn(0f32, 1.0, (2, 3, 5, 6), &dev)?;
            let ours = batched_matmul(&a, &b, transpose_rhs)?;
            let reference = if transpose_rhs {
                a.matmul(&b.t()?)?
            } else {
                a.matmul(&b)?
            };
            assert!(close(&ours, &reference)? < 1e-5);
            let g1 = (ours * &weights)?.sum_all()?.backward()?;
            let g2 = (reference * &weights)?.sum_all()?.backward()?;
            for v in [&a, &b] {
                let (x, y) = (g1.get(v).expect("grad"), g2.get(v).expect("grad"));
                assert!(close(x, y)? < 1e-4, "transpose_rhs={transpose_rhs}");
            }
        }
        Ok(())
    }
}
