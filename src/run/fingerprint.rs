//! The run fingerprint: everything that decides what a training run computes. Every run writes
//! its fingerprint into `metrics.json`, and a finished run folder is reused only when a new run
//! would have the same one (`pets baselines`, `pets unified`, `pets analyse init`); a search
//! stores the same model and split hashes with its study.

use super::RunSettings;
use crate::data::Dataset;
use crate::error::io_err;
use crate::spec::Design;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;

/// What a run computes, as recorded in its `metrics.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunFingerprint {
    /// The design's canonical hash: what it trains (its learning rate included), its name not.
    pub design: String,
    /// The model as named (`minilm-l6`, or a folder).
    pub model: String,
    /// SHA-256 over the model's weights, `config.json` and `tokenizer.json`.
    pub model_sha256: String,
    /// The task's name.
    pub task: String,
    /// SHA-256 over the task's train/dev/test split: class names, and every text and label in order.
    pub split_sha256: String,
    pub lr: f64,
    pub max_len: usize,
    pub batch_size: usize,
    /// Optimizer steps: epochs × steps per epoch, cut to `--max-steps`.
    pub steps: usize,
    pub seed: u64,
    pub dropout: f32,
    pub weight_decay: f64,
}

/// The part of a fingerprint that comes from the model and the task, hashed once for every run
/// on them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInputs {
    pub model: String,
    pub model_sha256: String,
    pub task: String,
    pub split_sha256: String,
    /// Training examples (steps per epoch follow from them and the batch size).
    pub train_examples: usize,
}

impl RunInputs {
    /// Hashes the model folder `model_dir` (of the model named `model`) and the split `dataset`.
    pub fn of(model: &str, model_dir: &Path, dataset: &Dataset) -> crate::Result<RunInputs> {
        let mut hasher = Sha256::new();
        for file in ["model.safetensors", "config.json", "tokenizer.json"] {
            let path = model_dir.join(file);
            let sha = crate::assets::sha256_file(&path)
                .map_err(io_err(format!("hashing {}", path.display())))?;
            hasher.update(format!("{file} {sha}\n").as_bytes());
        }
        Ok(RunInputs {
            model: model.to_string(),
            model_sha256: hex(hasher),
            task: dataset.name.clone(),
            split_sha256: split_sha256(dataset),
            train_examples: dataset.train.len(),
        })
    }
}

/// SHA-256 of a dataset's class names and its train, dev and test examples, in order. An empty
/// test split adds nothing, so a two-split dataset hashes as it did before test splits.
pub fn split_sha256(dataset: &Dataset) -> String {
    let mut hasher = Sha256::new();
    for name in &dataset.label_names {
        hasher.update(format!("class {}\n", name.len()).as_bytes());
        hasher.update(name.as_bytes());
    }
    let splits = [
        ("train", &dataset.train),
        ("dev", &dataset.dev),
        ("test", &dataset.test),
    ];
    for (split, examples) in splits {
        if split == "test" && examples.is_empty() {
            continue;
        }
        hasher.update(format!("{split} {}\n", examples.len()).as_bytes());
        for e in examples {
            // Lengths first, so no two different splits concatenate to the same bytes.
            hasher.update(format!("{} {}\n", e.label, e.text.len()).as_bytes());
            hasher.update(e.text.as_bytes());
        }
    }
    hex(hasher)
}

