//! The `pets` binary end to end on a tiny model folder and a small labelled file (no downloads).

mod binary;

use binary::{pets, scratch, text};
use std::path::Path;

/// Sentences whose label is whether they praise: a task the tiny model can learn.
fn write_reviews(path: &Path, n: usize) {
    let good = ["great", "good", "fine"];
    let bad = ["awful", "bad", "dull"];
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
fn validate_graph_and_train_a_preset_on_a_tiny_model() {
    let dir = scratch("cli-train");
    let model = dir.join("model");
    pets::backbone::tiny::write_tiny_model(&model, 0).unwrap();
    let model_arg = model.to_str().unwrap();

    let out = pets(
        &[
            "validate",
            "search_spaces/presets/mam.ron",
            "--model",
            model_arg,
        ],
        &dir,
    );
    assert!(out.status.success(), "{}", text(&out));
    let report = text(&out);
    // Tiny encoder: 2 layers, hidden 48 → prefix 2·8·48 and PA 2·16·48+48+16 per layer.
    let expected = 2 * (2 * 8 * 48) + 2 * (2 * 16 * 48 + 48 + 16);
    assert!(report.contains(&pets::report::group(expected)), "{report}");

    let out = pets(
        &[
            "graph",
            "search_spaces/presets/mam.ron",
            "--model",
            model_arg,
            "--dot",
        ],
        &dir,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("digraph design {"));

    let data = dir.join("reviews.tsv");
    write_reviews(&data, 400);
    let run = dir.join("run");
    let out = pets(
        &[
            "train",
            "--design",
            "search_spaces/presets/scaled_parallel_adapter.ron",
            "--model",
            model_arg,
            "--task",
            data.to_str().unwrap(),
            "--text-column",
            "text",
            "--label-column",
            "label",
            "--epochs",
            "8",
            "--lr",
            "0.01",
            "--batch-size",
            "16",
            "--quiet",
            "--out",
            run.to_str().unwrap(),
        ],
        &dir,
    );
    assert!(out.status.success(), "{}", text(&out));
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("metrics.json")).unwrap()).unwrap();
    for key in [
        "accuracy",
        "trainable_params",
        "head_params",
        "backbone_params",
        "trainable_percent",
        "train_seconds",
        "steps",
    ] {
        assert!(metrics.get(key).is_some(), "metrics.json lacks {key}");
    }
    assert_eq!(metrics["trainable_params"], 2 * (2 * 24 * 48 + 48 + 24));
    assert_eq!(metrics["head_params"], 2 * 48 + 2);
    assert!(metrics["accuracy"].as_f64().unwrap() >= 0.9, "{metrics}");
    assert!(run.join("adapter.safetensors").exists() && run.join("design.ron").exists());
}

#[test]
fn bad_inputs_exit_non_zero_with_a_clear_message() {
    let dir = scratch("cli-bad");
    let model = dir.join("model");
    pets::backbone::tiny::write_tiny_model(&model, 0).unwrap();
    let bad = dir.join("bad.ron");
    std::fs::write(
        &bad,
        "Design(\n  name: \"x\",\n  modules: [Module(form: Prefix(l: 4), site: Ffn)],\n)",
    )
    .unwrap();
    let out = pets(
        &[
            "validate",
            bad.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
        ],
        &dir,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("module m0: field `site`"),
        "{}",
        text(&out)
    );

    let out = pets(
        &[
            "validate",
            "no/such.ron",
            "--model",
            model.to_str().unwrap(),
        ],
        &dir,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("no/such.ron"), "{}", text(&out));

    std::fs::remove_file(model.join("tokenizer.json")).unwrap();
    let out = pets(
        &[
            "validate",
            "search_spaces/presets/lora.ron",
            "--model",
            model.to_str().unwrap(),
        ],
        &dir,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("tokenizer.json"), "{}", text(&out));
}

