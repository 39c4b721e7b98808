//! The search reports rendered from a store filled with hand-made trials whose front is computed
//! by hand.

mod common;

use common::{new_trial, result, settings, TempDir, BACKBONE};
use pets::search::report::{front_table, write_reports, ReportContext};
use pets::search::store::{Store, TrialKind, TrialRow};
use pets::search::TrialState;
use std::path::{Path, PathBuf};

const BUDGET: usize = 1000;

fn context() -> ReportContext {
    ReportContext {
        study: "demo".into(),
        model: "minilm-l6".into(),
        task: "sst2".into(),
        budget_params: BUDGET,
        backbone_params: BACKBONE,
        command: "pets search --study demo".into(),
        sampler: "nsga2".into(),
        notes: vec!["hand-made trials".into()],
        export_args: vec![],
    }
}

/// kind, label, width, steps, (accuracy, params) when complete, final state.
type Planned = (
    TrialKind,
    Option<&'static str>,
    usize,
    usize,
    Option<(f64, usize)>,
    TrialState,
);

/// Trials 0..=11; at 400 steps the front is {1, 2, 4} (hand-computed: 3 and 7 are beaten by 2;
/// 0 would dominate but ran only 100 steps).
fn filled_store(path: &Path) -> (Store, pets::search::store::StudyId) {
    use TrialKind::{Baseline, Search};
    let store = Store::open(path).unwrap();
    let study = store.open_study("demo", &settings()).unwrap();
    let plan: [Planned; 12] = [
        (
            Search,
            None,
            2,
            100,
            Some((0.80, 300)),
            TrialState::Complete,
        ),
        (
            Search,
            None,
            4,
            400,
            Some((0.70, 200)),
            TrialState::Complete,
        ),
        (
            Search,
            None,
            8,
            400,
            Some((0.75, 400)),
            TrialState::Complete,
        ),
        (
            Search,
            None,
            16,
            400,
            Some((0.72, 600)),
            TrialState::Complete,
        ),
        (
            Search,
            None,
            32,
            400,
            Some((0.85, 1600)),
            TrialState::Complete,
        ),
        (Search, None, 64, 400, None, TrialState::Failed),
        (Search, None, 3, 100, None, TrialState::Pruned),
        (
            Search,
            None,
            6,
            400,
            Some((0.74, 800)),
            TrialState::Complete,
        ),
        (
            Baseline,
            Some("lora"),
            12,
            400,
            Some((0.73, 500)),
            TrialState::Complete,
        ),
        (
            Baseline,
            Some("houlsby"),
            24,
            400,
            Some((0.78, 900)),
            TrialState::Complete,
        ),
        (
            Baseline,
            Some("full_finetune"),
            48,
            400,
            Some((0.90, BACKBONE)),
            TrialState::Complete,
        ),
        (Search, None, 5, 400, None, TrialState::Running),
    ];
    for (kind, label, r, fidelity, outcome, state) in plan {
        let row = common::begin(&store, study, &new_trial(kind, label, r, fidelity));
        match (state, outcome) {
            (TrialState::Complete, Some((a, p))) => {
                store.complete_trial(row.id, &result(a, p)).unwrap()
            }
            (TrialState::Failed, _) => store.fail_trial(row.id, "NaN loss, at step 3").unwrap(),
            (TrialState::Pruned, _) => store.prune_trial(row.id, "below median").unwrap(),
            _ => {}
        }
    }
    (store, study)
}

fn read_csv(path: &Path) -> Vec<csv::StringRecord> {
    csv::Reader::from_path(path)
        .unwrap()
        .records()
        .map(|r| r.unwrap())
        .collect()
}

fn column(records: &[csv::StringRecord], index: usize) -> Vec<String> {
    records.iter().map(|r| r[index].to_string()).collect()
}

