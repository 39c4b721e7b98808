//! The study's figure: median dev accuracy (whiskers: min–max over seeds) against trainable
//! parameters, one line per preset across its budgets, searched designs as stars, and full
//! fine-tuning as a dashed level.

use super::plan::Plan;
use super::report::Row;
use super::ScienceError;
use plotters::prelude::*;
use std::collections::BTreeMap;

const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

fn err<E: std::fmt::Display>(e: E) -> ScienceError {
    ScienceError::Plot(e.to_string())
}

/// (% params, median, min, max) of a row that has runs.
fn point(r: &Row) -> Option<(f64, f64, f64, f64)> {
    let s = r.spread.as_ref()?;
    let p = r.runs.first()?.trainable_percent;
    Some((p.max(1e-3), s.median, s.min, s.max))
}

/// The figure for the plan's first task (presets, searched designs, full fine-tuning).
pub fn svg(plan: &Plan, rows: &[Row]) -> Result<String, ScienceError> {
    let task = plan
        .sections
        .first()
        .map(|s| s.task.clone())
        .unwrap_or_default();
    let on_task: Vec<&Row> = rows.iter().filter(|r| r.entry.task == task).collect();
    let mut lines: BTreeMap<&str, Vec<(f64, f64, f64, f64)>> = BTreeMap::new();
    let mut stars = Vec::new();
    let mut reference = None;
    for r in &on_task {
        let Some(p) = point(r) else { continue };
        match (r.entry.section.as_str(), r.entry.budget) {
            ("searched", _) => stars.push((r.entry.label.clone(), p)),
            (_, None) if p.0 >= 99.0 => reference = Some(p),
            ("presets", Some(_)) => lines.entry(r.entry.preset.as_str()).or_default().push(p),
            _ => {}
        }
    }
    let points: Vec<(f64, f64, f64, f64)> = lines
        .values()
        .flatten()
        .chain(stars.iter().map(|(_, p)| p))
        .copied()
        .collect();
    let x_lo = points.iter().map(|p| p.0).fold(0.5, f64::min) / 1.5;
    let x_hi = points.iter().map(|p| p.0).fold(5.0, f64::max) * 1.5;
    let y_lo = points
        .iter()
        .map(|p| p.2)
        .chain(reference.map(|p| p.2))
        .fold(0.8, f64::min)
        - 0.01;
    let y_hi = points
        .iter()
        .map(|p| p.3)
        .chain(reference.map(|p| p.3))
        .fold(0.8, f64::max)
        + 0.01;

    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (1000, 640)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!(
                    "{task}, frozen {}: dev accuracy against trainable parameters",
                    plan.model
                ),
                ("sans-serif", 18),
            )
            .margin(14)
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d((x_lo..x_hi).log_scale(), y_lo..y_hi)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("trainable parameters, % of the backbone (log scale)")
            .y_desc("dev accuracy: median, whiskers min–max over seeds")
            .x_label_formatter(&|v| format!("{v}%"))
            .y_label_formatter(&|v| format!("{v:.3}"))
            .draw()
            .map_err(err)?;
        for (i, (preset, mut pts)) in lines.into_iter().enumerate() {
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            let colour = PALETTE[i % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(
                    pts.iter().map(|p| (p.0, p.1)),
                    colour.stroke_width(2),
                ))
                .map_err(err)?
                .label(preset.to_string())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2))
                });
            chart
                .draw_series(
                    pts.iter()
                        .map(|p| ErrorBar::new_vertical(p.0, p.2, p.1, p.3, colour.filled(), 6)),
                )
                .map_err(err)?;
        }
        chart
            .draw_series(stars.iter().map(|(label, p)| {
                EmptyElement::at((p.0, p.1))
                    + Cross::new((0, 0), 7, BLACK.stroke_width(3))
                    + Text::new(label.clone(), (9, -14), ("sans-serif", 12).into_font())
            }))
            .map_err(err)?
            .label("searched designs")
            .legend(|(x, y)| Cross::new((x + 6, y), 5, BLACK.stroke_width(2)));
        if let Some(r) = reference {
            chart
                .draw_series(DashedLineSeries::new(
                    [(x_lo, r.1), (x_hi, r.1)],
                    8,
                    5,
                    BLACK.stroke_width(1),
                ))
                .map_err(err)?
                .label(format!("full fine-tuning (median {:.4})", r.1))
                .legend(|(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], BLACK.stroke_width(1))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(out)
}
