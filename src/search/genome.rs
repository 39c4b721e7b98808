//! Genomes: a design as one gene per slot (indices into the space's choice lists plus a width), the
//! space fitted to one backbone, and sampling, mutation, crossover, decoding and encoding.

use super::error::SearchError;
use super::space::{ModuleOption, SearchSpace};
use super::width::WidthDomain;
use crate::backbone::config::BackboneShape;
use crate::spec::{Composition, Design, Form, Layers, Module, Site};
use rand::Rng;

/// One slot's module group: an option of the slot and an index into each of its choice lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gene {
    /// Index into the slot's `options`.
    pub option: usize,
    /// Index of the activation, α or reparam choice of the form.
    pub form: usize,
    /// Index into the option's `sites` (a site set).
    pub sites: usize,
    /// Index into the option's `insertion`.
    pub insertion: usize,
    /// Index into [`ModuleOption::compositions`] (value lists expanded).
    pub composition: usize,
    /// The width itself (`r` or `l`), shared by every site of the set.
    pub width: usize,
    /// Index into the option's `layers`.
    pub layers: usize,
    /// Index into the option's `init`.
    pub init: usize,
    /// Index into the option's learning-rate grid ([`FitOption::rates`]); 0 when it has none.
    pub learning_rate: usize,
}

/// A point of the space: one optional gene per slot and the space-level choices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Genome {
    /// One entry per slot of the space; `None` leaves an optional slot empty.
    pub slots: Vec<Option<Gene>>,
    /// Index into the space's `unfreeze`.
    pub unfreeze: usize,
    /// Index into the space's `learning_rate` (0 when the list is empty); inert when a module's
    /// option chooses the rate (see [`Fitted::rate_slot`]).
    pub learning_rate: usize,
}

/// One option of a slot as it fits the backbone.
#[derive(Debug, Clone)]
pub struct FitOption {
    /// Width domain per site-set choice; `None` where the set cannot be hosted.
    pub widths: Vec<Option<WidthDomain>>,
    /// Layer set per layer choice; `None` where the choice does not fit.
    pub layers: Vec<Option<Layers>>,
    /// Layer count per layer choice (0 where it does not fit).
    pub layer_counts: Vec<usize>,
    pub compositions: Vec<Option<Composition>>,
    /// The option's learning rates, ascending; empty when it chooses none.
    pub rates: Vec<f64>,
}

impl FitOption {
    pub fn usable(&self) -> bool {
        self.widths.iter().any(Option::is_some) && self.layers.iter().any(Option::is_some)
    }
    pub fn site_choices(&self) -> Vec<usize> {
        (0..self.widths.len())
            .filter(|i| self.widths[*i].is_some())
            .collect()
    }
    pub fn layer_choices(&self) -> Vec<usize> {
        (0..self.layers.len())
            .filter(|i| self.layers[*i].is_some())
            .collect()
    }
}

/// The space fitted to one backbone shape: what each slot may take there.
#[derive(Debug, Clone)]
pub struct Fitted<'a> {
    /// The (validated) space.
    pub space: &'a SearchSpace,
    /// The backbone the designs are for.
    pub shape: BackboneShape,
    /// `options[slot][option]`.
    pub options: Vec<Vec<FitOption>>,
    /// Usable option indices per slot.
    pub usable: Vec<Vec<usize>>,
    /// Parameters each `unfreeze` choice trains.
    pub unfreeze_cost: Vec<usize>,
}

pub(crate) fn pick(rng: &mut impl Rng, items: &[usize]) -> usize {
    items[rng.random_range(0..items.len())]
}

/// A uniformly drawn index in `0..len` other than `current` (`current` when `len` is 1).
pub(crate) fn other(rng: &mut impl Rng, len: usize, current: usize) -> usize {
    let alternatives: Vec<usize> = (0..len).filter(|i| *i != current).collect();
    if alternatives.is_empty() {
        current
    } else {
        pick(rng, &alternatives)
    }
}

/// The name of a site inside a module name (`<slot>.<site>`).
pub fn site_name(site: Site) -> &'static str {
    site.short_name()
}

/// The composition a module actually uses (as [`Module::effective_composition`]).
fn effective(composition: Option<Composition>, form: &Form) -> Composition {
    composition.unwrap_or_else(|| form.method().default_composition())
}

