//! Fuzzing entry points: arbitrary bytes through the design and space parsers, validation, the
//! parameter accounting, the compiler and the samplers on a tiny encoder.
//!
//! Any typed error is a fine answer to garbage. A panic, or two stages that disagree about one
//! input (the validator accepts what the compiler rejects, a parse error without a position, a
//! sampler proposing an invalid or over-budget design), is a bug: these functions return it as a
//! [`Violation`] and the callers (the cargo-fuzz targets in `fuzz/`, the property test and the
//! corpus replay in `tests/fuzz_inputs.rs`) turn it into a failure.

use crate::backbone::tiny::{tiny_config, tiny_encoder};
use crate::batch::{make_batch, TokenizedSplit};
use crate::graph::DesignGraph;
use crate::model::AdaptedModel;
use crate::params::design_cost;
use crate::search::sampler::{sampler_by_name, ProposalContext};
use crate::search::{canonical, Evaluated, SearchError, SearchSpace};
use crate::spec::{Design, SpecError};
use crate::train::Classifier;
use std::collections::HashSet;

/// The origin given to the parsers: every parse error must start with `fuzz.ron:LINE:COLUMN:`.
pub const ORIGIN: &str = "fuzz.ron";

/// Two stages disagreed about an input, or an error lacked what users need to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Violation(pub String);

fn violation(message: impl Into<String>) -> Violation {
    Violation(message.into())
}

/// Parse errors must say where: `fuzz.ron:<line>:<column>: …` with numbers that make sense.
fn check_parse_error(err: &SpecError) -> Result<(), Violation> {
    let text = err.to_string();
    let mut parts = text.splitn(4, ':');
    let (origin, line, column) = (parts.next(), parts.next(), parts.next());
    let number = |s: Option<&str>| s.and_then(|s| s.parse::<usize>().ok()).filter(|n| *n >= 1);
    if origin != Some(ORIGIN) || number(line).is_none() || number(column).is_none() {
        return Err(violation(format!(
            "parse error without file:line:column: {text}"
        )));
    }
    Ok(())
}

/// A design from arbitrary bytes: parse; validation, accounting and the graph agree; a valid
/// design round-trips through RON, compiles on the tiny encoder with exactly the accounted vars,
/// and runs a forward pass.
pub fn design_bytes(data: &[u8]) -> Result<(), Violation> {
    let text = String::from_utf8_lossy(data);
    let design = match Design::from_ron(&text, ORIGIN) {
        Ok(design) => design,
        Err(err) => return check_parse_error(&err),
    };
    check_design(&design)
}

/// The checks of [`design_bytes`] after parsing; also applied to every proposal of a sampler.
pub fn check_design(design: &Design) -> Result<(), Violation> {
    let shape = tiny_config().shape();
    let cost = design_cost(design, &shape, 2);
    let graph = DesignGraph::build(design, &shape);
    let cost = match (cost, graph) {
        (Ok(cost), Ok(_)) => cost,
        (Err(a), Err(b)) if a.to_string() == b.to_string() => return Ok(()),
        (a, b) => {
            let (a, b) = (a.err(), b.err());
            return Err(violation(format!(
                "the accounting says {a:?} but the graph says {b:?}"
            )));
        }
    };
    let text = design.to_ron();
    let again = Design::from_ron(&text, ORIGIN)
        .map_err(|e| violation(format!("a valid design does not re-parse: {e}\n{text}")))?;
    if again.to_ron() != text || canonical(&again) != canonical(design) {
        return Err(violation(format!(
            "RON round trip changed the design:\n{text}"
        )));
    }
    let encoder = tiny_encoder(0).map_err(|e| violation(format!("tiny encoder: {e}")))?;
    let model = AdaptedModel::build(encoder, design, 2, 0)
        .map_err(|e| violation(format!("valid design fails to compile: {e}\n{text}")))?;
    if model.cost.trainable != cost.trainable {
        return Err(violation("the model's cost differs from design_cost"));
    }
    let split = TokenizedSplit {
        ids: vec![vec![2, 5, 6, 7, 3], vec![2, 9, 3]],
        labels: vec![0, 1],
    };
    let device = candle_core::Device::Cpu;
    let batch =
        make_batch(&split, &[0, 1], 0, &device).map_err(|e| violation(format!("batch: {e}")))?;
    let logits = model
        .logits(&batch, false)
        .map_err(|e| violation(format!("forward pass of a valid design fails: {e}\n{text}")))?;
    if logits.dims() != [2, 2] {
        return Err(violation(format!("logits of shape {:?}", logits.dims())));
    }
    Ok(())
}

/// A search space from arbitrary bytes: parse and validate; errors say where; a valid space
/// either refuses the tiny backbone and budget with a typed error or yields designs that pass
/// [`check_design`], fit the budget and are new, from both samplers (NSGA-II also after a
/// made-up history, so crossover and mutation run).
pub fn space_bytes(data: &[u8]) -> Result<(), Violation> {
    let text = String::from_utf8_lossy(data);
    let space = match SearchSpace::from_ron(&text, ORIGIN) {
        Ok(space) => space,
        Err(SearchError::Spec(err)) => return check_parse_error(&err),
        Err(err @ SearchError::Space { .. }) => {
            let text = err.to_string();
            return match text.starts_with("search space ") {
                true => Ok(()),
                false => Err(violation(format!("space error without its name: {text}"))),
            };
        }
        Err(other) => return Err(violation(format!("unexpected error from parsing: {other}"))),
    };
    let shape = tiny_config().shape();
    // 5% of the tiny backbone: room for a few modules, tight enough to exercise the repairs.
    let budget_params = shape.backbone_params() / 20;
    for name in ["random", "nsga2"] {
        let mut seen: HashSet<String> = HashSet::new();
        let mut history: Vec<Evaluated> = Vec::new();
        for round in 0..2 {
            let mut sampler = sampler_by_name(name, 7, 2).map_err(|e| violation(e.to_string()))?;
            let ctx = ProposalContext {
                space: &space,
                shape,
                budget_params,
                seen: &seen,
            };
            let designs = match sampler.propose(&ctx, &history, 2) {
                Ok(designs) => designs,
                Err(
                    SearchError::OverBudget { .. }
                    | SearchError::Infeasible { .. }
                    | SearchError::Exhausted { .. },
                ) => break,
                Err(other) => return Err(violation(format!("{name} round {round}: {other}"))),
            };
            for design in designs {
                check_design(&design)?;
                let cost = design_cost(&design, &shape, 2)
                    .map_err(|e| violation(format!("proposal is invalid: {e}")))?;
                if cost.trainable > budget_params || design.modules.is_empty() {
                    return Err(violation(format!(
                        "proposal of {} parameters (budget {budget_params}):\n{}",
                        cost.trainable,
                        design.to_ron()
                    )));
                }
                let hash = canonical(&design);
                if !seen.insert(hash.clone()) {
                    return Err(violation(format!(
                        "duplicate proposal:\n{}",
                        design.to_ron()
                    )));
                }
                history.push(Evaluated {
                    accuracy: 0.5 + 0.01 * history.len() as f64,
                    params: cost.trainable,
                    canonical: hash,
                    design,
                    fidelity: 10,
                });
            }
        }
    }
    Ok(())
}
