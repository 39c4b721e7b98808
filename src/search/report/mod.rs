//! Search reports from a study's trials: the Pareto front and the baselines (Markdown, CSV, SVG,
//! an interactive HTML page), hypervolume over trials, and the front as a terminal table.
//!
//! This module owns the front, the hypervolume history, the terminal table and [`write_reports`];
//! `markdown` renders `pareto.md`, `csv_files` the front and trial CSV files, `confirmed` the
//! confirmation section and `confirmed.csv`, `html` and `page_data` `index.html` (the SVGs come
//! from `plot`).

mod confirmed;
mod csv_files;
mod html;
mod markdown;
mod page_data;

pub use markdown::verdict;
pub use page_data::export_args;

use super::confirm::{confirmed as confirmed_designs, test_accuracy};
use super::pareto::{hypervolume, pareto_front, Point};
use super::store::{TrialKind, TrialRow};
use super::{plot, TrialState};
use crate::report::group;
use crate::spec::Design;
use confirmed::{confirmed_csv, Confirmation};
use csv_files::{front_csv, trials_csv};
use markdown::markdown;
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
    /// What `pets export` needs besides `--study` and `--trial` to find this study's store and
    /// run folders (`--storage`, `--trials-dir`; empty for the defaults): see [`export_args`].
    pub export_args: Vec<String>,
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
    /// The HTML page's data could not be serialised.
    #[error("writing the data of {path}: {source}")]
    Json {
        path: String,
        source: serde_json::Error,
    },
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
    #[tabled(rename = "test acc")]
    test: String,
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
        test: test_cell(t),
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

/// `metrics.test_accuracy` to 4 decimals, "—" when the task has no test split.
pub(crate) fn test_cell(t: &TrialRow) -> String {
    test_accuracy(t).map_or_else(|| "—".into(), |v| format!("{v:.4}"))
}

fn over(t: &TrialRow, budget: usize) -> &'static str {
    if t.params.unwrap_or(0) > budget {
        " *"
    } else {
        ""
    }
}

/// Writes `pareto.md`, `pareto.csv`, `trials.csv`, `confirmed.csv`, `pareto.svg`, `hypervolume.svg`
/// and `index.html` into `dir`, each atomically (a crash leaves the previous version, never half a
/// file). Returns the paths.
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
    let all = confirmed_designs(trials);
    let confirmation = Confirmation::of(&all);
    let files = [
        (
            "pareto.md",
            Ok(markdown(ctx, trials, &front, &history, &confirmation).into_bytes()),
        ),
        ("pareto.csv", front_csv(ctx, &front)),
        ("trials.csv", trials_csv(ctx, trials)),
        ("confirmed.csv", confirmed_csv(&all)),
        (
            "pareto.svg",
            plot::pareto_svg(ctx, trials, &front).map(String::into_bytes),
        ),
        (
            "hypervolume.svg",
            plot::hypervolume_svg(ctx, &history).map(String::into_bytes),
        ),
        (
            "index.html",
            html::index_html(ctx, trials, &front, &history, &confirmation).map(String::into_bytes),
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
            Rendering::Json(source) => ReportError::Json {
                path: path.display().to_string(),
                source,
            },
        })?;
        // Same folder, so the rename is atomic; fsync first so the rename never exposes an empty file.
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let mut file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        if let Err(e) = file.write_all(&bytes).and_then(|()| file.sync_all()) {
            // On a full disk a half-written temporary would only take more of the space left.
            let _ = std::fs::remove_file(&tmp);
            return Err(io(&tmp)(e));
        }
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        written.push(path);
    }
    Ok(written)
}

/// Why one report could not be rendered, before its path is known.
pub(crate) enum Rendering {
    Csv(csv::Error),
    Plot(String),
    Json(serde_json::Error),
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
            export_args: vec![],
        }
    }

    #[test]
    fn a_study_without_trials_still_reports() {
        let dir = std::env::temp_dir().join(format!("pets-empty-report-{}", std::process::id()));
        let written = write_reports(&dir, &ctx(), &[]).expect("reports of an empty study");
        assert_eq!(written.len(), 7);
        let md = std::fs::read_to_string(dir.join("pareto.md")).unwrap();
        assert!(
            md.contains("No searched design within the budget of 0 parameters has completed yet.")
        );
        assert!(md.contains("- search trials: 0 (0 complete"));
        assert!(md.contains("No design has been confirmed yet"));
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
