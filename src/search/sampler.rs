//! Samplers behind one trait, in optuna's words: random search (the baseline) and NSGA-II (the
//! default). Both are seeded and resumable: each call's RNG comes from the seed, the history length
//! and the number of calls made at that length, so a study rerun from its stored history proposes
//! the same designs.

use super::error::SearchError;
use super::genome::{Fitted, Genome};
use super::pareto::{crowding_distance, non_dominated_sort, Point};
use super::space::SearchSpace;
use super::Evaluated;
use crate::backbone::config::BackboneShape;
use crate::spec::Design;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashSet;

/// What a sampler needs besides the history.
pub struct ProposalContext<'a> {
    /// The space designs are drawn from.
    pub space: &'a SearchSpace,
    /// The backbone they must fit (`graph::validate` on it is the judge).
    pub shape: BackboneShape,
    /// The most trainable parameters (head excluded) a proposal may have.
    pub budget_params: usize,
    /// Canonical hashes already in the study (running trials included); never proposed again.
    pub seen: &'a HashSet<String>,
}

/// Proposes designs to evaluate next.
pub trait Sampler {
    fn name(&self) -> &'static str;

    /// Up to `n` new designs: valid on `ctx.shape` per `graph::validate`, within the budget,
    /// with at least one module, and not among `ctx.seen`, the history or each other. Fewer than
    /// `n` only when the space is nearly exhausted; an error when no design fits the budget or
    /// none new was found.
    fn propose(
        &mut self,
        ctx: &ProposalContext,
        history: &[Evaluated],
        n: usize,
    ) -> Result<Vec<Design>, SearchError>;
}

pub use super::registry::{sampler_by_name, SamplerKind, SAMPLERS};

/// Counts calls made at one history length; resets when the history grows.
#[derive(Debug, Clone, Default)]
struct Calls {
    /// `None` before the first call.
    history_len: Option<usize>,
    count: u64,
}

impl Calls {
    fn next(&mut self, history_len: usize) -> u64 {
        if self.history_len != Some(history_len) {
            *self = Calls {
                history_len: Some(history_len),
                count: 0,
            };
        } else {
            self.count += 1;
        }
        self.count
    }
}

/// SplitMix64's finaliser: spreads nearby seeds over the whole state space.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The RNG of one call: a function of (seed, sampler, history length, call number) only.
fn call_rng(seed: u64, sampler: u64, history_len: usize, call: u64) -> StdRng {
    StdRng::seed_from_u64(mix(mix(mix(seed) ^ sampler) ^ history_len as u64) ^ call)
}

/// Fails early, before a study exists, when the space fits nothing on this backbone or no design
/// fits the budget: the errors the first proposal would otherwise give after the baselines.
pub fn check_feasible(
    space: &SearchSpace,
    shape: BackboneShape,
    budget_params: usize,
) -> Result<(), SearchError> {
    let seen = HashSet::new();
    let ctx = ProposalContext {
        space,
        shape,
        budget_params,
        seen: &seen,
    };
    prepare(&ctx).map(|_| ())
}

/// Fits the space to the backbone and checks that some design can fit the budget.
fn prepare<'a>(ctx: &ProposalContext<'a>) -> Result<Fitted<'a>, SearchError> {
    let fitted = Fitted::new(ctx.space, ctx.shape)?;
    let cheapest = fitted.cheapest();
    if cheapest > ctx.budget_params {
        return Err(SearchError::OverBudget {
            space: ctx.space.name.clone(),
            budget: ctx.budget_params,
            cheapest,
        });
    }
    Ok(fitted)
}

/// Draws candidates until `out` holds `n` designs new to the study, or the attempts run out.
/// `taken` holds the canonical hashes already used.
fn fill(
    out: &mut Vec<Design>,
    n: usize,
    ctx: &ProposalContext,
    taken: &mut HashSet<String>,
    rng: &mut StdRng,
    mut candidate: impl FnMut(&mut StdRng) -> Option<Design>,
) {
    // Rejects (repair failures, duplicates) are common near a small budget or an exhausted
    // front; the bound keeps a call short when the space has nothing new left.
    let mut attempts = 64 + 32 * n;
    while out.len() < n && attempts > 0 {
        attempts -= 1;
        let Some(design) = candidate(rng) else {
            continue;
        };
        let hash = super::canonical::canonical(&design);
        if ctx.seen.contains(&hash) || !taken.insert(hash) {
            continue;
        }
        out.push(design);
    }
}

fn finish_batch(
    out: Vec<Design>,
    n: usize,
    space: &SearchSpace,
) -> Result<Vec<Design>, SearchError> {
    if out.is_empty() && n > 0 {
        Err(SearchError::Exhausted {
            space: space.name.clone(),
            attempts: 64 + 32 * n,
        })
    } else {
        Ok(out)
    }
}

