//! Every preset on a tiny random encoder: it compiles, its vars match the accounting, a fresh
//! zero-initialised design is the frozen model exactly, gradients reach every trainable var and
//! nothing else, and a few training steps lower the loss on a learnable synthetic task.

use candle_core::{Device, Tensor};
use pets::backbone::tiny::tiny_encoder;
use pets::batch::{make_batch, TokenizedSplit};
use pets::model::AdaptedModel;
use pets::params::design_cost;
use pets::report::load_presets;
use pets::spec::{Design, Init};
use pets::train::{evaluate, train, Classifier, TrainConfig};
use std::path::Path;

fn presets() -> Vec<Design> {
    let designs = load_presets(Path::new("search_spaces/presets"), &[]).expect("presets load");
    assert_eq!(
        designs.len(),
        11,
        "the ten presets of the core issue and IA³"
    );
    designs
}

/// Label 1 when token 7 occurs in the sentence; tokens 2..20, lengths 4..12.
fn synthetic(n: usize, seed: u64) -> TokenizedSplit {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as u32
    };
    let mut split = TokenizedSplit::default();
    for i in 0..n {
        let len = 4 + (next() % 9) as usize;
        let mut ids: Vec<u32> = (0..len)
            .map(|_| 2 + next() % 18)
            .map(|t| if t == 7 { 8 } else { t })
            .collect();
        let label = (i % 2) as u32;
        if label == 1 {
            let at = (next() as usize) % len;
            ids[at] = 7;
        }
        split.ids.push(ids);
        split.labels.push(label);
    }
    split
}

fn with_init(design: &Design, init: Init) -> Design {
    let mut d = design.clone();
    for m in &mut d.modules {
        m.init = init;
    }
    d
}

#[test]
fn every_preset_matches_its_accounting() {
    for design in presets() {
        let encoder = tiny_encoder(0).unwrap();
        let shape = encoder.shape();
        let cost = design_cost(&design, &shape, 2).unwrap();
        let model = AdaptedModel::build(encoder, &design, 2, 0).unwrap();
        let counted: usize = model.trainable_vars().iter().map(|v| v.elem_count()).sum();
        assert_eq!(counted, cost.trainable + cost.head, "{}", design.name);
        assert!(cost.trainable > 0, "{}", design.name);
    }
}

#[test]
fn fresh_zero_up_designs_reproduce_the_frozen_model_exactly() {
    let split = synthetic(8, 1);
    let batch = make_batch(&split, &(0..8).collect::<Vec<_>>(), 0, &Device::Cpu).unwrap();
    let frozen = AdaptedModel::build(
        tiny_encoder(3).unwrap(),
        &Design {
            name: "none".into(),
            modules: vec![],
            unfreeze: vec![],
            learning_rate: None,
        },
        2,
        0,
    )
    .unwrap();
    let reference = frozen.pooled(&batch, false).unwrap();
    let mut checked = 0;
    for design in presets() {
        // Prefixes have no up-projection: their keys and values always take some attention mass.
        if design.modules.iter().any(|m| m.form.kind() == "prefix") || design.modules.is_empty() {
            continue;
        }
        let design = with_init(&design, Init::Default);
        let model = AdaptedModel::build(tiny_encoder(3).unwrap(), &design, 2, 0).unwrap();
        let out = model.pooled(&batch, false).unwrap();
        let diff: f32 = (out - &reference)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert_eq!(diff, 0.0, "{}", design.name);
        checked += 1;
    }
    assert!(checked >= 6, "checked {checked} designs");
}

#[test]
fn gradients_reach_every_trainable_var_and_nothing_frozen_changes() {
    let split = synthetic(16, 2);
    let indices: Vec<usize> = (0..16).collect();
    for design in presets() {
        // Small random up-projections, so every tensor sits on a path with non-zero gradient.
        let design = with_init(&design, Init::Normal(0.05));
        let mut model = AdaptedModel::build(tiny_encoder(5).unwrap(), &design, 2, 0).unwrap();
        // Copies: an unfrozen tensor shares storage with its var, which training updates in place.
        let frozen_before: Vec<(String, Tensor)> = model
            .encoder
            .backbone_tensors()
            .into_iter()
            .map(|(n, t)| (n, t.copy().unwrap()))
            .collect();
        let batch = make_batch(&split, &indices, 0, &Device::Cpu).unwrap();
        let logits = model.logits(&batch, true).unwrap();
        let loss = candle_nn::loss::cross_entropy(&logits, &batch.labels).unwrap();
        let grads = loss.backward().unwrap();
        for (name, var) in model.store.named() {
            let g = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("{}: no gradient for {name}", design.name));
            let norm: f32 = g.abs().unwrap().sum_all().unwrap().to_scalar().unwrap();
            assert!(
                norm > 0.0 && norm.is_finite(),
                "{}: zero gradient for {name}",
                design.name
            );
        }
        let config = TrainConfig {
            epochs: 2,
            warmup_fraction: 0.0,
            progress: false,
            ..TrainConfig::default()
        };
        let vars = model.trainable_vars();
        train(&model, &vars, &split, &split, 0, &Device::Cpu, &config).unwrap();
        let unfrozen: Vec<String> = model
            .store
            .named()
            .keys()
            .filter_map(|k| k.strip_prefix("backbone.").map(String::from))
            .collect();
        for ((name, before), (_, after)) in
            frozen_before.iter().zip(model.encoder.backbone_tensors())
        {
            let same = (before - &after)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
                == 0.0;
            assert_eq!(same, !unfrozen.contains(name), "{}: {name}", design.name);
        }
    }
}

#[test]
fn a_few_steps_lower_the_loss_for_every_preset() {
    let train_split = synthetic(96, 3);
    for design in presets() {
        let model = AdaptedModel::build(tiny_encoder(7).unwrap(), &design, 2, 0).unwrap();
        let before = evaluate(&model, &train_split, 0, &Device::Cpu, 96).unwrap();
        let lr = if design.unfreeze.is_empty() {
            1e-2
        } else {
            1e-3
        };
        let config = TrainConfig {
            epochs: 4,
            batch_size: 16,
            lr,
            warmup_fraction: 0.0,
            progress: false,
            ..TrainConfig::default()
        };
        let vars = model.trainable_vars();
        train(
            &model,
            &vars,
            &train_split,
            &train_split,
            0,
            &Device::Cpu,
            &config,
        )
        .unwrap();
        let after = evaluate(&model, &train_split, 0, &Device::Cpu, 96).unwrap();
        assert!(
            after.loss < before.loss - 0.01,
            "{}: loss {} -> {}",
            design.name,
            before.loss,
            after.loss
        );
    }
}