#[test]
fn reports_render_the_hand_computed_front() {
    let tmp = TempDir::new("reports");
    let (store, study) = filled_store(&tmp.0.join("pets.sqlite"));
    let trials: Vec<TrialRow> = store.trials(study).unwrap();
    // PETS_REPORT_DEMO=<folder> keeps a copy to look at.
    let dir =
        std::env::var_os("PETS_REPORT_DEMO").map_or(tmp.0.join("reports/demo"), PathBuf::from);
    let written = write_reports(&dir, &context(), &trials).expect("reports");
    let names: Vec<_> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "pareto.md",
            "pareto.csv",
            "trials.csv",
            "confirmed.csv",
            "pareto.svg",
            "hypervolume.svg",
            "index.html"
        ]
    );
    let leftovers = std::fs::read_dir(&dir).unwrap().filter(|e| {
        e.as_ref()
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".tmp")
    });
    assert_eq!(leftovers.count(), 0, "no temporary files left behind");

    let front = read_csv(&dir.join("pareto.csv"));
    assert_eq!(
        column(&front, 1),
        ["1", "2", "4"],
        "trial numbers of the front, by params"
    );
    assert_eq!(column(&front, 3), ["200", "400", "1600"]);
    assert_eq!(column(&front, 5), ["0.7", "0.75", "0.85"]);
    assert_eq!(
        column(&front, 8),
        ["true", "true", "false"],
        "within budget"
    );
    assert_eq!(&front[0][2], "parallel Relu bottleneck r=4 on Ffn, add");

    let all = read_csv(&dir.join("trials.csv"));
    assert_eq!(all.len(), 12);
    let text = std::fs::read_to_string(dir.join("trials.csv")).unwrap();
    assert_eq!(text.lines().count(), 13, "header + one line per trial");
    assert!(text.starts_with("number,kind,label,state,rung,fidelity,parent,seed,params,percent,accuracy,test_accuracy,seconds,canonical,design,error,learning_rate\n"));
    assert_eq!(column(&all, 3)[5..7], ["failed", "pruned"]);
    assert_eq!(&all[5][15], "NaN loss, at step 3");
    assert_eq!(&all[9][2], "houlsby");
    assert_eq!(&all[11][3], "running");

    let md = std::fs::read_to_string(dir.join("pareto.md")).unwrap();
    for needle in [
        "Generated by `pets search --study demo`.",
        "Budget: 1,000 trainable parameters = 0.500% of the backbone's 200,000",
        "- search trials: 9 (6 complete, 1 pruned, 1 failed, 1 running)",
        "- baseline trials: 3 (3 complete, 0 pruned, 0 failed, 0 running)",
        "## Front at 400 steps",
        "3 of the 5 complete search trials",
        "| 2 | parallel Relu bottleneck r=8 on Ffn, add | 400 | 0.200% | 0.7500 | — | 400 | 2 | yes |",
        "| houlsby | 900 | 0.450% | 0.7800 | — | 400 | 9 |",
        "| full_finetune | 200,000 | 100.000% | 0.9000 | — | 400 | 10 |",
        "**No**: the best baseline within budget (houlsby, 900 params, 0.7800, 400 steps) beats the best front design within budget (trial 2",
        // Reference (0.5, 1000), scale 500: trial 1 adds 800·0.2 = 160, trial 2 adds 600·0.05 = 30.
        "| 0 | 0.00000 |\n| 1 | 0.32000 |\n| 2 | 0.38000 |\n| 11 | 0.38000 |",
    ] {
        assert!(md.contains(needle), "pareto.md lacks {needle:?}:\n{md}");
    }

    let svg = std::fs::read_to_string(dir.join("pareto.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    // 6 complete search trials (grey) + 3 front members (highlighted); legends use no circles.
    assert_eq!(svg.matches("<circle").count(), 9);
    // 3 baseline triangles + 1 in the legend.
    assert_eq!(svg.matches("<polygon").count(), 4);
    for needle in [
        "budget: 1,000 params (0.50% of backbone)",
        "houlsby",
        "lora",
        "dev accuracy",
        "Pareto front at 400 steps",
    ] {
        assert!(svg.contains(needle), "pareto.svg lacks {needle:?}");
    }
    let hv = std::fs::read_to_string(dir.join("hypervolume.svg")).unwrap();
    assert!(hv.starts_with("<svg") && hv.contains("hypervolume over trials"));

    let table = front_table(&trials, BUDGET, BACKBONE);
    assert!(
        table.contains("1,600 *")
            && table.contains("front of 5 complete search trials at 400 steps"),
        "{table}"
    );
}

#[test]
fn verdict_turns_when_a_design_beats_every_baseline_in_budget() {
    let tmp = TempDir::new("verdict");
    let (store, study) = filled_store(&tmp.0.join("pets.sqlite"));
    let row = common::begin(&store, study, &new_trial(TrialKind::Search, None, 10, 400));
    store.complete_trial(row.id, &result(0.80, 700)).unwrap();
    let dir = tmp.0.join("out");
    write_reports(&dir, &context(), &store.trials(study).unwrap()).unwrap();
    let front = read_csv(&dir.join("pareto.csv"));
    assert_eq!(column(&front, 1), ["1", "2", "12", "4"]);
    let md = std::fs::read_to_string(dir.join("pareto.md")).unwrap();
    assert!(md.contains("**Yes**: the best front design within budget (trial 12, 700 params, dev accuracy 0.8000, 400 steps) is at least as accurate as every baseline within budget; the best baseline within budget (houlsby, 900 params, 0.7800, 400 steps) is 2.00 points behind."), "{md}");
    // Trial 12 adds (1000 − 700)·(0.80 − 0.75) = 15 to 190: 205 / 500.
    assert!(md.contains("| 12 | 0.41000 |"), "{md}");
    let svg = std::fs::read_to_string(dir.join("pareto.svg")).unwrap();
    assert_eq!(svg.matches("<circle").count(), 7 + 4);
}
