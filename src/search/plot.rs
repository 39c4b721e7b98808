//! SVG figures of a study (plotters): accuracy against trainable parameters with the front, the
//! baselines and the budget; hypervolume over trials.

use super::report::{objectives, Front, Rendering, ReportContext};
use super::store::{TrialKind, TrialRow};
use crate::report::group;
use plotters::prelude::*;

const GREY: RGBColor = RGBColor(110, 110, 110);
const FRONT: RGBColor = RGBColor(31, 119, 180);
const BASELINE: RGBColor = RGBColor(214, 39, 40);
const BUDGET: RGBColor = RGBColor(255, 127, 14);

fn plot_err<E: std::fmt::Display>(e: E) -> Rendering {
    Rendering::Plot(e.to_string())
}

/// `lo..hi` padded, never empty.
fn span(lo: f64, hi: f64, pad: f64) -> (f64, f64) {
    if lo < hi {
        (lo - pad, hi + pad)
    } else {
        (lo - 2.0 * pad.max(1e-3), hi + 2.0 * pad.max(1e-3))
    }
}

/// One grey circle per complete search trial (smaller and lighter at lower fidelity), one
/// highlighted circle per front member on a step line, a triangle per baseline, the budget dashed.
pub(crate) fn pareto_svg(
    ctx: &ReportContext,
    trials: &[TrialRow],
    front: &Front,
) -> Result<String, Rendering> {
    // Log scale: a zero-parameter design is drawn at 1.
    let xy = |t: &TrialRow| objectives(t).map(|(a, p)| (p.max(1) as f64, a));
    let complete: Vec<(&TrialRow, (f64, f64))> = trials
        .iter()
        .filter_map(|t| xy(t).map(|p| (t, p)))
        .collect();
    let budget = ctx.budget_params.max(1) as f64;
    let xs = complete.iter().map(|(_, (x, _))| *x).chain([budget]);
    let (x_lo, x_hi) = (
        xs.clone().fold(f64::MAX, f64::min) / 2.0,
        xs.fold(0.0, f64::max) * 2.0,
    );
    let ys: Vec<f64> = complete.iter().map(|(_, (_, y))| *y).collect();
    let (y_lo, y_hi) = match ys.is_empty() {
        true => (0.5, 1.0),
        false => span(
            ys.iter().copied().fold(1.0, f64::min),
            ys.iter().copied().fold(0.0, f64::max),
            0.02,
        ),
    };
    let (y_lo, y_hi) = (y_lo.max(0.0), y_hi.min(1.0));
    let top = front.fidelity.max(1) as f64;

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, 620)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let caption = format!(
            "{}: {} on {}, dev accuracy vs trainable parameters (front at {} steps)",
            ctx.study, ctx.model, ctx.task, front.fidelity
        );
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 18))
            .margin(14)
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d((x_lo..x_hi).log_scale(), y_lo..y_hi)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc("trainable parameters, head excluded (log scale)")
            .y_desc("dev accuracy")
            .x_label_formatter(&|v| group(v.round() as usize))
            .y_label_formatter(&|v| format!("{v:.3}"))
            .draw()
            .map_err(plot_err)?;

        let search = complete.iter().filter(|(t, _)| t.kind == TrialKind::Search);
        chart
            .draw_series(search.map(|(t, p)| {
                // Lower fidelity: lighter and smaller, so the eye goes to comparable trials.
                let share = (t.fidelity as f64 / top).clamp(0.0, 1.0);
                Circle::new(
                    *p,
                    2 + (2.0 * share).round() as u32,
                    GREY.mix(0.2 + 0.4 * share).filled(),
                )
            }))
            .map_err(plot_err)?
            .label("complete search trials (lighter = fewer steps)")
            .legend(|(x, y)| Rectangle::new([(x, y - 3), (x + 12, y + 3)], GREY.mix(0.6).filled()));

        let members: Vec<(f64, f64)> = front.members.iter().filter_map(|t| xy(t)).collect();
        let mut steps = Vec::new();
        for (i, &(x, y)) in members.iter().enumerate() {
            if i > 0 {
                steps.push((x, members[i - 1].1));
            }
            steps.push((x, y));
        }
        if let Some(&(_, y)) = members.last() {
            steps.push((x_hi, y));
        }
        chart
            .draw_series(LineSeries::new(steps, FRONT.stroke_width(2)))
            .map_err(plot_err)?
            .label(format!("Pareto front at {} steps", front.fidelity))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], FRONT.stroke_width(2)));
        chart
            .draw_series(members.iter().map(|&p| Circle::new(p, 5, FRONT.filled())))
            .map_err(plot_err)?;

        let baselines = complete
            .iter()
            .filter(|(t, _)| t.kind == TrialKind::Baseline);
        chart
            .draw_series(baselines.map(|(t, p)| {
                let label = t
                    .label
                    .clone()
                    .unwrap_or_else(|| format!("trial {}", t.number));
                EmptyElement::at(*p)
                    + TriangleMarker::new((0, 0), 7, BASELINE.filled())
                    + Text::new(
                        label,
                        (9, -14),
                        ("sans-serif", 12).into_font().color(&BASELINE),
                    )
            }))
            .map_err(plot_err)?
            .label("baselines (presets)")
            .legend(|(x, y)| TriangleMarker::new((x + 6, y), 6, BASELINE.filled()));

        chart
            .draw_series(DashedLineSeries::new(
                [(budget, y_lo), (budget, y_hi)],
                8,
                5,
                BUDGET.stroke_width(2),
            ))
            .map_err(plot_err)?
            .label(format!(
                "budget: {} params ({:.2}% of backbone)",
                group(ctx.budget_params),
                100.0 * ctx.budget_params as f64 / ctx.backbone_params.max(1) as f64
            ))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BUDGET.stroke_width(2)));

        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

/// Normalised hypervolume against trial number, as a step line.
pub(crate) fn hypervolume_svg(
    ctx: &ReportContext,
    history: &[(usize, f64)],
) -> Result<String, Rendering> {
    let last = history.last().map_or(1, |&(n, _)| n.max(1)) as f64;
    let y_hi = history
        .iter()
        .map(|&(_, v)| v)
        .fold(0.0, f64::max)
        .max(1e-3)
        * 1.1;
    let mut steps = Vec::new();
    for (i, &(n, v)) in history.iter().enumerate() {
        if i > 0 {
            steps.push((n as f64, history[i - 1].1));
        }
        steps.push((n as f64, v));
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (800, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("{}: hypervolume over trials", ctx.study),
                ("sans-serif", 18),
            )
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(0.0..last, 0.0..y_hi)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc("trial number")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_desc("normalised hypervolume")
            .y_label_formatter(&|v| format!("{v:.3}"))
            .draw()
            .map_err(plot_err)?;
        chart
            .draw_series(LineSeries::new(steps, FRONT.stroke_width(2)))
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}
