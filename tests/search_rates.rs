//! `pets search` with a learning-rate dimension on a tiny model: trials train with different
//! rates drawn from the space's range and record them (run metrics, stored design, trials.csv);
//! the baseline keeps its preset's rate.

mod tiny_study;

use pets::search::store::TrialKind;
use pets::spec::Design;
use std::collections::BTreeSet;
use tiny_study::{command_in_space, finished, scratch, trials, SHORT};

const SPACE: &str = r#"SearchSpace(name: "rates", slots: [
    Slot(name: "attn", options: [
        ModuleOption(form: Lora(alpha: Ratio([2.0])), sites: [[Projection(Query), Projection(Value)]],
                     width: LogRange(1, 8), learning_rate: LogRange(1e-3, 3e-2)),
    ]),
])"#;

#[test]
fn trials_train_with_the_rates_they_drew_and_baselines_with_their_presets() {
    let dir = scratch("rates");
    std::fs::write(dir.join("rates.ron"), SPACE).unwrap();
    let space = dir.join("rates.ron").to_string_lossy().to_string();
    // No `--lr`: it would override every rate.
    let out = command_in_space(&dir, &space, None, "tiny", &dir.join("reports"), SHORT)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", finished(&out));
    let trials = trials(&dir);
    let preset = Design::from_file("search_spaces/presets/lora.ron".as_ref()).unwrap();
    let mut drawn = BTreeSet::new();
    let mut baselines = 0;
    for t in &trials {
        let used = t
            .metrics
            .as_ref()
            .and_then(|m| m["learning_rate"].as_f64())
            .expect("a complete trial records its rate");
        if t.kind == TrialKind::Baseline {
            assert_eq!(t.label.as_deref(), Some("lora"));
            assert_eq!(Some(used), preset.learning_rate, "the preset's own rate");
            baselines += 1;
            continue;
        }
        assert_eq!(t.design.learning_rate, Some(used), "trial {}", t.number);
        assert!((1e-3..=3e-2).contains(&used), "trial {}: {used}", t.number);
        drawn.insert(used.to_bits());
    }
    assert_eq!(baselines, 1);
    assert!(
        drawn.len() >= 2,
        "the searched trials drew one rate: {drawn:?}"
    );
    // trials.csv shows each trial's rate in its last column.
    let csv = std::fs::read_to_string(dir.join("reports/tiny/trials.csv")).unwrap();
    let mut lines = csv.lines();
    assert!(lines.next().unwrap().ends_with(",learning_rate"), "{csv}");
    let rates: Vec<f64> = lines
        .map(|l| l.rsplit(',').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(rates.len(), trials.len(), "{csv}");
    let _ = std::fs::remove_dir_all(&dir);
}
