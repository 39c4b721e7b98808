//! Faults during a search on a tiny encoder: SIGKILL at random moments, again and again; a full
//! disk and an unwritable reports folder; a trial whose loss is not finite; a second process on
//! the same study. Completed trials are never lost, the study resumes (claiming back what a killed
//! process left running), the store stays whole.
//! Also determinism: the same seeds give the same trials and accuracies on the CPU.

mod tiny_study;

use pets::search::study::trial_folder;
use pets::search::TrialState;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tiny_study::{
    command, complete_trials, finished, integrity, scratch, search_command, short_command, trials,
    SHORT,
};

/// Every complete trial's run folder is whole: metrics that parse, tensors that load.
fn assert_folders_whole(dir: &Path) {
    for t in trials(dir)
        .iter()
        .filter(|t| t.state == TrialState::Complete)
    {
        let folder = trial_folder(&dir.join("study.sqlite"), "tiny", t.number);
        let metrics = std::fs::read_to_string(folder.join("metrics.json")).unwrap();
        let metrics: serde_json::Value = serde_json::from_str(&metrics).unwrap();
        assert_eq!(
            metrics["accuracy"].as_f64(),
            t.accuracy,
            "trial {}",
            t.number
        );
        let tensors = std::fs::read(folder.join("adapter.safetensors")).unwrap();
        safetensors::SafeTensors::deserialize(&tensors).expect("whole tensors");
    }
}

#[test]
fn repeated_kill_9_at_random_moments_loses_no_completed_trial() {
    let dir = scratch("kill");
    let seed = std::env::var("PETS_KILL_SEED").map_or(7, |s| s.parse().unwrap_or(7));
    let mut rng = StdRng::seed_from_u64(seed);
    let mut seen: Vec<(usize, String, f64)> = Vec::new();
    let (mut kills, started) = (0, Instant::now());
    // Each process lives a random 0.1 s to `ceiling`, so the signal lands while loading,
    // training, committing a trial or writing reports. A round that completes no trial raises
    // the ceiling (a loaded machine trains slowly) and one that completes some lowers it, so
    // kills and progress both happen.
    let mut ceiling = 1500u64;
    loop {
        let enough = started.elapsed() > Duration::from_secs(40) && kills >= 6 && seen.len() >= 2;
        if enough || started.elapsed() > Duration::from_secs(150) {
            break;
        }
        let mut child = search_command(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let until = Instant::now() + Duration::from_millis(rng.random_range(100..ceiling));
        let mut exited = None;
        while Instant::now() < until && exited.is_none() {
            exited = child.try_wait().unwrap();
            std::thread::sleep(Duration::from_millis(10));
        }
        if exited.is_some() {
            break; // the study finished between two kills
        }
        child.kill().unwrap(); // SIGKILL: no destructor, no lease release, no flush
        child.wait().unwrap();
        kills += 1;
        let now = complete_trials(&dir);
        for old in &seen {
            assert!(now.contains(old), "kill {kills}: trial {old:?} lost");
        }
        assert_eq!(integrity(&dir), "ok", "kill {kills}");
        assert_folders_whole(&dir);
        // Aim at about one trial every other round: longer lives when a round completed none,
        // shorter when it did, so a fast machine still sees many kills before the study ends.
        ceiling = if now.len() == seen.len() {
            (ceiling * 3 / 2).min(15_000)
        } else {
            (ceiling * 2 / 3).max(200)
        };
        seen = now;
    }
    eprintln!(
        "{kills} kills in {:.0} s; {} trials complete before the final resume",
        started.elapsed().as_secs_f64(),
        seen.len()
    );
    assert!(kills >= 6, "only {kills} kills landed");
    assert!(!seen.is_empty(), "no trial completed between the kills");
    let out = search_command(&dir).output().unwrap();
    assert!(out.status.success(), "{}", finished(&out));
    let last = complete_trials(&dir);
    for old in &seen {
        assert!(
            last.contains(old),
            "trial {old:?} lost after the final resume"
        );
    }
    // Every planned trial completes exactly once (2 baselines, 6 at rung 0, 3 promoted), under
    // its own number: a trial a kill interrupted was claimed again by the next process, with its
    // number and design, rather than left behind.
    let all = trials(&dir);
    let summary: Vec<_> = all
        .iter()
        .map(|t| (t.number, t.state, t.attempts))
        .collect();
    assert!(
        all.iter().all(|t| t.state == TrialState::Complete),
        "after {kills} kills: {summary:?}"
    );
    assert_eq!(all.len(), 11, "after {kills} kills: {summary:?}");
    let mut keys: Vec<_> = all.iter().map(|t| (t.rung, t.canonical.clone())).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 11, "a design trained twice at one rung");
    assert_eq!(integrity(&dir), "ok");
    assert_folders_whole(&dir);
}

