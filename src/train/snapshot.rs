//! The best dev accuracy of a run so far and a copy of the trainable vars' values at that epoch.

use candle_core::{Tensor, Var};

/// The best dev accuracy seen so far and a copy of the vars' values at that point.
pub(crate) struct BestSnapshot {
    pub(crate) accuracy: f64,
    pub(crate) epoch: usize,
    values: Vec<Tensor>,
}

impl BestSnapshot {
    pub(crate) fn new() -> Self {
        Self {
            accuracy: f64::NEG_INFINITY,
            epoch: 0,
            values: Vec::new(),
        }
    }

    /// Snapshots the vars when `accuracy` strictly improves (ties keep the earlier, cheaper epoch).
    pub(crate) fn offer(
        &mut self,
        accuracy: f64,
        epoch: usize,
        vars: &[Var],
    ) -> candle_core::Result<bool> {
        if accuracy <= self.accuracy {
            return Ok(false);
        }
        // detach() first so the copy does not hold the var as a graph parent.
        self.values = vars
            .iter()
            .map(|v| v.as_tensor().detach().copy())
            .collect::<candle_core::Result<_>>()?;
        self.accuracy = accuracy;
        self.epoch = epoch;
        Ok(true)
    }

    pub(crate) fn restore(&self, vars: &[Var]) -> candle_core::Result<()> {
        for (var, value) in vars.iter().zip(&self.values) {
            var.set(value)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::tests::values;
    use candle_core::Device;

    #[test]
    fn best_snapshot_is_restored() -> candle_core::Result<()> {
        let v = Var::new(&[1f32, 2.], &Device::Cpu)?;
        let mut best = BestSnapshot::new();
        assert!(best.offer(0.8, 1, std::slice::from_ref(&v))?);
        v.set(&Tensor::new(&[5f32, 6.], &Device::Cpu)?)?;
        assert!(
            !best.offer(0.8, 2, std::slice::from_ref(&v))?,
            "a tie keeps the earlier epoch"
        );
        assert!(!best.offer(0.7, 3, std::slice::from_ref(&v))?);
        best.restore(std::slice::from_ref(&v))?;
        assert_eq!(values(&v)?, vec![1., 2.]);
        assert_eq!((best.accuracy, best.epoch), (0.8, 1));
        Ok(())
    }
}
