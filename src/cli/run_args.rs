//! The run settings the training commands share (`train`, `search`, `worker`, `baselines`):
//! the task, the model, the protocol and the device, parsed into [`RunSettings`].

use anyhow::{bail, Context, Result};
use clap::Args;
use pets::data::{SplitOptions, TaskSource, TestSplit};
use pets::device::DeviceKind;
use pets::run::RunSettings;
use pets::train::TrainConfig;
use std::path::PathBuf;

#[derive(Args, Clone)]
pub struct RunArgs {
    /// Built-in task (mr, imdb, bbc, tweets) or a CSV/TSV/JSONL file.
    #[arg(long, default_value = "mr")]
    pub task: String,
    #[arg(long)]
    pub text_column: Option<String>,
    #[arg(long)]
    pub label_column: Option<String>,
    /// A test file with the same columns as `--task`: then no test split is carved from it.
    #[arg(long, value_name = "FILE", conflicts_with = "test_fraction")]
    pub test: Option<PathBuf>,
    /// Share of each class carved from the task as the held-out test split (default 0.1;
    /// 0: no test split). Dev takes 0.1, so it must be in [0, 0.9).
    #[arg(long, value_name = "F")]
    pub test_fraction: Option<f64>,
    #[arg(long, default_value = "minilm-l6")]
    pub model: String,
    /// Training epochs (a search's full fidelity); default 3, and 1 for `search`.
    #[arg(long)]
    pub epochs: Option<usize>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Overrides the design's own learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 64)]
    pub max_len: usize,
    #[arg(long, default_value_t = 0.01)]
    pub weight_decay: f64,
    /// Backbone dropout during training (0 = off, the default).
    #[arg(long, default_value_t = 0.0)]
    pub dropout: f32,
    /// Stop after this many optimizer steps.
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Run the frozen layers below a design's lowest module every step instead of once per
    /// dataset (the results are the same; for timing comparisons).
    #[arg(long)]
    pub no_frozen_cache: bool,
    /// Batch in shuffled order only, without grouping sentences of similar length (more
    /// padding; for measuring what bucketing changes).
    #[arg(long)]
    pub no_bucketing: bool,
    /// cpu or cuda
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

impl RunArgs {
    /// The settings of a run, `default_epochs` unless `--epochs` is given.
    pub fn settings(&self, default_epochs: usize) -> Result<RunSettings> {
        let file = |path: PathBuf| TaskSource::File {
            path,
            text_column: self.text_column.clone().unwrap_or_else(|| "text".into()),
            label_column: self.label_column.clone().unwrap_or_else(|| "label".into()),
        };
        let task = match (&self.text_column, &self.label_column) {
            (None, None) => TaskSource::Builtin(self.task.clone()),
            _ => file(PathBuf::from(&self.task)),
        };
        let test = match (&self.test, self.test_fraction) {
            (Some(path), _) => TestSplit::File(file(path.clone())),
            (None, Some(f)) => {
                let dev = SplitOptions::default().dev_fraction;
                if f.is_nan() || f < 0.0 || f + dev >= 1.0 {
                    bail!(
                        "--test-fraction must be at least 0 and, with dev's {dev}, below 1; got {f}"
                    );
                }
                TestSplit::Fraction(f)
            }
            (None, None) => TestSplit::default(),
        };
        check_lr(self.lr)?;
        let device = device(&self.device)?;
        let train = TrainConfig {
            epochs: self.epochs.unwrap_or(default_epochs),
            batch_size: self.batch_size,
            weight_decay: self.weight_decay,
            seed: self.seed,
            max_steps: self.max_steps,
            cache_frozen: !self.no_frozen_cache,
            bucket_by_length: !self.no_bucketing,
            progress: !self.quiet,
            ..TrainConfig::default()
        };
        Ok(RunSettings {
            model: self.model.clone(),
            task,
            test,
            max_len: self.max_len,
            dropout: self.dropout,
            train,
            lr_override: self.lr,
            device,
        })
    }
}

/// Refuses a `--lr` that cannot train: 0, negative or not finite.
pub fn check_lr(lr: Option<f64>) -> Result<()> {
    match lr {
        Some(lr) if !pets::spec::is_usable_learning_rate(lr) => {
            bail!("--lr {lr}: expected a positive, finite learning rate")
        }
        _ => Ok(()),
    }
}

/// Parses `--device`.
pub fn device_kind(name: &str) -> Result<DeviceKind> {
    match name.parse() {
        Ok(kind) => Ok(kind),
        Err(_) => bail!("--device {name}: expected cpu or cuda"),
    }
}

/// Parses and opens `--device`.
pub fn device(name: &str) -> Result<candle_core::Device> {
    device_kind(name)?.open().context("opening the CUDA device")
}
