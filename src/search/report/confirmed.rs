//! The confirmation section of `pareto.md` and `confirmed.csv`: confirmed designs ranked by mean
//! test accuracy, and the paired-bootstrap verdicts of the best front design against the baselines.

use super::{csv_files::csv_bytes, Rendering, ReportContext};
use crate::report::group;
use crate::search::confirm::{
    best_baseline, verdicts, AgainstBaselines, BootstrapError, Comparison, Confirmed, RESAMPLES,
};
use crate::search::store::state_str;
use std::fmt::Write as _;

/// Seed of the bootstrap's RNG, fixed so that a report regenerates to the same intervals.
pub const BOOTSTRAP_SEED: u64 = 0;

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

pub(super) fn acc(v: Option<f64>) -> String {
    v.map_or_else(|| "—".into(), |v| format!("{v:.4}"))
}

pub(super) fn points(v: f64) -> String {
    format!("{:+.2}", 100.0 * v)
}

pub(super) fn percent(c: &Confirmed, ctx: &ReportContext) -> String {
    let p = c.percent.unwrap_or_else(|| {
        100.0 * c.params.unwrap_or(0) as f64 / ctx.backbone_params.max(1) as f64
    });
    format!("{p:.3}%")
}

pub(super) fn missing(c: &Confirmed) -> String {
    let m = c.seeds_missing();
    if m.is_empty() {
        return String::new();
    }
    let words: Vec<String> = m
        .iter()
        .map(|(s, st)| format!("seed {s} {}", state_str(*st)))
        .collect();
    words.join(", ")
}

/// The confirmed designs and the best front design's comparisons with the baselines, computed once
/// per rendering (the bootstrap is the costly part) and shared by `pareto.md` and `index.html`.
pub(crate) struct Confirmation<'a> {
    /// Confirmed designs ranked by mean test accuracy.
    pub all: &'a [Confirmed],
    /// The best confirmed front design and its comparison with each baseline.
    pub verdicts: Option<(&'a Confirmed, AgainstBaselines<'a>)>,
}

impl<'a> Confirmation<'a> {
    /// Runs the paired bootstraps of `all` (seeded: [`BOOTSTRAP_SEED`]).
    pub fn of(all: &'a [Confirmed]) -> Confirmation<'a> {
        Confirmation {
            all,
            verdicts: verdicts(all, RESAMPLES, BOOTSTRAP_SEED),
        }
    }

    /// Seeds of the design confirmed on the most.
    pub fn seeds(&self) -> usize {
        self.all.iter().map(|c| c.runs.len()).max().unwrap_or(0)
    }

    /// Whether the best front design beats the best baseline, in one Markdown sentence; `None`
    /// when no searched design is confirmed.
    pub fn sentence(&self) -> Option<String> {
        let (best, against) = self.verdicts.as_ref()?;
        let best_base = best_baseline(self.all);
        let against_best = best_base.and_then(|b| {
            against
                .iter()
                .find(|(c, _)| c.parent == b.parent)
                .map(|(_, cmp)| cmp)
        });
        Some(sentence(best, best_base.zip(against_best)))
    }
}

/// `## Confirmed at full fidelity over S seeds`, with its verdicts; says so when nothing is confirmed.
pub(crate) fn section(ctx: &ReportContext, confirmation: &Confirmation) -> String {
    let all = confirmation.all;
    let seeds = confirmation.seeds();
    let mut md = format!("## Confirmed at full fidelity over {seeds} seeds\n\n");
    if all.is_empty() {
        md.push_str(
            "No design has been confirmed yet: no confirmation run is in this study (an older study, \
             or the confirmation has not started).\n",
        );
        return md;
    }
    md.push_str(
        "The top front designs and every baseline retrained at full fidelity on more seeds (the first \
         seed is the trial's own run), ranked by mean test accuracy. Test accuracies were never seen by \
         the search: it ranks and promotes by dev accuracy only.\n\n\
         | rank | design | trial | kind | trainable params | % of backbone | mean test ± sd | mean dev | seeds done | missing |\n\
         |---:|---|---:|---|---:|---:|---:|---:|---:|---|\n",
    );
    for (i, c) in all.iter().enumerate() {
        let test = match (c.mean_test(), c.sd_test()) {
            (Some(m), Some(sd)) => format!("{m:.4} ± {sd:.4}"),
            (Some(m), None) => format!("{m:.4}"),
            _ => "—".into(),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {test} | {} | {}/{} | {} |",
            i + 1,
            cell(&c.name),
            c.parent,
            if c.is_baseline() { "baseline" } else { "front" },
            c.params.map(group).unwrap_or_else(|| "—".into()),
            percent(c, ctx),
            acc(c.mean_dev()),
            c.seeds_done(),
            c.runs.len(),
            missing(c)
        );
    }
    let Some((best, against)) = &confirmation.verdicts else {
        md.push_str("\nNo searched design has been confirmed yet, so there is no verdict against the baselines.\n");
        return md;
    };
    let _ = writeln!(
        md,
        "\n### The best front design against each baseline\n\n\
         Best front design: {} (mean test {}). Paired bootstrap over the pooled (test example, seed) \
         pairs of the seeds both completed, {} resamples (seed {BOOTSTRAP_SEED}); difference = best \
         front design − baseline in accuracy points, 95% percentile interval (nearest rank: the 250th \
         and 9,750th of the sorted resampled means). \"beats\"/\"loses\" when the interval excludes 0.\n\n\
         | baseline | mean test | difference (points) | 95% interval | verdict | seeds paired | pairs |\n\
         |---|---:|---:|---|---|---:|---:|",
        cell(&best.name),
        acc(best.mean_test()),
        group(RESAMPLES)
    );
    for (b, cmp) in against {
        match cmp {
            Ok(c) => {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | [{}, {}] | {} | {} | {} |",
                    cell(&b.name),
                    acc(b.mean_test()),
                    points(c.difference),
                    points(c.low),
                    points(c.high),
                    c.verdict.as_str(),
                    c.seeds.len(),
                    group(c.pairs)
                );
            }
            Err(e) => {
                let _ = writeln!(
                    md,
                    "| {} | {} | — | — | not compared: {} | 0 | 0 |",
                    cell(&b.name),
                    acc(b.mean_test()),
                    cell(&e.to_string())
                );
            }
        }
    }
    let _ = writeln!(md, "\n{}", confirmation.sentence().unwrap_or_default());
    md
}

