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

use super::pareto::{crowding_distance, non_dominated_sort, Point};

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
