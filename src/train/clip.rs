//! Global-norm gradient clipping over the trainable vars.

use candle_core::{backprop::GradStore, DType, Tensor, Var};

/// Scales the vars' gradients so their global L2 norm is at most `max_norm` (torch's
/// `clip_grad_norm_`); returns the norm before clipping. `max_norm <= 0` only measures.
pub fn clip_grad_norm(
    grads: &mut GradStore,
    vars: &[Var],
    max_norm: f64,
) -> candle_core::Result<f64> {
    // Summed on the device and read once: a read per tensor would stall a GPU once per var.
    let mut total: Option<Tensor> = None;
    for var in vars {
        if let Some(g) = grads.get(var.as_tensor()) {
            // Each tensor's sum in its own dtype, the total in f64 (as before the device sum).
            let squares = g.sqr()?.sum_all()?.to_dtype(DType::F64)?;
            total = Some(match total {
                Some(t) => (t + squares)?,
                None => squares,
            });
        }
    }
    let squares = match total {
        Some(t) => t.to_scalar::<f64>()?,
        None => 0.0,
    };
    let norm = squares.sqrt();
    if max_norm > 0.0 && norm > max_norm {
        // torch's epsilon: never divides by zero, and lands a hair under max_norm.
        let scale = max_norm / (norm + 1e-6);
        for var in vars {
            if let Some(g) = grads.remove(var.as_tensor()) {
                grads.insert(var.as_tensor(), (g * scale)?);
            }
        }
    }
    Ok(norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn clipping_scales_global_norm_to_the_limit() -> candle_core::Result<()> {
        let dev = &Device::Cpu;
        let (a, b) = (
            Var::zeros(2, DType::F32, dev)?,
            Var::zeros(1, DType::F32, dev)?,
        );
        let vars = [a.clone(), b.clone()];
        let mut grads = GradStore::default();
        grads.insert(a.as_tensor(), Tensor::new(&[3f32, 4.], dev)?);
        grads.insert(b.as_tensor(), Tensor::new(&[12f32], dev)?);
        assert!((clip_grad_norm(&mut grads, &vars, 1.0)? - 13.0).abs() < 1e-9);
        let after = clip_grad_norm(&mut grads, &vars, 0.0)?;
        assert!((after - 1.0).abs() < 1e-5, "norm after clipping {after}");
        // Direction is kept: a's gradient is still (3, 4) / 13.
        let ga: Vec<f32> = grads.get(a.as_tensor()).expect("grad").to_vec1()?;
        assert!((ga[0] - 3.0 / 13.0).abs() < 1e-5 && (ga[1] - 4.0 / 13.0).abs() < 1e-5);
        // Under the limit nothing changes.
        assert!((clip_grad_norm(&mut grads, &vars, 5.0)? - after).abs() < 1e-12);
        assert_eq!(
            grads.get(b.as_tensor()).expect("grad").to_vec1::<f32>()?,
            vec![12. / (13. + 1e-6) as f32]
        );
        Ok(())
    }
}