impl<'a> Fitted<'a> {
    /// Fits a space to a shape (validating it first); fails when a required slot (or, all slots being
    /// optional, every slot) has no option the backbone can host.
    pub fn new(space: &'a SearchSpace, shape: BackboneShape) -> Result<Fitted<'a>, SearchError> {
        // The choice lists must be non-empty for sampling; a space built in code may skip parsing.
        space.validate()?;
        let infeasible = |location: String| SearchError::Infeasible {
            space: space.name.clone(),
            location,
            layers: shape.layers,
            hidden: shape.hidden,
            heads: shape.heads,
        };
        let mut options = Vec::new();
        let mut usable = Vec::new();
        for slot in &space.slots {
            let fitted: Vec<FitOption> = slot.options.iter().map(|o| fit(o, &shape)).collect();
            let ok: Vec<usize> = (0..fitted.len()).filter(|i| fitted[*i].usable()).collect();
            if ok.is_empty() && !slot.optional {
                return Err(infeasible(format!("slot {}", slot.name)));
            }
            options.push(fitted);
            usable.push(ok);
        }
        if usable.iter().all(Vec::is_empty) {
            return Err(infeasible("every slot".into()));
        }
        let unfreeze_cost = space
            .unfreeze
            .iter()
            .map(|parts| shape.unfrozen_params(parts))
            .collect();
        Ok(Fitted {
            space,
            shape,
            options,
            usable,
            unfreeze_cost,
        })
    }

    pub fn option(&self, slot: usize, gene: &Gene) -> (&ModuleOption, &FitOption) {
        (
            &self.space.slots[slot].options[gene.option],
            &self.options[slot][gene.option],
        )
    }

    /// The width domain of a gene's option and site set (`None` only for a gene not built
    /// by this space, whose site set the backbone cannot host).
    pub fn domain(&self, slot: usize, gene: &Gene) -> Option<&WidthDomain> {
        self.options[slot][gene.option].widths[gene.sites].as_ref()
    }

    /// A random gene of one usable option.
    pub fn sample_gene(&self, slot: usize, option: usize, rng: &mut impl Rng) -> Gene {
        let o = &self.space.slots[slot].options[option];
        let fit = &self.options[slot][option];
        let sites = pick(rng, &fit.site_choices());
        let width = fit.widths[sites].as_ref().map_or(1, |d| d.sample(rng));
        Gene {
            option,
            form: rng.random_range(0..o.form.variants()),
            sites,
            insertion: rng.random_range(0..o.insertion.len()),
            composition: rng.random_range(0..fit.compositions.len()),
            width,
            layers: pick(rng, &fit.layer_choices()),
            init: rng.random_range(0..o.init.len()),
            // Drawn only where there is a choice, so spaces without one draw as they always did.
            learning_rate: match fit.rates.len() {
                0 => 0,
                n => rng.random_range(0..n),
            },
        }
    }

    /// A random genome: each slot uniformly one of its usable options or (when optional) none;
    /// if that leaves every slot empty, one slot is filled so a design always has a module.
    pub fn sample(&self, rng: &mut impl Rng) -> Genome {
        let mut slots = Vec::with_capacity(self.usable.len());
        for (s, usable) in self.usable.iter().enumerate() {
            let none = usize::from(self.space.slots[s].optional);
            let k = rng.random_range(0..usable.len() + none);
            slots.push((k < usable.len()).then(|| self.sample_gene(s, usable[k], rng)));
        }
        if slots.iter().all(Option::is_none) {
            let candidates: Vec<usize> = (0..slots.len())
                .filter(|s| !self.usable[*s].is_empty())
                .collect();
            let s = pick(rng, &candidates);
            let option = pick(rng, &self.usable[s]);
            slots[s] = Some(self.sample_gene(s, option, rng));
        }
        Genome {
            slots,
            unfreeze: rng.random_range(0..self.space.unfreeze.len()),
            learning_rate: rng.random_range(0..self.space.learning_rate.len().max(1)),
        }
    }

    /// The modules one gene stands for, named `<slot>` or `<slot>.<site>`.
    pub fn gene_modules(&self, slot: usize, gene: &Gene) -> Vec<Module> {
        let (o, fit) = self.option(slot, gene);
        let set = &o.sites[gene.sites];
        let name = &self.space.slots[slot].name;
        set.iter()
            .map(|&site| Module {
                name: Some(if set.len() == 1 {
                    name.clone()
                } else {
                    format!("{name}.{}", site_name(site))
                }),
                form: o.form.form(gene.form, gene.width),
                site,
                insertion: o.insertion[gene.insertion],
                composition: fit.compositions[gene.composition],
                layers: fit.layers[gene.layers].clone().unwrap_or_default(),
                init: o.init[gene.init],
            })
            .collect()
    }

    /// The design a genome stands for, unnamed (the sampler names it after its canonical hash).
    pub fn decode(&self, genome: &Genome) -> Design {
        let modules = genome
            .slots
            .iter()
            .enumerate()
            .filter_map(|(s, g)| g.as_ref().map(|g| self.gene_modules(s, g)))
            .flatten()
            .collect();
        Design {
            name: String::new(),
            modules,
            unfreeze: self.space.unfreeze[genome.unfreeze].clone(),
            learning_rate: self.rate(genome),
        }
    }

    /// The genome of a design this space could have produced (modules named `<slot>` or
    /// `<slot>.<site>`, every value among the choices; widths are snapped into the domain).
    /// `None` for a design foreign to the space, e.g. a preset.
    pub fn encode(&self, design: &Design) -> Option<Genome> {
        let mut claimed = 0;
        let mut slots = Vec::with_capacity(self.space.slots.len());
        for (s, slot) in self.space.slots.iter().enumerate() {
            let prefix = format!("{}.", slot.name);
            let mods: Vec<&Module> = design
                .modules
                .iter()
                .filter(|m| {
                    let name = m.name.as_deref().unwrap_or("");
                    name == slot.name || name.starts_with(&prefix)
                })
                .collect();
            claimed += mods.len();
            if mods.is_empty() {
                if !slot.optional {
                    return None;
                }
                slots.push(None);
                continue;
            }
            let lr = design.learning_rate;
            let genes: Vec<Gene> = self.usable[s]
                .iter()
                .filter_map(|&o| self.match_option(s, o, &mods, lr))
                .collect();
            let gene = self.rate_preferred(&slots, genes, lr)?;
            slots.push(Some(gene));
        }
        let same_parts = |parts: &Vec<crate::spec::BackbonePart>| {
            parts.len() == design.unfreeze.len()
                && parts.iter().all(|p| design.unfreeze.contains(p))
        };
        let unfreeze = self.space.unfreeze.iter().position(same_parts)?;
        let mut genome = Genome {
            slots,
            unfreeze,
            learning_rate: 0,
        };
        genome.learning_rate = self.encode_rate(&genome, design.learning_rate)?;
        (claimed == design.modules.len() && genome.slots.iter().any(Option::is_some))
            .then_some(genome)
    }

    /// The gene of one option for a slot's modules; a rate choice of the option takes the grid
    /// point nearest the design's rate (`encode` checks it where the gene decides the rate).
    fn match_option(
        &self,
        slot: usize,
        option: usize,
        mods: &[&Module],
        lr: Option<f64>,
    ) -> Option<Gene> {
        let o = &self.space.slots[slot].options[option];
        let fit = &self.options[slot][option];
        let first = mods[0];
        let alike = |m: &&Module| {
            m.form == first.form
                && m.insertion == first.insertion
                && m.composition == first.composition
                && m.layers == first.layers
                && m.init == first.init
        };
        if !mods.iter().all(alike) {
            return None;
        }
        let sites = fit.site_choices().into_iter().find(|&i| {
            let set = &o.sites[i];
            set.len() == mods.len() && mods.iter().all(|m| set.contains(&m.site))
        })?;
        let width = first.form.width();
        let form = (0..o.form.variants()).find(|&v| o.form.choice().makes(v, &first.form))?;
        let insertion = o.insertion.iter().position(|i| *i == first.insertion)?;
        let composition = fit.compositions.iter().position(|c| {
            effective(*c, &first.form) == effective(first.composition, &first.form)
        })?;
        let wanted = first.layers.resolve(self.shape.layers).ok()?;
        let layers = fit.layer_choices().into_iter().find(|&i| {
            let l = fit.layers[i].as_ref().map(|l| l.resolve(self.shape.layers));
            l == Some(Ok(wanted.clone()))
        })?;
        let init = o.init.iter().position(|i| *i == first.init)?;
        let mut gene = Gene {
            option,
            form,
            sites,
            insertion,
            composition,
            width,
            layers,
            init,
            learning_rate: lr.map_or(0, |lr| super::rate::nearest(&fit.rates, lr)),
        };
        gene.width = self.domain(slot, &gene)?.snap(width);
        Some(gene)
    }
}

/// An option on a shape: width domains per site set (capped at the hidden size; per-head
/// bottlenecks in multiples of the head count) and the layer choices that fit.
fn fit(o: &ModuleOption, shape: &BackboneShape) -> FitOption {
    let widths = o
        .sites
        .iter()
        .map(|set| {
            // The widest step any site of the set needs (per-head bottlenecks: the heads).
            let form = o.form.form(0, 1);
            let step = set
                .iter()
                .map(|site| form.method().width_step(*site, shape).max(1))
                .max()
                .unwrap_or(1);
            WidthDomain::new(&o.width, shape.hidden, step)
        })
        .collect();
    let layers: Vec<Option<Layers>> = o.layers.iter().map(|l| l.resolve(shape.layers)).collect();
    let layer_counts = layers
        .iter()
        .map(|l| {
            l.as_ref()
                .and_then(|l| l.resolve(shape.layers).ok())
                .map_or(0, |v| v.len())
        })
        .collect();
    FitOption {
        widths,
        layers,
        layer_counts,
        compositions: o.compositions(),
        rates: o.learning_rate.grid(),
    }
}
