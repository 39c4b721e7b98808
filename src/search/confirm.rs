//! Confirmation at full fidelity: the designs re-run on more seeds, their mean test accuracy, and
//! the paired bootstrap that says whether the best front design beats each baseline.
//!
//! A *confirmed design* is a parent trial (a complete-or-not full-fidelity search trial, or a
//! baseline trial) with at least one [`TrialKind::Confirm`] child; its runs are the parent (the
//! first seed) and those children. Test accuracies are read from each run's stored metrics
//! (`test_accuracy`, `test_correct`) and are only ever reported: the search ranks by dev.

use super::store::{TrialKind, TrialRow};
use super::TrialState;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use thiserror::Error;

/// Resamples of the paired bootstrap (the 10,000).
pub const RESAMPLES: usize = 10_000;

/// One seed of a confirmed design.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedRun {
    /// The trial number of this run.
    pub trial: usize,
    pub seed: u64,
    pub state: TrialState,
    pub dev: Option<f64>,
    pub test: Option<f64>,
    /// One char per test example, in test-split order: '1' right, '0' wrong.
    pub correct: Option<String>,
}

impl SeedRun {
    fn complete(&self) -> bool {
        self.state == TrialState::Complete
    }
}

/// A parent trial with its confirmation runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Confirmed {
    /// The baseline preset's name, or `trial N` for a searched design.
    pub name: String,
    /// The trial it confirms (its own run is the first seed).
    pub parent: usize,
    /// `Baseline` or `Search`.
    pub kind: TrialKind,
    pub params: Option<usize>,
    pub percent: Option<f64>,
    /// The parent first, then the confirmation runs by seed.
    pub runs: Vec<SeedRun>,
}

impl Confirmed {
    pub fn is_baseline(&self) -> bool {
        self.kind == TrialKind::Baseline
    }

    fn tests(&self) -> Vec<f64> {
        self.runs
            .iter()
            .filter(|r| r.complete())
            .filter_map(|r| r.test)
            .collect()
    }

    /// Mean test accuracy over the complete runs that have one.
    pub fn mean_test(&self) -> Option<f64> {
        mean(&self.tests())
    }

    /// Sample standard deviation (n − 1) of the test accuracies; `None` under two runs.
    pub fn sd_test(&self) -> Option<f64> {
        sample_sd(&self.tests())
    }

    /// Mean dev accuracy over the complete runs.
    pub fn mean_dev(&self) -> Option<f64> {
        let devs: Vec<f64> = self
            .runs
            .iter()
            .filter(|r| r.complete())
            .filter_map(|r| r.dev)
            .collect();
        mean(&devs)
    }

    /// Complete runs.
    pub fn seeds_done(&self) -> usize {
        self.runs.iter().filter(|r| r.complete()).count()
    }

    /// Seeds not complete yet (running) or that did not complete (failed, pruned).
    pub fn seeds_missing(&self) -> Vec<(u64, TrialState)> {
        self.runs
            .iter()
            .filter(|r| !r.complete())
            .map(|r| (r.seed, r.state))
            .collect()
    }
}

