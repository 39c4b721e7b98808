//! `pets search` end to end on a tiny model: a full study with baselines and reports, and a
//! study killed with SIGKILL mid-run that resumes without losing a completed trial.

use pets::search::store::Store;
use pets::search::TrialState;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pets-search-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    pets::backbone::tiny::write_tiny_model(&dir.join("model"), 0).unwrap();
    let good = ["great", "good", "fine"];
    let bad = ["awful", "bad", "dull"];
    let subjects = ["the film", "a movie", "the plot", "the actors", "the story"];
    let mut tsv = String::from("text\tlabel\n");
    for i in 0..240 {
        let (word, label) = if i % 2 == 0 {
            (good[i % 3], "pos")
        } else {
            (bad[i % 3], "neg")
        };
        tsv.push_str(&format!("{} was very {word} .\t{label}\n", subjects[i % 5]));
    }
    std::fs::write(dir.join("reviews.tsv"), tsv).unwrap();
    dir
}

fn search_command(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pets"));
    let path = |p: &str| dir.join(p).to_string_lossy().to_string();
    cmd.args([
        "search",
        "--space",
        "search_spaces/mam.ron",
        "--budget",
        "5%",
        "--study",
        "tiny",
    ])
    .args(["--model", &path("model"), "--task", &path("reviews.tsv")])
    .args([
        "--text-column",
        "text",
        "--label-column",
        "label",
        "--lr",
        "0.01",
    ])
    .args([
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--initial",
        "6",
        "--population",
        "3",
    ])
    .args([
        "--eta",
        "2",
        "--rungs",
        "2",
        "--baselines",
        "lora,mam",
        "--quiet",
    ])
    .args([
        "--storage",
        &path("study.sqlite"),
        "--reports",
        &path("reports"),
    ])
    .env("PETS_CACHE", dir.join("cache"));
    cmd
}

fn finished(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn complete_trials(dir: &Path) -> Vec<(usize, String, f64)> {
    let Ok(store) = Store::open(&dir.join("study.sqlite")) else {
        return vec![];
    };
    let Ok(id) = store.study_id("tiny") else {
        return vec![];
    };
    store
        .trials(id)
        .unwrap_or_default()
        .into_iter()
        .filter(|t| t.state == TrialState::Complete)
        .map(|t| (t.number, t.canonical, t.accuracy.unwrap_or(-1.0)))
        .collect()
}

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
fn killed_studies_resume_without_losing_completed_trials() {
    let dir = scratch("kill");
    let mut seen: Vec<(usize, String, f64)> = Vec::new();
    for round in 0..3 {
        let mut child: Child = search_command(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Kill as soon as this round has completed at least one more trial.
        let deadline = Instant::now() + Duration::from_secs(120);
        while complete_trials(&dir).len() <= seen.len() && Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        let now = complete_trials(&dir);
        for old in &seen {
            assert!(now.contains(old), "round {round}: trial {old:?} lost");
        }
        seen = now;
    }
    let out = search_command(&dir).output().unwrap();
    assert!(out.status.success(), "{}", finished(&out));
    let last = complete_trials(&dir);
    for old in &seen {
        assert!(
            last.contains(old),
            "trial {old:?} lost after the final resume"
        );
    }
    assert_eq!(last.len(), 11, "every planned trial completes exactly once");
}
