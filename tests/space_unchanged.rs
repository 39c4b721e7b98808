//! A space without learning-rate (or other training-setting) choices proposes exactly the designs
//! it did before those dimensions existed: mam.ron's samples, mutants, crossovers and NSGA-II
//! proposals for fixed seeds, compared by canonical hash against lists the older code wrote; and
//! so does mam.ron with the older top-level `learning_rate` list.

use pets::backbone::config::BackboneShape;
use pets::search::genome::Fitted;
use pets::search::sampler::{Nsga2Sampler, RandomSampler};
use pets::search::{canonical, Budget, Evaluated, ProposalContext, Sampler, SearchSpace};
use pets::spec::Design;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::collections::HashSet;

/// Written by the code before issue 20's training dimensions (commit 04150c0); set
/// `PETS_BLESS=1` to rewrite them, which only a deliberate change of the draws should need.
const GOLDEN: &str = "tests/fixtures/mam_designs.txt";
const GOLDEN_TOP_LR: &str = "tests/fixtures/mam_top_level_lr_designs.txt";

fn mam() -> String {
    std::fs::read_to_string("search_spaces/mam.ron").unwrap()
}

/// One line per proposal, in order: how it came about and its design's canonical hash.
fn proposals(text: &str) -> Vec<String> {
    let space = SearchSpace::from_ron(text, "mam.ron").unwrap();
    let shape = BackboneShape::MINILM_L6;
    let fitted = Fitted::new(&space, shape).unwrap();
    let mut lines = Vec::new();
    let mut line = |what: String, d: &Design| lines.push(format!("{what} {}", canonical(d)));
    for budget in [0.1, 0.5, 5.0] {
        let limit = Budget::Percent(budget).limit(shape.backbone_params());
        let mut rng = StdRng::seed_from_u64(limit as u64);
        let mut designs = Vec::new();
        for i in 0..40 {
            if let Some(d) = fitted.sample_design(limit, &mut rng) {
                line(format!("{budget}% sample {i}"), &d);
                designs.push(d);
            }
        }
        for (i, parent) in designs.iter().enumerate() {
            if let Some(child) = fitted.mutate_design(parent, limit, &mut rng) {
                line(format!("{budget}% mutant {i}"), &child);
            }
            let other = &designs[(i * 7 + 3) % designs.len()];
            if let Some(child) = fitted.crossover_design(parent, other, limit, &mut rng) {
                line(format!("{budget}% crossover {i}"), &child);
            }
        }
        let seen = HashSet::new();
        let ctx = ProposalContext {
            space: &space,
            shape,
            budget_params: limit,
            seen: &seen,
        };
        let first = RandomSampler::new(11).propose(&ctx, &[], 12).unwrap();
        let history: Vec<Evaluated> = first
            .iter()
            .enumerate()
            .map(|(i, d)| Evaluated {
                design: d.clone(),
                canonical: canonical(d),
                accuracy: 0.5 + 0.03 * i as f64,
                params: 1000 * (i + 1),
                fidelity: 100,
            })
            .collect();
        let children = Nsga2Sampler::new(5, 8).propose(&ctx, &history, 8).unwrap();
        for (i, d) in first.iter().chain(&children).enumerate() {
            line(format!("{budget}% sampler {i}"), d);
        }
    }
    lines
}

/// Compares (or, blessing, writes) one list.
fn compare(text: &str, golden: &str) {
    let got = proposals(text).join("\n") + "\n";
    if std::env::var_os("PETS_BLESS").is_some() {
        std::fs::write(golden, &got).unwrap();
    }
    let want = std::fs::read_to_string(golden).unwrap();
    assert!(got.lines().count() > 200, "too few proposals to compare");
    for (i, (g, w)) in got.lines().zip(want.lines()).enumerate() {
        assert_eq!(g, w, "line {}", i + 1);
    }
    assert_eq!(got.lines().count(), want.lines().count());
}

#[test]
fn mam_proposes_the_designs_it_did_before_training_dimensions() {
    compare(&mam(), GOLDEN);
}

#[test]
fn a_top_level_learning_rate_list_draws_as_before() {
    let text = mam().replace(
        "name: \"mam\",",
        "name: \"mam\", learning_rate: [3e-4, 1e-3],",
    );
    assert_ne!(text, mam());
    compare(&text, GOLDEN_TOP_LR);
}
