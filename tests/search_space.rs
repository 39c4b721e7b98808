//! Properties of the shipped search spaces on minilm-l6's shape and the tiny test shape: every
//! sampled, mutated and crossed design (and every sampler proposal) is valid per `graph::validate`,
//! within budget and non-empty; proposals are new and reproducible from (seed, history).

use pets::backbone::config::BackboneShape;
use pets::backbone::tiny::tiny_config;
use pets::graph;
use pets::params::design_cost;
use pets::search::genome::Fitted;
use pets::search::sampler::{Nsga2Sampler, RandomSampler};
use pets::search::{
    canonical, Budget, Evaluated, ProposalContext, Sampler, SearchError, SearchSpace,
};
use pets::spec::{Design, Form, Site};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::collections::HashSet;
use std::path::Path;

fn minilm_l6() -> BackboneShape {
    BackboneShape::MINILM_L6
}

fn spaces() -> Vec<SearchSpace> {
    ["mam", "unified"]
        .iter()
        .map(|n| {
            let path = format!("search_spaces/{n}.ron");
            SearchSpace::from_file(Path::new(&path)).unwrap_or_else(|e| panic!("{e}"))
        })
        .collect()
}

const BUDGETS: [&str; 3] = ["0.1%", "0.5%", "5%"];

/// Every promise a proposal keeps.
fn check(design: &Design, space: &SearchSpace, shape: &BackboneShape, limit: usize, what: &str) {
    let ctx = format!("{what}: {}", design.to_ron());
    assert!(!design.modules.is_empty(), "empty design from {ctx}");
    if let Err(e) = graph::validate(design, shape) {
        panic!("invalid ({e}) {ctx}");
    }
    let cost = design_cost(design, shape, 2).unwrap().trainable;
    assert!(cost <= limit, "{cost} > {limit} params: {ctx}");
    for m in &design.modules {
        if let Some(width) = m.method().width() {
            assert!(width.value >= 1 && width.value <= shape.hidden, "{ctx}");
        }
        if m.site == Site::AttentionHeads && matches!(m.form, Form::Bottleneck(_)) {
            assert_eq!(m.form.width() % shape.heads, 0, "{ctx}");
        }
    }
    let hash = canonical(design);
    assert_eq!(
        design.name,
        format!("{}-{}", space.name, &hash[..8]),
        "{ctx}"
    );
}

#[test]
fn sampled_mutated_and_crossed_designs_are_valid_within_budget_and_non_empty() {
    let shapes = [("minilm-l6", minilm_l6()), ("tiny", tiny_config().shape())];
    let mut kinds = HashSet::new();
    for space in &spaces() {
        for (shape_name, shape) in &shapes {
            let fitted = Fitted::new(space, *shape).unwrap();
            for budget in BUDGETS {
                let limit = budget
                    .parse::<Budget>()
                    .unwrap()
                    .limit(shape.backbone_params());
                let what = format!("{} on {shape_name} at {budget}", space.name);
                if fitted.cheapest() > limit {
                    // Only the tiny encoder is too small for 0.1%: 42 parameters host no module.
                    assert_eq!((*shape_name, budget), ("tiny", "0.1%"), "{what}");
                    continue;
                }
                let mut rng = StdRng::seed_from_u64(limit as u64);
                let mut designs: Vec<Design> = Vec::new();
                for _ in 0..60 {
                    if let Some(d) = fitted.sample_design(limit, &mut rng) {
                        check(&d, space, shape, limit, &format!("sample, {what}"));
                        let genome = fitted.encode(&d).expect("a sampled design encodes");
                        assert_eq!(canonical(&fitted.decode(&genome)), canonical(&d));
                        designs.push(d);
                    }
                }
                assert!(designs.len() >= 20, "{what}: {} of 60", designs.len());
                for (i, parent) in designs.iter().enumerate() {
                    // A short walk of mutations explores further than one step.
                    let mut walker = parent.clone();
                    for step in 0..3 {
                        let Some(child) = fitted.mutate_design(&walker, limit, &mut rng) else {
                            continue;
                        };
                        check(
                            &child,
                            space,
                            shape,
                            limit,
                            &format!("mutation {step}, {what}"),
                        );
                        walker = child;
                    }
                    let other = &designs[(i * 7 + 3) % designs.len()];
                    if let Some(child) = fitted.crossover_design(parent, other, limit, &mut rng) {
                        check(&child, space, shape, limit, &format!("crossover, {what}"));
                    }
                    for m in &parent.modules {
                        kinds.insert(format!("{} {:?} {:?}", m.form.kind(), m.site, m.insertion));
                    }
                }
            }
        }
    }
    // The draws reach every form, per-head and whole-attention adapters, both insertions.
    for expected in [
        "prefix AttentionHeads Parallel",
        "lora Projection(Query) Parallel",
        "bottleneck AttentionHeads Parallel",
        "bottleneck AttentionHeads Sequential",
        "bottleneck Attention Sequential",
        "bottleneck Ffn Parallel",
        "bottleneck Ffn Sequential",
        "lora Projection(FfnOut) Parallel",
    ] {
        assert!(kinds.contains(expected), "never drew {expected}: {kinds:?}");
    }
}

