//! The test split never reaches the search: two studies that differ only in their test labels
//! propose, promote and confirm the same designs with the same dev accuracies, and only their
//! test accuracies differ.

mod tiny_study;

use pets::search::store::TrialRow;
use std::path::Path;
use tiny_study::{finished, scratch, tiny_command, trials};

/// Two generations (NSGA-II proposes the second from the first), a baseline, a confirmation.
const PROTOCOL: &[&str] = &[
    "--trials",
    "10",
    "--initial",
    "3",
    "--population",
    "3",
    "--eta",
    "2",
    "--rungs",
    "2",
    "--epochs",
    "2",
    "--batch-size",
    "16",
    "--baselines",
    "lora",
    "--confirm-top",
    "1",
    "--confirm-seeds",
    "2",
];

/// A test file of 40 reviews with the training data's words, labelled as the training data is
/// or with every label flipped (the texts are the same).
fn write_test_file(path: &Path, flipped: bool) {
    let mut tsv = String::from("text\tlabel\n");
    for i in 0..40 {
        let (word, positive) = if i % 2 == 0 {
            (["great", "good"][i / 2 % 2], true)
        } else {
            (["awful", "dull"][i / 2 % 2], false)
        };
        let label = if positive != flipped { "pos" } else { "neg" };
        tsv.push_str(&format!("the show was very {word} .\t{label}\n"));
    }
    std::fs::write(path, tsv).unwrap();
}

fn study(name: &str, flipped: bool) -> Vec<TrialRow> {
    let dir = scratch(name);
    let test = dir.join("test.tsv");
    write_test_file(&test, flipped);
    let out = tiny_command(&dir, PROTOCOL)
        .args(["--test", &test.to_string_lossy()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", finished(&out));
    trials(&dir)
}

fn test_accuracy(t: &TrialRow) -> Option<f64> {
    t.metrics.as_ref()?.get("test_accuracy")?.as_f64()
}

#[test]
fn test_labels_change_nothing_the_search_decides() {
    let a = study("test-split-a", false);
    let b = study("test-split-b", true);
    let decided = |rows: &[TrialRow]| -> Vec<_> {
        rows.iter()
            .map(|t| {
                let accuracy = t.accuracy.map(|x| (x * 1e6).round() as i64);
                (
                    t.number,
                    t.kind,
                    t.canonical.clone(),
                    t.rung,
                    t.parent,
                    t.seed,
                    accuracy,
                )
            })
            .collect()
    };
    assert_eq!(decided(&a), decided(&b));
    // The runs did see their test files, and the flipped labels show only there.
    let tests: Vec<(Option<f64>, Option<f64>)> = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (test_accuracy(x), test_accuracy(y)))
        .collect();
    assert!(
        tests.iter().all(|(x, y)| x.is_some() && y.is_some()),
        "{tests:?}"
    );
    assert!(
        tests
            .iter()
            .any(|(x, y)| (x.unwrap() - y.unwrap()).abs() > 0.2),
        "flipping every test label changed no test accuracy: {tests:?}"
    );
    assert!(a
        .iter()
        .any(|t| t.kind == pets::search::store::TrialKind::Confirm));
}
