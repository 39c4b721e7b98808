//! Multi-fidelity for a two-objective search: successive halving with promotion by Pareto rank.
//!
//! The rule: rung 0 trains `initial` candidates for `full_steps / eta^(R-1)` optimizer steps (a
//! complete short run: warm-up and decay over those steps). After a rung, its completed trials
//! are ordered by NSGA-II's criteria — non-dominated front first, then larger crowding
//! distance, then higher accuracy, then fewer parameters — and the first `ceil(n / eta)` are
//! retrained from scratch at `eta` times the steps. The last rung trains at full fidelity, and
//! only full-fidelity trials enter the reported front. Promoting by front rank rather than by
//! accuracy alone keeps cheap designs alive: a small design that is only slightly worse is on
//! the front and survives, where single-objective halving would drop it.
//!
//! The cheaper rungs may instead be placed by hand (`--rung-at 100,30%`), each in optimizer steps
//! or as a share of the training data: `30%` trains for 30% of one pass over the training split
//! (its batches are the first of the run's shuffled pass, so a random 30% of the sentences), which
//! is the resource halving is usually described in. Full fidelity stays the last rung, and when
//! (not where) a rung promotes is `promotion`'s.

use super::pareto::{crowding_distance, non_dominated_sort, Point};
use super::SearchError;
use std::fmt;
use std::str::FromStr;

/// One fidelity level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rung {
    pub steps: usize,
    /// Candidates this rung trains.
    pub candidates: usize,
}

/// Rungs from cheapest to full fidelity.
pub fn schedule(full_steps: usize, initial: usize, eta: usize, rungs: usize) -> Vec<Rung> {
    let eta = eta.max(2);
    let rungs = rungs.max(1);
    let mut out = Vec::with_capacity(rungs);
    let mut candidates = initial.max(1);
    for r in 0..rungs {
        // Saturates rather than overflows: such a rung trains one step (`SearchSettings::check`
        // refuses those settings before a study starts).
        let divisor = eta
            .checked_pow((rungs - 1 - r) as u32)
            .unwrap_or(usize::MAX);
        out.push(Rung {
            steps: (full_steps / divisor).max(1),
            candidates,
        });
        candidates = candidates.div_ceil(eta);
    }
    out
}

/// Where a cheaper rung stops (`--rung-at`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RungAt {
    /// Optimizer steps.
    Steps(usize),
    /// Percent of one pass over the training split.
    Data(f64),
}

impl RungAt {
    /// Optimizer steps of the rung, with `steps_per_epoch` batches in one pass (at least one).
    pub fn steps(&self, steps_per_epoch: usize) -> usize {
        match *self {
            RungAt::Steps(n) => n,
            RungAt::Data(percent) => (percent / 100.0 * steps_per_epoch as f64).ceil() as usize,
        }
        .max(1)
    }
}

impl FromStr for RungAt {
    type Err = SearchError;

    fn from_str(text: &str) -> Result<RungAt, SearchError> {
        let bad = || SearchError::Setting {
            setting: "rung_at",
            value: text.to_string(),
            expected: "expected optimizer steps (120) or a share of the training data (25%)".into(),
        };
        let text = text.trim();
        match text.strip_suffix('%') {
            Some(percent) => match percent.trim().parse::<f64>() {
                Ok(p) if p > 0.0 && p <= 10_000.0 => Ok(RungAt::Data(p)),
                _ => Err(bad()),
            },
            None => match text.parse::<usize>() {
                Ok(n) if n > 0 => Ok(RungAt::Steps(n)),
                _ => Err(bad()),
            },
        }
    }
}

impl fmt::Display for RungAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RungAt::Steps(n) => write!(f, "{n}"),
            RungAt::Data(percent) => write!(f, "{percent}%"),
        }
    }
}

/// Rungs at `at` (cheapest first), then full fidelity; refuses rungs that do not train strictly
/// fewer steps than the next one.
pub fn schedule_at(
    full_steps: usize,
    steps_per_epoch: usize,
    initial: usize,
    eta: usize,
    at: &[RungAt],
) -> Result<Vec<Rung>, SearchError> {
    let mut steps: Vec<usize> = at.iter().map(|r| r.steps(steps_per_epoch)).collect();
    steps.push(full_steps);
    for (i, pair) in steps.windows(2).enumerate() {
        if pair[0] >= pair[1] {
            let next = if i + 1 == at.len() {
                format!("full fidelity's {} steps", pair[1])
            } else {
                format!("the {} steps of {}", pair[1], at[i + 1])
            };
            return Err(SearchError::Setting {
                setting: "rung_at",
                value: at.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(","),
                expected: format!(
                    "{} trains {} steps, not fewer than {next}; list the cheaper rungs, cheapest first",
                    at[i], pair[0]
                ),
            });
        }
    }
    let eta = eta.max(2);
    let mut candidates = initial.max(1);
    Ok(steps
        .into_iter()
        .map(|steps| {
            let rung = Rung { steps, candidates };
            candidates = candidates.div_ceil(eta);
            rung
        })
        .collect())
}

