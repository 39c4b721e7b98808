//! Errors that are not a design's, on a tiny encoder: broken model weights or an unwritable
//! trials folder stop `pets search` with a message that says so, the trial they hit stays running
//! in the store (never recorded as failed), and the rerun, once the cause is fixed, trains it
//! again under its number. A study whose every trial fails for its designs exits non-zero. (A
//! design's own failure stays a failed trial: `faults.rs`'s non-finite loss test.)

mod tiny_study;

use pets::search::TrialState;
use tiny_study::{finished, scratch, short_command, trials, SHORT};

/// The first trial was claimed and stopped on `cause`; nothing is recorded as failed.
fn assert_stopped_at_trial_0(dir: &std::path::Path, text: &str, cause: &str) {
    assert!(
        text.contains("error: study tiny stopped: trial 0 hit an error that is not its design's (")
            && text.contains("the trial stays claimed and is trained again when the study resumes"),
        "{text}"
    );
    assert!(text.contains(cause), "{text}");
    let all = trials(dir);
    assert_eq!(all.len(), 1, "{text}");
    assert_eq!(all[0].state, TrialState::Running, "{text}");
    assert_eq!(all[0].attempts, 1);
    assert!(all[0].error.is_none());
}

/// The rerun claims trial 0 back (its process is gone) and completes the study.
fn assert_resumes(dir: &std::path::Path, out: &std::process::Output) {
    let text = finished(out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("trial   0 re-claimed (attempt 2)"), "{text}");
    let all = trials(dir);
    assert_eq!(all.len(), 4, "{text}");
    assert!(
        all.iter().all(|t| t.state == TrialState::Complete),
        "{text}"
    );
    assert_eq!(all[0].attempts, 2);
}

#[test]
fn broken_model_weights_stop_the_study_and_a_resume_on_other_weights_is_refused() {
    let dir = scratch("weights");
    let weights = dir.join("model/model.safetensors");
    let good = std::fs::read(&weights).unwrap();
    // A header that promises more than the file holds: every load of the encoder fails.
    std::fs::write(&weights, &good[..good.len() / 2]).unwrap();
    let out = short_command(&dir).output().unwrap();
    let text = finished(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert_stopped_at_trial_0(&dir, &text, "model.safetensors");

    // The study stored the hash of the weights it was created on (the broken ones), so a resume
    // on the repaired file is refused naming the hash, as for any change of weights.
    std::fs::write(&weights, &good).unwrap();
    let out = short_command(&dir).output().unwrap();
    let text = finished(&out);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("inputs.model_sha256"), "{text}");
}

#[test]
fn an_unwritable_trials_folder_stops_the_study_and_the_trial_is_trained_on_resume() {
    let dir = scratch("trialsdir");
    let blocker = dir.join("blocker");
    std::fs::write(&blocker, "").unwrap();
    let trials_dir = |d: &std::path::Path| d.to_str().unwrap().to_string();
    let out = short_command(&dir)
        .args(["--trials-dir", &trials_dir(&blocker.join("trials"))])
        .output()
        .unwrap();
    let text = finished(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert_stopped_at_trial_0(&dir, &text, "Not a directory");

    let out = short_command(&dir)
        .args(["--trials-dir", &trials_dir(&dir.join("trials"))])
        .output()
        .unwrap();
    assert_resumes(&dir, &out);
    assert!(dir.join("trials/tiny-trials/0/metrics.json").exists());
}

#[test]
fn a_study_whose_every_trial_fails_says_so_and_exits_non_zero() {
    let dir = scratch("allfail");
    let path = |p: &str| dir.join(p).to_string_lossy().to_string();
    // The tiny study's short protocol with a learning rate no design survives.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pets"))
        .args([
            "search",
            "--space",
            "search_spaces/mam.ron",
            "--budget",
            "5%",
        ])
        .args(["--study", "tiny", "--model", &path("model"), "--quiet"])
        .args([
            "--task",
            &path("reviews.tsv"),
            "--text-column",
            "text",
            "--lr",
            "1e300",
        ])
        .args([
            "--storage",
            &path("study.sqlite"),
            "--reports",
            &path("reports"),
        ])
        .args(SHORT)
        .env("PETS_CACHE", dir.join("cache"))
        .output()
        .unwrap();
    let text = finished(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let all = trials(&dir);
    assert_eq!(all.len(), 4, "{text}");
    assert!(all.iter().all(|t| t.state == TrialState::Failed), "{text}");
    assert!(
        text.contains("error: study tiny: all 4 trials failed (the first: non-finite"),
        "{text}"
    );
    // The reports were written all the same: they hold the reasons.
    let csv = std::fs::read_to_string(dir.join("reports/tiny/trials.csv")).unwrap();
    assert_eq!(csv.matches(",failed,").count(), 4, "{csv}");
}
