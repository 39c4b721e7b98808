//! Unit tests of the training loop on a tiny embedding classifier: it learns, touches only the
//! given vars, stops at `max_steps`, and fails with typed errors.

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

pub(crate) fn values(v: &Var) -> candle_core::Result<Vec<f32>> {
    v.as_tensor().flatten_all()?.to_vec1()
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

/// Finite while training, NaN at evaluation: weights that broke on the last step.
struct NanAtEval(Tiny);

impl Classifier for NanAtEval {
    fn logits(&self, batch: &Batch, train: bool) -> candle_core::Result<Tensor> {
        let logits = self.0.logits(batch, train)?;
        if train {
            Ok(logits)
        } else {
            logits * f64::NAN
        }
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
    let at_eval = NanAtEval(Tiny::new(2)?);
    let vars_at_eval = at_eval.0.trainable();
    let err = train(
        &at_eval,
        &vars_at_eval,
        &train_split,
        &dev_split,
        0,
        &Device::Cpu,
        &cfg(),
    );
    assert!(
        matches!(err, Err(TrainError::NonFiniteDevLoss { epoch: 1, loss }) if loss.is_nan()),
        "{err:?}"
    );

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

/// Issue 19: a prefix design's seed reaches both its initial tensors and the batch order.
#[test]
fn seeds_vary_prefix_init_and_batch_order() {
    use crate::batch::{plan_batches, BatchPlan};
    let design: crate::spec::Design = crate::spec::shipped_preset("prefix");
    let values = |seed: u64| -> Vec<(String, Vec<f32>)> {
        let encoder = crate::backbone::tiny::tiny_encoder(0).expect("tiny encoder");
        let model = crate::model::AdaptedModel::build(encoder, &design, 2, seed).expect("build");
        model
            .store
            .named()
            .iter()
            .map(|(name, var)| {
                let v = var
                    .as_tensor()
                    .flatten_all()
                    .and_then(|t| t.to_vec1::<f32>());
                (name.clone(), v.expect("values"))
            })
            .collect()
    };
    let (a, a_again, b) = (values(0), values(0), values(1));
    assert_eq!(a, a_again);
    let prefix: Vec<&String> = a
        .iter()
        .map(|(n, _)| n)
        .filter(|n| n.contains("prefix"))
        .collect();
    assert!(
        !prefix.is_empty(),
        "no prefix tensors in {:?}",
        a.iter().map(|x| &x.0).collect::<Vec<_>>()
    );
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        // Zero-filled tensors (biases) are the same for every seed; random ones must differ.
        if x.iter().any(|v| *v != 0.0) {
            assert_ne!(x, y, "{name} is the same for seeds 0 and 1");
        }
    }
    let split = task(64, 0);
    let order = |seed: u64| {
        let plan = BatchPlan {
            batch_size: 8,
            shuffle_seed: Some(epoch_seed(seed, 1)),
            bucket_by_length: true,
        };
        plan_batches(&split, &plan)
    };
    assert_eq!(order(0), order(0));
    assert_ne!(order(0), order(1));
}