fn history_hashes(history: &[Evaluated]) -> HashSet<String> {
    history
        .iter()
        .map(|e| super::canonical::canonical(&e.design))
        .collect()
}

/// Uniform random designs of the space, repaired into the budget.
#[derive(Debug, Clone)]
pub struct RandomSampler {
    seed: u64,
    calls: Calls,
}

impl RandomSampler {
    pub fn new(seed: u64) -> RandomSampler {
        RandomSampler {
            seed,
            calls: Calls::default(),
        }
    }
}

impl Sampler for RandomSampler {
    fn name(&self) -> &'static str {
        "random"
    }

    fn propose(
        &mut self,
        ctx: &ProposalContext,
        history: &[Evaluated],
        n: usize,
    ) -> Result<Vec<Design>, SearchError> {
        let call = self.calls.next(history.len());
        let mut rng = call_rng(self.seed, 1, history.len(), call);
        let fitted = prepare(ctx)?;
        let mut taken = history_hashes(history);
        let mut out = Vec::with_capacity(n);
        let budget = ctx.budget_params;
        fill(&mut out, n, ctx, &mut taken, &mut rng, |rng| {
            fitted.sample_design(budget, rng)
        });
        finish_batch(out, n, ctx.space)
    }
}

/// NSGA-II (Deb et al., 2002) over (accuracy ↑, parameters ↓): the best `population` distinct
/// evaluated designs by front rank and crowding distance are the parents; binary tournaments pick
/// two, uniform crossover (probability `crossover_prob`) and one mutation make a child, which is
/// repaired into the budget. Until `population` evaluated designs of the space exist it proposes
/// random designs, and it tops a batch up with random designs when children keep repeating.
#[derive(Debug, Clone)]
pub struct Nsga2Sampler {
    seed: u64,
    /// Parents kept by environmental selection (at least 2); also the number of distinct
    /// evaluated designs of the space needed before NSGA-II stops proposing random designs.
    pub population: usize,
    /// Probability a child is a crossover of two parents rather than a copy of one (0.9); every
    /// child is then mutated once.
    pub crossover_prob: f64,
    calls: Calls,
}

impl Nsga2Sampler {
    pub fn new(seed: u64, population: usize) -> Nsga2Sampler {
        Nsga2Sampler {
            seed,
            // Tournaments need two parents.
            population: population.max(2),
            crossover_prob: 0.9,
            calls: Calls::default(),
        }
    }
}

/// A parent: its genome and objectives.
struct Parent {
    genome: Genome,
    point: Point,
}

/// One point per distinct design (by canonical hash), taken at the highest fidelity it reached
/// (the latest such entry on ties), in order of first appearance; designs the space cannot
/// encode (presets, other spaces) and non-finite accuracies are left out.
fn parents(fitted: &Fitted, history: &[Evaluated]) -> Vec<Parent> {
    let mut order: Vec<String> = Vec::new();
    let mut best: std::collections::HashMap<String, &Evaluated> = Default::default();
    for e in history.iter().filter(|e| e.accuracy.is_finite()) {
        let hash = super::canonical::canonical(&e.design);
        match best.get(&hash) {
            Some(old) if old.fidelity > e.fidelity => {}
            Some(_) => {
                best.insert(hash, e);
            }
            None => {
                order.push(hash.clone());
                best.insert(hash, e);
            }
        }
    }
    order
        .iter()
        .filter_map(|h| {
            let e = best.get(h)?;
            Some(Parent {
                genome: fitted.encode(&e.design)?,
                point: Point {
                    accuracy: e.accuracy,
                    params: e.params as f64,
                },
            })
        })
        .collect()
}

/// A survivor of NSGA-II's environmental selection: its index, front rank and crowding distance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ranked {
    pub index: usize,
    pub rank: usize,
    pub crowding: f64,
}

/// The best `population` points: whole fronts in rank order, the last front cut by crowding
/// distance (largest first, lower index on ties).
pub fn survivors(points: &[Point], population: usize) -> Vec<Ranked> {
    let mut out = Vec::with_capacity(population);
    for (rank, front) in non_dominated_sort(points).iter().enumerate() {
        if out.len() >= population {
            break;
        }
        let distance = crowding_distance(points, front);
        let mut members: Vec<(usize, f64)> = front.iter().copied().zip(distance).collect();
        if out.len() + members.len() > population {
            members.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            members.truncate(population - out.len());
        }
        out.extend(members.into_iter().map(|(index, crowding)| Ranked {
            index,
            rank,
            crowding,
        }));
    }
    out
}