/// A reports folder that cannot be written: the search trains every trial, warns after each,
/// keeps them all, and ends with an error that says so; `pets report` writes them afterwards.
fn search_survives_unwritable_reports(dir: &Path, reports: &Path, cause: &str) {
    let out = command(dir, "tiny", reports, SHORT).output().unwrap();
    let text = finished(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert_eq!(
        text.matches("warning: reports not refreshed").count(),
        4,
        "{text}"
    );
    assert!(text.contains(cause), "{text}");
    assert!(
        text.contains("study tiny: its 4 trials are safe in")
            && text.contains("run `pets report --study tiny` once the folder is writable"),
        "{text}"
    );
    assert_eq!(complete_trials(dir).len(), 4);
    assert_folders_whole(dir);
}

#[test]
fn a_full_disk_or_unwritable_reports_folder_loses_no_trial() {
    // A full disk while the first reports are written: the first report file of this process
    // goes through a link to /dev/full (ENOSPC on write). The refresh fails with a warning, the
    // failed temporary is removed (freeing the space), and the next refreshes succeed.
    let dir = scratch("fulldisk");
    let reports = dir.join("reports/tiny");
    std::fs::create_dir_all(&reports).unwrap();
    let mut cmd = short_command(&dir);
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Reports are written to `.<name>.<pid>.tmp` first; the child is still loading its data.
    let tmp = reports.join(format!(".pareto.md.{}.tmp", child.id()));
    std::os::unix::fs::symlink("/dev/full", &tmp).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = finished(&out);
    assert!(out.status.success(), "{text}");
    let warnings: Vec<&str> = text.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(warnings.len(), 1, "{text}");
    assert!(
        warnings[0].starts_with("warning: reports not refreshed: writing report ")
            && warnings[0].ends_with("No space left on device (os error 28)"),
        "{text}"
    );
    assert!(!tmp.exists(), "the failed temporary is removed");
    assert_eq!(complete_trials(&dir).len(), 4);
    assert_folders_whole(&dir);
    let csv = std::fs::read_to_string(reports.join("trials.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5, "header and 4 trials:\n{csv}");

    // The reports folder is a path through a regular file: it can never be created.
    let dir = scratch("noreports");
    let blocker = dir.join("blocker");
    std::fs::write(&blocker, "").unwrap();
    search_survives_unwritable_reports(&dir, &blocker.join("reports"), "Not a directory");
    // Once the folder is fixed, the stored trials render without training anything.
    let out = Command::new(env!("CARGO_BIN_EXE_pets"))
        .args(["report", "--study", "tiny", "--budget", "5%"])
        .args(["--storage", dir.join("study.sqlite").to_str().unwrap()])
        .args(["--reports", dir.join("reports").to_str().unwrap()])
        .args(["--model", dir.join("model").to_str().unwrap()])
        .env("PETS_CACHE", dir.join("cache"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", finished(&out));
    let csv = std::fs::read_to_string(dir.join("reports/tiny/trials.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5, "header and 4 trials:\n{csv}");

    // A read-only folder, where permissions bind (not for root, which may write anywhere).
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("readonly");
    let reports = dir.join("reports");
    std::fs::create_dir_all(reports.join("tiny")).unwrap();
    let ro = std::fs::Permissions::from_mode(0o555);
    std::fs::set_permissions(reports.join("tiny"), ro).unwrap();
    if std::fs::write(reports.join("tiny/probe"), "").is_err() {
        search_survives_unwritable_reports(&dir, &reports, "Permission denied");
    }
    let rw = std::fs::Permissions::from_mode(0o755);
    std::fs::set_permissions(reports.join("tiny"), rw).unwrap();
}

#[test]
fn a_trial_whose_loss_is_not_finite_fails_and_the_search_goes_on() {
    let dir = scratch("nan");
    let presets = dir.join("presets");
    std::fs::create_dir_all(&presets).unwrap();
    std::fs::copy("search_spaces/presets/lora.ron", presets.join("lora.ron")).unwrap();
    // Weights of N(0, 1e30²): activations overflow f32 in the first forward pass.
    std::fs::write(
        presets.join("blowup.ron"),
        "Design(name: \"blowup\", modules: [Module(form: Bottleneck(r: 4, activation: Relu), \
         site: Ffn, init: Normal(1e30))])",
    )
    .unwrap();
    // The short protocol with the blowup design as a second baseline (SHORT ends with its
    // `--baselines lora`, which a repeated flag would add to rather than replace).
    let (short, baselines) = SHORT.split_at(SHORT.len() - 2);
    assert_eq!(baselines, ["--baselines", "lora"]);
    let presets = presets.to_str().unwrap();
    let protocol: Vec<&str> = short
        .iter()
        .copied()
        .chain(["--baselines", "blowup,lora", "--presets", presets])
        .collect();
    let out = command(&dir, "tiny", &dir.join("reports"), &protocol)
        .output()
        .unwrap();
    let text = finished(&out);
    assert!(out.status.success(), "{text}");
    let all = trials(&dir);
    assert_eq!(all.len(), 5, "{text}");
    let failed: Vec<_> = all
        .iter()
        .filter(|t| t.state == TrialState::Failed)
        .collect();
    assert_eq!(failed.len(), 1, "{text}");
    assert_eq!(failed[0].label.as_deref(), Some("blowup"));
    let error = failed[0].error.as_deref().unwrap_or_default();
    assert!(error.starts_with("non-finite training loss"), "{error}");
    assert!(text.contains(&format!("trial {:>3} failed: non-finite", failed[0].number)));
    assert_eq!(complete_trials(&dir).len(), 4, "the search went on");
    let csv = std::fs::read_to_string(dir.join("reports/tiny/trials.csv")).unwrap();
    assert!(
        csv.contains("failed") && csv.contains("non-finite"),
        "{csv}"
    );
}

#[test]
fn a_second_process_on_the_same_study_is_refused_and_the_store_stays_whole() {
    let dir = scratch("twice");
    let mut first = short_command(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while trials(&dir).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !trials(&dir).is_empty(),
        "the first process never began a trial"
    );
    let second = short_command(&dir).output().unwrap();
    let text = finished(&second);
    assert_eq!(second.status.code(), Some(1), "{text}");
    assert!(text.contains("study 'tiny' is being run by pid "), "{text}");
    // Another study in the same file is independent: it runs alongside.
    let other = command(&dir, "other", &dir.join("reports"), SHORT)
        .output()
        .unwrap();
    assert!(other.status.success(), "{}", finished(&other));
    let first = first.wait().unwrap();
    assert!(first.success());
    assert_eq!(complete_trials(&dir).len(), 4);
    assert_eq!(trials(&dir).len(), 4, "the refused process began nothing");
    assert_eq!(integrity(&dir), "ok");
}

#[test]
fn the_same_seeds_give_the_same_trials_on_the_cpu() {
    let results = |name: &str| {
        let dir = scratch(name);
        let out = short_command(&dir).output().unwrap();
        assert!(out.status.success(), "{}", finished(&out));
        let rows: Vec<_> = trials(&dir)
            .into_iter()
            .map(|t| (t.number, t.canonical, t.accuracy, t.params, t.fidelity))
            .collect();
        let report = std::fs::read_to_string(dir.join("reports/tiny/pareto.md")).unwrap();
        (rows, report)
    };
    let (a, report) = results("same-a");
    let (b, _) = results("same-b");
    assert_eq!(a.len(), 4);
    assert_eq!(a, b);
    assert!(
        report.contains("Determinism: on the CPU the same seeds"),
        "{report}"
    );
}
