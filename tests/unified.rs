//! `pets unified` end to end on a tiny model and a small labelled file: runs as child
//! processes, resumes without retraining (but retrains a preset edited under the same name), and
//! writes the report, CSV and figure; `pets baselines` reuses a run only with the same run
//! fingerprint.

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
    // A copy of pfeiffer, edited below under the same name.
    let own = dir.join("presets");
    std::fs::create_dir_all(&own).expect("presets folder");
    let pfeiffer = std::fs::read_to_string(presets.join("pfeiffer.ron")).expect("preset");
    std::fs::write(own.join("pfeiffer.ron"), &pfeiffer).expect("preset copy");
    let plan = format!(
        r#"Plan(
    model: "{model}",
    sections: [
        Section(name: "presets", task: "{data}", text_column: Some("text"), label_column: Some("label"),
            epochs: 1, seeds: [0, 1], budgets: [5.0],
            designs: ["{presets}/lora", "{presets}/scaled_parallel_adapter"]),
        Section(name: "searched", task: "{data}", text_column: Some("text"), label_column: Some("label"),
            epochs: 1, seeds: [0, 1], designs: ["{own}/pfeiffer"]),
    ],
    findings: [
        Finding(number: 4, claim: "scaled PA beats LoRA", task: "{data}",
                better: "scaled_parallel_adapter@5%", worse: "lora@5%"),
    ],
)"#,
        model = model.display(),
        data = data.display(),
        presets = presets.display(),
        own = own.display()
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
    // The same name with another width is another design: both its seeds train again.
    let narrower = pfeiffer.replace("r: 24", "r: 12");
    assert_ne!(narrower, pfeiffer);
    std::fs::write(own.join("pfeiffer.ron"), narrower).expect("edit preset");
    let out = pets(&args, &dir);
    assert!(
        log(&out).contains("2 runs trained, 4 reused"),
        "{}",
        log(&out)
    );
}

#[test]
fn baselines_reuse_a_run_only_under_the_same_fingerprint() {
    let dir = scratch("baselines-reuse");
    let model = dir.join("model");
    pets::backbone::tiny::write_tiny_model(&model, 0).expect("tiny model");
    let data = dir.join("reviews.tsv");
    write_reviews(&data, 40);
    let presets = dir.join("presets");
    std::fs::create_dir_all(&presets).expect("presets folder");
    let lora = std::fs::read_to_string("search_spaces/presets/lora.ron").expect("preset");
    std::fs::write(presets.join("lora.ron"), &lora).expect("preset copy");
    let path = |p: &Path| p.to_string_lossy().into_owned();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "baselines".to_string(),
            "--presets".into(),
            path(&presets),
            "--model".into(),
            path(&model),
            "--task".into(),
            path(&data),
            "--text-column".into(),
            "text".into(),
            "--label-column".into(),
            "label".into(),
            "--epochs".into(),
            "1".into(),
            "--max-steps".into(),
            "2".into(),
            "--runs".into(),
            path(&dir.join("runs")),
            "--report".into(),
            path(&dir.join("baselines.md")),
            "--quiet".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = pets(&args, &dir);
        assert!(out.status.success(), "{}", log(&out));
        log(&out)
    };
    assert!(run(&[]).contains("training preset lora"));
    assert!(run(&[]).contains("preset lora: reusing"));
    // Settings the old reuse check ignored: the token limit, and the preset edited in place.
    assert!(run(&["--max-len", "32"]).contains("training preset lora"));
    assert!(run(&["--max-len", "32"]).contains("preset lora: reusing"));
    std::fs::write(presets.join("lora.ron"), lora.replace("r: 12", "r: 4")).expect("edit");
    assert!(run(&["--max-len", "32"]).contains("training preset lora"));
    assert!(run(&["--max-len", "32", "--dropout", "0.1"]).contains("training preset lora"));
    let metrics: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("runs/lora/metrics.json")).expect("metrics"),
    )
    .expect("json");
    let fingerprint = &metrics["fingerprint"];
    assert_eq!(fingerprint["max_len"], 32);
    // 40 reviews leave 32 to train (4 dev, 4 test): one batch of 32, one epoch.
    assert_eq!(fingerprint["steps"], 1);
    assert_eq!(fingerprint["model"], path(&model));
    assert_eq!(fingerprint["split_sha256"].as_str().map(str::len), Some(64));
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
