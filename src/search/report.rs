//! Search reports from a study's trials: the Pareto front and the baselines (Markdown, CSV, SVG),
//! hypervolume over trials, and the front as a terminal table.

use super::pareto::{hypervolume, pareto_front, Point};
use super::store::{state_str, TrialKind, TrialRow};
use super::{plot, TrialState};
use crate::report::group;
use crate::spec::Design;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use tabled::settings::Style;
use tabled::{Table, Tabled};
use thiserror::Error;

/// Accuracy of the hypervolume reference point: a design must beat a coin toss to count. Its
/// parameter coordinate is the budget, so designs over budget add nothing.
pub const REFERENCE_ACCURACY: f64 = 0.5;

/// What the trials alone do not say about a study.
#[derive(Debug, Clone)]
pub struct ReportContext {
    pub study: String,
    pub model: String,
    pub task: String,
    /// Trainable parameters allowed to a design, head excluded.
    pub budget_params: usize,
    /// The frozen encoder as run (no pooler): the denominator of every percentage.
    pub backbone_params: usize,
    /// The command line that produced the study.
    pub command: String,
    pub sampler: String,
    /// Free-form lines added under the header (protocol details, caveats).
    pub notes: Vec<String>,
}

#[derive(Debug, Error)]
pub enum ReportError {
    #[error("writing report {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("writing CSV {path}: {source}")]
    Csv { path: String, source: csv::Error },
    #[error("drawing {path}: {message}")]
    Plot { path: String, message: String },
}

/// The comparable front: complete search trials at the highest fidelity reached, sorted by
/// parameters. Lower-fidelity accuracies are not comparable with it and are left out.
#[derive(Debug, Clone)]
pub struct Front<'a> {
    /// Training steps of every member (0 when no search trial has completed).
    pub fidelity: usize,
    /// All complete search trials at `fidelity`, from which the front is drawn.
    pub candidates: Vec<&'a TrialRow>,
    pub members: Vec<&'a TrialRow>,
}

/// Accuracy and parameters of a complete trial.
pub(crate) fn objectives(t: &TrialRow) -> Option<(f64, usize)> {
    match (t.state, t.accuracy, t.params) {
        (TrialState::Complete, Some(a), Some(p)) => Some((a, p)),
        _ => None,
    }
}

fn point(t: &TrialRow) -> Point {
    let (accuracy, params) = objectives(t).unwrap_or((f64::NAN, usize::MAX));
    Point {
        accuracy,
        params: params as f64,
    }
}

pub fn front(trials: &[TrialRow]) -> Front<'_> {
    let complete = || {
        trials
            .iter()
            .filter(|t| t.kind == TrialKind::Search && objectives(t).is_some())
    };
    let fidelity = complete().map(|t| t.fidelity).max().unwrap_or(0);
    let candidates: Vec<&TrialRow> = complete().filter(|t| t.fidelity == fidelity).collect();
    let points: Vec<Point> = candidates.iter().map(|t| point(t)).collect();
    let members = pareto_front(&points)
        .into_iter()
        .map(|i| candidates[i])
        .collect();
    Front {
        fidelity,
        candidates,
        members,
    }
}

/// Normalised hypervolume of the comparable front after each trial number, kept only where it
/// changes (and at the last trial). 1.0 would be accuracy 1 at zero parameters.
pub fn hypervolume_history(trials: &[TrialRow], budget_params: usize) -> Vec<(usize, f64)> {
    let front = front(trials);
    let reference = Point {
        accuracy: REFERENCE_ACCURACY,
        params: budget_params as f64,
    };
    let scale = budget_params as f64 * (1.0 - REFERENCE_ACCURACY);
    let mut history: Vec<(usize, f64)> = Vec::new();
    let mut seen = Vec::new();
    for t in trials {
        if front.candidates.iter().any(|c| c.id == t.id) {
            seen.push(point(t));
        }
        let hv = if scale > 0.0 {
            hypervolume(&seen, reference) / scale
        } else {
            0.0
        };
        if history.last().is_none_or(|&(_, last)| hv != last) {
            history.push((t.number, hv));
        }
    }
    if let (Some(last), Some(&(n, hv))) = (trials.last(), history.last()) {
        if n != last.number {
            history.push((last.number, hv));
        }
    }
    history
}

/// A design in words: its modules' descriptions joined by " + ", then unfrozen backbone parts.
pub fn design_in_words(design: &Design) -> String {
    let mut parts: Vec<String> = design.modules.iter().map(|m| m.describe()).collect();
    parts.extend(design.unfreeze.iter().map(|p| format!("unfrozen {p:?}")));
    if parts.is_empty() {
        return "no trainable module (head only)".into();
    }
    parts.join(" + ")
}

