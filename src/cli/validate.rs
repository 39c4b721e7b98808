//! `pets validate`: a design (its modules and exact trainable parameters) or a search space (its
//! slots and options, and the trainable parameters of its smallest and largest designs), each
//! checked against `--budget` when given.

use anyhow::{bail, Result};
use pets::backbone::config::BackboneShape;
use pets::params::design_cost;
use pets::report::group;
use pets::search::bounds::SpaceBounds;
use pets::search::{Budget, SearchError, SearchSpace};
use pets::spec::{ron_type_name, Design, SpecError};
use std::fmt::Write as _;
use std::path::Path;

/// Validates `path` as whichever it holds, a `SearchSpace` or a `Design`, and prints the summary.
pub fn run(
    path: &Path,
    shape: &BackboneShape,
    classes: usize,
    budget: Option<Budget>,
) -> Result<()> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
        path: origin.clone(),
        source,
    })?;
    let limit = budget.map(|b| (b, b.limit(shape.backbone_params())));
    if ron_type_name(&text) == Some("SearchSpace") {
        let space = SearchSpace::from_ron(&text, &origin)?;
        let bounds = SpaceBounds::of(&space, *shape)?;
        println!("{}", space_summary(&space, &bounds, shape));
        if let Some((input, limit)) = limit {
            if bounds.smallest > limit {
                return Err(SearchError::OverBudget {
                    space: space.name.clone(),
                    budget: limit,
                    cheapest: bounds.smallest,
                }
                .into());
            }
            let fits = if bounds.largest <= limit {
                "every design fits"
            } else {
                "wider designs are shrunk to fit"
            };
            println!(
                "budget {input} = {} trainable parameters: {fits}",
                group(limit)
            );
        }
        return Ok(());
    }
    let design = Design::from_ron(&text, &origin)?;
    let cost = design_cost(&design, shape, classes)?;
    println!("{}", pets::report::cost_table(&design, &cost));
    if let Some((input, limit)) = limit {
        if cost.trainable > limit {
            bail!(
                "design {}: {} trainable parameters exceed --budget {input} ({})",
                design.name,
                group(cost.trainable),
                group(limit)
            );
        }
        println!(
            "budget {input} = {} trainable parameters: fits",
            group(limit)
        );
    }
    Ok(())
}

/// The space's slots and options (those the backbone cannot host marked), and its cost bounds.
fn space_summary(space: &SearchSpace, bounds: &SpaceBounds, shape: &BackboneShape) -> String {
    let mut out = format!(
        "search space {}: {} slots on a backbone of {} layers, hidden {}, {} heads\n",
        space.name,
        space.slots.len(),
        shape.layers,
        shape.hidden,
        shape.heads
    );
    for (s, slot) in space.slots.iter().enumerate() {
        let optional = if slot.optional { " (optional)" } else { "" };
        let _ = writeln!(
            out,
            "  slot {}{optional}: {} options",
            slot.name,
            slot.options.len()
        );
        for (o, option) in slot.options.iter().enumerate() {
            let unfit = if bounds.usable[s].contains(&o) {
                ""
            } else {
                "  [fits no layer or width of this backbone]"
            };
            let _ = writeln!(
                out,
                "    {}: sites {:?}, width {:?}, layers {:?}{unfit}",
                option.form.kind(),
                option.sites,
                option.width,
                option.layers
            );
        }
    }
    let pct = |n: usize| 100.0 * n as f64 / shape.backbone_params().max(1) as f64;
    let _ = write!(
        out,
        "trainable parameters (head excluded): smallest design {} ({:.3}%), largest {} ({:.3}%) of the backbone's {}",
        group(bounds.smallest),
        pct(bounds.smallest),
        group(bounds.largest),
        pct(bounds.largest),
        group(shape.backbone_params())
    );
    out
}
