//! `pets unified` end to end on a tiny model and a small labelled file: runs as child
//! processes, resumes without retraining, and writes the report, CSV and figure.

mod binary;

use binary::{pets, scratch, text as log};
use std::path::Path;

/// Sentences labelled by whether they praise.
fn write_reviews(path: &Path, n: usize) {
    let mut out = String::from("text\tlabel\n");
    for i in 0..n {
        let (word, label) = if i % 2 == 0 {
            ("great", "pos")
        } else {
            ("dull", "neg")
        };
        out.push_str(&format!("the film number {i} was {word} .\t{label}\n"));
    }
    std::fs::write(path, out).expect("data file");
}

#[test]
fn a_small_plan_runs_resumes_and_reports() {
    let dir = scratch("unified-plan");
    let model = dir.join("model");
    pets::backbone::tiny::write_tiny_model(&model, 0).expect("tiny model");
    let data = dir.join("reviews.tsv");
    write_reviews(&data, 60);
    let presets = Path::new(env!("CARGO_MANIFEST_DIR")).join("search_spaces/presets");
    let plan = format!(
        r#"Plan(
    model: "{model}",
    sections: [
        Section(name: "presets", task: "{data}", text_column: Some("text"), label_column: Some("label"),
            epochs: 1, seeds: [0, 1], budgets: [5.0],
            designs: ["{presets}/lora", "{presets}/scaled_parallel_adapter"]),
        Section(name: "searched", task: "{data}", text_column: Some("text"), label_column: Some("label"),
            epochs: 1, seeds: [0, 1], designs: ["{presets}/pfeiffer"]),
    ],
    findings: [
        Finding(number: 4, claim: "scaled PA beats LoRA", task: "{data}",
                better: "scaled_parallel_adapter@5%", worse: "lora@5%"),
    ],
)"#,
        model = model.display(),
        data = data.display(),
        presets = presets.display()
    );
    let plan_path = dir.join("plan.ron");
    std::fs::write(&plan_path, plan).expect("plan");
    let (runs, reports) = (dir.join("runs"), dir.join("reports"));
    let args = [
        "unified",
        "--plan",
        plan_path.to_str().expect("utf-8"),
        "--runs",
        runs.to_str().expect("utf-8"),
        "--reports",
        reports.to_str().expect("utf-8"),
        "--jobs",
        "2",
        "--max-steps",
        "3",
    ];
    let out = pets(&args, &dir);
    assert!(out.status.success(), "{}", log(&out));
    assert!(
        log(&out).contains("6 runs trained, 0 reused"),
        "{}",
        log(&out)
    );

    let csv = std::fs::read_to_string(reports.join("unified-view.csv")).expect("csv");
    assert_eq!(csv.lines().count(), 1 + 6, "{csv}");
    let md = std::fs::read_to_string(reports.join("unified-view.md")).expect("report");
    for want in [
        "lora@5%",
        "scaled_parallel_adapter@5%",
        "pfeiffer",
        "scaled PA beats LoRA",
    ] {
        assert!(md.contains(want), "{want} missing:\n{md}");
    }
    assert!(
        ["**reproduced**", "**not reproduced**", "**inconclusive**"]
            .iter()
            .any(|v| md.contains(v)),
        "{md}"
    );
    let svg = std::fs::read_to_string(reports.join("unified-view.svg")).expect("figure");
    assert!(svg.starts_with("<svg"));

    // A second call trains nothing; losing one run's metrics retrains exactly that run.
    let out = pets(&args, &dir);
    assert!(
        log(&out).contains("0 runs trained, 6 reused"),
        "{}",
        log(&out)
    );
    let seed1 = runs.join("reviews/lora-at-5pct/seed1");
    std::fs::remove_file(seed1.join("metrics.json")).expect("remove");
    let out = pets(&args, &dir);
    assert!(
        log(&out).contains("1 runs trained, 5 reused"),
        "{}",
        log(&out)
    );
    assert!(seed1.join("metrics.json").is_file());
}

#[test]
fn a_plan_with_a_typo_fails_before_training_naming_the_file() {
    let dir = scratch("unified-typo");
    let model = dir.join("model");
    pets::backbone::tiny::write_tiny_model(&model, 0).expect("tiny model");
    let plan_path = dir.join("plan.ron");
    std::fs::write(
        &plan_path,
        format!(
            "Plan(\n  model: \"{}\",\n  sectons: [],\n)",
            model.display()
        ),
    )
    .expect("plan");
    let (runs, reports) = (dir.join("runs"), dir.join("reports"));
    let out = pets(
        &[
            "unified",
            "--plan",
            plan_path.to_str().expect("utf-8"),
            "--runs",
            runs.to_str().expect("utf-8"),
            "--reports",
            reports.to_str().expect("utf-8"),
        ],
        &dir,
    );
    assert!(!out.status.success());
    let text = log(&out);
    assert!(text.contains("plan.ron:3:"), "{text}");
    assert!(!runs.exists() && !reports.exists());
}
