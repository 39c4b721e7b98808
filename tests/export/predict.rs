//! A run folder from `train_design`, exported and used by `pets predict`.

use super::*;

/// Sentences whose label is whether they praise: a task the tiny model can learn.
fn write_reviews(path: &Path, n: usize) {
    let (good, bad) = (["great", "good", "fine"], ["awful", "bad", "dull"]);
    let subjects = ["the film", "a movie", "the plot", "the actors", "the story"];
    let mut out = String::from("text\tlabel\n");
    for i in 0..n {
        let (word, label) = if i % 2 == 0 {
            (good[i % 3], "pos")
        } else {
            (bad[i % 3], "neg")
        };
        out.push_str(&format!("{} was very {word} .\t{label}\n", subjects[i % 5]));
    }
    std::fs::write(path, out).unwrap();
}

#[test]
fn a_run_folder_exports_and_predict_evaluate_matches_training() {
    use pets::data::TaskSource;
    use pets::predict::{evaluate, predict, read_inputs, render, render_accuracy, OutputFormat};
    use pets::run::{train_design, PreparedTask, RunSettings};
    let f = fixture("run");
    let data = f.dir.join("reviews.tsv");
    write_reviews(&data, 160);
    let settings = RunSettings {
        model: f.model.display().to_string(),
        task: TaskSource::File {
            path: data,
            text_column: "text".into(),
            label_column: "label".into(),
        },
        test: pets::data::TestSplit::default(),
        max_len: 16,
        dropout: 0.0,
        train: pets::train::TrainConfig {
            epochs: 1,
            batch_size: 16,
            max_steps: Some(6),
            progress: false,
            ..Default::default()
        },
        lr_override: Some(0.01),
        device: Device::Cpu,
    };
    let task = PreparedTask::prepare(&settings, &f.cache).unwrap();
    let run = f.dir.join("run");
    let (metrics, model) = train_design(&preset("lora"), &task, &settings, Some(&run)).unwrap();
    let expected = pets::train::evaluate(&model, &task.dev, task.pad_id, &Device::Cpu, 64).unwrap();

    let out = f.dir.join("adapter");
    let source = pets::export::AdapterSource::from_run(&run).unwrap();
    let options = pets::export::ExportOptions {
        format: ExportFormat::Pets,
        merge: false,
        force: false,
    };
    let manifest = export(&source, &out, &options, &f.cache).unwrap();
    assert_eq!(manifest.label_names, task.dataset.label_names);
    assert_eq!(manifest.max_len, 16);
    assert_eq!(manifest.metrics["accuracy"], metrics.accuracy);

    let dev = f.dir.join("dev.jsonl");
    let names = &task.dataset.label_names;
    let lines: String = task
        .dataset
        .dev
        .iter()
        .map(|e| {
            format!(
                "{}\n",
                serde_json::json!({"text": e.text, "label": names[e.label as usize]})
            )
        })
        .collect();
    std::fs::write(&dev, lines).unwrap();
    let adapter = load_adapter(&out, &f.cache, &Device::Cpu).unwrap();
    let inputs = read_inputs(&dev, "text", "label", true).unwrap();
    let origin = dev.display().to_string();
    let accuracy = evaluate(&adapter, &inputs, &origin, 5).unwrap();
    let printed = render_accuracy(OutputFormat::Jsonl, &accuracy, &origin);
    let summary: serde_json::Value = serde_json::from_str(&printed).unwrap();
    assert_eq!(summary["accuracy"], expected.accuracy, "{summary}");
    assert_eq!(summary["count"], task.dev.len());
    assert_eq!(expected.accuracy, metrics.accuracy);

    // Predictions: one JSON line per text with label, probabilities and the in-memory logits.
    let predictions = predict(&adapter, TEXTS, 5).unwrap();
    let texts: Vec<pets::predict::Input> = TEXTS
        .iter()
        .map(|t| pets::predict::Input {
            line: None,
            text: t.to_string(),
            gold: None,
        })
        .collect();
    let names = adapter.label_names();
    let printed = render(OutputFormat::Jsonl, names, &texts, &predictions);
    let rows: Vec<serde_json::Value> = printed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), TEXTS.len());
    let ours: Vec<Vec<f32>> = rows
        .iter()
        .map(|r| serde_json::from_value(r["logits"].clone()).unwrap())
        .collect();
    assert!(max_diff(&ours, &logits(&model, &batch(&f))) <= 1e-5);
    assert!(names.contains(&rows[0]["label"].as_str().unwrap().to_string()));
    let table = render(OutputFormat::Table, names, &texts, &predictions);
    assert!(table.contains("p(pos)"), "{table}");

    // An unseen label is an error naming its line.
    std::fs::write(
        &dev,
        "{\"text\": \"good\", \"label\": \"pos\"}\n{\"text\": \"bad\", \"label\": \"meh\"}\n",
    )
    .unwrap();
    let inputs = read_inputs(&dev, "text", "label", true).unwrap();
    let err = error_of(evaluate(&adapter, &inputs, &origin, 5));
    assert!(err.contains("line 2") && err.contains("\"meh\""), "{err}");

    // A run folder from before label names were recorded is refused by name.
    let metrics_path = run.join("metrics.json");
    let mut old: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&metrics_path).unwrap()).unwrap();
    old.as_object_mut().unwrap().remove("label_names");
    std::fs::write(&metrics_path, old.to_string()).unwrap();
    let err = error_of(pets::export::AdapterSource::from_run(&run));
    assert!(
        err.contains("metrics.json") && err.contains("label_names"),
        "{err}"
    );
}
