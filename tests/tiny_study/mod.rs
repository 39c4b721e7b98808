//! A `pets search` on a tiny model folder and a learnable TSV, for the search and fault tests:
//! the scratch folder, the command (with a full or a short protocol) and the store's contents.

// Each test file uses its own part of these helpers.
#![allow(dead_code)]

use pets::search::store::{Store, TrialRow};
use pets::search::TrialState;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A fresh folder with `model/` (tiny random encoder) and `reviews.tsv` (240 sentences).
pub fn scratch(name: &str) -> PathBuf {
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

/// The full protocol: 2 baselines, one generation of 6 candidates at rung 0 and 3 promoted to
/// rung 1 (9 search trials), no confirmation (11 trials).
pub const FULL: &[&str] = &[
    "--trials",
    "9",
    "--confirm-seeds",
    "1",
    "--epochs",
    "2",
    "--batch-size",
    "16",
    "--initial",
    "6",
    "--population",
    "3",
    "--eta",
    "2",
    "--rungs",
    "2",
    "--baselines",
    "lora,mam",
];

/// A short protocol: one baseline and 3 candidates, one rung, one epoch, no confirmation
/// (4 trials).
pub const SHORT: &[&str] = &[
    "--trials",
    "3",
    "--confirm-seeds",
    "1",
    "--epochs",
    "1",
    "--batch-size",
    "32",
    "--initial",
    "3",
    "--population",
    "3",
    "--rungs",
    "1",
    "--baselines",
    "lora",
];

/// `pets search` of study `study` on the tiny model and data in `dir` (store `dir/study.sqlite`),
/// writing reports under `reports`, with the `protocol` arguments.
pub fn command(dir: &Path, study: &str, reports: &Path, protocol: &[&str]) -> Command {
    command_in_space(
        dir,
        "search_spaces/mam.ron",
        Some("0.01"),
        study,
        reports,
        protocol,
    )
}

/// [`command`] over the search space file `space`, with `--lr lr` (or without `--lr` at all, so
/// that each trial trains with its design's own rate).
pub fn command_in_space(
    dir: &Path,
    space: &str,
    lr: Option<&str>,
    study: &str,
    reports: &Path,
    protocol: &[&str],
) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pets"));
    let path = |p: &str| dir.join(p).to_string_lossy().to_string();
    cmd.args(["search", "--space", space, "--budget", "5%"])
        .args(["--study", study, "--model", &path("model")])
        .args(["--task", &path("reviews.tsv"), "--text-column", "text"])
        .args(["--label-column", "label"]);
    if let Some(lr) = lr {
        cmd.args(["--lr", lr]);
    }
    cmd.arg("--quiet")
        .args(["--storage", &path("study.sqlite")])
        .args(["--reports", &reports.to_string_lossy()])
        .args(protocol)
        .env("PETS_CACHE", dir.join("cache"));
    cmd
}

/// Study `tiny` with the `protocol` arguments, reports in `dir/reports`.
pub fn tiny_command(dir: &Path, protocol: &[&str]) -> Command {
    command(dir, "tiny", &dir.join("reports"), protocol)
}

/// Study `tiny` with the full protocol, reports in `dir/reports`.
pub fn search_command(dir: &Path) -> Command {
    tiny_command(dir, FULL)
}

/// Study `tiny` with the short protocol, reports in `dir/reports`.
pub fn short_command(dir: &Path) -> Command {
    tiny_command(dir, SHORT)
}

pub fn finished(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every trial of study `tiny` (empty while the store or the study does not exist yet).
pub fn trials(dir: &Path) -> Vec<TrialRow> {
    let Ok(store) = Store::open(&dir.join("study.sqlite")) else {
        return vec![];
    };
    let Ok(id) = store.study_id("tiny") else {
        return vec![];
    };
    store.trials(id).unwrap_or_default()
}

/// (number, canonical hash, accuracy) of each complete trial.
pub fn complete_trials(dir: &Path) -> Vec<(usize, String, f64)> {
    trials(dir)
        .into_iter()
        .filter(|t| t.state == TrialState::Complete)
        .map(|t| (t.number, t.canonical, t.accuracy.unwrap_or(-1.0)))
        .collect()
}

/// SQLite's own check of the file: "ok" when no page or index is damaged.
pub fn integrity(dir: &Path) -> String {
    let conn = rusqlite::Connection::open(dir.join("study.sqlite")).unwrap();
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}
