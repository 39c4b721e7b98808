//! Training loop over the trainable vars only: AdamW, warm-up + linear decay, global-norm clipping,
//! per-epoch dev evaluation that keeps (and finally restores) the best-dev weights.

use crate::batch::{make_batch, plan_batches, Batch, BatchPlan, TokenizedSplit};
use candle_core::{backprop::GradStore, DType, Device, Tensor, Var};
use candle_nn::loss::cross_entropy;
use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};
use indicatif::{ProgressBar, ProgressStyle};
use std::time::Instant;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum TrainError {
    #[error("the {which} split is empty")]
    EmptySplit { which: &'static str },
    /// The loss of optimizer step `step` (0-based) was NaN or infinite; training stopped there.
    #[error("non-finite training loss {loss} at step {step}")]
    NonFiniteLoss { step: usize, loss: f64 },
    /// Checked on the first step: a var the graph never reaches would silently stay untrained
    /// (e.g. behind a fused candle op without a backward, see CANDLE_NOTES).
    #[error("trainable var #{index} (shape {shape:?}) received no gradient: the graph is cut upstream of it")]
    MissingGradient { index: usize, shape: Vec<usize> },
    #[error("invalid training config: {0}")]
    InvalidConfig(String),
    #[error("{0}")]
    Message(String),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Anything that maps a batch to logits of shape (batch, classes).
pub trait Classifier {
    /// `train` is true during training steps (enables backbone dropout where configured).
    fn logits(&self, batch: &Batch, train: bool) -> candle_core::Result<Tensor>;
}

#[derive(Debug, Clone)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub eval_batch_size: usize,
    /// Peak learning rate, reached at the end of warm-up.
    pub lr: f64,
    /// Decoupled (AdamW) weight decay, applied to every given var (biases and norms included).
    pub weight_decay: f64,
    /// Share of the total steps spent warming up linearly from 0 to `lr`.
    pub warmup_fraction: f64,
    /// Clip the global L2 norm of all gradients to this; `<= 0` disables clipping.
    pub max_grad_norm: f64,
    /// Seeds the per-epoch shuffling.
    pub seed: u64,
    /// Stop after this many optimizer steps (a cheap fidelity); `None` runs every epoch.
    pub max_steps: Option<usize>,
    pub bucket_by_length: bool,
    /// Progress bar (or sparse lines when stderr is not a terminal) and per-epoch summaries.
    pub progress: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 3,
            batch_size: 32,
            eval_batch_size: 128,
            lr: 5e-4,
            weight_decay: 0.01,
            warmup_fraction: 0.06,
            max_grad_norm: 1.0,
            seed: 0,
            max_steps: None,
            bucket_by_length: true,
            progress: true,
        }
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct EpochRecord {
    /// 1-based.
    pub epoch: usize,
    /// Mean training loss over this epoch's steps.
    pub train_loss: f64,
    pub dev_accuracy: f64,
    pub dev_loss: f64,
    /// Optimizer steps taken in this epoch (fewer than a full epoch when `max_steps` cut it).
    pub steps: usize,
    /// Training time of this epoch, evaluation excluded.
    pub seconds: f64,
    pub eval_seconds: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct TrainOutcome {
    pub best_accuracy: f64,
    /// 1-based epoch whose weights the model holds after `train` returns.
    pub best_epoch: usize,
    pub steps: usize,
    /// Training time only, evaluation excluded.
    pub train_seconds: f64,
    pub epochs: Vec<EpochRecord>,
}

/// Result of [`evaluate`].
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub accuracy: f64,
    /// Mean cross-entropy per example.
    pub loss: f64,
    /// Arg-max class per example, in the split's order.
    pub predictions: Vec<u32>,
}

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

/// Scales the vars' gradients so their global L2 norm is at most `max_norm` (torch's
/// `clip_grad_norm_`); returns the norm before clipping. `max_norm <= 0` only measures.
pub fn clip_grad_norm(
    grads: &mut GradStore,
    vars: &[Var],
    max_norm: f64,
) -> candle_core::Result<f64> {
    let mut squares = 0f64;
    for var in vars {
        if let Some(g) = grads.get(var.as_tensor()) {
            squares += g
                .sqr()?
                .sum_all()?
                .to_dtype(DType::F64)?
                .to_scalar::<f64>()?;
        }
    }
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

/// Accuracy, mean loss and predictions of `model` on `split`, without dropout. Batches are
/// bucketed by length (least padding); predictions are put back in the split's order.
pub fn evaluate(
    model: &dyn Classifier,
    split: &TokenizedSplit,
    pad_id: u32,
    device: &Device,
    batch_size: usize,
) -> Result<Evaluation, TrainError> {
    if split.is_empty() {
        return Err(TrainError::EmptySplit {
            which: "evaluation",
        });
    }
    let plan = BatchPlan {
        batch_size,
        shuffle_seed: None,
        bucket_by_length: true,
    };
    let mut predictions = vec![0u32; split.len()];
    let (mut loss_sum, mut correct) = (0f64, 0usize);
    for indices in plan_batches(split, &plan) {
        let batch = make_batch(split, &indices, pad_id, device)?;
        // Detached: nothing downstream is recorded for a backward pass that never comes.
        let logits = model.logits(&batch, false)?.detach().to_dtype(DType::F32)?;
        let loss = cross_entropy(&logits, &batch.labels)?.to_scalar::<f32>()?;
        loss_sum += f64::from(loss) * batch.size as f64;
        let predicted = logits.argmax(1)?.to_vec1::<u32>()?;
        for (&i, &p) in indices.iter().zip(&predicted) {
            predictions[i] = p;
            correct += usize::from(p == split.labels[i]);
        }
    }
    let n = split.len() as f64;
    Ok(Evaluation {
        accuracy: correct as f64 / n,
        loss: loss_sum / n,
        predictions,
    })
}

/// The best dev accuracy seen so far and a copy of the vars' values at that point.
struct BestSnapshot {
    accuracy: f64,
    epoch: usize,
    values: Vec<Tensor>,
}

impl BestSnapshot {
    fn new() -> Self {
        Self {
            accuracy: f64::NEG_INFINITY,
            epoch: 0,
            values: Vec::new(),
        }
    }

    /// Snapshots the vars when `accuracy` strictly improves (ties keep the earlier, cheaper epoch).
    fn offer(&mut self, accuracy: f64, epoch: usize, vars: &[Var]) -> candle_core::Result<bool> {
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

    fn restore(&self, vars: &[Var]) -> candle_core::Result<()> {
        for (var, value) in vars.iter().zip(&self.values) {
            var.set(value)?;
        }
        Ok(())
    }
}

/// An indicatif bar when stderr is a terminal; otherwise about ten plain lines per run.
struct Progress {
    bar: ProgressBar,
    enabled: bool,
    plain_every: usize,
}

impl Progress {
    fn new(total: usize, enabled: bool) -> Self {
        let bar = if enabled {
            ProgressBar::new(total as u64)
        } else {
            ProgressBar::hidden()
        };
        let template = "{bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}, {per_sec}] {msg}";
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        Self {
            bar,
            enabled,
            plain_every: (total / 10).max(1),
        }
    }

    fn step(&self, step: usize, msg: String) {
        if self.enabled && self.bar.is_hidden() && step.is_multiple_of(self.plain_every) {
            let elapsed = self.bar.elapsed().as_secs_f64();
            let total = self.bar.length().unwrap_or(0);
            eprintln!(
                "step {step}/{total} {msg} ({:.2} steps/s)",
                step as f64 / elapsed.max(1e-9)
            );
        }
        self.bar.set_message(msg);
        self.bar.inc(1);
    }

    fn line(&self, msg: String) {
        match (self.enabled, self.bar.is_hidden()) {
            (false, _) => {}
            (true, true) => eprintln!("{msg}"),
            (true, false) => self.bar.println(msg),
        }
    }
}

fn validate(cfg: &TrainConfig) -> Result<(), TrainError> {
    let problem = if cfg.epochs == 0 {
        "epochs must be at least 1"
    } else if cfg.batch_size == 0 || cfg.eval_batch_size == 0 {
        "batch sizes must be at least 1"
    } else if cfg.max_steps == Some(0) {
        "max_steps must be at least 1"
    } else if !(cfg.lr.is_finite() && cfg.lr >= 0.0) {
        "lr must be finite and non-negative"
    } else {
        return Ok(());
    };
    Err(TrainError::InvalidConfig(problem.to_string()))
}

/// Trains `vars` (and only them) to classify `train`, evaluating on `dev` after each epoch.
/// On return the vars hold the weights of the best dev epoch; after an error they hold whatever
/// the last completed step left (a failed trial is discarded anyway).
pub fn train(
    model: &dyn Classifier,
    vars: &[Var],
    train: &TokenizedSplit,
    dev: &TokenizedSplit,
    pad_id: u32,
    device: &Device,
    cfg: &TrainConfig,
) -> Result<TrainOutcome, TrainError> {
    if train.is_empty() {
        return Err(TrainError::EmptySplit { which: "train" });
    }
    if dev.is_empty() {
        return Err(TrainError::EmptySplit { which: "dev" });
    }
    validate(cfg)?;
    let total = total_steps(cfg, train.len());
    // The rate is set before every step from the schedule; 0 here is never used.
    let params = ParamsAdamW {
        lr: 0.0,
        weight_decay: cfg.weight_decay,
        ..Default::default()
    };
    let mut optimizer = AdamW::new(vars.to_vec(), params)?;
    let progress = Progress::new(total, cfg.progress);
    let mut best = BestSnapshot::new();
    let mut records = Vec::new();
    let (mut step, mut train_seconds) = (0usize, 0f64);

    for epoch in 0..cfg.epochs {
        if step >= total {
            break; // max_steps ended on an epoch boundary: that epoch is already evaluated.
        }
        let plan = BatchPlan {
            batch_size: cfg.batch_size,
            shuffle_seed: Some(epoch_seed(cfg.seed, epoch)),
            bucket_by_length: cfg.bucket_by_length,
        };
        let started = Instant::now();
        let (mut loss_sum, mut epoch_steps) = (0f64, 0usize);
        for indices in plan_batches(train, &plan) {
            if step >= total {
                break;
            }
            let batch = make_batch(train, &indices, pad_id, device)?;
            let logits = model.logits(&batch, true)?.to_dtype(DType::F32)?;
            let loss = cross_entropy(&logits, &batch.labels)?;
            let value = f64::from(loss.to_scalar::<f32>()?);
            if !value.is_finite() {
                progress.bar.abandon();
                return Err(TrainError::NonFiniteLoss { step, loss: value });
            }
            let mut grads = loss.backward()?;
            if step == 0 {
                check_gradients(&grads, vars)?;
            }
            if cfg.max_grad_norm > 0.0 {
                clip_grad_norm(&mut grads, vars, cfg.max_grad_norm)?;
            }
            optimizer.set_learning_rate(learning_rate(step, total, cfg));
            optimizer.step(&grads)?;
            step += 1;
            epoch_steps += 1;
            loss_sum += value;
            let running = loss_sum / epoch_steps as f64;
            progress.step(
                step,
                format!("epoch {}/{} loss {running:.4}", epoch + 1, cfg.epochs),
            );
        }
        let seconds = started.elapsed().as_secs_f64();
        train_seconds += seconds;

        let eval_started = Instant::now();
        let eval = evaluate(model, dev, pad_id, device, cfg.eval_batch_size)?;
        let record = EpochRecord {
            epoch: epoch + 1,
            train_loss: loss_sum / epoch_steps.max(1) as f64,
            dev_accuracy: eval.accuracy,
            dev_loss: eval.loss,
            steps: epoch_steps,
            seconds,
            eval_seconds: eval_started.elapsed().as_secs_f64(),
        };
        let improved = best.offer(eval.accuracy, record.epoch, vars)?;
        progress.line(format!(
            "epoch {}: train loss {:.4}, dev acc {:.4}, dev loss {:.4}, {:.1}s{}",
            record.epoch,
            record.train_loss,
            record.dev_accuracy,
            record.dev_loss,
            record.seconds,
            if improved { " (best)" } else { "" }
        ));
        records.push(record);
    }
    progress.bar.finish_and_clear();
    best.restore(vars)?;
    Ok(TrainOutcome {
        best_accuracy: best.accuracy,
        best_epoch: best.epoch,
        steps: step,
        train_seconds,
        epochs: records,
    })
}

fn check_gradients(grads: &GradStore, vars: &[Var]) -> Result<(), TrainError> {
    match vars.iter().position(|v| grads.get(v.as_tensor()).is_none()) {
        Some(index) => Err(TrainError::MissingGradient {
            index,
            shape: vars[index].dims().to_vec(),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    const VOCAB: usize = 20;
    const DIM: usize = 8;

    /// Embedding table mean-pooled over the mask, then a linear head to 2 classes. `frozen` is
    /// an extra logit bias that is in the graph but never handed to `train`.
    struct Tiny {
        emb: Var,
        w: Var,
        b: Var,
        frozen: Var,
    }

    impl Tiny {
        fn new(seed: u64) -> candle_core::Result<Self> {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let mut uniform =
                |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-0.5..0.5)).collect() };
            let dev = &Device::Cpu;
            Ok(Self {
                emb: Var::from_vec(uniform(VOCAB * DIM), (VOCAB, DIM), dev)?,
                w: Var::from_vec(uniform(DIM * 2), (DIM, 2), dev)?,
                b: Var::zeros(2, DType::F32, dev)?,
                frozen: Var::from_vec(vec![0.1f32, -0.1], 2, dev)?,
            })
        }
        fn trainable(&self) -> Vec<Var> {
            vec![self.emb.clone(), self.w.clone(), self.b.clone()]
        }
    }

    impl Classifier for Tiny {
        fn logits(&self, batch: &Batch, _train: bool) -> candle_core::Result<Tensor> {
            let (b, s) = batch.input_ids.dims2()?;
            let x = self
                .emb
                .as_tensor()
                .embedding(&batch.input_ids.flatten_all()?)?;
            let x = x.reshape((b, s, DIM))?;
            let mask = batch.attention_mask.unsqueeze(2)?;
            let pooled = x.broadcast_mul(&mask)?.sum(1)?;
            let pooled = pooled.broadcast_div(&mask.sum(1)?)?;
            pooled
                .matmul(self.w.as_tensor())?
                .broadcast_add(self.b.as_tensor())?
                .broadcast_add(self.frozen.as_tensor())
        }
    }

    /// Label 1 iff token 3 occurs; other tokens are drawn from 4..VOCAB, padding is 0.
    fn task(n: usize, seed: u64) -> TokenizedSplit {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut split = TokenizedSplit::default();
        for i in 0..n {
            let len = rng.random_range(3..9);
            let mut ids: Vec<u32> = (0..len)
                .map(|_| rng.random_range(4..VOCAB as u32))
                .collect();
            let label = (i % 2) as u32;
            if label == 1 {
                let at = rng.random_range(0..len);
                ids[at] = 3;
            }
            split.ids.push(ids);
            split.labels.push(label);
        }
        split
    }

    fn cfg() -> TrainConfig {
        TrainConfig {
            epochs: 3,
            batch_size: 16,
            eval_batch_size: 64,
            lr: 0.1,
            progress: false,
            ..TrainConfig::default()
        }
    }

    fn values(v: &Var) -> candle_core::Result<Vec<f32>> {
        v.as_tensor().flatten_all()?.to_vec1()
    }

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

    #[test]
    fn learns_the_task_and_only_touches_given_vars() -> Result<(), TrainError> {
        let (train_split, dev_split) = (task(192, 1), task(96, 2));
        let model = Tiny::new(0)?;
        let frozen_before = values(&model.frozen)?;
        let before = evaluate(&model, &dev_split, 0, &Device::Cpu, 64)?;
        let out = train(
            &model,
            &model.trainable(),
            &train_split,
            &dev_split,
            0,
            &Device::Cpu,
            &cfg(),
        )?;
        let after = evaluate(&model, &dev_split, 0, &Device::Cpu, 64)?;

        assert_eq!(out.steps, 3 * 12);
        assert_eq!(out.epochs.len(), 3);
        assert!(
            after.loss < before.loss,
            "{} !< {}",
            after.loss,
            before.loss
        );
        assert!(out.epochs[2].train_loss < out.epochs[0].train_loss);
        assert!(
            out.best_accuracy >= 0.9,
            "best dev accuracy {}",
            out.best_accuracy
        );
        // The model holds the best epoch's weights: re-evaluating gives exactly best_accuracy.
        assert_eq!(after.accuracy, out.best_accuracy);
        assert_eq!(
            out.epochs[out.best_epoch - 1].dev_accuracy,
            out.best_accuracy
        );
        // Predictions come back in the split's order.
        let correct = after
            .predictions
            .iter()
            .zip(&dev_split.labels)
            .filter(|(p, l)| p == l)
            .count();
        assert_eq!(correct as f64 / dev_split.len() as f64, after.accuracy);
        assert_eq!(values(&model.frozen)?, frozen_before);
        Ok(())
    }

    #[test]
    fn cross_entropy_gradient_is_softmax_minus_one_hot() -> candle_core::Result<()> {
        // Guards the CANDLE_NOTES trap: the loss must backpropagate (no fused op cutting it).
        let logits = Var::new(&[[0f32, 1f32.ln()], [2f32.ln(), 0.]], &Device::Cpu)?;
        let labels = Tensor::new(&[1u32, 1], &Device::Cpu)?;
        let grads = cross_entropy(logits.as_tensor(), &labels)?.backward()?;
        let g: Vec<Vec<f32>> = grads.get(logits.as_tensor()).expect("grad").to_vec2()?;
        // Row 0 softmax (1/2, 1/2), row 1 (2/3, 1/3); one-hot on class 1; mean over 2 rows.
        let want = [[0.25, -0.25], [1. / 3., -1. / 3.]];
        for (row, want_row) in g.iter().zip(want) {
            for (a, b) in row.iter().zip(want_row) {
                assert!((a - b).abs() < 1e-6, "{g:?}");
            }
        }
        Ok(())
    }

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

    #[test]
    fn max_steps_caps_training() -> Result<(), TrainError> {
        let (train_split, dev_split) = (task(64, 3), task(16, 4));
        let model = Tiny::new(1)?;
        // 4 batches per epoch: 6 steps end mid-epoch 2, which is still evaluated.
        let cfg = TrainConfig {
            max_steps: Some(6),
            ..cfg()
        };
        let out = train(
            &model,
            &model.trainable(),
            &train_split,
            &dev_split,
            0,
            &Device::Cpu,
            &cfg,
        )?;
        assert_eq!(out.steps, 6);
        let steps: Vec<usize> = out.epochs.iter().map(|e| e.steps).collect();
        assert_eq!(steps, vec![4, 2]);
        // Ending on an epoch boundary does not add an empty epoch.
        let cfg = TrainConfig {
            max_steps: Some(4),
            ..cfg
        };
        let out = train(
            &model,
            &model.trainable(),
            &train_split,
            &dev_split,
            0,
            &Device::Cpu,
            &cfg,
        )?;
        assert_eq!((out.steps, out.epochs.len()), (4, 1));
        Ok(())
    }

    struct NanLogits(Tiny);

    impl Classifier for NanLogits {
        fn logits(&self, batch: &Batch, train: bool) -> candle_core::Result<Tensor> {
            self.0.logits(batch, train)? * f64::NAN
        }
    }

    #[test]
    fn failures_are_typed() -> candle_core::Result<()> {
        let (train_split, dev_split) = (task(32, 5), task(8, 6));
        let model = NanLogits(Tiny::new(2)?);
        let vars = model.0.trainable();
        let before = values(&model.0.emb)?;
        let err = train(
            &model,
            &vars,
            &train_split,
            &dev_split,
            0,
            &Device::Cpu,
            &cfg(),
        );
        assert!(matches!(err, Err(TrainError::NonFiniteLoss { step: 0, loss }) if loss.is_nan()));
        assert_eq!(values(&model.0.emb)?, before, "no update after a NaN loss");

        let empty = TokenizedSplit::default();
        let err = train(&model.0, &vars, &empty, &dev_split, 0, &Device::Cpu, &cfg());
        assert!(matches!(
            err,
            Err(TrainError::EmptySplit { which: "train" })
        ));
        let err = train(
            &model.0,
            &vars,
            &train_split,
            &empty,
            0,
            &Device::Cpu,
            &cfg(),
        );
        assert!(matches!(err, Err(TrainError::EmptySplit { which: "dev" })));

        // A var outside the graph would silently never train.
        let mut vars = vars;
        vars.push(Var::zeros(3, DType::F32, &Device::Cpu)?);
        let err = train(
            &model.0,
            &vars,
            &train_split,
            &dev_split,
            0,
            &Device::Cpu,
            &cfg(),
        );
        assert!(matches!(
            err,
            Err(TrainError::MissingGradient { index: 3, .. })
        ));
        Ok(())
    }
}
