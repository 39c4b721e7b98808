//! `pets search --pack 4` against `--pack 1` on the tiny study: every trial completes, and every
//! design both searches trained at the same rung reaches the same dev accuracy (packed training
//! gives each design what it gets alone).

mod tiny_study;

use pets::search::TrialState;
use tiny_study::{command, finished, scratch, trials, FULL};

/// (rung, canonical design, accuracy) of every trial of the full tiny protocol with `--pack pack`.
fn search_packed(pack: &str) -> Vec<(usize, String, f64)> {
    let dir = scratch(&format!("pack{pack}"));
    let protocol: Vec<&str> = FULL.iter().copied().chain(["--pack", pack]).collect();
    let out = command(&dir, "tiny", &dir.join("reports"), &protocol)
        .output()
        .unwrap();
    let text = finished(&out);
    assert!(out.status.success(), "--pack {pack}: {text}");
    let all = trials(&dir);
    let failed: Vec<_> = all
        .iter()
        .filter(|t| t.state != TrialState::Complete)
        .collect();
    assert!(failed.is_empty(), "--pack {pack}: {failed:#?}\n{text}");
    assert_eq!(all.len(), 11, "--pack {pack}: {text}");
    assert!(dir.join("reports/tiny/trials.csv").exists());
    let _ = std::fs::remove_dir_all(&dir);
    all.into_iter()
        .map(|t| (t.rung, t.canonical, t.accuracy.unwrap_or(-1.0)))
        .collect()
}

#[test]
fn a_packed_search_trains_each_design_as_one_at_a_time_does() {
    let alone = search_packed("1");
    let packed = search_packed("4");
    let mut shared = 0;
    for (rung, design, accuracy) in &packed {
        if let Some(a) = alone.iter().find(|a| (a.0, &a.1) == (*rung, design)) {
            shared += 1;
            assert_eq!(
                a.2, *accuracy,
                "rung {rung} {design}: alone {}, packed {accuracy}",
                a.2
            );
        }
    }
    // The first generation is the same draw in both: 2 baselines and 6 candidates at rung 0.
    assert!(shared >= 8, "{shared} shared trials: {alone:?} {packed:?}");
}

#[test]
fn pack_zero_is_refused_by_name() {
    let dir = scratch("pack0");
    let protocol: Vec<&str> = FULL.iter().copied().chain(["--pack", "0"]).collect();
    let out = command(&dir, "tiny", &dir.join("reports"), &protocol)
        .output()
        .unwrap();
    let text = finished(&out);
    assert!(!out.status.success() && text.contains("pack"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