#[test]
fn validate_reads_a_search_space_as_a_space() {
    let dir = scratch("cli-space");
    let model = dir.join("model");
    pets::backbone::tiny::write_tiny_model(&model, 0).unwrap();
    let m = model.to_str().unwrap();
    let validate = |extra: &[&str]| {
        let mut args = vec!["validate", "search_spaces/mam.ron", "--model", m];
        args.extend(extra);
        pets(&args, &dir)
    };
    let out = validate(&[]);
    assert!(out.status.success(), "{}", text(&out));
    let summary = text(&out);
    for want in [
        "search space mam: 2 slots on a backbone of 2 layers, hidden 48, 4 heads",
        "slot attn (optional): 3 options",
        "slot ffn (optional): 2 options",
        // Tiny encoder (2 layers, hidden 48, FFN 96). Smallest: a prefix of l=1 (2·1·48 per
        // layer). Largest: LoRA r=48 on W_q and W_v (2·(48+48)·48 per layer) with LoRA r=48 on
        // the FFN pair ((48+96)·48 + (96+48)·48 per layer).
        "smallest design 192 (",
        "largest 46,080 (",
    ] {
        assert!(summary.contains(want), "{want:?} missing:\n{summary}");
    }
    let out = validate(&["--budget", "5%"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("budget 5% = "), "{}", text(&out));
    let out = validate(&["--budget", "100"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("search space mam: no design fits the budget of 100 trainable parameters on this backbone (the cheapest costs 192)"),
        "{}",
        text(&out)
    );
    // A design over a budget is refused too.
    let out = pets(
        &[
            "validate",
            "search_spaces/presets/lora.ron",
            "--model",
            m,
            "--budget",
            "10",
        ],
        &dir,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("exceed --budget 10"), "{}", text(&out));
}

/// Issue 19: `--test FILE` is evaluated once after training and lands in metrics.json, one
/// correctness char per test example; a bad `--test-fraction` names the flag.
#[test]
fn train_with_a_test_file_reports_test_accuracy() {
    let dir = scratch("cli-test-split");
    let model = dir.join("model");
    pets::backbone::tiny::write_tiny_model(&model, 0).unwrap();
    let (data, test) = (dir.join("reviews.csv"), dir.join("held_out.csv"));
    let csv = |path: &Path, n: usize| {
        let mut out = String::from("text,label\n");
        for i in 0..n {
            let (word, label) = if i % 2 == 0 {
                ("great", "pos")
            } else {
                ("awful", "neg")
            };
            out.push_str(&format!("the film was very {word} .,{label}\n"));
        }
        std::fs::write(path, out).unwrap();
    };
    csv(&data, 120);
    csv(&test, 30);
    let run = dir.join("run");
    let base = [
        "train",
        "--design",
        "search_spaces/presets/lora.ron",
        "--model",
        model.to_str().unwrap(),
        "--task",
        data.to_str().unwrap(),
        "--epochs",
        "2",
        "--lr",
        "0.01",
        "--batch-size",
        "16",
        "--quiet",
    ];
    let mut args = base.to_vec();
    args.extend([
        "--test",
        test.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
    ]);
    let out = pets(&args, &dir);
    assert!(out.status.success(), "{}", text(&out));
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["test_examples"], 30, "{metrics}");
    // Nothing carved from the task: 120 = 108 train + 12 dev.
    assert_eq!(
        (
            metrics["train_examples"].as_u64(),
            metrics["dev_examples"].as_u64()
        ),
        (Some(108), Some(12))
    );
    let accuracy = metrics["test_accuracy"].as_f64().expect("test_accuracy");
    let correct = metrics["test_correct"].as_str().expect("test_correct");
    assert_eq!(correct.len(), 30);
    assert!(correct.chars().all(|c| c == '0' || c == '1'));
    let ones = correct.chars().filter(|&c| c == '1').count();
    assert!((accuracy - ones as f64 / 30.0).abs() < 1e-12);
    assert!(text(&out).contains("test accuracy"), "{}", text(&out));

    let mut args = base.to_vec();
    args.extend(["--test-fraction", "0.95"]);
    let out = pets(&args, &dir);
    assert!(!out.status.success());
    assert!(text(&out).contains("--test-fraction"), "{}", text(&out));
}