pub fn mean(xs: &[f64]) -> Option<f64> {
    (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
}

/// Sample standard deviation (divisor n − 1); `None` under two values.
pub fn sample_sd(xs: &[f64]) -> Option<f64> {
    let m = mean(xs)?;
    (xs.len() >= 2).then(|| {
        let ss: f64 = xs.iter().map(|x| (x - m).powi(2)).sum();
        (ss / (xs.len() - 1) as f64).sqrt()
    })
}

/// `metrics.test_accuracy` of a trial (absent or null when the task has no test split).
pub fn test_accuracy(t: &TrialRow) -> Option<f64> {
    t.metrics.as_ref()?.get("test_accuracy")?.as_f64()
}

/// `metrics.test_correct` of a trial.
pub fn test_correct(t: &TrialRow) -> Option<&str> {
    t.metrics.as_ref()?.get("test_correct")?.as_str()
}

fn run(t: &TrialRow) -> SeedRun {
    SeedRun {
        trial: t.number,
        seed: t.seed,
        state: t.state,
        dev: t.accuracy,
        test: test_accuracy(t),
        correct: test_correct(t).map(String::from),
    }
}

/// Every confirmed design of a study, ranked by mean test accuracy (highest first; designs
/// without one last, by parent number).
pub fn confirmed(trials: &[TrialRow]) -> Vec<Confirmed> {
    let mut children_of: HashMap<usize, Vec<&TrialRow>> = HashMap::new();
    for c in trials.iter().filter(|c| c.kind == TrialKind::Confirm) {
        if let Some(parent) = c.parent {
            children_of.entry(parent).or_default().push(c);
        }
    }
    let mut out: Vec<Confirmed> = Vec::new();
    for parent in trials
        .iter()
        .filter(|t| matches!(t.kind, TrialKind::Search | TrialKind::Baseline))
    {
        let Some(mut children) = children_of.remove(&parent.number) else {
            continue;
        };
        children.sort_by_key(|c| (c.seed, c.number));
        // A seed run twice (a re-claimed trial): keep the complete run, else the last.
        let mut runs = vec![run(parent)];
        for c in children {
            match runs.iter_mut().find(|r| r.seed == c.seed) {
                Some(r) if !r.complete() => *r = run(c),
                Some(_) => {}
                None => runs.push(run(c)),
            }
        }
        let name = match (parent.kind, &parent.label) {
            (TrialKind::Baseline, Some(l)) => l.clone(),
            _ => format!("trial {}", parent.number),
        };
        out.push(Confirmed {
            name,
            parent: parent.number,
            kind: parent.kind,
            params: parent.params,
            percent: parent.percent,
            runs,
        });
    }
    out.sort_by(|a, b| {
        let key = |c: &Confirmed| c.mean_test().unwrap_or(f64::NEG_INFINITY);
        key(b).total_cmp(&key(a)).then(a.parent.cmp(&b.parent))
    });
    out
}

/// The confirmed searched design with the highest mean test accuracy.
pub fn best_front(confirmed: &[Confirmed]) -> Option<&Confirmed> {
    best_of(confirmed, false)
}

/// The confirmed baseline with the highest mean test accuracy.
pub fn best_baseline(confirmed: &[Confirmed]) -> Option<&Confirmed> {
    best_of(confirmed, true)
}

fn best_of(confirmed: &[Confirmed], baseline: bool) -> Option<&Confirmed> {
    confirmed
        .iter()
        .filter(|c| c.is_baseline() == baseline)
        .filter_map(|c| c.mean_test().map(|m| (c, m)))
        .max_by(|(a, x), (b, y)| x.total_cmp(y).then(b.parent.cmp(&a.parent)))
        .map(|(c, _)| c)
}

/// The outcome of a paired comparison, in the words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Beats,
    Ties,
    Loses,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Beats => "beats",
            Verdict::Ties => "ties",
            Verdict::Loses => "loses",
        }
    }

    /// "beats" when the interval excludes 0 above, "loses" when below, otherwise "ties".
    pub fn of_interval(low: f64, high: f64) -> Verdict {
        if low > 0.0 {
            Verdict::Beats
        } else if high < 0.0 {
            Verdict::Loses
        } else {
            Verdict::Ties
        }
    }
}

/// Accuracy difference A − B over pooled (test example, seed) pairs with its bootstrap interval.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// Observed mean difference A − B (accuracy, not points).
    pub difference: f64,
    /// 95% percentile interval of the resampled mean difference.
    pub low: f64,
    pub high: f64,
    pub verdict: Verdict,
    /// Seeds both designs have complete with per-example results, ascending.
    pub seeds: Vec<u64>,
    pub pairs: usize,
}

#[derive(Debug, Clone, PartialEq, Error)]
pub enum BootstrapError {
    #[error("no seed where both designs completed with per-example test results")]
    NoCommonSeed,
    #[error("seed {seed}: {a} test examples against {b}")]
    LengthMismatch { seed: u64, a: usize, b: usize },
    #[error("seed {seed}: test_correct holds '{found}', expected only '0' and '1'")]
    BadChar { seed: u64, found: char },
    #[error("no test examples to compare")]
    Empty,
}

fn bits(s: &str, seed: u64) -> Result<Vec<i8>, BootstrapError> {
    s.chars()
        .map(|c| match c {
            '1' => Ok(1),
            '0' => Ok(0),
            found => Err(BootstrapError::BadChar { seed, found }),
        })
        .collect()
}

