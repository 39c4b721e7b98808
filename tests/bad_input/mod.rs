//! Helpers of the bad-input tests (`bad_designs.rs`, `bad_data.rs`): a table of cases run
//! through the binary, each expected to exit with status 1, print every given piece of text
//! and never panic; tiny model folders with one change; a learnable data file.

// Each test file uses its own part of these helpers.
#![allow(dead_code)]

use crate::binary::{pets, text};
use pets::backbone::tiny::{tiny_config, write_tiny_model};
use std::path::{Path, PathBuf};

/// A tiny model folder with one change applied.
pub fn model_variant(root: &Path, name: &str, change: impl FnOnce(&Path)) -> PathBuf {
    let dir = root.join(name);
    write_tiny_model(&dir, 0).unwrap();
    change(&dir);
    dir
}

pub fn write_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut config = serde_json::to_value(tiny_config()).unwrap();
    edit(&mut config);
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
}

/// Sentences labelled by whether they praise (two classes).
pub fn reviews(n: usize) -> String {
    let mut out = String::from("text\tlabel\n");
    for i in 0..n {
        let (word, label) = if i % 2 == 0 {
            ("great", "pos")
        } else {
            ("awful", "neg")
        };
        out.push_str(&format!("the film was very {word} .\t{label}\n"));
    }
    out
}

pub struct Case {
    pub name: &'static str,
    pub args: Vec<String>,
    /// Every one of these must appear in the output.
    pub needles: Vec<String>,
}

/// Runs every case; collects all mismatches so one run shows every broken message.
pub fn check(cases: &[Case], cache: &Path) {
    let mut failures = Vec::new();
    for case in cases {
        let args: Vec<&str> = case.args.iter().map(String::as_str).collect();
        let out = pets(&args, cache);
        let all = text(&out);
        let missing: Vec<&String> = case.needles.iter().filter(|n| !all.contains(*n)).collect();
        if out.status.code() != Some(1) || all.contains("panicked") || !missing.is_empty() {
            failures.push(format!(
                "{}: status {:?}, missing {missing:?}\n{all}",
                case.name, out.status
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n---\n"));
}

pub fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}