fn percent(t: &TrialRow, backbone: usize) -> f64 {
    let params = t.params.unwrap_or(0) as f64;
    t.percent.unwrap_or(100.0 * params / backbone.max(1) as f64)
}

#[derive(Tabled)]
struct FrontRow {
    rank: usize,
    trial: usize,
    design: String,
    #[tabled(rename = "trainable params")]
    params: String,
    #[tabled(rename = "% backbone")]
    percent: String,
    #[tabled(rename = "dev acc")]
    accuracy: String,
    steps: usize,
}

/// The front for the terminal, one row per member.
pub fn front_table(trials: &[TrialRow], budget_params: usize, backbone_params: usize) -> String {
    let front = front(trials);
    let rows = front.members.iter().enumerate().map(|(i, t)| FrontRow {
        rank: i + 1,
        trial: t.number,
        design: design_in_words(&t.design),
        params: format!("{}{}", group(t.params.unwrap_or(0)), over(t, budget_params)),
        percent: format!("{:.3}%", percent(t, backbone_params)),
        accuracy: format!("{:.4}", t.accuracy.unwrap_or(f64::NAN)),
        steps: t.fidelity,
    });
    let mut out = Table::new(rows).with(Style::sharp()).to_string();
    let _ = write!(
        out,
        "\nfront of {} complete search trials at {} steps; budget {} params (* = over budget)",
        front.candidates.len(),
        front.fidelity,
        group(budget_params)
    );
    out
}

fn over(t: &TrialRow, budget: usize) -> &'static str {
    if t.params.unwrap_or(0) > budget {
        " *"
    } else {
        ""
    }
}

/// Writes `pareto.md`, `pareto.csv`, `trials.csv`, `pareto.svg` and `hypervolume.svg` into `dir`,
/// each atomically (a crash leaves the previous version, never half a file). Returns the paths.
pub fn write_reports(
    dir: &Path,
    ctx: &ReportContext,
    trials: &[TrialRow],
) -> Result<Vec<PathBuf>, ReportError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| ReportError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let front = front(trials);
    let history = hypervolume_history(trials, ctx.budget_params);
    let files = [
        (
            "pareto.md",
            Ok(markdown(ctx, trials, &front, &history).into_bytes()),
        ),
        ("pareto.csv", front_csv(ctx, &front)),
        ("trials.csv", trials_csv(ctx, trials)),
        (
            "pareto.svg",
            plot::pareto_svg(ctx, trials, &front).map(String::into_bytes),
        ),
        (
            "hypervolume.svg",
            plot::hypervolume_svg(ctx, &history).map(String::into_bytes),
        ),
    ];
    let mut written = Vec::new();
    for (name, bytes) in files {
        let path = dir.join(name);
        let bytes = bytes.map_err(|e| match e {
            Rendering::Csv(source) => ReportError::Csv {
                path: path.display().to_string(),
                source,
            },
            Rendering::Plot(message) => ReportError::Plot {
                path: path.display().to_string(),
                message,
            },
        })?;
        // Same folder, so the rename is atomic; fsync first so the rename never exposes an empty file.
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let mut file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        file.write_all(&bytes)
            .and_then(|()| file.sync_all())
            .map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        written.push(path);
    }
    Ok(written)
}

