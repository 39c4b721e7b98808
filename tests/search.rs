//! `pets search` end to end on a tiny model: a full study with baselines and reports, exported
//! and predicted from, and resumed when finished. (Kills, faults and determinism: `faults.rs`.)

mod tiny_study;

use pets::search::store::Store;
use pets::search::TrialState;
use std::process::Command;
use tiny_study::{finished, scratch, search_command};

#[test]
fn a_study_runs_its_rungs_and_baselines_and_writes_reports() {
    let dir = scratch("full");
    let out = search_command(&dir).output().unwrap();
    assert!(out.status.success(), "{}", finished(&out));
    let store = Store::open(&dir.join("study.sqlite")).unwrap();
    let trials = store.trials(store.study_id("tiny").unwrap()).unwrap();
    // 2 baselines + 6 at rung 0 + 3 promoted to rung 1.
    assert_eq!(trials.len(), 11, "{}", finished(&out));
    assert_eq!(
        trials
            .iter()
            .filter(|t| t.rung == 1 && t.parent.is_some())
            .count(),
        3
    );
    assert!(trials.iter().all(|t| t.state == TrialState::Complete));
    for file in ["pareto.md", "pareto.csv", "trials.csv", "pareto.svg"] {
        assert!(
            dir.join("reports/tiny").join(file).exists(),
            "missing {file}"
        );
    }
    // Each trial keeps its run folder beside the store, ready for export.
    for t in &trials {
        let folder = pets::search::study::trial_folder(&dir.join("study.sqlite"), "tiny", t.number);
        assert!(
            folder.join("adapter.safetensors").exists() && folder.join("metrics.json").exists()
        );
    }
    // A trial exports from the study and predicts at the accuracy its manifest records.
    let best = trials
        .iter()
        .filter(|t| t.rung == 1)
        .max_by(|a, b| a.accuracy.partial_cmp(&b.accuracy).unwrap())
        .unwrap();
    let adapter = dir.join("adapter");
    let pets = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_pets"))
            .args(args)
            .env("PETS_CACHE", dir.join("cache"))
            .output()
            .unwrap()
    };
    let storage = dir.join("study.sqlite");
    let number = best.number.to_string();
    let out = pets(&[
        "export",
        "--study",
        "tiny",
        "--trial",
        &number,
        "--storage",
        storage.to_str().unwrap(),
        "--out",
        adapter.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", finished(&out));
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(adapter.join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["metrics"]["accuracy"].as_f64(), best.accuracy);
    let out = pets(&[
        "predict",
        "--adapter",
        adapter.to_str().unwrap(),
        "--input",
        dir.join("reviews.tsv").to_str().unwrap(),
        "--evaluate",
    ]);
    assert!(out.status.success(), "{}", finished(&out));
    // Rerunning the finished study trains nothing more.
    let again = search_command(&dir).output().unwrap();
    assert!(again.status.success(), "{}", finished(&again));
    assert_eq!(
        store.trials(store.study_id("tiny").unwrap()).unwrap().len(),
        11
    );
}

#[test]
fn max_steps_caps_every_rung_and_the_report_keeps_the_studys_settings() {
    let dir = scratch("capped");
    let reports = dir.join("reports");
    let mut protocol: Vec<&str> = tiny_study::SHORT.to_vec();
    protocol.extend(["--max-steps", "3"]);
    let out = tiny_study::command(&dir, "tiny", &reports, &protocol)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", finished(&out));
    let store = Store::open(&dir.join("study.sqlite")).unwrap();
    let id = store.study_id("tiny").unwrap();
    let trials = store.trials(id).unwrap();
    assert_eq!(trials.len(), 4, "{}", finished(&out));
    // An epoch of the training split in batches of 32 is more than 3 steps: --max-steps cuts it.
    for t in &trials {
        assert_eq!(t.fidelity, 3, "trial {}", t.number);
        let folder = pets::search::study::trial_folder(&dir.join("study.sqlite"), "tiny", t.number);
        let metrics: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(folder.join("metrics.json")).unwrap())
                .unwrap();
        assert_eq!(metrics["steps"], 3, "trial {}", t.number);
    }
    let settings = store.settings(id).unwrap();
    assert_eq!(settings["max_steps"], 3);
    let pareto = std::fs::read_to_string(reports.join("tiny/pareto.md")).unwrap();
    assert!(
        pareto.contains("full fidelity 1 epochs cut to --max-steps 3 (3 steps)"),
        "{pareto}"
    );

    // `pets report` without --budget or --model takes the study's own (5% of the tiny model,
    // not the CLI's old defaults of 0.5% of minilm-l6).
    let again = dir.join("again");
    let out = Command::new(env!("CARGO_BIN_EXE_pets"))
        .args(["report", "--study", "tiny"])
        .args(["--storage", dir.join("study.sqlite").to_str().unwrap()])
        .args(["--reports", again.to_str().unwrap()])
        .env("PETS_CACHE", dir.join("cache"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", finished(&out));
    let rerendered = std::fs::read_to_string(again.join("tiny/pareto.md")).unwrap();
    let budget_line = |md: &str| {
        md.lines()
            .find(|l| l.starts_with("Model `"))
            .map(String::from)
            .unwrap_or_default()
    };
    assert!(!budget_line(&pareto).is_empty(), "{pareto}");
    assert_eq!(budget_line(&rerendered), budget_line(&pareto));
    assert!(rerendered.contains("cut to --max-steps 3"), "{rerendered}");

    // Other weights under the same model folder: the study's finished trials no longer stand
    // for what a run would compute, and resuming is refused naming the changed input.
    pets::backbone::tiny::write_tiny_model(&dir.join("model"), 1).unwrap();
    let out = tiny_study::command(&dir, "tiny", &reports, &protocol)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", finished(&out));
    assert!(
        finished(&out).contains("inputs.model_sha256: stored"),
        "{}",
        finished(&out)
    );
}