/// Binary tournament: of two random survivors, the lower rank wins, then the larger crowding
/// distance, then the first drawn. Returns the winner's index into the points.
pub fn tournament(survivors: &[Ranked], rng: &mut impl Rng) -> usize {
    let a = survivors[rng.random_range(0..survivors.len())];
    let b = survivors[rng.random_range(0..survivors.len())];
    let b_wins = b.rank < a.rank || (b.rank == a.rank && b.crowding > a.crowding);
    if b_wins {
        b.index
    } else {
        a.index
    }
}

impl Sampler for Nsga2Sampler {
    fn name(&self) -> &'static str {
        "nsga2"
    }

    fn propose(
        &mut self,
        ctx: &ProposalContext,
        history: &[Evaluated],
        n: usize,
    ) -> Result<Vec<Design>, SearchError> {
        let call = self.calls.next(history.len());
        let mut rng = call_rng(self.seed, 2, history.len(), call);
        let fitted = prepare(ctx)?;
        let mut taken = history_hashes(history);
        let mut out = Vec::with_capacity(n);
        let budget = ctx.budget_params;
        let pool = parents(&fitted, history);
        if pool.len() >= self.population {
            let points: Vec<Point> = pool.iter().map(|p| p.point).collect();
            let ranked = survivors(&points, self.population);
            let crossover_prob = self.crossover_prob.clamp(0.0, 1.0);
            fill(&mut out, n, ctx, &mut taken, &mut rng, |rng| {
                let a = &pool[tournament(&ranked, rng)].genome;
                let child = if rng.random_bool(crossover_prob) {
                    let b = &pool[tournament(&ranked, rng)].genome;
                    fitted.crossover(a, b, rng)
                } else {
                    a.clone()
                };
                let child = fitted.mutate(&child, rng);
                fitted.finish(child, budget, rng)
            });
        }
        fill(&mut out, n, ctx, &mut taken, &mut rng, |rng| {
            fitted.sample_design(budget, rng)
        });
        finish_batch(out, n, ctx.space)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pts(v: &[(f64, f64)]) -> Vec<Point> {
        v.iter()
            .map(|&(accuracy, params)| Point { accuracy, params })
            .collect()
    }

    /// 0, 1, 2 form the front; 3 is beaten by 1, 4 by 0 and 3, 5 by everything.
    fn history_points() -> Vec<Point> {
        pts(&[
            (0.90, 100.0),
            (0.85, 50.0),
            (0.70, 10.0),
            (0.80, 60.0),
            (0.75, 120.0),
            (0.60, 200.0),
        ])
    }

    #[test]
    fn survivors_are_whole_fronts_then_the_least_crowded() {
        let p = history_points();
        let idx = |r: Vec<Ranked>| r.iter().map(|x| x.index).collect::<Vec<_>>();
        assert_eq!(idx(survivors(&p, 3)), vec![0, 1, 2]);
        let four = survivors(&p, 4);
        assert_eq!(idx(four.clone()), vec![0, 1, 2, 3]);
        assert_eq!(four[3].rank, 1);
        assert_eq!(idx(survivors(&p, 10)).len(), 6);
    }

    #[test]
    fn tournaments_prefer_the_front() {
        let p = history_points();
        let all = survivors(&p, p.len());
        let mut rng = StdRng::seed_from_u64(3);
        let mut wins = [0usize; 6];
        for _ in 0..3000 {
            wins[tournament(&all, &mut rng)] += 1;
        }
        let front: usize = wins[..3].iter().sum();
        // Uniform picking would give the front half the wins; two-way tournaments give 3/4.
        assert!(front > 2000, "{wins:?}");
        assert!(wins[5] < wins[0] && wins[5] < 200, "{wins:?}");
    }

    #[test]
    fn samplers_by_name() {
        assert_eq!(sampler_by_name("random", 1, 8).unwrap().name(), "random");
        assert_eq!(sampler_by_name("NSGA-II", 1, 8).unwrap().name(), "nsga2");
        let err = sampler_by_name("tpe", 1, 8).err().unwrap().to_string();
        assert_eq!(
            err,
            "unknown sampler \"tpe\": expected one of random, nsga2"
        );
    }

    #[test]
    fn call_numbers_restart_when_the_history_grows() {
        let mut calls = Calls::default();
        assert_eq!([calls.next(0), calls.next(0), calls.next(4)], [0, 1, 0]);
        assert_eq!(calls.next(4), 1);
        let first = call_rng(7, 2, 4, 0).random::<u64>();
        assert_eq!(call_rng(7, 2, 4, 0).random::<u64>(), first);
        assert_ne!(call_rng(7, 2, 4, 1).random::<u64>(), first);
        assert_ne!(call_rng(7, 2, 5, 0).random::<u64>(), first);
        assert_ne!(call_rng(8, 2, 4, 0).random::<u64>(), first);
    }
}