/// Why one report could not be rendered, before its path is known.
pub(crate) enum Rendering {
    Csv(csv::Error),
    Plot(String),
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn markdown(
    ctx: &ReportContext,
    trials: &[TrialRow],
    front: &Front,
    history: &[(usize, f64)],
) -> String {
    let budget_pct = 100.0 * ctx.budget_params as f64 / ctx.backbone_params.max(1) as f64;
    let mut md = format!(
        "# Study `{}`: Pareto front\n\nGenerated by `{}`.\n\n",
        ctx.study, ctx.command
    );
    let _ = writeln!(
        md,
        "Model `{}`, task `{}`, sampler `{}`. Budget: {} trainable parameters = {budget_pct:.3}% of the \
         backbone's {} (encoder as run, no pooler; counts exclude the classification head).\n",
        ctx.model, ctx.task, ctx.sampler, group(ctx.budget_params), group(ctx.backbone_params)
    );
    let count = |kind: TrialKind, state: TrialState| {
        trials
            .iter()
            .filter(|t| t.kind == kind && t.state == state)
            .count()
    };
    let states = [
        TrialState::Complete,
        TrialState::Pruned,
        TrialState::Failed,
        TrialState::Running,
    ];
    for kind in [TrialKind::Search, TrialKind::Baseline] {
        let by_state: Vec<String> = states
            .iter()
            .map(|&s| format!("{} {}", count(kind, s), state_str(s)))
            .collect();
        let total = trials.iter().filter(|t| t.kind == kind).count();
        let _ = writeln!(
            md,
            "- {} trials: {total} ({})",
            kind.as_str(),
            by_state.join(", ")
        );
    }
    let seconds: f64 = trials.iter().filter_map(|t| t.seconds).sum();
    let _ = writeln!(
        md,
        "- total trial time: {} s ({:.1} h)",
        group(seconds.round() as usize),
        seconds / 3600.0
    );
    for note in &ctx.notes {
        let _ = writeln!(md, "- {note}");
    }
    let _ = writeln!(
        md,
        "\n## Front at {} steps\n\n{} of the {} complete search trials at the highest fidelity reached are \
         non-dominated (higher dev accuracy, fewer trainable parameters); trials at lower fidelity are \
         not comparable and are left out.\n\n![front](pareto.svg)\n",
        front.fidelity,
        front.members.len(),
        front.candidates.len()
    );
    md.push_str("| rank | design | trainable params | % of backbone | dev accuracy | steps | trial | within budget |\n");
    md.push_str("|---:|---|---:|---:|---:|---:|---:|---|\n");
    for (i, t) in front.members.iter().enumerate() {
        let within = if over(t, ctx.budget_params).is_empty() {
            "yes"
        } else {
            "no"
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.3}% | {:.4} | {} | {} | {within} |",
            i + 1,
            cell(&design_in_words(&t.design)),
            group(t.params.unwrap_or(0)),
            percent(t, ctx.backbone_params),
            t.accuracy.unwrap_or(f64::NAN),
            t.fidelity,
            t.number
        );
    }
    let baselines: Vec<&TrialRow> = trials
        .iter()
        .filter(|t| t.kind == TrialKind::Baseline && objectives(t).is_some())
        .collect();
    md.push_str("\n## Baselines\n\n| preset | trainable params | % of backbone | dev accuracy | steps | trial |\n|---|---:|---:|---:|---:|---:|\n");
    for t in &baselines {
        let _ = writeln!(
            md,
            "| {} | {} | {:.3}% | {:.4} | {} | {} |",
            cell(t.label.as_deref().unwrap_or("?")),
            group(t.params.unwrap_or(0)),
            percent(t, ctx.backbone_params),
            t.accuracy.unwrap_or(f64::NAN),
            t.fidelity,
            t.number
        );
    }
    let _ = writeln!(md, "\n{}\n", verdict(ctx, front, &baselines));
    let _ = writeln!(
        md,
        "## Hypervolume over trials\n\nArea dominated by the front at {} steps, reference point accuracy \
         {REFERENCE_ACCURACY} and {} parameters (the budget), divided by budget × {} so that 1 would be \
         accuracy 1 at zero parameters. Listed where it changes.\n\n![hypervolume](hypervolume.svg)\n\n\
         | after trial | hypervolume |\n|---:|---:|",
        front.fidelity,
        group(ctx.budget_params),
        1.0 - REFERENCE_ACCURACY
    );
    for (n, hv) in history {
        let _ = writeln!(md, "| {n} | {hv:.5} |");
    }
    md
}

/// Whether the best front design within budget is at least as accurate as every baseline within it.
pub fn verdict(ctx: &ReportContext, front: &Front, baselines: &[&TrialRow]) -> String {
    let within = |t: &&&TrialRow| objectives(t).is_some_and(|(_, p)| p <= ctx.budget_params);
    let by_accuracy = |a: &&&TrialRow, b: &&&TrialRow| {
        a.accuracy
            .unwrap_or(0.0)
            .total_cmp(&b.accuracy.unwrap_or(0.0))
    };
    let best = front.members.iter().filter(within).max_by(by_accuracy);
    let best_baseline = baselines.iter().filter(within).max_by(by_accuracy);
    let budget = group(ctx.budget_params);
    match (best, best_baseline) {
        (None, _) => format!(
            "No searched design within the budget of {budget} parameters has completed yet."
        ),
        (Some(_), None) => {
            format!("No baseline within the budget of {budget} parameters to compare with.")
        }
        (Some(d), Some(b)) => {
            let (da, ba) = (d.accuracy.unwrap_or(0.0), b.accuracy.unwrap_or(0.0));
            let who = format!(
                "the best front design within budget (trial {}, {} params, dev accuracy {da:.4}, {} steps)",
                d.number,
                group(d.params.unwrap_or(0)),
                d.fidelity
            );
            let base = format!(
                "the best baseline within budget ({}, {} params, {ba:.4}, {} steps)",
                b.label.as_deref().unwrap_or("?"),
                group(b.params.unwrap_or(0)),
                b.fidelity
            );
            if da >= ba {
                format!("**Yes**: {who} is at least as accurate as every baseline within budget; {base} is {:.2} points behind.", 100.0 * (da - ba))
            } else {
                format!(
                    "**No**: {base} beats {who} by {:.2} points.",
                    100.0 * (ba - da)
                )
            }
        }
    }
}

