//! Packed training gives every design what it gets alone: a table of mixed packs on a tiny
//! 3-layer encoder, 50 steps each, losses within 1e-4 relative and the same dev accuracy.

use super::*;
use crate::backbone::tiny::{tiny_config, tiny_weights};
use crate::batch::TokenizedSplit;
use crate::spec::{parse_ron, Design};
use crate::train::{train, TrainConfig, TrainError};
use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use rand::{Rng, SeedableRng};

/// The designs the packs below mix (all of the unified space's kinds and layer sets).
const DESIGNS: &[(&str, &str)] = &[
    (
        "lora-qv",
        r#"Design(name: "lora-qv", modules: [
            Module(form: Lora(r: 4, alpha: 8.0), site: Projection(Query)),
            Module(form: Lora(r: 4, alpha: 8.0), site: Projection(Value))])"#,
    ),
    (
        "prefix-3",
        r#"Design(name: "prefix-3", modules: [Module(form: Prefix(l: 3), site: AttentionHeads)])"#,
    ),
    (
        "prefix-7-top",
        r#"Design(name: "prefix-7-top", modules: [
            Module(form: Prefix(l: 7), site: AttentionHeads, layers: List([2]))])"#,
    ),
    (
        "ia3",
        r#"Design(name: "ia3", modules: [
            Module(form: Ia3, site: Projection(Key), insertion: Sequential),
            Module(form: Ia3, site: Projection(Value), insertion: Sequential),
            Module(form: Ia3, site: FfnActivation, insertion: Sequential)])"#,
    ),
    (
        "mam",
        r#"Design(name: "mam", modules: [
            Module(form: Prefix(l: 5), site: AttentionHeads),
            Module(form: Bottleneck(r: 8, activation: Relu), site: Ffn, insertion: Parallel,
                   composition: Some(Scaled(4.0)))])"#,
    ),
    (
        "pfeiffer-upper",
        r#"Design(name: "pfeiffer-upper", modules: [
            Module(form: Bottleneck(r: 6, activation: Gelu), site: Ffn, insertion: Sequential,
                   layers: Range(1, 2))])"#,
    ),
    (
        "lora-ffn-top",
        r#"Design(name: "lora-ffn-top", modules: [
            Module(form: Lora(r: 2, alpha: 4.0), site: Projection(FfnIn), layers: List([2]))])"#,
    ),
];

/// The packs: every design of each trains packed and alone.
const PACKS: &[&[&str]] = &[
    &["lora-qv", "prefix-3", "prefix-7-top", "ia3"],
    &["mam", "pfeiffer-upper", "lora-ffn-top"],
    // Nothing below layer 2: the pack starts from the frozen states of layer 2.
    &["prefix-7-top", "lora-ffn-top"],
    &["mam"],
];

fn design(name: &str) -> Design {
    let text = DESIGNS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t);
    parse_ron(text.unwrap_or_default(), name).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn encoder() -> Encoder {
    let mut config = tiny_config();
    config.num_hidden_layers = 3;
    let weights = tiny_weights(&config, 7, &Device::Cpu).unwrap();
    let vb = VarBuilder::from_tensors(weights, DType::F32, &Device::Cpu);
    Encoder::load(vb, config).unwrap()
}

/// Label 1 iff token 5 occurs; other tokens from 6..64; lengths 4–12.
fn split(n: usize, seed: u64) -> TokenizedSplit {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut split = TokenizedSplit::default();
    for i in 0..n {
        let len = rng.random_range(4..13);
        let mut ids: Vec<u32> = (0..len).map(|_| rng.random_range(6..64)).collect();
        if i % 2 == 1 {
            ids[rng.random_range(0..len)] = 5;
        }
        split.ids.push(ids);
        split.labels.push((i % 2) as u32);
    }
    split
}

fn config() -> TrainConfig {
    TrainConfig {
        epochs: 4,
        batch_size: 16,
        eval_batch_size: 32,
        lr: 5e-3,
        max_steps: Some(50),
        progress: false,
        ..TrainConfig::default()
    }
}

fn build(name: &str, encoder: &Encoder) -> AdaptedModel {
    AdaptedModel::build(encoder.clone(), &design(name), 2, 3).unwrap()
}

