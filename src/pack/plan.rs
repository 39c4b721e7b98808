//! One encoder plan for a pack of designs: every design's modules moved, layer by layer and site
//! by site, into row groups of a merged plan, and moved back when the pack is done.

use super::PackedPrefix;
use crate::methods::{LayerPlan, LayerPrefix};
use candle_core::Result;

/// Moves the modules of every plan in `plans` (one per design, each one entry per layer) into
/// one merged plan whose sites hold one row group per design; `plans` are left empty until
/// [`unmerge`] gives their modules back.
pub(crate) fn merge(plans: &mut [&mut Vec<LayerPlan>]) -> Result<Vec<LayerPlan>> {
    let layers = plans.iter().map(|p| p.len()).max().unwrap_or(0);
    let mut merged = Vec::with_capacity(layers);
    for i in 0..layers {
        let mut layer = LayerPlan::default();
        let mut prefixes = Vec::with_capacity(plans.len());
        for plan in plans.iter_mut() {
            if plan.len() <= i {
                plan.resize_with(i + 1, LayerPlan::default);
            }
            let own = &mut plan[i];
            prefixes.push(match own.prefix.take() {
                Some(LayerPrefix::Single(prefix)) => Some(prefix),
                Some(LayerPrefix::Packed(_)) => {
                    candle_core::bail!("a pack's plan cannot join another pack")
                }
                None => None,
            });
            for ((_, to), (_, from)) in layer.sites_mut().zip(own.sites_mut()) {
                to.groups.push(std::mem::take(from));
            }
        }
        if prefixes.iter().any(Option::is_some) {
            layer.prefix = Some(LayerPrefix::Packed(PackedPrefix::new(prefixes)?));
        }
        merged.push(layer);
    }
    Ok(merged)
}

/// Gives every design its modules back from a plan [`merge`] made of the same `plans`.
pub(crate) fn unmerge(merged: Vec<LayerPlan>, plans: &mut [&mut Vec<LayerPlan>]) {
    for (i, mut layer) in merged.into_iter().enumerate() {
        if let Some(LayerPrefix::Packed(packed)) = layer.prefix.take() {
            for (plan, prefix) in plans.iter_mut().zip(packed.into_members()) {
                plan[i].prefix = prefix.map(LayerPrefix::Single);
            }
        }
        for (j, (_, site)) in layer.sites_mut().enumerate() {
            for (plan, group) in plans.iter_mut().zip(std::mem::take(&mut site.groups)) {
                if let Some((_, own)) = plan[i].sites_mut().nth(j) {
                    *own = group;
                }
            }
        }
    }
}
