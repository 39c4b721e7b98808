//! The step arithmetic of a run: total and warm-up steps, the learning-rate schedule, epoch seeds.

use super::TrainConfig;

/// Optimizer steps the run will take: every epoch's batches, capped by `max_steps`.
pub fn total_steps(cfg: &TrainConfig, train_examples: usize) -> usize {
    let full = cfg.epochs * train_examples.div_ceil(cfg.batch_size.max(1));
    cfg.max_steps.map_or(full, |m| m.min(full))
}

/// Warm-up length: `ceil(warmup_fraction * total_steps)`, as HF's `get_warmup_steps`.
pub fn warmup_steps(total_steps: usize, cfg: &TrainConfig) -> usize {
    // The tiny epsilon keeps float noise (0.07 * 100 = 7.000000000000001) from adding a step.
    let exact = cfg.warmup_fraction.clamp(0.0, 1.0) * total_steps as f64;
    (exact - 1e-9).ceil().max(0.0) as usize
}

/// Learning rate for update `step` (0-based), HF `get_linear_schedule_with_warmup` semantics:
/// linear from 0 to `lr` over the warm-up, then linear down to 0 at `total_steps`.
pub fn learning_rate(step: usize, total_steps: usize, cfg: &TrainConfig) -> f64 {
    let warmup = warmup_steps(total_steps, cfg);
    if step >= total_steps {
        0.0
    } else if step < warmup {
        cfg.lr * step as f64 / warmup as f64
    } else {
        // step < total_steps here, so total_steps > warmup and the division is safe.
        cfg.lr * (total_steps - step) as f64 / (total_steps - warmup) as f64
    }
}

/// Shuffle seed of epoch `epoch` (0-based): distinct per epoch, reproducible per run seed.
pub fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    seed.wrapping_mul(1_000_003).wrapping_add(epoch as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_decays_to_zero() {
        let cfg = TrainConfig {
            lr: 1e-3,
            warmup_fraction: 0.1,
            ..TrainConfig::default()
        };
        // total 100 steps, warm-up 10: (step, expected lr)
        let table = [
            (0, 0.0),
            (5, 0.5e-3),
            (10, 1e-3),
            (55, 0.5e-3),
            (99, 1e-3 / 90.0),
            (100, 0.0),
        ];
        for (step, want) in table {
            let got = learning_rate(step, 100, &cfg);
            assert!((got - want).abs() < 1e-15, "step {step}: {got} vs {want}");
        }
        assert_eq!(
            warmup_steps(
                100,
                &TrainConfig {
                    warmup_fraction: 0.07,
                    ..cfg.clone()
                }
            ),
            7
        );
        assert_eq!(
            warmup_steps(
                10,
                &TrainConfig {
                    warmup_fraction: 0.06,
                    ..cfg.clone()
                }
            ),
            1
        );
        // No warm-up: the first step already runs at the peak rate.
        let flat = TrainConfig {
            warmup_fraction: 0.0,
            ..cfg
        };
        assert_eq!(learning_rate(0, 100, &flat), 1e-3);
    }
}