fn csv_bytes(header: &[&str], rows: Vec<Vec<String>>) -> Result<Vec<u8>, Rendering> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(header).map_err(Rendering::Csv)?;
    for row in rows {
        w.write_record(&row).map_err(Rendering::Csv)?;
    }
    w.into_inner()
        .map_err(|e| Rendering::Csv(e.into_error().into()))
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

fn front_csv(ctx: &ReportContext, front: &Front) -> Result<Vec<u8>, Rendering> {
    let header = [
        "rank",
        "trial",
        "design",
        "params",
        "percent",
        "accuracy",
        "fidelity",
        "within_budget",
        "canonical",
    ];
    let rows = front.members.iter().enumerate().map(|(i, t)| {
        vec![
            (i + 1).to_string(),
            t.number.to_string(),
            design_in_words(&t.design),
            opt(t.params),
            format!("{:.6}", percent(t, ctx.backbone_params)),
            opt(t.accuracy),
            t.fidelity.to_string(),
            over(t, ctx.budget_params).is_empty().to_string(),
            t.canonical.clone(),
        ]
    });
    csv_bytes(&header, rows.collect())
}

fn trials_csv(ctx: &ReportContext, trials: &[TrialRow]) -> Result<Vec<u8>, Rendering> {
    let header = [
        "number",
        "kind",
        "label",
        "state",
        "rung",
        "fidelity",
        "parent",
        "seed",
        "params",
        "percent",
        "accuracy",
        "seconds",
        "canonical",
        "design",
        "error",
    ];
    let rows = trials.iter().map(|t| {
        vec![
            t.number.to_string(),
            t.kind.as_str().into(),
            t.label.clone().unwrap_or_default(),
            state_str(t.state).into(),
            t.rung.to_string(),
            t.fidelity.to_string(),
            opt(t.parent),
            t.seed.to_string(),
            opt(t.params),
            t.params
                .map(|_| format!("{:.6}", percent(t, ctx.backbone_params)))
                .unwrap_or_default(),
            opt(t.accuracy),
            t.seconds.map(|s| format!("{s:.1}")).unwrap_or_default(),
            t.canonical.clone(),
            design_in_words(&t.design),
            t.error.clone().unwrap_or_default(),
        ]
    });
    csv_bytes(&header, rows.collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> ReportContext {
        ReportContext {
            study: "empty".into(),
            model: "m".into(),
            task: "t".into(),
            budget_params: 0,
            backbone_params: 0,
            command: "pets search".into(),
            sampler: "random".into(),
            notes: vec![],
        }
    }

    #[test]
    fn a_study_without_trials_still_reports() {
        let dir = std::env::temp_dir().join(format!("pets-empty-report-{}", std::process::id()));
        let written = write_reports(&dir, &ctx(), &[]).expect("reports of an empty study");
        assert_eq!(written.len(), 5);
        let md = std::fs::read_to_string(dir.join("pareto.md")).unwrap();
        assert!(
            md.contains("No searched design within the budget of 0 parameters has completed yet.")
        );
        assert!(md.contains("- search trials: 0 (0 complete"));
        let svg = std::fs::read_to_string(dir.join("pareto.svg")).unwrap();
        assert!(svg.starts_with("<svg") && !svg.contains("<circle"));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(hypervolume_history(&[], 0).is_empty());
    }

    #[test]
    fn designs_in_words() {
        let bitfit = Design::from_ron("Design(name: \"b\", unfreeze: [Biases])", "t").unwrap();
        assert_eq!(design_in_words(&bitfit), "unfrozen Biases");
        let none = Design::from_ron("Design(name: \"n\")", "t").unwrap();
        assert_eq!(design_in_words(&none), "no trainable module (head only)");
        let mam = Design::from_ron(
            "Design(name: \"mam\", modules: [Module(form: Prefix(l: 8), site: AttentionHeads), \
             Module(form: Bottleneck(r: 16, activation: Relu), site: Ffn, composition: Some(Scaled(4.0)))])",
            "t",
        )
        .unwrap();
        assert_eq!(
            design_in_words(&mam),
            "prefix l=8 on AttentionHeads, gated + parallel Relu bottleneck r=16 on Ffn, scale 4"
        );
    }
}
