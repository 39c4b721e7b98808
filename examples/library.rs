//! pets as a library: a tiny random encoder written to a scratch folder (nothing is downloaded),
//! a design read from RON, trained and evaluated, then a small search of a space scored by an
//! objective of the caller's own: the area under the dev-accuracy curve (the mean over epochs),
//! which favours designs that learn early, traded against trainable parameters by NSGA-II.
//!
//! `cargo run --release --example library` (seconds on a CPU).

use pets::assets::Cache;
use pets::backbone::config::BertConfig;
use pets::backbone::tiny::write_tiny_model;
use pets::data::{TaskSource, TestSplit};
use pets::device::DeviceKind;
use pets::run::{train_design, PreparedTask, RunMetrics, RunSettings};
use pets::search::{canonical, Budget, Evaluated, ProposalContext, SamplerKind, SearchSpace};
use pets::spec::Design;
use pets::train::TrainConfig;
use std::collections::HashSet;
use std::error::Error;
use std::path::Path;

/// LoRA of rank 4 on the query projection of every layer.
const DESIGN: &str = r#"Design(
    name: "lora-q4",
    modules: [Module(form: Lora(r: 4, alpha: 8.0), site: Projection(Query))],
    learning_rate: Some(0.01),
)"#;

/// LoRA on W_q and W_v, a parallel FFN bottleneck, or both; widths 1 to 16.
const SPACE: &str = r#"SearchSpace(
    name: "small",
    slots: [
        Slot(name: "attn", optional: true, options: [
            ModuleOption(
                form: Lora(alpha: Ratio([2.0])),
                sites: [[Projection(Query), Projection(Value)]],
                width: LogRange(1, 16),
            ),
        ]),
        Slot(name: "ffn", optional: true, options: [
            ModuleOption(
                form: Bottleneck(activations: [Relu]),
                sites: [[Ffn]],
                insertion: [Parallel],
                width: LogRange(1, 16),
            ),
        ]),
    ],
)"#;

/// The caller's objective: mean dev accuracy over the epochs (higher is better).
fn learning_curve_area(metrics: &RunMetrics) -> f64 {
    let epochs = &metrics.epochs;
    epochs.iter().map(|e| e.dev_accuracy).sum::<f64>() / epochs.len().max(1) as f64
}

fn main() -> Result<(), Box<dyn Error>> {
    let dir = std::env::temp_dir().join(format!("pets-example-{}", std::process::id()));
    let model_dir = dir.join("model");
    write_tiny_model(&model_dir, 0)?;
    let data = dir.join("reviews.tsv");
    write_reviews(&data)?;

    // A model folder and a data file: the cache is only consulted for named models and tasks.
    let cache = Cache::from_env();
    let settings = RunSettings {
        model: model_dir.display().to_string(),
        task: TaskSource::File {
            path: data,
            text_column: "text".into(),
            label_column: "label".into(),
        },
        test: TestSplit::default(),
        max_len: 16,
        dropout: 0.0,
        train: TrainConfig {
            epochs: 2,
            batch_size: 16,
            progress: false,
            ..TrainConfig::default()
        },
        lr_override: Some(0.01),
        device: DeviceKind::Cpu.open()?,
    };
    let task = PreparedTask::prepare(&settings, &cache)?;

    // One design: trained, evaluated on dev during training and on the test split after it.
    let design = Design::from_ron(DESIGN, "DESIGN")?;
    let (metrics, _model) = train_design(&design, &task, &settings, None)?;
    println!(
        "{}: {} trainable parameters, dev accuracy {:.3}, test accuracy {:.3}",
        design.name,
        metrics.trainable_params,
        metrics.accuracy,
        metrics.test_accuracy.unwrap_or(f64::NAN)
    );

    // A search: NSGA-II proposes, we train and score, the history drives the next proposals.
    let space = SearchSpace::from_ron(SPACE, "SPACE")?;
    let shape = BertConfig::from_file(&task.model_dir.join("config.json"))?.shape();
    let budget = Budget::Percent(5.0).limit(shape.backbone_params());
    let mut sampler = SamplerKind::Nsga2.build(7, 3);
    let mut history: Vec<Evaluated> = Vec::new();
    let mut seen = HashSet::new();
    for generation in 0..2 {
        let proposals = {
            let ctx = ProposalContext {
                space: &space,
                shape,
                budget_params: budget,
                seen: &seen,
            };
            sampler.propose(&ctx, &history, 3)?
        };
        for design in proposals {
            let (metrics, _model) = train_design(&design, &task, &settings, None)?;
            let score = learning_curve_area(&metrics);
            println!(
                "generation {generation}: {:<40} {:>6} parameters, objective {score:.3}",
                design.name, metrics.trainable_params
            );
            seen.insert(canonical(&design));
            history.push(Evaluated {
                canonical: canonical(&design),
                // The samplers maximise `accuracy` against `params`: here, our objective.
                accuracy: score,
                params: metrics.trainable_params,
                fidelity: metrics.steps,
                design,
            });
        }
    }
    if let Some(best) = history
        .iter()
        .max_by(|a, b| a.accuracy.total_cmp(&b.accuracy))
    {
        println!(
            "best by the objective: {} ({:.3}, {} parameters)",
            best.design.name, best.accuracy, best.params
        );
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// 160 sentences whose label is whether they praise: learnable by the tiny model.
fn write_reviews(path: &Path) -> std::io::Result<()> {
    let (good, bad) = (["great", "good", "fine"], ["awful", "bad", "dull"]);
    let subjects = ["the film", "a movie", "the plot", "the actors", "the story"];
    let mut tsv = String::from("text\tlabel\n");
    for i in 0..160 {
        let (word, label) = if i % 2 == 0 {
            (good[i % 3], "pos")
        } else {
            (bad[i % 3], "neg")
        };
        tsv.push_str(&format!("{} was very {word} .\t{label}\n", subjects[i % 5]));
    }
    std::fs::write(path, tsv)
}
