//! One training run end to end: assets → dataset → tokens → compiled model → training → run folder;
//! and whether a finished run folder can stand for a new run (its [`RunFingerprint`]).

pub mod fingerprint;
mod packed;

pub use fingerprint::{RunFingerprint, RunInputs};
pub use packed::{train_designs_packed, PackedRun};

use crate::assets::Cache;
use crate::backbone::config::BertConfig;
use crate::backbone::encoder::{Encoder, RunOptions};
use crate::batch::TokenizedSplit;
use crate::data::{self, Dataset, SplitOptions, TaskSource, TestSplit};
use crate::error::io_err;
use crate::model::AdaptedModel;
use crate::spec::Design;
use crate::tokenize::TextEncoder;
use crate::train::{self, EpochRecord, TrainConfig};
use candle_core::Device;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Everything one run needs besides the design.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// A known model name (`minilm-l6`) or a path to an HF-style folder.
    pub model: String,
    pub task: TaskSource,
    /// Where the held-out test split comes from (`--test`, `--test-fraction`).
    pub test: TestSplit,
    pub max_len: usize,
    pub dropout: f32,
    pub train: TrainConfig,
    /// An explicit learning rate (`--lr`); otherwise the design's own, else `train.lr`.
    pub lr_override: Option<f64>,
    pub device: Device,
}

impl RunSettings {
    /// The learning rate `design` trains with: `--lr`, else the design's own, else the default.
    pub fn learning_rate(&self, design: &Design) -> f64 {
        self.lr_override
            .or(design.learning_rate)
            .unwrap_or(self.train.lr)
    }
}

/// A task tokenised for one model: built once, reused by every design trained on it.
pub struct PreparedTask {
    pub dataset: Dataset,
    pub model_dir: PathBuf,
    pub train: TokenizedSplit,
    pub dev: TokenizedSplit,
    /// The held-out test split (possibly empty): evaluated once after training, never trained on.
    pub test: TokenizedSplit,
    pub pad_id: u32,
    /// The model's and the split's hashes, for every run's fingerprint.
    pub inputs: RunInputs,
}

impl PreparedTask {
    pub fn prepare(settings: &RunSettings, cache: &Cache) -> crate::Result<PreparedTask> {
        let model_dir = cache.model_dir(&settings.model)?;
        let dataset = data::load_task_with_test(
            &settings.task,
            &settings.test,
            cache,
            &SplitOptions::default(),
        )?;
        let config = BertConfig::from_file(&model_dir.join("config.json"))?;
        let text = TextEncoder::from_file(&model_dir.join("tokenizer.json"), settings.max_len)?
            .fit_model(&config)?;
        Ok(PreparedTask {
            inputs: RunInputs::of(&settings.model, &model_dir, &dataset)?,
            train: text.encode_split(&dataset.train)?,
            dev: text.encode_split(&dataset.dev)?,
            test: text.encode_split(&dataset.test)?,
            pad_id: text.pad_id,
            dataset,
            model_dir,
        })
    }
}

/// What `pets train` writes to `metrics.json`.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct RunMetrics {
    pub design: String,
    pub model: String,
    pub task: String,
    /// Class names in head order (index i of the logits is `label_names[i]`): export needs them.
    #[serde(default)]
    pub label_names: Vec<String>,
    /// The same classes as the task's source labels them (`0`, `1` for mr): `predict --evaluate`
    /// accepts these too. Empty in runs of older pets.
    #[serde(default)]
    pub source_labels: Vec<String>,
    /// Token limit the task was encoded with; predictions must truncate the same way.
    #[serde(default)]
    pub max_len: usize,
    pub accuracy: f64,
    pub best_epoch: usize,
    /// Design tensors only (modules and unfrozen backbone parts), the head excluded.
    pub trainable_params: usize,
    pub head_params: usize,
    pub backbone_params: usize,
    /// `trainable_params` as a percentage of `backbone_params` (the encoder as run, no pooler).
    pub trainable_percent: f64,
    pub train_seconds: f64,
    pub steps: usize,
    pub train_examples: usize,
    pub dev_examples: usize,
    /// Accuracy on the test split with the best-dev weights; `None` without a test split.
    #[serde(default)]
    pub test_accuracy: Option<f64>,
    #[serde(default)]
    pub test_examples: usize,
    /// One char per test example in test-split order: `1` predicted right, `0` wrong.
    #[serde(default)]
    pub test_correct: Option<String>,
    pub seed: u64,
    pub learning_rate: f64,
    pub epochs: Vec<EpochRecord>,
    pub device: String,
    /// What the run computed; a finished run is reused only for the same fingerprint (runs of
    /// older pets have none and are trained again).
    #[serde(default)]
    pub fingerprint: Option<RunFingerprint>,
}

