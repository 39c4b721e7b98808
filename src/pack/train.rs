//! The training loop of a pack: the loop of [`crate::train::train`] for K designs at once, on the
//! same batches in the same order, one forward and one backward pass per step for all of them.

use super::eval::evaluate_members;
use super::Pack;
use crate::batch::{make_batch, plan_batches, BatchPlan, TokenizedSplit};
use crate::train::frozen::for_splits;
use crate::train::{
    check_gradients, epoch_seed, learning_rate, total_steps, validate, AdamW, BestSnapshot,
    EpochRecord, TrainConfig, TrainError, TrainOutcome,
};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::loss::cross_entropy;
use candle_nn::optim::ParamsAdamW;
use std::time::Instant;

/// What training a pack gives: one result per member, in pack order (a member that failed alone
/// holds its error; the others trained on).
pub struct PackOutcome {
    pub members: Vec<Result<TrainOutcome, TrainError>>,
    /// Seconds the pack trained (evaluation excluded), shared by its members.
    pub train_seconds: f64,
}

/// One member's own training state.
struct Member {
    vars: Vec<Var>,
    config: TrainConfig,
    optimizer: AdamW,
    best: BestSnapshot,
    records: Vec<EpochRecord>,
    loss_sum: f64,
    losses: Vec<f64>,
    error: Option<TrainError>,
}