/// Indices of `points` in promotion order (best first).
pub fn promotion_order(points: &[Point]) -> Vec<usize> {
    let mut keyed: Vec<(usize, usize, f64)> = Vec::with_capacity(points.len());
    for (rank, front) in non_dominated_sort(points).iter().enumerate() {
        for (i, d) in front.iter().zip(crowding_distance(points, front)) {
            keyed.push((*i, rank, d));
        }
    }
    keyed.sort_by(|a, b| {
        a.1.cmp(&b.1)
            .then(b.2.total_cmp(&a.2))
            .then(points[b.0].accuracy.total_cmp(&points[a.0].accuracy))
            .then(points[a.0].params.total_cmp(&points[b.0].params))
            .then(a.0.cmp(&b.0))
    });
    keyed.into_iter().map(|k| k.0).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_divide_steps_and_candidates_by_eta() {
        let cases = [
            ((720, 12, 3, 3), vec![(80, 12), (240, 4), (720, 2)]),
            ((480, 9, 3, 2), vec![(160, 9), (480, 3)]),
            ((100, 5, 2, 1), vec![(100, 5)]),
        ];
        for ((full, initial, eta, rungs), expected) in cases {
            let got: Vec<(usize, usize)> = schedule(full, initial, eta, rungs)
                .iter()
                .map(|r| (r.steps, r.candidates))
                .collect();
            assert_eq!(got, expected);
        }
    }

    #[test]
    fn rungs_beyond_the_word_size_saturate_instead_of_dividing_by_zero() {
        // `--eta 2 --rungs 65` once divided by zero (2^64 wrapped to 0).
        let steps: Vec<usize> = schedule(30, 1, 2, 65).iter().map(|r| r.steps).collect();
        assert_eq!(steps.len(), 65);
        assert_eq!(steps[..61], [1; 61]);
        assert_eq!(steps[61..], [3, 7, 15, 30]);
    }

    #[test]
    fn rungs_placed_in_steps_or_shares_of_the_training_data() {
        let at: Vec<RungAt> = ["25%", "100", "1.5%"]
            .iter()
            .map(|t| t.parse().unwrap())
            .collect();
        assert_eq!(
            at,
            [RungAt::Data(25.0), RungAt::Steps(100), RungAt::Data(1.5)]
        );
        // 214 batches a pass: 25% is 54 steps (rounded up), 1.5% is 4.
        assert_eq!(at[0].steps(214), 54);
        assert_eq!(at[2].steps(214), 4);
        assert_eq!(at[0].to_string(), "25%");
        let rungs = schedule_at(428, 214, 12, 2, &at[..2]).unwrap();
        let got: Vec<(usize, usize)> = rungs.iter().map(|r| (r.steps, r.candidates)).collect();
        assert_eq!(got, [(54, 12), (100, 6), (428, 3)]);
        // Out of order, or not below full fidelity: refused, naming the setting and the rung.
        let err = schedule_at(428, 214, 12, 2, &at).unwrap_err().to_string();
        assert!(
            err.starts_with("rung_at 25%,100,1.5%: 100 trains 100 steps"),
            "{err}"
        );
        let err = schedule_at(50, 214, 12, 2, &at[..1])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("not fewer than full fidelity's 50 steps"),
            "{err}"
        );
        for text in ["0", "-3", "0%", "x%", "", "2.5"] {
            let err = text.parse::<RungAt>().unwrap_err().to_string();
            assert!(err.starts_with("rung_at"), "{text}: {err}");
        }
    }

    #[test]
    fn promotes_the_front_before_dominated_points() {
        let p = |accuracy, params| Point { accuracy, params };
        // Front: 0 (0.80, 100), 2 (0.70, 10), 3 (0.75, 50); dominated: 1 (0.60, 200), 4 (0.74, 60).
        let points = [
            p(0.80, 100.0),
            p(0.60, 200.0),
            p(0.70, 10.0),
            p(0.75, 50.0),
            p(0.74, 60.0),
        ];
        let order = promotion_order(&points);
        // Extremes of the front have infinite crowding: the more accurate first, then the cheapest.
        assert_eq!(order, vec![0, 2, 3, 4, 1]);
    }
}