/// Per-pair differences (−1, 0, 1) of A − B pooled over the seeds both have complete, and those
/// seeds. Example i of seed s of A is paired with example i of seed s of B.
pub fn paired_differences(
    a: &Confirmed,
    b: &Confirmed,
) -> Result<(Vec<i8>, Vec<u64>), BootstrapError> {
    let mut diffs = Vec::new();
    let mut seeds = Vec::new();
    for ra in a.runs.iter().filter(|r| r.complete()) {
        let Some(ca) = &ra.correct else { continue };
        let Some(cb) = b
            .runs
            .iter()
            .filter(|r| r.complete() && r.seed == ra.seed)
            .find_map(|r| r.correct.as_ref())
        else {
            continue;
        };
        let (xa, xb) = (bits(ca, ra.seed)?, bits(cb, ra.seed)?);
        if xa.len() != xb.len() {
            return Err(BootstrapError::LengthMismatch {
                seed: ra.seed,
                a: xa.len(),
                b: xb.len(),
            });
        }
        diffs.extend(xa.iter().zip(&xb).map(|(x, y)| x - y));
        seeds.push(ra.seed);
    }
    if seeds.is_empty() {
        return Err(BootstrapError::NoCommonSeed);
    }
    seeds.sort_unstable();
    Ok((diffs, seeds))
}

/// The q-quantile of sorted values by the nearest-rank rule: the value of rank ⌈q·n⌉ (1-based),
/// at least rank 1. With n = 10,000: the 2.5% quantile is the 250th smallest, the 97.5% the 9,750th.
pub fn nearest_rank(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// Bootstrap of the mean of `diffs`: `resamples` resamples of `diffs.len()` pairs drawn with
/// replacement by `StdRng::seed_from_u64(seed)`; returns (observed mean, 2.5%, 97.5% quantile)
/// by [`nearest_rank`].
pub fn bootstrap_mean(
    diffs: &[i8],
    resamples: usize,
    seed: u64,
) -> Result<(f64, f64, f64), BootstrapError> {
    if diffs.is_empty() || resamples == 0 {
        return Err(BootstrapError::Empty);
    }
    let n = diffs.len();
    let observed = diffs.iter().map(|&d| i64::from(d)).sum::<i64>() as f64 / n as f64;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut means: Vec<f64> = (0..resamples)
        .map(|_| {
            let sum: i64 = (0..n)
                .map(|_| i64::from(diffs[rng.random_range(0..n)]))
                .sum();
            sum as f64 / n as f64
        })
        .collect();
    means.sort_by(f64::total_cmp);
    let low = nearest_rank(&means, 0.025).unwrap_or(observed);
    let high = nearest_rank(&means, 0.975).unwrap_or(observed);
    Ok((observed, low, high))
}

/// Paired bootstrap of A against B over pooled (test example, seed) pairs.
pub fn paired_bootstrap(
    a: &Confirmed,
    b: &Confirmed,
    resamples: usize,
    seed: u64,
) -> Result<Comparison, BootstrapError> {
    let (diffs, seeds) = paired_differences(a, b)?;
    let (difference, low, high) = bootstrap_mean(&diffs, resamples, seed)?;
    Ok(Comparison {
        difference,
        low,
        high,
        verdict: Verdict::of_interval(low, high),
        seeds,
        pairs: diffs.len(),
    })
}

/// Each baseline with the best front design's comparison against it.
pub type AgainstBaselines<'a> = Vec<(&'a Confirmed, Result<Comparison, BootstrapError>)>;