/// A made-up but deterministic evaluation: accuracy from the hash, parameters from the design.
fn evaluate(designs: &[Design], shape: &BackboneShape) -> Vec<Evaluated> {
    designs
        .iter()
        .map(|d| {
            let hash = canonical(d);
            let bits = u32::from_str_radix(&hash[..6], 16).unwrap();
            Evaluated {
                design: d.clone(),
                canonical: hash,
                accuracy: 0.5 + 0.4 * f64::from(bits) / f64::from(0xFF_FFFF),
                params: design_cost(d, shape, 2).unwrap().trainable,
                fidelity: 100,
            }
        })
        .collect()
}

#[test]
fn samplers_propose_new_valid_designs_reproducibly() {
    let shape = minilm_l6();
    for space in &spaces() {
        let limit = Budget::Percent(0.5).limit(shape.backbone_params());
        let seen = HashSet::new();
        let ctx = ProposalContext {
            space,
            shape,
            budget_params: limit,
            seen: &seen,
        };
        let mut random = RandomSampler::new(11);
        let first = random.propose(&ctx, &[], 12).unwrap();
        assert_eq!(first.len(), 12);
        let history = evaluate(&first, &shape);
        let mut hashes: HashSet<String> = history.iter().map(|e| e.canonical.clone()).collect();
        assert_eq!(hashes.len(), 12, "a batch holds no duplicates");

        // Two samplers of one seed, one of them resumed from the stored history, agree.
        let mut a = Nsga2Sampler::new(5, 8);
        let mut b = Nsga2Sampler::new(5, 8);
        let _ = a.propose(&ctx, &history[..4], 2).unwrap();
        let from_a = a.propose(&ctx, &history, 8).unwrap();
        let from_b = b.propose(&ctx, &history, 8).unwrap();
        assert_eq!(from_a, from_b);
        assert_eq!(
            a.propose(&ctx, &history, 8).unwrap(),
            b.propose(&ctx, &history, 8).unwrap()
        );
        let mut c = Nsga2Sampler::new(6, 8);
        assert_ne!(
            c.propose(&ctx, &history, 8).unwrap(),
            from_a,
            "the seed matters"
        );
        assert_eq!(
            RandomSampler::new(11).propose(&ctx, &[], 12).unwrap(),
            first
        );

        // Children of an evaluated population: valid, within budget, new, of the space.
        let fitted = Fitted::new(space, shape).unwrap();
        for d in &from_a {
            check(d, space, &shape, limit, "nsga2 proposal");
            assert!(fitted.encode(d).is_some());
            assert!(hashes.insert(canonical(d)), "duplicate proposal {}", d.name);
        }

        // `seen` (e.g. running trials) is never proposed again.
        let seen: HashSet<String> = from_a.iter().map(canonical).collect();
        let ctx = ProposalContext { seen: &seen, ..ctx };
        let again = Nsga2Sampler::new(5, 8).propose(&ctx, &history, 8).unwrap();
        assert!(again.iter().all(|d| !seen.contains(&canonical(d))));
    }
}

#[test]
fn a_budget_no_design_fits_is_a_clear_error() {
    let space = &spaces()[0];
    let shape = tiny_config().shape();
    let seen = HashSet::new();
    let ctx = ProposalContext {
        space,
        shape,
        budget_params: Budget::Percent(0.1).limit(shape.backbone_params()),
        seen: &seen,
    };
    for mut sampler in [
        Box::new(RandomSampler::new(1)) as Box<dyn Sampler>,
        Box::new(Nsga2Sampler::new(1, 4)),
    ] {
        match sampler.propose(&ctx, &[], 4) {
            Err(e @ SearchError::OverBudget { .. }) => {
                let text = e.to_string();
                assert!(text.contains("no design fits the budget"), "{text}");
            }
            other => panic!("expected OverBudget, got {other:?}"),
        }
    }
}
