//! Fitting a design to a trainable-parameter budget by its methods' width knobs: the one fitter
//! the search's baselines and the science studies use.

use crate::backbone::config::BackboneShape;
use crate::params::design_cost;
use crate::spec::Design;

/// How a design is brought to a budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// Kept as written when it fits; otherwise its widest module narrowed one legal step at a
    /// time until it does (a published preset stays as published where the budget allows).
    ShrinkOnly,
    /// Every width multiplied by the largest common factor that keeps it within the budget,
    /// so the design lands just under it, growing or shrinking (the unified-view studies).
    Scale,
}

/// `design` within `limit` trainable parameters under `fit`; `None` when even its narrowest
/// version is over, or (for [`Fit::Scale`]) it has no width to scale (full fine-tuning, BitFit).
pub fn fit_to_budget(
    design: &Design,
    shape: &BackboneShape,
    limit: usize,
    fit: Fit,
) -> Option<Design> {
    match fit {
        Fit::ShrinkOnly => shrink(design, shape, limit),
        Fit::Scale => scale(design, shape, limit),
    }
}

fn trainable(design: &Design, shape: &BackboneShape) -> Option<usize> {
    design_cost(design, shape, 2).ok().map(|c| c.trainable)
}

fn shrink(design: &Design, shape: &BackboneShape, limit: usize) -> Option<Design> {
    let mut d = design.clone();
    loop {
        if trainable(&d, shape)? <= limit {
            return Some(d);
        }
        let (i, width) = d
            .modules
            .iter()
            .enumerate()
            .filter_map(|(i, m)| Some((i, m.method().width()?.value)))
            .filter(|(_, w)| *w > 1)
            .max_by_key(|(_, w)| *w)?;
        let m = &mut d.modules[i];
        let step = m.method().width_step(m.site, shape);
        if width <= step {
            return None;
        }
        m.form = m.method().with_width(width - step);
    }
}

fn scale(design: &Design, shape: &BackboneShape, limit: usize) -> Option<Design> {
    if !design.modules.iter().any(|m| m.method().width().is_some()) {
        return None;
    }
    let fits = |k: f64| {
        let scaled = scaled(design, shape, k);
        (trainable(&scaled, shape)? <= limit).then_some(scaled)
    };
    // Widths are monotone in k, so the cost is too: bisect on log k.
    let (mut lo, mut hi) = ((1e-4f64).ln(), (1e4f64).ln());
    let mut best = fits(lo.exp())?;
    for _ in 0..64 {
        let mid = 0.5 * (lo + hi);
        match fits(mid.exp()) {
            Some(d) => {
                best = d;
                lo = mid;
            }
            None => hi = mid,
        }
    }
    Some(best)
}

/// `design` with every width multiplied by `k`, snapped to the legal grid.
fn scaled(design: &Design, shape: &BackboneShape, k: f64) -> Design {
    let mut d = design.clone();
    for m in &mut d.modules {
        let Some(width) = m.method().width() else {
            continue;
        };
        let step = m.method().width_step(m.site, shape);
        let target = (width.value as f64 * k / step as f64).round().max(1.0) as usize;
        let snapped = (target * step).min(shape.hidden / step * step);
        m.form = m.method().with_width(snapped);
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{shipped_preset, Design};

    fn trainable(d: &Design) -> usize {
        design_cost(d, &BackboneShape::MINILM_L6, 2)
            .expect("valid")
            .trainable
    }

    /// Each preset at each budget lands within the budget and close below it (the next width
    /// up would be over), the way the unified-view study uses them.
    #[test]
    fn presets_land_just_under_each_budget() {
        let shape = BackboneShape::MINILM_L6;
        for name in [
            "lora",
            "prefix",
            "scaled_parallel_adapter",
            "mam",
            "pfeiffer",
        ] {
            for percent in [0.1, 0.5, 5.0] {
                let limit = (shape.backbone_params() as f64 * percent / 100.0) as usize;
                let d =
                    fit_to_budget(&shipped_preset(name), &shape, limit, Fit::Scale).expect("fits");
                let cost = trainable(&d);
                assert!(cost <= limit, "{name}@{percent}%: {cost} > {limit}");
                assert!(
                    cost as f64 >= 0.8 * limit as f64,
                    "{name}@{percent}%: {cost} far under {limit}"
                );
            }
        }
    }

    #[test]
    fn lora_keeps_its_scale_and_heads_stay_multiples() {
        let shape = BackboneShape::MINILM_L6;
        let limit = shape.backbone_params() / 1000;
        let lora = fit_to_budget(&shipped_preset("lora"), &shape, limit, Fit::Scale).expect("fits");
        for m in &lora.modules {
            if let Some((r, alpha)) = m.method().low_rank() {
                assert!(
                    (alpha / r as f32 - 2.0).abs() < 1e-5,
                    "alpha/r = {}",
                    alpha / r as f32
                );
            }
        }
        // One width-1 bottleneck per head reads the whole hidden state: 12 of them a layer are
        // over 0.1% already, so the multi-head check uses 0.5%.
        assert!(fit_to_budget(
            &shipped_preset("mh_parallel_adapter"),
            &shape,
            limit,
            Fit::Scale
        )
        .is_none());
        let mh = fit_to_budget(
            &shipped_preset("mh_parallel_adapter"),
            &shape,
            5 * limit,
            Fit::Scale,
        )
        .expect("fits");
        assert_eq!(mh.modules[0].form.width() % shape.heads, 0);
    }

    #[test]
    fn full_finetuning_and_impossible_budgets_give_none() {
        let shape = BackboneShape::MINILM_L6;
        assert!(fit_to_budget(
            &shipped_preset("full_finetune"),
            &shape,
            usize::MAX,
            Fit::Scale
        )
        .is_none());
        // Houlsby's trainable layer norms plus two width-1 adapters a layer already exceed 0.1%.
        let limit = shape.backbone_params() / 1000;
        assert!(fit_to_budget(&shipped_preset("houlsby"), &shape, limit, Fit::Scale).is_none());
    }

    #[test]
    fn shrink_only_keeps_a_fitting_preset_and_narrows_the_widest_module_first() {
        let shape = BackboneShape::MINILM_L6;
        let mam = shipped_preset("mam");
        let roomy = trainable(&mam) + 1;
        assert_eq!(
            fit_to_budget(&mam, &shape, roomy, Fit::ShrinkOnly),
            Some(mam.clone())
        );
        let limit = shape.backbone_params() / 1000;
        let fitted = fit_to_budget(&mam, &shape, limit, Fit::ShrinkOnly).expect("fits");
        assert!(trainable(&fitted) <= limit);
        // Widths only go down.
        for (before, after) in mam.modules.iter().zip(&fitted.modules) {
            assert!(after.form.width() <= before.form.width());
        }
    }
}
