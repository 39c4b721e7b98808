//! Classifying texts with an exported folder, in batches: labels with probabilities and logits,
//! rendered as a table, TSV or JSON lines, or the accuracy on labelled input.

use crate::batch::{make_batch, plan_batches, BatchPlan, TokenizedSplit};
use crate::data::{self, DataError};
use crate::export::{ExportError, LoadedAdapter};
use crate::train::{self, Classifier};
use candle_core::D;
use std::path::Path;

mod labels;

use labels::{gold_index, label_hint};

/// How predictions and accuracies are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OutputFormat {
    /// A table for reading; long texts are cut.
    #[default]
    Table,
    /// Tab-separated, one row per text, a probability column per label.
    Tsv,
    /// One JSON object per line, with the logits.
    Jsonl,
}

/// One text to classify; `line` and `gold` come from a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// The text's line in its file (1-based), for errors and output.
    pub line: Option<u64>,
    /// The text to classify.
    pub text: String,
    /// The text's label as written in the file.
    pub gold: Option<String>,
}

/// One text's classification.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Index into the adapter's label names.
    pub label: usize,
    /// Softmax of the logits, per label.
    pub probabilities: Vec<f32>,
    /// The head's outputs, per label.
    pub logits: Vec<f32>,
}

/// The share of labelled inputs classified correctly.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Accuracy {
    /// `correct / count`, as training computes it.
    pub accuracy: f64,
    pub correct: usize,
    /// Labelled inputs evaluated.
    pub count: usize,
}

/// Classifies `texts` in batches of `batch_size` (similar lengths together, so little padding);
/// results are in the order of `texts`.
pub fn predict(
    adapter: &LoadedAdapter,
    texts: &[&str],
    batch_size: usize,
) -> crate::Result<Vec<Prediction>> {
    let split = TokenizedSplit {
        labels: vec![0; texts.len()],
        ids: adapter.text.encode(texts)?,
    };
    let plan = BatchPlan {
        batch_size: batch_size.max(1),
        shuffle_seed: None,
        bucket_by_length: true,
    };
    let mut out: Vec<Option<Prediction>> = vec![None; texts.len()];
    for indices in plan_batches(&split, &plan) {
        let batch = make_batch(&split, &indices, adapter.text.pad_id, adapter.device())?;
        let logits =
            crate::backbone::encoder::no_grad(|| adapter.model.logits(&batch, false))?.detach();
        let probs = candle_nn::ops::softmax(&logits, D::Minus1)?.to_vec2::<f32>()?;
        for ((&i, logits), probabilities) in indices.iter().zip(logits.to_vec2::<f32>()?).zip(probs)
        {
            let label = argmax(&probabilities);
            out[i] = Some(Prediction {
                label,
                probabilities,
                logits,
            });
        }
    }
    out.into_iter()
        .map(|p| p.ok_or_else(|| crate::Error::Internal("a text was never batched".into())))
        .collect()
}

/// Accuracy on labelled inputs, computed by `train::evaluate` (the number training reports).
/// Gold labels are matched to the adapter's label names; `origin` names the input in errors.
pub fn evaluate(
    adapter: &LoadedAdapter,
    inputs: &[Input],
    origin: &str,
    batch_size: usize,
) -> crate::Result<Accuracy> {
    let names = adapter.label_names();
    let source = adapter.source_labels();
    let mut labels = Vec::with_capacity(inputs.len());
    for (index, input) in inputs.iter().enumerate() {
        let gold = input.gold.as_deref().unwrap_or_default();
        let label = gold_index(names, &source, gold).ok_or_else(|| ExportError::UnknownLabel {
            path: origin.to_string(),
            line: input.line.unwrap_or(index as u64 + 1),
            label: gold.to_string(),
            known: names.join(", "),
            hint: label_hint(names, &source, gold),
        })?;
        labels.push(label as u32);
    }
    let texts: Vec<&str> = inputs.iter().map(|i| i.text.as_str()).collect();
    let split = TokenizedSplit {
        ids: adapter.text.encode(&texts)?,
        labels,
    };
    let model: &dyn Classifier = &adapter.model;
    let result = train::evaluate(
        model,
        &split,
        adapter.text.pad_id,
        adapter.device(),
        batch_size,
    )?;
    Ok(Accuracy {
        accuracy: result.accuracy,
        correct: (result.accuracy * split.len() as f64).round() as usize,
        count: split.len(),
    })
}

fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best
}

/// Reads the texts of a CSV, TSV or JSON-lines file with columns `text_column` and, when the file
/// has it (always, if `labels_required`), `label_column`.
pub fn read_inputs(
    path: &Path,
    text_column: &str,
    label_column: &str,
    labels_required: bool,
) -> crate::Result<Vec<Input>> {
    let rows = match data::read_labelled_file(path, text_column, Some(label_column)) {
        // Labels are optional for plain prediction.
        Err(DataError::MissingColumn { column, .. })
            if column == label_column && !labels_required =>
        {
            data::read_labelled_file(path, text_column, None)?
        }
        other => other?,
    };
    Ok(rows
        .into_iter()
        .map(|r| Input {
            line: Some(r.line),
            text: r.text,
            gold: r.label,
        })
        .collect())
}

