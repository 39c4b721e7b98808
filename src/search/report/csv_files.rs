//! `pareto.csv` and `trials.csv`: the front and every trial as CSV rows (dev and test accuracy;
//! for trials also the learning rate each trained with).

use super::{design_in_words, over, percent, Front, Rendering, ReportContext};
use crate::search::confirm::test_accuracy;
use crate::search::store::{state_str, TrialRow};

pub(crate) fn csv_bytes(header: &[&str], rows: Vec<Vec<String>>) -> Result<Vec<u8>, Rendering> {
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

pub(crate) fn front_csv(ctx: &ReportContext, front: &Front) -> Result<Vec<u8>, Rendering> {
    let header = [
        "rank",
        "trial",
        "design",
        "params",
        "percent",
        "accuracy",
        "test_accuracy",
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
            opt(test_accuracy(t)),
            t.fidelity.to_string(),
            over(t, ctx.budget_params).is_empty().to_string(),
            t.canonical.clone(),
        ]
    });
    csv_bytes(&header, rows.collect())
}

pub(crate) fn trials_csv(ctx: &ReportContext, trials: &[TrialRow]) -> Result<Vec<u8>, Rendering> {
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
        "test_accuracy",
        "seconds",
        "canonical",
        "design",
        "error",
        // Last, so readers of the older columns by position keep working.
        "learning_rate",
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
            opt(test_accuracy(t)),
            t.seconds.map(|s| format!("{s:.1}")).unwrap_or_default(),
            t.canonical.clone(),
            design_in_words(&t.design),
            t.error.clone().unwrap_or_default(),
            opt(used_rate(t)),
        ]
    });
    csv_bytes(&header, rows.collect())
}

/// The rate a trial trained with, as its run recorded it; before it finishes (or when it failed),
/// the design's own rate where it has one. Empty when neither is known: the trainer's default or
/// `--lr` applies.
fn used_rate(t: &TrialRow) -> Option<f64> {
    let recorded = t
        .metrics
        .as_ref()
        .and_then(|m| m.get("learning_rate")?.as_f64());
    recorded.or(t.design.learning_rate)
}