fn assert_same(
    name: &str,
    alone: &crate::train::TrainOutcome,
    packed: &crate::train::TrainOutcome,
) {
    assert_eq!(alone.losses.len(), 50, "{name}");
    assert_eq!(packed.losses.len(), alone.losses.len(), "{name}");
    for (step, (a, p)) in alone.losses.iter().zip(&packed.losses).enumerate() {
        let rel = (a - p).abs() / a.abs().max(1e-12);
        assert!(
            rel <= 1e-4,
            "{name} step {step}: alone {a}, packed {p} (rel {rel:.2e})"
        );
    }
    let accuracies = |o: &crate::train::TrainOutcome| -> Vec<f64> {
        o.epochs.iter().map(|e| e.dev_accuracy).collect()
    };
    assert_eq!(
        accuracies(alone),
        accuracies(packed),
        "{name}: dev accuracy per epoch"
    );
    assert_eq!(alone.best_epoch, packed.best_epoch, "{name}");
}

#[test]
fn every_packed_design_trains_as_it_does_alone() {
    let (train_split, dev) = (split(240, 1), split(64, 2));
    let encoder = encoder();
    let cpu = Device::Cpu;
    for pack in PACKS {
        let alone: Vec<_> = pack
            .iter()
            .map(|name| {
                let model = build(name, &encoder);
                let vars = model.trainable_vars();
                let outcome = train(&model, &vars, &train_split, &dev, 0, &cpu, &config());
                (outcome.unwrap(), model)
            })
            .collect();
        let models = pack.iter().map(|name| build(name, &encoder)).collect();
        let mut packed = Pack::new(models).unwrap();
        let configs = vec![config(); pack.len()];
        let outcome = train_packed(&mut packed, &configs, &train_split, &dev, 0, &cpu).unwrap();
        let models = packed.into_models();
        for (i, name) in pack.iter().enumerate() {
            let got = outcome.members[i].as_ref().unwrap();
            assert_same(name, &alone[i].0, got);
            // The best-dev weights are restored into each model, and its modules are back.
            let (a, p) = (&alone[i].1, &models[i]);
            for (key, var) in a.store.named() {
                let other = &p.store.named()[key];
                let diff = (var.as_tensor() - other.as_tensor())
                    .unwrap()
                    .abs()
                    .unwrap();
                let diff = diff.max_all().unwrap().to_scalar::<f32>().unwrap();
                assert!(diff < 1e-3, "{name} {key}: {diff}");
            }
            assert!(!p.compiled.layers.iter().all(|l| l.is_empty()), "{name}");
        }
    }
}

#[test]
fn a_member_whose_loss_is_not_finite_fails_alone() {
    let (train_split, dev) = (split(96, 3), split(32, 4));
    let encoder = encoder();
    let models: Vec<_> = ["lora-qv", "mam", "ia3"]
        .iter()
        .map(|n| build(n, &encoder))
        .collect();
    // mam's head weights are NaN: its first loss is NaN, the others must not notice.
    let head = models[1].store.named()["head.weight"].clone();
    head.set(&(head.as_tensor().ones_like().unwrap() * f64::NAN).unwrap())
        .unwrap();
    let mut packed = Pack::new(models).unwrap();
    let configs = vec![config(); 3];
    let cpu = Device::Cpu;
    let outcome = train_packed(&mut packed, &configs, &train_split, &dev, 0, &cpu).unwrap();
    assert!(matches!(
        outcome.members[1],
        Err(TrainError::NonFiniteLoss { step: 0, .. })
    ));
    for (i, name) in [(0, "lora-qv"), (2, "ia3")] {
        let model = build(name, &encoder);
        let vars = model.trainable_vars();
        let alone = train(&model, &vars, &train_split, &dev, 0, &cpu, &config()).unwrap();
        let got = outcome.members[i].as_ref().unwrap();
        assert_eq!(alone.losses.len(), got.losses.len());
        for (a, p) in alone.losses.iter().zip(&got.losses) {
            assert!((a - p).abs() <= 1e-4 * a.abs(), "{name}: {a} vs {p}");
        }
    }
}

#[test]
fn designs_that_unfreeze_the_backbone_are_refused_by_name() {
    let text = r#"Design(name: "ln", modules: [], unfreeze: [LayerNorms])"#;
    let design: Design = parse_ron(text, "t").unwrap();
    let model = AdaptedModel::build(encoder(), &design, 2, 0).unwrap();
    let err = Pack::new(vec![model]).err().unwrap().to_string();
    assert!(
        err.contains("design ln") && err.contains("unfreezes"),
        "{err}"
    );
}