/// Whether the best front design beats the best baseline (highest mean test), in one sentence,
/// from the comparison the verdict table made.
fn sentence(
    best: &Confirmed,
    baseline: Option<(&Confirmed, &Result<Comparison, BootstrapError>)>,
) -> String {
    let Some((b, comparison)) = baseline else {
        return "No confirmed baseline has a test accuracy to compare with.".into();
    };
    let who = format!("the best front design ({})", best.name);
    let base = format!(
        "the best baseline ({}, mean test {})",
        b.name,
        acc(b.mean_test())
    );
    match comparison {
        Err(e) => format!("**Undecided**: {who} could not be compared with {base}: {e}."),
        Ok(c) => {
            let interval = format!(
                "95% interval [{}, {}] points",
                points(c.low),
                points(c.high)
            );
            let by = format!("{:.2}", 100.0 * c.difference.abs());
            match c.verdict {
                crate::search::confirm::Verdict::Beats => {
                    format!("**Yes**: {who} beats {base} by {by} points on test ({interval}).")
                }
                crate::search::confirm::Verdict::Ties => format!(
                    "**No**: {who} does not beat {base}: they tie (difference {} points, {interval}).",
                    points(c.difference)
                ),
                crate::search::confirm::Verdict::Loses => format!(
                    "**No**: {who} loses to {base} by {by} points on test ({interval})."
                ),
            }
        }
    }
}

/// `confirmed.csv`: one row per confirmed design, in ranking order.
pub(crate) fn confirmed_csv(all: &[Confirmed]) -> Result<Vec<u8>, Rendering> {
    let header = [
        "rank",
        "design",
        "trial",
        "kind",
        "params",
        "percent",
        "mean_test",
        "sd_test",
        "mean_dev",
        "seeds_done",
        "seeds",
        "test_by_seed",
        "dev_by_seed",
    ];
    let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    let rows = all
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let by_seed = |f: fn(&crate::search::confirm::SeedRun) -> Option<f64>| {
                let v: Vec<String> = c
                    .runs
                    .iter()
                    .map(|r| format!("{}:{}", r.seed, opt(f(r))))
                    .collect();
                v.join(" ")
            };
            vec![
                (i + 1).to_string(),
                c.name.clone(),
                c.parent.to_string(),
                c.kind.as_str().into(),
                c.params.map(|p| p.to_string()).unwrap_or_default(),
                opt(c.percent),
                opt(c.mean_test()),
                opt(c.sd_test()),
                opt(c.mean_dev()),
                c.seeds_done().to_string(),
                c.runs.len().to_string(),
                by_seed(|r| r.test),
                by_seed(|r| r.dev),
            ]
        })
        .collect();
    csv_bytes(&header, rows)
}