fn hex(hasher: Sha256) -> String {
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl RunFingerprint {
    /// The fingerprint of training `design` on `inputs` under `settings`.
    pub fn new(design: &Design, inputs: &RunInputs, settings: &RunSettings) -> RunFingerprint {
        let batch_size = settings.train.batch_size;
        let full = settings.train.epochs * inputs.train_examples.div_ceil(batch_size.max(1));
        RunFingerprint {
            design: crate::search::canonical(design),
            model: inputs.model.clone(),
            model_sha256: inputs.model_sha256.clone(),
            task: inputs.task.clone(),
            split_sha256: inputs.split_sha256.clone(),
            lr: settings.learning_rate(design),
            max_len: settings.max_len,
            batch_size,
            steps: settings.train.max_steps.map_or(full, |n| n.min(full)),
            seed: settings.train.seed,
            dropout: settings.dropout,
            weight_decay: settings.train.weight_decay,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Example, TaskSource};
    use crate::train::TrainConfig;

    fn dataset(texts: &[&str]) -> Dataset {
        let examples = |t: &[&str]| {
            t.iter()
                .enumerate()
                .map(|(i, t)| Example {
                    text: t.to_string(),
                    label: (i % 2) as u32,
                })
                .collect()
        };
        Dataset {
            name: "reviews".into(),
            label_names: vec!["neg".into(), "pos".into()],
            source_labels: vec!["neg".into(), "pos".into()],
            train: examples(texts),
            dev: examples(&["ok"]),
            test: vec![],
        }
    }

    #[test]
    fn every_setting_that_changes_a_run_changes_its_fingerprint() {
        let dir = crate::assets::TestDir::new("fingerprint");
        crate::backbone::tiny::write_tiny_model(&dir.0, 0).unwrap();
        let data = dataset(&["good", "bad", "fine", "dull", "great"]);
        let inputs = RunInputs::of("tiny", &dir.0, &data).unwrap();
        let settings = RunSettings {
            model: "tiny".into(),
            task: TaskSource::Builtin("reviews.tsv".into()),
            test: crate::data::TestSplit::default(),
            max_len: 64,
            dropout: 0.0,
            train: TrainConfig {
                epochs: 3,
                batch_size: 2,
                ..TrainConfig::default()
            },
            lr_override: None,
            device: candle_core::Device::Cpu,
        };
        let design = crate::spec::shipped_preset("lora");
        let base = RunFingerprint::new(&design, &inputs, &settings);
        // 5 examples in batches of 2: 3 steps an epoch, 3 epochs; the preset's own rate.
        assert_eq!(base.steps, 9);
        assert_eq!(Some(base.lr), design.learning_rate.or(Some(5e-4)));
        let mut renamed = design.clone();
        renamed.name = "another".into();
        assert_eq!(RunFingerprint::new(&renamed, &inputs, &settings), base);

        let mut edited = design.clone();
        let r = edited.modules[0].form.width();
        edited.modules[0].form = edited.modules[0].form.method().with_width(r + 1);
        let mut changed: Vec<RunFingerprint> =
            vec![RunFingerprint::new(&edited, &inputs, &settings)];
        let mut s = settings.clone();
        s.max_len = 32;
        changed.push(RunFingerprint::new(&design, &inputs, &s));
        let mut s = settings.clone();
        s.train.max_steps = Some(4);
        changed.push(RunFingerprint::new(&design, &inputs, &s));
        let mut s = settings.clone();
        s.lr_override = Some(1e-3);
        changed.push(RunFingerprint::new(&design, &inputs, &s));
        let mut s = settings.clone();
        s.dropout = 0.1;
        changed.push(RunFingerprint::new(&design, &inputs, &s));
        let mut s = settings.clone();
        s.train.batch_size = 4;
        changed.push(RunFingerprint::new(&design, &inputs, &s));
        let other_split = RunInputs::of("tiny", &dir.0, &dataset(&["good", "bad"])).unwrap();
        changed.push(RunFingerprint::new(&design, &other_split, &settings));
        let mut with_test = data.clone();
        with_test.test = dataset(&["nice"]).train;
        let test_split = RunInputs::of("tiny", &dir.0, &with_test).unwrap();
        changed.push(RunFingerprint::new(&design, &test_split, &settings));
        let mut other_test = data.clone();
        other_test.test = dataset(&["poor"]).train;
        let other_test = RunInputs::of("tiny", &dir.0, &other_test).unwrap();
        assert_ne!(other_test.split_sha256, test_split.split_sha256);
        crate::backbone::tiny::write_tiny_model(&dir.0, 1).unwrap();
        let other_weights = RunInputs::of("tiny", &dir.0, &data).unwrap();
        changed.push(RunFingerprint::new(&design, &other_weights, &settings));
        for (i, c) in changed.iter().enumerate() {
            assert_ne!(c, &base, "change {i} kept the fingerprint");
        }
        assert_eq!(changed[2].steps, 4);
    }
}