/// Trains `design` on a prepared task; writes the run folder when `out` is given.
pub fn train_design(
    design: &Design,
    task: &PreparedTask,
    settings: &RunSettings,
    out: Option<&Path>,
) -> crate::Result<(RunMetrics, AdaptedModel)> {
    let encoder = load_encoder(task, settings)?;
    let classes = task.dataset.label_names.len();
    let model = AdaptedModel::build(encoder, design, classes, settings.train.seed)?;
    let mut config = settings.train.clone();
    config.lr = settings.learning_rate(design);
    let vars = model.trainable_vars();
    let outcome = train::train(
        &model,
        &vars,
        &task.train,
        &task.dev,
        task.pad_id,
        &settings.device,
        &config,
    )?;
    // After training, with the best-dev weights restored: the loop above never saw the test split.
    let test = train::evaluate_test(
        &model,
        &task.test,
        task.pad_id,
        &settings.device,
        config.eval_batch_size,
    )?;
    let metrics = run_metrics(design, task, settings, &config, outcome, &model, test);
    if let Some(dir) = out {
        write_run(dir, design, &metrics, &model)?;
    }
    Ok((metrics, model))
}

/// The frozen model of `task`, on the settings' device, with their dropout.
fn load_encoder(task: &PreparedTask, settings: &RunSettings) -> crate::Result<Encoder> {
    let mut encoder = Encoder::from_folder(&task.model_dir, &settings.device)?;
    encoder.options = RunOptions {
        dropout: settings.dropout,
    };
    Ok(encoder)
}

/// The metrics of `model`, trained on `task` as `outcome` says, with its test evaluation.
fn run_metrics(
    design: &Design,
    task: &PreparedTask,
    settings: &RunSettings,
    config: &TrainConfig,
    outcome: train::TrainOutcome,
    model: &AdaptedModel,
    test: Option<(train::Evaluation, String)>,
) -> RunMetrics {
    let (test_accuracy, test_correct) = match test {
        Some((eval, correct)) => (Some(eval.accuracy), Some(correct)),
        None => (None, None),
    };
    RunMetrics {
        design: design.name.clone(),
        model: settings.model.clone(),
        task: task.dataset.name.clone(),
        label_names: task.dataset.label_names.clone(),
        source_labels: task.dataset.source_labels.clone(),
        max_len: settings.max_len,
        accuracy: outcome.best_accuracy,
        best_epoch: outcome.best_epoch,
        trainable_params: model.cost.trainable,
        head_params: model.cost.head,
        backbone_params: model.cost.backbone,
        trainable_percent: model.cost.percent(),
        train_seconds: outcome.train_seconds,
        steps: outcome.steps,
        train_examples: task.train.len(),
        dev_examples: task.dev.len(),
        test_accuracy,
        test_examples: task.test.len(),
        test_correct,
        seed: config.seed,
        learning_rate: config.lr,
        epochs: outcome.epochs,
        device: device_name(&settings.device),
        fingerprint: Some(RunFingerprint::new(design, &task.inputs, settings)),
    }
}

/// A run folder: `design.ron`, `metrics.json`, `adapter.safetensors` (trainable tensors only).
fn write_run(
    dir: &Path,
    design: &Design,
    metrics: &RunMetrics,
    model: &AdaptedModel,
) -> crate::Result<()> {
    std::fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
    let json = serde_json::to_string_pretty(metrics).unwrap_or_default();
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(io_err(format!("writing {}", path.display())))
    };
    write("design.ron", &design.to_ron())?;
    write("metrics.json", &json)?;
    model.store.save(&dir.join("adapter.safetensors"))?;
    Ok(())
}

/// A finished run folder's metrics when they were made with the same [`RunFingerprint`] as
/// `expected` (so a long `pets baselines` or `pets unified` resumes, and an edited design, model,
/// task or protocol trains again).
pub fn finished_run(dir: &Path, expected: &RunFingerprint) -> Option<RunMetrics> {
    let text = std::fs::read_to_string(dir.join("metrics.json")).ok()?;
    let metrics: RunMetrics = serde_json::from_str(&text).ok()?;
    (metrics.fingerprint.as_ref() == Some(expected)).then_some(metrics)
}

/// [`finished_run`] for training `design` on a prepared task under `settings`.
pub fn reusable_run(
    dir: &Path,
    design: &Design,
    task: &PreparedTask,
    settings: &RunSettings,
) -> Option<RunMetrics> {
    finished_run(dir, &RunFingerprint::new(design, &task.inputs, settings))
}

/// The device a name gives (`cpu` or `cuda`, GPU 0; see [`DeviceKind::open`]); `None` for any
/// other name.
///
/// [`DeviceKind::open`]: crate::device::DeviceKind::open
pub fn open_device(name: &str) -> candle_core::Result<Option<Device>> {
    match name.parse::<crate::device::DeviceKind>() {
        Ok(kind) => kind.open().map(Some),
        Err(_) => Ok(None),
    }
}

/// Makes `device`'s CUDA context current on the calling thread (nothing on the CPU). Every thread
/// that touches GPU memory needs it first, freeing a tensor included: the driver refuses calls
/// from a thread without a context, and cudarc reports a failed free at the next call of any
/// thread (`CUDA_ERROR_INVALID_CONTEXT` in some other trial).
pub fn bind_thread(device: &Device) -> candle_core::Result<()> {
    match device {
        #[cfg(feature = "cuda")]
        Device::Cuda(cuda) => crate::backbone::ops::cuda::bind_to_thread(cuda),
        _ => Ok(()),
    }
}

pub fn device_name(device: &Device) -> String {
    match device {
        Device::Cpu => format!("cpu ({} threads)", rayon::current_num_threads()),
        Device::Cuda(_) => "cuda".into(),
        Device::Metal(_) => "metal".into(),
    }
}