/// Trains every member of `pack` on `train`, evaluating on `dev` after each epoch, with member
/// i's `configs[i]` (learning rate, weight decay, clipping its own; the batching fields —
/// epochs, batch size, seed, step limit, bucketing — must agree, as the batches are shared).
/// On return each member's vars hold its best-dev weights.
pub fn train_packed(
    pack: &mut Pack,
    configs: &[TrainConfig],
    train: &TokenizedSplit,
    dev: &TokenizedSplit,
    pad_id: u32,
    device: &Device,
) -> Result<PackOutcome, TrainError> {
    let Some(cfg) = configs.first().cloned() else {
        return Err(TrainError::InvalidConfig(
            "a pack needs at least one design".into(),
        ));
    };
    if configs.len() != pack.models.len() {
        return Err(TrainError::InvalidConfig(format!(
            "{} configs for a pack of {}",
            configs.len(),
            pack.models.len()
        )));
    }
    for c in configs {
        validate(c)?;
        let batching = |c: &TrainConfig| {
            (
                c.epochs,
                c.batch_size,
                c.seed,
                c.max_steps,
                c.bucket_by_length,
            )
        };
        if batching(c) != batching(&cfg) {
            return Err(TrainError::InvalidConfig(
                "a pack's designs must share epochs, batch size, seed and step limit".into(),
            ));
        }
    }
    if train.is_empty() {
        return Err(TrainError::EmptySplit { which: "train" });
    }
    if dev.is_empty() {
        return Err(TrainError::EmptySplit { which: "dev" });
    }
    let mut members = Vec::with_capacity(configs.len());
    for (i, config) in configs.iter().enumerate() {
        let vars = pack.models[i].trainable_vars();
        let params = ParamsAdamW {
            lr: 0.0,
            weight_decay: config.weight_decay,
            ..Default::default()
        };
        members.push(Member {
            optimizer: AdamW::new(vars.clone(), params)?,
            vars,
            config: config.clone(),
            best: BestSnapshot::new(),
            records: Vec::new(),
            loss_sum: 0.0,
            losses: Vec::new(),
            error: None,
        });
    }
    let total = total_steps(&cfg, train.len());
    let mut train_seconds = 0f64;
    let started = Instant::now();
    let frozen = match cfg.cache_frozen {
        true => for_splits(pack, train, dev, pad_id, device, cfg.eval_batch_size)?,
        false => None,
    };
    train_seconds += started.elapsed().as_secs_f64();
    let mut step = 0usize;
    for epoch in 0..cfg.epochs {
        if step >= total || pack.active.is_empty() {
            break;
        }
        let plan = BatchPlan {
            batch_size: cfg.batch_size,
            shuffle_seed: Some(epoch_seed(cfg.seed, epoch)),
            bucket_by_length: cfg.bucket_by_length,
        };
        let started = Instant::now();
        let mut epoch_steps = 0usize;
        for m in &mut members {
            m.loss_sum = 0.0;
        }
        for indices in plan_batches(train, &plan) {
            if step >= total || pack.active.is_empty() {
                break;
            }
            let mut batch = make_batch(train, &indices, pad_id, device)?;
            if let Some((states, _)) = &frozen {
                states.attach(&mut batch, &indices)?;
            }
            // A member whose loss is not finite fails alone: it leaves, and the step is taken
            // again without it (the others' forward pass does not depend on it).
            let (losses, values) = loop {
                let logits = pack.member_logits(&batch, true)?;
                let losses = logits
                    .iter()
                    .map(|l| cross_entropy(&l.to_dtype(DType::F32)?, &batch.labels))
                    .collect::<candle_core::Result<Vec<_>>>()?;
                let values = Tensor::stack(&losses, 0)?.to_vec1::<f32>()?;
                let failed: Vec<usize> = pack
                    .active
                    .iter()
                    .zip(&values)
                    .filter(|(_, v)| !v.is_finite())
                    .map(|(&i, _)| i)
                    .collect();
                if failed.is_empty() {
                    break (losses, values);
                }
                for (&i, v) in pack.active.iter().zip(&values) {
                    if !v.is_finite() {
                        let loss = f64::from(*v);
                        members[i].error = Some(TrainError::NonFiniteLoss { step, loss });
                    }
                }
                pack.remove(&failed)?;
                if pack.active.is_empty() {
                    break (Vec::new(), Vec::new());
                }
            };
            if losses.is_empty() {
                break;
            }
            let mut grads = Tensor::stack(&losses, 0)?.sum_all()?.backward()?;
            for (&i, value) in pack.active.iter().zip(&values) {
                let m = &mut members[i];
                if step == 0 {
                    check_gradients(&grads, &m.vars)?;
                }
                m.optimizer
                    .set_learning_rate(learning_rate(step, total, &m.config));
                m.optimizer.step(&mut grads, m.config.max_grad_norm)?;
                m.loss_sum += f64::from(*value);
                m.losses.push(f64::from(*value));
            }
            step += 1;
            epoch_steps += 1;
        }
        let seconds = started.elapsed().as_secs_f64();
        train_seconds += seconds;
        if pack.active.is_empty() {
            break;
        }
        let eval_started = Instant::now();
        let dev_states = frozen.as_ref().map(|(_, dev)| dev);
        let evals = evaluate_members(pack, dev, dev_states, pad_id, device, cfg.eval_batch_size)?;
        let eval_seconds = eval_started.elapsed().as_secs_f64();
        let mut broken = Vec::new();
        for (&i, eval) in pack.active.iter().zip(&evals) {
            let m = &mut members[i];
            if !eval.loss.is_finite() {
                let (epoch, loss) = (epoch + 1, eval.loss);
                m.error = Some(TrainError::NonFiniteDevLoss { epoch, loss });
                broken.push(i);
                continue;
            }
            let record = EpochRecord {
                epoch: epoch + 1,
                train_loss: m.loss_sum / epoch_steps.max(1) as f64,
                dev_accuracy: eval.accuracy,
                dev_loss: eval.loss,
                steps: epoch_steps,
                seconds,
                eval_seconds,
            };
            m.best.offer(eval.accuracy, record.epoch, &m.vars)?;
            m.records.push(record);
        }
        if !broken.is_empty() {
            pack.remove(&broken)?;
        }
    }
    let mut results = Vec::with_capacity(members.len());
    for m in members {
        results.push(match m.error {
            Some(e) => Err(e),
            None => {
                m.best.restore(&m.vars)?;
                Ok(TrainOutcome {
                    best_accuracy: m.best.accuracy,
                    best_epoch: m.best.epoch,
                    steps: step,
                    train_seconds,
                    epochs: m.records,
                    losses: m.losses,
                })
            }
        });
    }
    Ok(PackOutcome {
        members: results,
        train_seconds,
    })
}
