//! What `index.html` knows about a study, as the JSON its script reads: every trial (complete or
//! not) with its design in words, the front, the hypervolume history, the dev verdict, the
//! confirmed table with the paired-bootstrap verdicts, and the `pets export` command line.

use super::confirmed::{acc, missing, percent as confirmed_percent, points, Confirmation};
use super::REFERENCE_ACCURACY;
use super::{design_in_words, objectives, percent, verdict, Front, ReportContext};
use crate::search::confirm::test_accuracy;
use crate::search::store::{redact, state_str, Storage, TrialKind, TrialRow};
use serde::Serialize;
use std::path::Path;

/// `--storage`'s default, which `pets export` assumes when the flag is left out.
const DEFAULT_STORAGE: &str = "studies/pets.sqlite";

/// The flags `pets export` needs besides `--study` and `--trial` to find a study kept in `storage`
/// with its run folders in `trials_dir`: none for the defaults; a password in a URL is replaced
/// by `***` (the page is a file people share; they type their own).
pub fn export_args(storage: &str, trials_dir: &Path) -> Vec<String> {
    let mut args = Vec::new();
    if storage != DEFAULT_STORAGE {
        args.extend(["--storage".to_string(), redact(storage)]);
    }
    let default_dir = Storage::parse(storage).map(|s| s.default_trials_dir()).ok();
    if default_dir.as_deref() != Some(trials_dir) {
        args.extend(["--trials-dir".to_string(), trials_dir.display().to_string()]);
    }
    args
}

/// `word` as one POSIX shell word: unchanged when it holds only characters no shell treats
/// specially, otherwise single-quoted (a quote inside as `'\''`).
pub(crate) fn shell_word(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-./:@%+=,".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The `pets export` command of a trial with `{n}` where its number goes: the page fills it in
/// for the trial selected (one template instead of a command per trial keeps the page small).
pub(crate) fn export_template(ctx: &ReportContext) -> String {
    let mut words = vec![
        "pets".to_string(),
        "export".into(),
        "--study".into(),
        shell_word(&ctx.study),
    ];
    words.extend(ctx.export_args.iter().map(|a| shell_word(a)));
    words.push("--trial {n} --out".into());
    // The number is appended after the quoted prefix: the shell joins the two into one word.
    words.push(format!(
        "{}{{n}}",
        shell_word(&format!("adapters/{}-trial-", ctx.study))
    ));
    words.join(" ")
}

/// One trial as the page shows it.
#[derive(Serialize)]
pub(crate) struct PageTrial {
    n: usize,
    kind: &'static str,
    /// The baseline's preset name.
    label: Option<String>,
    design: String,
    params: Option<usize>,
    pct: Option<f64>,
    dev: Option<f64>,
    test: Option<f64>,
    steps: usize,
    rung: usize,
    seed: u64,
    /// The trial a promotion or confirmation run retrains.
    parent: Option<usize>,
    seconds: Option<f64>,
    state: &'static str,
    error: Option<String>,
}

/// A row of the confirmed table.
#[derive(Serialize)]
pub(crate) struct PageConfirmed {
    name: String,
    trial: usize,
    kind: &'static str,
    params: Option<usize>,
    pct: String,
    test: String,
    dev: String,
    done: usize,
    seeds: usize,
    missing: String,
}

/// The best front design against one baseline.
#[derive(Serialize)]
pub(crate) struct PageVerdict {
    baseline: String,
    test: String,
    /// Difference and interval in accuracy points, signed; empty when not compared.
    difference: String,
    interval: String,
    verdict: String,
    seeds: usize,
    pairs: usize,
}

/// Everything the page draws.
#[derive(Serialize)]
pub(crate) struct PageData<'a> {
    study: &'a str,
    model: &'a str,
    task: &'a str,
    sampler: &'a str,
    command: &'a str,
    notes: &'a [String],
    budget: usize,
    backbone: usize,
    reference_accuracy: f64,
    /// Training steps of the front's members.
    fidelity: usize,
    /// Trial numbers of the front, by parameters ascending.
    front: Vec<usize>,
    trials: Vec<PageTrial>,
    hypervolume: &'a [(usize, f64)],
    /// Whether the best front design within budget is at least as accurate as every baseline on
    /// dev (Markdown emphasis kept).
    dev_verdict: String,
    confirmed: Vec<PageConfirmed>,
    /// The best confirmed front design, when there is one.
    best: Option<String>,
    best_trial: Option<usize>,
    verdicts: Vec<PageVerdict>,
    sentence: Option<String>,
    export: String,
}