/// The accuracy on `origin` (a name for the input) in `format`.
pub fn render_accuracy(format: OutputFormat, acc: &Accuracy, origin: &str) -> String {
    match format {
        OutputFormat::Table => format!(
            "accuracy {:.4} ({}/{}) on {origin}\n",
            acc.accuracy, acc.correct, acc.count
        ),
        OutputFormat::Tsv => format!(
            "accuracy\tcorrect\tcount\n{}\t{}\t{}\n",
            acc.accuracy, acc.correct, acc.count
        ),
        OutputFormat::Jsonl => format!(
            "{}\n",
            serde_json::json!({"accuracy": acc.accuracy, "correct": acc.correct, "count": acc.count})
        ),
    }
}

/// The predictions in `format`; TSV and table cells have tabs and newlines turned into spaces.
pub fn render(
    format: OutputFormat,
    names: &[String],
    inputs: &[Input],
    predictions: &[Prediction],
) -> String {
    let clean = |t: &str| t.replace(['\t', '\n', '\r'], " ");
    let name = |p: &Prediction| names.get(p.label).cloned().unwrap_or_default();
    let pairs = inputs.iter().zip(predictions);
    match format {
        OutputFormat::Jsonl => pairs
            .map(|(input, p)| {
                let probs: serde_json::Map<String, serde_json::Value> = names
                    .iter()
                    .zip(&p.probabilities)
                    .map(|(n, v)| (n.clone(), serde_json::json!(v)))
                    .collect();
                let mut row = serde_json::json!({
                    "text": input.text, "label": name(p), "probabilities": probs, "logits": p.logits,
                });
                if let Some(line) = input.line {
                    row["line"] = serde_json::json!(line);
                }
                if let Some(gold) = &input.gold {
                    row["gold"] = serde_json::json!(gold);
                }
                format!("{row}\n")
            })
            .collect(),
        OutputFormat::Tsv => {
            let header: Vec<String> = names.iter().map(|n| format!("p_{}", clean(n))).collect();
            let mut text = format!("text\tlabel\t{}\n", header.join("\t"));
            for (input, p) in pairs {
                let probs: Vec<String> = p.probabilities.iter().map(|v| format!("{v:.6}")).collect();
                text.push_str(&format!("{}\t{}\t{}\n", clean(&input.text), clean(&name(p)), probs.join("\t")));
            }
            text
        }
        OutputFormat::Table => {
            let mut builder = tabled::builder::Builder::default();
            let mut header = vec!["text".to_string(), "label".to_string()];
            header.extend(names.iter().map(|n| format!("p({n})")));
            builder.push_record(header);
            for (input, p) in pairs {
                let mut text = clean(&input.text);
                if text.chars().count() > 60 {
                    text = text.chars().take(57).collect::<String>() + "...";
                }
                let mut row = vec![text, name(p)];
                row.extend(p.probabilities.iter().map(|v| format!("{v:.3}")));
                builder.push_record(row);
            }
            let style = tabled::settings::Style::sharp();
            format!("{}\n", builder.build().with(style))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_picks_the_largest() {
        assert_eq!(argmax(&[0.2, 0.5, 0.3]), 1);
    }

    #[test]
    fn tsv_and_jsonl_rows() {
        let names = ["neg".to_string(), "pos".to_string()];
        let inputs = [Input {
            line: Some(3),
            text: "a\tb".into(),
            gold: Some("pos".into()),
        }];
        let predictions = [Prediction {
            label: 1,
            probabilities: vec![0.25, 0.75],
            logits: vec![-1.0, 0.5],
        }];
        let tsv = render(OutputFormat::Tsv, &names, &inputs, &predictions);
        assert_eq!(
            tsv,
            "text\tlabel\tp_neg\tp_pos\na b\tpos\t0.250000\t0.750000\n"
        );
        let jsonl = render(OutputFormat::Jsonl, &names, &inputs, &predictions);
        let row: serde_json::Value = serde_json::from_str(jsonl.trim()).unwrap_or_default();
        assert_eq!(row["label"], "pos");
        assert_eq!(row["logits"], serde_json::json!([-1.0, 0.5]));
        assert_eq!(row["probabilities"]["pos"], 0.75);
        assert_eq!(row["line"], 3);
        assert_eq!(row["gold"], "pos");
        let table = render(OutputFormat::Table, &names, &inputs, &predictions);
        assert!(
            table.contains("p(pos)") && table.contains("0.750"),
            "{table}"
        );
    }
}
