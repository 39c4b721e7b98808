//! Bounds on the trainable parameters of a space's designs on one backbone, conflicts between
//! modules ignored: the cheapest (whether any design fits a budget) and the costliest (what
//! `pets validate` reports of a space).

use super::genome::{Fitted, Gene, Genome};
use super::{SearchError, SearchSpace};
use crate::backbone::config::BackboneShape;

/// The trainable parameters (head excluded) of a space's smallest and largest designs on one
/// backbone, and what each slot can host there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpaceBounds {
    /// A lower bound: the cheapest option of every required slot (or of the cheapest slot when
    /// all are optional), each at its narrowest width and fewest layers, plus the cheapest
    /// `unfreeze` choice.
    pub smallest: usize,
    /// An upper bound: the costliest option of every slot at its widest width and most layers,
    /// plus the costliest `unfreeze` choice.
    pub largest: usize,
    /// Per slot, the indices of the options the backbone can host.
    pub usable: Vec<Vec<usize>>,
}

impl SpaceBounds {
    /// Fits `space` to `shape` (refusing a space with a slot nothing fits) and bounds its costs.
    pub fn of(space: &SearchSpace, shape: BackboneShape) -> Result<SpaceBounds, SearchError> {
        let fitted = Fitted::new(space, shape)?;
        Ok(SpaceBounds {
            smallest: fitted.cheapest(),
            largest: fitted.costliest(),
            usable: fitted.usable.clone(),
        })
    }
}

impl Fitted<'_> {
    /// A lower bound on the trainable parameters of any design of the space on this backbone
    /// (conflicts ignored): if it exceeds the budget, no design fits.
    pub fn cheapest(&self) -> usize {
        let slot_min: Vec<Option<usize>> = (0..self.usable.len())
            .map(|s| {
                self.usable[s]
                    .iter()
                    .filter_map(|&o| self.option_bound(s, o, false))
                    .min()
            })
            .collect();
        let required = (0..slot_min.len()).filter(|s| !self.space.slots[*s].optional);
        let modules = if required.clone().count() > 0 {
            required
                .map(|s| slot_min[s].unwrap_or(0))
                .fold(0, usize::saturating_add)
        } else {
            slot_min.iter().flatten().copied().min().unwrap_or(0)
        };
        modules.saturating_add(self.unfreeze_cost.iter().copied().min().unwrap_or(0))
    }

    /// An upper bound on the trainable parameters of any design of the space on this backbone:
    /// every slot filled with its costliest option at its widest.
    pub fn costliest(&self) -> usize {
        let modules = (0..self.usable.len())
            .map(|s| {
                self.usable[s]
                    .iter()
                    .filter_map(|&o| self.option_bound(s, o, true))
                    .max()
                    .unwrap_or(0)
            })
            .fold(0, usize::saturating_add);
        modules.saturating_add(self.unfreeze_cost.iter().copied().max().unwrap_or(0))
    }

    /// The cheapest (or, `widest`, the costliest) gene of one option: its narrowest (widest)
    /// width, over every combination of the choices that change the count (site set, layers,
    /// insertion, composition, form parameter).
    fn option_bound(&self, slot: usize, option: usize, widest: bool) -> Option<usize> {
        let o = &self.space.slots[slot].options[option];
        let fit = &self.options[slot][option];
        let mut best: Option<usize> = None;
        let mut probe = Genome {
            slots: vec![None; self.usable.len()],
            unfreeze: 0,
            learning_rate: 0,
        };
        for sites in fit.site_choices() {
            let domain = fit.widths[sites].as_ref()?;
            let width = if widest { domain.max() } else { domain.min() };
            for layers in fit.layer_choices() {
                for insertion in 0..o.insertion.len() {
                    for composition in 0..fit.compositions.len() {
                        for form in 0..o.form.variants() {
                            let gene = Gene {
                                option,
                                form,
                                sites,
                                insertion,
                                composition,
                                width,
                                layers,
                                init: 0,
                                learning_rate: 0,
                            };
                            probe.slots[slot] = Some(gene);
                            let cost = self.gene_cost(slot, &probe);
                            best = Some(match best {
                                None => cost,
                                Some(b) if widest => b.max(cost),
                                Some(b) => b.min(cost),
                            });
                        }
                    }
                }
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smallest_and_largest_designs_on_minilm() {
        let text = r#"SearchSpace(name: "t", unfreeze: [[], [LayerNorms]], slots: [
            Slot(name: "a", options: [ModuleOption(form: Lora(alpha: Ratio([2.0])),
                sites: [[Projection(Query)]], width: LogRange(1, 8), layers: [All, Top(2)])]),
            Slot(name: "b", optional: true, options: [ModuleOption(
                form: Bottleneck(activations: [Relu]), sites: [[Ffn]], width: List([4, 16]))]),
        ])"#;
        let space = SearchSpace::from_ron(text, "t.ron").unwrap();
        let bounds = SpaceBounds::of(&space, BackboneShape::MINILM_L6).unwrap();
        // Smallest: LoRA r=1 on W_q (384 in, 384 out) in the top 2 layers; b left out; nothing
        // unfrozen.
        assert_eq!(bounds.smallest, 768 * 2);
        // Largest: LoRA r=8 in all 6 layers, the r=16 bottleneck (384·16 + 16 + 16·384 + 384 per
        // layer) in all 6, and the 13 layer norms (γ and β of 384).
        assert_eq!(bounds.largest, 8 * 768 * 6 + 12_688 * 6 + 13 * 2 * 384);
        assert_eq!(bounds.usable, vec![vec![0], vec![0]]);
    }
}