fn page_trial(ctx: &ReportContext, t: &TrialRow) -> PageTrial {
    let complete = objectives(t).is_some();
    PageTrial {
        n: t.number,
        kind: t.kind.as_str(),
        label: t.label.clone(),
        design: design_in_words(&t.design),
        params: t.params,
        pct: t.params.map(|_| percent(t, ctx.backbone_params)),
        dev: t.accuracy.filter(|_| complete),
        test: test_accuracy(t).filter(|_| complete),
        steps: t.fidelity,
        rung: t.rung,
        seed: t.seed,
        parent: t.parent,
        seconds: t.seconds,
        state: state_str(t.state),
        error: t.error.clone(),
    }
}

/// The page's data for `trials` (in store order).
pub(crate) fn page_data<'a>(
    ctx: &'a ReportContext,
    trials: &[TrialRow],
    front: &Front,
    history: &'a [(usize, f64)],
    confirmation: &Confirmation,
) -> PageData<'a> {
    let baselines: Vec<&TrialRow> = trials
        .iter()
        .filter(|t| t.kind == TrialKind::Baseline && objectives(t).is_some())
        .collect();
    let confirmed = confirmation
        .all
        .iter()
        .map(|c| PageConfirmed {
            name: c.name.clone(),
            trial: c.parent,
            kind: if c.is_baseline() { "baseline" } else { "front" },
            params: c.params,
            pct: confirmed_percent(c, ctx),
            test: match (c.mean_test(), c.sd_test()) {
                (Some(m), Some(sd)) => format!("{m:.4} ± {sd:.4}"),
                (m, _) => acc(m),
            },
            dev: acc(c.mean_dev()),
            done: c.seeds_done(),
            seeds: c.runs.len(),
            missing: missing(c),
        })
        .collect();
    let verdicts = confirmation
        .verdicts
        .iter()
        .flat_map(|(_, against)| against)
        .map(|(b, cmp)| match cmp {
            Ok(c) => PageVerdict {
                baseline: b.name.clone(),
                test: acc(b.mean_test()),
                difference: points(c.difference),
                interval: format!("[{}, {}]", points(c.low), points(c.high)),
                verdict: c.verdict.as_str().into(),
                seeds: c.seeds.len(),
                pairs: c.pairs,
            },
            Err(e) => PageVerdict {
                baseline: b.name.clone(),
                test: acc(b.mean_test()),
                difference: String::new(),
                interval: String::new(),
                verdict: format!("not compared: {e}"),
                seeds: 0,
                pairs: 0,
            },
        })
        .collect();
    let best = confirmation.verdicts.as_ref().map(|(b, _)| *b);
    PageData {
        study: &ctx.study,
        model: &ctx.model,
        task: &ctx.task,
        sampler: &ctx.sampler,
        command: &ctx.command,
        notes: &ctx.notes,
        budget: ctx.budget_params,
        backbone: ctx.backbone_params,
        reference_accuracy: REFERENCE_ACCURACY,
        fidelity: front.fidelity,
        front: front.members.iter().map(|t| t.number).collect(),
        trials: trials.iter().map(|t| page_trial(ctx, t)).collect(),
        hypervolume: history,
        dev_verdict: verdict(ctx, front, &baselines),
        confirmed,
        best: best.map(|b| format!("{} (mean test {})", b.name, acc(b.mean_test()))),
        best_trial: best.map(|b| b.parent),
        verdicts,
        sentence: confirmation.sentence(),
        export: export_template(ctx),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_are_quoted_only_when_needed() {
        assert_eq!(shell_word("mam"), "mam");
        assert_eq!(shell_word("studies/pets.sqlite"), "studies/pets.sqlite");
        assert_eq!(shell_word("my study"), "'my study'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word("$(rm -rf /)"), "'$(rm -rf /)'");
        assert_eq!(shell_word(""), "''");
    }

    #[test]
    fn export_flags_follow_the_store_and_hide_passwords() {
        assert!(export_args("studies/pets.sqlite", Path::new("studies")).is_empty());
        assert_eq!(
            export_args("/tmp/s.sqlite", Path::new("/tmp")),
            ["--storage", "/tmp/s.sqlite"]
        );
        assert_eq!(
            export_args("postgres://pets:secret@db/pets", Path::new("/shared")),
            [
                "--storage",
                "postgres://pets:***@db/pets",
                "--trials-dir",
                "/shared"
            ]
        );
    }
}
