//! `pets search --device cuda` on a tiny encoder with `--jobs 1` and `--jobs 4`: every trial
//! completes (a thread that frees GPU memory without the CUDA context bound once failed every
//! second trial with `CUDA_ERROR_INVALID_CONTEXT`). Built with `--features cuda` only; skipped
//! where no GPU opens unless `PETS_REQUIRE_GPU=1` (scripts/gpu-smoke.sh sets it).
#![cfg(feature = "cuda")]

mod tiny_study;

use pets::search::TrialState;
use tiny_study::{command, finished, scratch, trials, FULL};

fn gpu_present() -> bool {
    let opened = pets::run::open_device("cuda").ok().flatten().is_some();
    let required = std::env::var("PETS_REQUIRE_GPU").is_ok_and(|v| v == "1");
    assert!(opened || !required, "PETS_REQUIRE_GPU=1 but no GPU opened");
    if !opened {
        eprintln!("skipped: no CUDA device");
    }
    opened
}

/// The full tiny protocol (11 trials) on the GPU with `jobs` claim loops: (rung, canonical,
/// accuracy) of every trial, sorted.
fn search_on_gpu(jobs: &str) -> Vec<(usize, String, f64)> {
    let dir = scratch(&format!("gpu-jobs{jobs}"));
    let protocol: Vec<&str> = FULL
        .iter()
        .copied()
        .chain(["--device", "cuda", "--jobs", jobs])
        .collect();
    let out = command(&dir, "tiny", &dir.join("reports"), &protocol)
        .output()
        .unwrap();
    let text = finished(&out);
    assert!(out.status.success(), "--jobs {jobs}: {text}");
    let all = trials(&dir);
    let failed: Vec<_> = all
        .iter()
        .filter(|t| t.state != TrialState::Complete)
        .collect();
    assert!(failed.is_empty(), "--jobs {jobs}: {failed:#?}\n{text}");
    assert_eq!(all.len(), 11, "--jobs {jobs}: {text}");
    let mut rows: Vec<_> = all
        .into_iter()
        .map(|t| (t.rung, t.canonical, t.accuracy.unwrap_or(-1.0)))
        .collect();
    rows.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    rows
}

#[test]
fn a_gpu_search_completes_every_trial_with_one_job_and_with_four() {
    if !gpu_present() {
        return;
    }
    let one = search_on_gpu("1");
    let four = search_on_gpu("4");
    // Which designs a sampler proposes may depend on the order trials end in; a design both
    // runs trained at the same rung was trained under the same seed.
    let same = one.iter().filter(|r| four.contains(r)).count();
    let shared = one
        .iter()
        .filter(|r| four.iter().any(|f| (f.0, &f.1) == (r.0, &r.1)))
        .count();
    eprintln!("{same} of the {shared} trials both runs trained gave the same accuracy");
    assert!(shared >= 2, "the two baselines at least: {one:?} {four:?}");
}
