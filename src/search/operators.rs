//! Variation and repair on genomes: mutation, uniform crossover, shrinking into a budget, the final
//! judgement by `graph::validate` and `params::design_cost`.

use super::canonical::canonical;
use super::genome::{other, pick, Fitted, Genome};
use crate::graph::{self, GraphError};
use crate::params;
use crate::spec::Design;
use rand::Rng;

/// One thing a mutation can change.
#[derive(Debug, Clone, Copy)]
enum Dim {
    Toggle(usize),
    Option(usize),
    Form(usize),
    Sites(usize),
    Width(usize),
    Insertion(usize),
    Composition(usize),
    Layers(usize),
    Init(usize),
    /// The learning rate of the slot that decides it ([`Fitted::rate_slot`]).
    Rate(usize),
    Unfreeze,
    LearningRate,
}

/// Rounds of conflict repair before a candidate is given up.
const CONFLICT_ROUNDS: usize = 8;

/// The head is excluded from the budget, so its class count does not matter to the cost.
const ANY_CLASSES: usize = 2;

impl Fitted<'_> {
    /// The dimensions of `g` that have an alternative.
    fn dims(&self, g: &Genome) -> Vec<Dim> {
        let active = g.slots.iter().filter(|x| x.is_some()).count();
        let mut dims = Vec::new();
        for (s, gene) in g.slots.iter().enumerate() {
            let Some(gene) = gene else {
                // Only optional slots are ever empty.
                if !self.usable[s].is_empty() {
                    dims.push(Dim::Toggle(s));
                }
                continue;
            };
            let (o, fit) = self.option(s, gene);
            let domain = self.domain(s, gene);
            for (has, dim) in [
                (self.space.slots[s].optional && active > 1, Dim::Toggle(s)),
                (self.usable[s].len() > 1, Dim::Option(s)),
                (o.form.variants() > 1, Dim::Form(s)),
                (fit.site_choices().len() > 1, Dim::Sites(s)),
                (domain.is_some_and(|d| d.min() < d.max()), Dim::Width(s)),
                (o.insertion.len() > 1, Dim::Insertion(s)),
                (fit.compositions.len() > 1, Dim::Composition(s)),
                (fit.layer_choices().len() > 1, Dim::Layers(s)),
                (o.init.len() > 1, Dim::Init(s)),
            ] {
                if has {
                    dims.push(dim);
                }
            }
        }
        if self.space.unfreeze.len() > 1 {
            dims.push(Dim::Unfreeze);
        }
        // Only the rate that decides the design is a dimension: the others are inert.
        match self.rate_slot(g) {
            Some(s) => {
                let gene = g.slots[s].as_ref().map_or(0, |gene| gene.option);
                if self.options[s][gene].rates.len() > 1 {
                    dims.push(Dim::Rate(s));
                }
            }
            None if self.space.learning_rate.len() > 1 => dims.push(Dim::LearningRate),
            None => {}
        }
        dims
    }

    /// Changes one dimension of one slot, toggles an optional slot, or nudges a width or a
    /// module's learning rate by one log step; a space with a single point returns `g` unchanged.
    pub fn mutate(&self, g: &Genome, rng: &mut impl Rng) -> Genome {
        let mut g = g.clone();
        let dims = self.dims(&g);
        if dims.is_empty() {
            return g;
        }
        let dim = dims[rng.random_range(0..dims.len())];
        let slot = match dim {
            Dim::Toggle(s) => {
                g.slots[s] = match g.slots[s] {
                    Some(_) => None,
                    None => Some(self.sample_gene(s, pick(rng, &self.usable[s]), rng)),
                };
                return g;
            }
            Dim::Unfreeze => {
                g.unfreeze = other(rng, self.space.unfreeze.len(), g.unfreeze);
                return g;
            }
            Dim::LearningRate => {
                let len = self.space.learning_rate.len();
                g.learning_rate = other(rng, len, g.learning_rate);
                return g;
            }
            Dim::Option(s)
            | Dim::Form(s)
            | Dim::Sites(s)
            | Dim::Width(s)
            | Dim::Insertion(s)
            | Dim::Composition(s)
            | Dim::Layers(s)
            | Dim::Init(s)
            | Dim::Rate(s) => s,
        };
        let Some(mut gene) = g.slots[slot].clone() else {
            return g;
        };
        let (o, fit) = self.option(slot, &gene);
        match dim {
            Dim::Option(s) => {
                let choices: Vec<usize> = self.usable[s]
                    .iter()
                    .copied()
                    .filter(|o| *o != gene.option)
                    .collect();
                let old = gene.width;
                let old_rate = fit.rates.get(gene.learning_rate).copied();
                gene = self.sample_gene(s, pick(rng, &choices), rng);
                // Keep the width (and rate) where the new option allows it: a local move, not a
                // restart.
                if let Some(d) = self.domain(s, &gene) {
                    gene.width = d.snap(old);
                }
                if let Some(lr) = old_rate {
                    let rates = &self.options[s][gene.option].rates;
                    gene.learning_rate = super::rate::nearest(rates, lr);
                }
            }
            Dim::Form(_) => gene.form = other(rng, o.form.variants(), gene.form),
            Dim::Sites(s) => {
                let choices: Vec<usize> = fit
                    .site_choices()
                    .into_iter()
                    .filter(|i| *i != gene.sites)
                    .collect();
                gene.sites = pick(rng, &choices);
                if let Some(d) = self.domain(s, &gene) {
                    gene.width = d.snap(gene.width);
                }
            }
            Dim::Width(s) => {
                if let Some(d) = self.domain(s, &gene) {
                    let up = rng.random_bool(0.5);
                    let w = d.nudge(gene.width, up);
                    gene.width = if w == gene.width { d.nudge(w, !up) } else { w };
                }
            }
            Dim::Insertion(_) => gene.insertion = other(rng, o.insertion.len(), gene.insertion),
            Dim::Composition(_) => {
                gene.composition = other(rng, fit.compositions.len(), gene.composition)
            }
            Dim::Layers(_) => {
                let choices: Vec<usize> = fit
                    .layer_choices()
                    .into_iter()
                    .filter(|i| *i != gene.layers)
                    .collect();
                gene.layers = pick(rng, &choices);
            }
            Dim::Init(_) => gene.init = other(rng, o.init.len(), gene.init),
            Dim::Rate(_) => {
                // One grid step up or down, turning back at the ends (dims saw two points).
                let (last, i) = (fit.rates.len().saturating_sub(1), gene.learning_rate);
                let up = rng.random_bool(0.5);
                gene.learning_rate = if last == 0 {
                    0
                } else if (up && i < last) || i == 0 {
                    i + 1
                } else {
                    i.min(last) - 1
                };
            }
            Dim::Toggle(_) | Dim::Unfreeze | Dim::LearningRate => {}
        }
        g.slots[slot] = Some(gene);
        g
    }

    /// Uniform crossover: each slot's gene (and each space-level choice) from either parent. If
    /// that leaves every slot empty, one slot a parent filled is taken from it.
    pub fn crossover(&self, a: &Genome, b: &Genome, rng: &mut impl Rng) -> Genome {
        let mut slots: Vec<_> = a
            .slots
            .iter()
            .zip(&b.slots)
            .map(|(x, y)| if rng.random_bool(0.5) { x } else { y }.clone())
            .collect();
        if slots.iter().all(Option::is_none) {
            let filled: Vec<usize> = (0..slots.len())
                .filter(|&s| a.slots[s].is_some() || b.slots[s].is_some())
                .collect();
            if filled.is_empty() {
                return a.clone();
            }
            let s = pick(rng, &filled);
            slots[s] = a.slots[s].clone().or_else(|| b.slots[s].clone());
        }
        Genome {
            slots,
            unfreeze: if rng.random_bool(0.5) { a } else { b }.unfreeze,
            learning_rate: if rng.random_bool(0.5) { a } else { b }.learning_rate,
        }
    }

    /// Trainable parameters of one slot's gene.
    pub(super) fn gene_cost(&self, slot: usize, g: &Genome) -> usize {
        let Some(gene) = &g.slots[slot] else { return 0 };
        let layers = self.option(slot, gene).1.layer_counts[gene.layers];
        // Saturating: an unbounded prefix MLP width in a space costs "too much", not a panic.
        self.gene_modules(slot, gene)
            .iter()
            .map(|m| params::module_params_per_layer(m, &self.shape).saturating_mul(layers))
            .fold(0, usize::saturating_add)
    }

    /// Trainable parameters of a genome's design (head excluded), as `params` counts them.
    pub fn cost(&self, g: &Genome) -> usize {
        let modules = (0..g.slots.len())
            .map(|s| self.gene_cost(s, g))
            .fold(0, usize::saturating_add);
        modules.saturating_add(self.unfreeze_cost[g.unfreeze])
    }

    /// Shrinks `g` until it fits `budget`: first the costliest module's width by log steps, then
    /// the fewest-layer choice for the costliest module, then the cheapest `unfreeze`, then
    /// dropping the costliest optional slot while another remains. `false` when nothing is left.
    pub fn shrink(&self, g: &mut Genome, budget: usize) -> bool {
        // Each round lowers a width, a layer count or the unfreeze cost, or drops a slot, so the
        // loop ends.
        loop {
            if self.cost(g) <= budget {
                return true;
            }
            let mut active: Vec<(usize, usize)> = (0..g.slots.len())
                .filter(|s| g.slots[*s].is_some())
                .map(|s| (s, self.gene_cost(s, g)))
                .collect();
            active.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)));
            let narrower = active.iter().find_map(|&(s, _)| {
                let gene = g.slots[s].as_ref()?;
                Some((s, self.domain(s, gene)?.below(gene.width)?))
            });
            if let Some((s, w)) = narrower {
                if let Some(gene) = g.slots[s].as_mut() {
                    gene.width = w;
                    continue;
                }
            }
            let fewer = active.iter().find_map(|&(s, _)| {
                let gene = g.slots[s].as_ref()?;
                let fit = self.option(s, gene).1;
                let least = fit
                    .layer_choices()
                    .into_iter()
                    .min_by_key(|i| fit.layer_counts[*i])?;
                (fit.layer_counts[least] < fit.layer_counts[gene.layers]).then_some((s, least))
            });
            if let Some((s, l)) = fewer {
                if let Some(gene) = g.slots[s].as_mut() {
                    gene.layers = l;
                    continue;
                }
            }
            let cheapest = (0..self.unfreeze_cost.len()).min_by_key(|i| self.unfreeze_cost[*i]);
            if let Some(u) =
                cheapest.filter(|u| self.unfreeze_cost[*u] < self.unfreeze_cost[g.unfreeze])
            {
                g.unfreeze = u;
                continue;
            }
            let optional = active.iter().find(|(s, _)| self.space.slots[*s].optional);
            match optional {
                Some(&(s, _)) if active.len() > 1 => g.slots[s] = None,
                _ => return false,
            }
        }
    }

    /// Repairs a genome into a design the backbone hosts within `budget`, or `None` (rejected).
    /// Widths are snapped into their domains, the genome shrunk into the budget, and conflicts
    /// `graph::validate` reports (two modules fighting over a site) resolved by dropping or
    /// redrawing the later module's slot. `graph::validate` and `params::design_cost` have the
    /// last word; the design is named `<space>-<first 8 hex of its canonical hash>`.
    pub fn finish(&self, mut g: Genome, budget: usize, rng: &mut impl Rng) -> Option<Design> {
        for s in 0..g.slots.len() {
            if let Some(gene) = g.slots[s].clone() {
                let fits = self.option(s, &gene).1.layers[gene.layers].is_some();
                let width = self.domain(s, &gene).filter(|_| fits)?.snap(gene.width);
                g.slots[s].as_mut()?.width = width;
            }
        }
        for _ in 0..CONFLICT_ROUNDS {
            if !self.shrink(&mut g, budget) {
                return None;
            }
            let mut design = self.decode(&g);
            match graph::validate(&design, &self.shape) {
                Ok(_) => {
                    let cost = params::design_cost(&design, &self.shape, ANY_CLASSES).ok()?;
                    if design.modules.is_empty() || cost.trainable > budget {
                        return None;
                    }
                    design.name = format!("{}-{}", self.space.name, &canonical(&design)[..8]);
                    return Some(design);
                }
                Err(GraphError::Conflict { second, .. }) => {
                    let slot = second.split('.').next().unwrap_or("");
                    let s = self.space.slots.iter().position(|x| x.name == slot)?;
                    let active = g.slots.iter().filter(|x| x.is_some()).count();
                    g.slots[s] = if self.space.slots[s].optional && active > 1 {
                        None
                    } else {
                        Some(self.sample_gene(s, pick(rng, &self.usable[s]), rng))
                    };
                }
                Err(_) => return None,
            }
        }
        None
    }

    /// A random design of the space, repaired; `None` when the draw could not be repaired.
    pub fn sample_design(&self, budget: usize, rng: &mut impl Rng) -> Option<Design> {
        let g = self.sample(rng);
        self.finish(g, budget, rng)
    }

    /// A mutant of a design of this space, repaired; `None` for a foreign parent or a reject.
    pub fn mutate_design(
        &self,
        parent: &Design,
        budget: usize,
        rng: &mut impl Rng,
    ) -> Option<Design> {
        let g = self.mutate(&self.encode(parent)?, rng);
        self.finish(g, budget, rng)
    }

    /// A uniform crossover of two designs of this space, repaired.
    pub fn crossover_design(
        &self,
        a: &Design,
        b: &Design,
        budget: usize,
        rng: &mut impl Rng,
    ) -> Option<Design> {
        let g = self.crossover(&self.encode(a)?, &self.encode(b)?, rng);
        self.finish(g, budget, rng)
    }
}