/// The best front design against every confirmed baseline (in ranking order), or `None` when no
/// searched design is confirmed.
pub fn verdicts(
    confirmed: &[Confirmed],
    resamples: usize,
    seed: u64,
) -> Option<(&Confirmed, AgainstBaselines<'_>)> {
    let best = best_front(confirmed)?;
    let against = confirmed
        .iter()
        .filter(|c| c.is_baseline())
        .map(|b| (b, paired_bootstrap(best, b, resamples, seed)))
        .collect();
    Some((best, against))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed_run(seed: u64, correct: &str) -> SeedRun {
        let n = correct.len().max(1) as f64;
        SeedRun {
            trial: seed as usize,
            seed,
            state: TrialState::Complete,
            dev: Some(0.5),
            test: Some(correct.chars().filter(|&c| c == '1').count() as f64 / n),
            correct: Some(correct.into()),
        }
    }

    fn design(name: &str, kind: TrialKind, runs: Vec<SeedRun>) -> Confirmed {
        Confirmed {
            name: name.into(),
            parent: 0,
            kind,
            params: Some(10),
            percent: Some(0.1),
            runs,
        }
    }

    #[test]
    fn differences_one_and_zero_tie_with_the_hand_computed_interval() {
        // Differences {1, 0}: a resample of 2 has mean 0, 0.5, 1 with probability 1/4, 1/2, 1/4,
        // so the 2.5% quantile (rank 250 of 10,000) is 0 and the 97.5% (rank 9,750) is 1.
        let a = design("a", TrialKind::Search, vec![seed_run(7, "11")]);
        let b = design("b", TrialKind::Baseline, vec![seed_run(7, "01")]);
        let c = paired_bootstrap(&a, &b, RESAMPLES, 1).unwrap();
        assert_eq!(c.pairs, 2);
        assert_eq!(c.difference, 0.5);
        assert_eq!((c.low, c.high), (0.0, 1.0));
        assert_eq!(c.verdict, Verdict::Ties);
    }

    #[test]
    fn all_positive_differences_beat_with_a_point_interval() {
        let a = design(
            "a",
            TrialKind::Search,
            vec![seed_run(7, "111"), seed_run(8, "11")],
        );
        let b = design(
            "b",
            TrialKind::Baseline,
            vec![seed_run(7, "000"), seed_run(8, "00")],
        );
        let c = paired_bootstrap(&a, &b, RESAMPLES, 3).unwrap();
        assert_eq!((c.difference, c.low, c.high), (1.0, 1.0, 1.0));
        assert_eq!(c.verdict, Verdict::Beats);
        assert_eq!((c.seeds.clone(), c.pairs), (vec![7, 8], 5));
        let back = paired_bootstrap(&b, &a, RESAMPLES, 3).unwrap();
        assert_eq!(
            (back.low, back.high, back.verdict),
            (-1.0, -1.0, Verdict::Loses)
        );
    }

    #[test]
    fn mismatched_or_missing_tests_are_errors_not_panics() {
        let a = design("a", TrialKind::Search, vec![seed_run(7, "101")]);
        let b = design("b", TrialKind::Baseline, vec![seed_run(7, "10")]);
        assert_eq!(
            paired_bootstrap(&a, &b, 100, 0),
            Err(BootstrapError::LengthMismatch {
                seed: 7,
                a: 3,
                b: 2
            })
        );
        let mut none = seed_run(7, "");
        none.correct = None;
        let c = design("c", TrialKind::Baseline, vec![none]);
        assert_eq!(
            paired_bootstrap(&a, &c, 100, 0),
            Err(BootstrapError::NoCommonSeed)
        );
        let other = design("d", TrialKind::Baseline, vec![seed_run(9, "101")]);
        assert_eq!(
            paired_bootstrap(&a, &other, 100, 0),
            Err(BootstrapError::NoCommonSeed)
        );
        let bad = design("e", TrialKind::Baseline, vec![seed_run(7, "1x1")]);
        assert!(matches!(
            paired_bootstrap(&a, &bad, 100, 0),
            Err(BootstrapError::BadChar { found: 'x', .. })
        ));
        let empty = design("f", TrialKind::Search, vec![seed_run(7, "")]);
        assert_eq!(
            paired_bootstrap(&empty, &empty, 100, 0),
            Err(BootstrapError::Empty)
        );
    }

    #[test]
    fn the_bootstrap_is_reproducible_from_its_seed() {
        let a = design("a", TrialKind::Search, vec![seed_run(1, "1101011101")]);
        let b = design("b", TrialKind::Baseline, vec![seed_run(1, "1011010100")]);
        assert_eq!(
            paired_bootstrap(&a, &b, 500, 42),
            paired_bootstrap(&a, &b, 500, 42)
        );
    }

    #[test]
    fn nearest_rank_quantiles() {
        let xs: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(nearest_rank(&xs, 0.025), Some(1.0));
        assert_eq!(nearest_rank(&xs, 0.975), Some(10.0));
        assert_eq!(nearest_rank(&xs, 0.5), Some(5.0));
        assert_eq!(nearest_rank(&[], 0.5), None);
    }

    #[test]
    fn mean_and_sample_sd() {
        assert_eq!(mean(&[]), None);
        assert_eq!(sample_sd(&[0.8]), None);
        let sd = sample_sd(&[0.8, 0.82, 0.84]).unwrap();
        assert!((sd - 0.02).abs() < 1e-12, "{sd}");
    }
}
