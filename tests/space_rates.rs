//! Learning rates as a search dimension: a module option's `learning_rate` choice is drawn within
//! range (log-uniformly), decides the design's one rate by the first-slot rule, round-trips through
//! encode/decode, stays in range under mutation and crossover, and falls back to the top level.

use pets::backbone::config::BackboneShape;
use pets::search::genome::Fitted;
use pets::search::rate::LrChoice;
use pets::search::{canonical, Budget, SearchSpace};
use pets::spec::Design;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::collections::BTreeSet;

/// Slot `a` (LoRA) draws from a log range, `b` (FFN bottleneck) from a list, `c` (IA³) has no
/// rate of its own, so a design of `c` alone takes the top-level choice.
const SPACE: &str = r#"SearchSpace(name: "lr", slots: [
    Slot(name: "a", optional: true, options: [
        ModuleOption(form: Lora(alpha: Ratio([2.0])), sites: [[Projection(Query), Projection(Value)]],
                     width: LogRange(1, 64), learning_rate: LogRange(1e-4, 3e-3)),
    ]),
    Slot(name: "b", optional: true, options: [
        ModuleOption(form: Bottleneck(activations: [Relu]), sites: [[Ffn]],
                     width: LogRange(1, 64), learning_rate: List([2e-2, 1e-2])),
    ]),
    Slot(name: "c", optional: true, options: [
        ModuleOption(form: Ia3, sites: [[FfnActivation]], insertion: [Sequential]),
    ]),
], learning_rate: [5e-5])"#;

fn has(d: &Design, slot: &str) -> bool {
    d.modules.iter().any(|m| {
        m.name
            .as_deref()
            .is_some_and(|n| n.split('.').next() == Some(slot))
    })
}

/// The rate the first-slot rule promises for `d`, checked against the grids.
fn check_rate(d: &Design, grid_a: &[f64]) {
    let lr = d
        .learning_rate
        .expect("every design of the space has a rate");
    let ctx = d.to_ron();
    if has(d, "a") {
        assert!((1e-4..=3e-3).contains(&lr), "{ctx}");
        assert!(grid_a.contains(&lr), "off the grid: {ctx}");
    } else if has(d, "b") {
        assert!(lr == 1e-2 || lr == 2e-2, "{ctx}");
    } else {
        assert_eq!(lr, 5e-5, "{ctx}");
    }
}

#[test]
fn rates_are_drawn_in_range_by_the_first_slot_and_survive_variation() {
    let space = SearchSpace::from_ron(SPACE, "lr.ron").unwrap();
    let shape = BackboneShape::MINILM_L6;
    let fitted = Fitted::new(&space, shape).unwrap();
    let limit = Budget::Percent(5.0).limit(shape.backbone_params());
    let grid_a = LrChoice::LogRange(1e-4, 3e-3).grid();
    let mut rng = StdRng::seed_from_u64(3);
    let mut designs = Vec::new();
    let (mut low, mut high) = (0, 0);
    for _ in 0..300 {
        let Some(d) = fitted.sample_design(limit, &mut rng) else {
            continue;
        };
        check_rate(&d, &grid_a);
        let genome = fitted.encode(&d).expect("a sampled design encodes");
        assert_eq!(canonical(&fitted.decode(&genome)), canonical(&d));
        if has(&d, "a") {
            // Log-uniform: as many draws below the range's log midpoint (≈ 5.5e-4) as above.
            let lr = d.learning_rate.unwrap_or(0.0);
            *if lr < (1e-4f64 * 3e-3).sqrt() {
                &mut low
            } else {
                &mut high
            } += 1;
        }
        designs.push(d);
    }
    assert!(
        low > 40 && high > 40,
        "{low} below the log midpoint, {high} above"
    );
    let mut seen = BTreeSet::new();
    for (i, parent) in designs.iter().enumerate() {
        let mut walker = parent.clone();
        for _ in 0..4 {
            if let Some(child) = fitted.mutate_design(&walker, limit, &mut rng) {
                check_rate(&child, &grid_a);
                seen.insert(child.learning_rate.map(f64::to_bits));
                walker = child;
            }
        }
        let other = &designs[(i * 7 + 3) % designs.len()];
        if let Some(child) = fitted.crossover_design(parent, other, limit, &mut rng) {
            check_rate(&child, &grid_a);
        }
    }
    // Every point of both grids and the top-level rate is reached.
    assert_eq!(seen.len(), grid_a.len() + 2 + 1, "{seen:?}");
}

#[test]
fn a_rate_mutation_moves_one_grid_step() {
    let space = SearchSpace::from_ron(SPACE, "lr.ron").unwrap();
    let shape = BackboneShape::MINILM_L6;
    let fitted = Fitted::new(&space, shape).unwrap();
    let limit = Budget::Percent(5.0).limit(shape.backbone_params());
    let grid = LrChoice::LogRange(1e-4, 3e-3).grid();
    let mut rng = StdRng::seed_from_u64(5);
    let mut steps = 0;
    for _ in 0..200 {
        let Some(d) = fitted.sample_design(limit, &mut rng) else {
            continue;
        };
        let Some(child) = fitted.mutate_design(&d, limit, &mut rng) else {
            continue;
        };
        let same_modules = child.modules == d.modules && child.unfreeze == d.unfreeze;
        if has(&d, "a") && same_modules && child.learning_rate != d.learning_rate {
            let at = |lr: Option<f64>| grid.iter().position(|x| Some(*x) == lr).unwrap();
            assert_eq!(at(d.learning_rate).abs_diff(at(child.learning_rate)), 1);
            steps += 1;
        }
    }
    assert!(steps > 5, "only {steps} rate mutations");
}

#[test]
fn designs_off_the_rate_choices_are_foreign() {
    let space = SearchSpace::from_ron(SPACE, "lr.ron").unwrap();
    let shape = BackboneShape::MINILM_L6;
    let fitted = Fitted::new(&space, shape).unwrap();
    let limit = Budget::Percent(5.0).limit(shape.backbone_params());
    let mut rng = StdRng::seed_from_u64(9);
    let d = (0..100)
        .filter_map(|_| fitted.sample_design(limit, &mut rng))
        .find(|d| has(d, "a"))
        .unwrap();
    let genome = fitted.encode(&d).unwrap();
    assert_eq!(fitted.rate(&genome), d.learning_rate);
    for foreign in [None, Some(2e-3), Some(1e-2)] {
        let mut other = d.clone();
        other.learning_rate = foreign;
        assert!(fitted.encode(&other).is_none(), "{foreign:?} encoded");
    }
}

#[test]
fn a_space_without_rates_writes_none_and_the_top_level_list_still_applies() {
    let plain = SPACE
        .replace(", learning_rate: LogRange(1e-4, 3e-3)", "")
        .replace(", learning_rate: List([2e-2, 1e-2])", "");
    let shape = BackboneShape::MINILM_L6;
    let limit = Budget::Percent(5.0).limit(shape.backbone_params());
    for (text, want) in [
        (plain.replace(", learning_rate: [5e-5]", ""), None),
        (plain.clone(), Some(5e-5)),
    ] {
        let space = SearchSpace::from_ron(&text, "lr.ron").unwrap();
        let fitted = Fitted::new(&space, shape).unwrap();
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..50 {
            if let Some(d) = fitted.sample_design(limit, &mut rng) {
                assert_eq!(d.learning_rate, want, "{}", d.to_ron());
            }
        }
    }
}
