//! The widths a module option can take on one backbone: a log range or a list, cut to the hidden
//! size and (per-head bottlenecks) to multiples of the head count; sampling, snapping, nudging.

use super::space::WidthChoice;
use rand::Rng;

/// The widths one option can take on one site set of one backbone.
#[derive(Debug, Clone, PartialEq)]
pub enum WidthDomain {
    /// Multiples of `step` in `lo..=hi` (both multiples), drawn log-uniformly.
    Range { lo: usize, hi: usize, step: usize },
    /// These widths, ascending, drawn uniformly.
    List(Vec<usize>),
}

/// One log step of a width nudge: √2, so two steps double or halve it.
const LOG_STEP: f64 = std::f64::consts::SQRT_2;

impl WidthDomain {
    /// The choice cut to widths ≤ `cap` that are multiples of `step`; `None` when none remains.
    /// A fixed-size method's domain is the single width 1, which its form ignores.
    pub fn new(choice: &WidthChoice, cap: usize, step: usize) -> Option<WidthDomain> {
        match choice {
            WidthChoice::Fixed => Some(WidthDomain::List(vec![1])),
            WidthChoice::LogRange(min, max) => {
                let lo = min.div_ceil(step).max(1) * step;
                let hi = (*max).min(cap) / step * step;
                (lo <= hi).then_some(WidthDomain::Range { lo, hi, step })
            }
            WidthChoice::List(values) => {
                let mut v: Vec<usize> = values
                    .iter()
                    .copied()
                    .filter(|w| *w >= 1 && *w <= cap && w.is_multiple_of(step))
                    .collect();
                v.sort_unstable();
                v.dedup();
                (!v.is_empty()).then_some(WidthDomain::List(v))
            }
        }
    }

    pub fn min(&self) -> usize {
        match self {
            WidthDomain::Range { lo, .. } => *lo,
            WidthDomain::List(v) => v[0],
        }
    }

    pub fn max(&self) -> usize {
        match self {
            WidthDomain::Range { hi, .. } => *hi,
            WidthDomain::List(v) => v[v.len() - 1],
        }
    }

    /// A width drawn log-uniformly over the range (each integer multiple `k·step` with probability
    /// ∝ ln((k+1)/k)), or uniformly over the list.
    pub fn sample(&self, rng: &mut impl Rng) -> usize {
        match self {
            WidthDomain::Range { lo, hi, step } => {
                let (a, b) = ((lo / step) as f64, (hi / step + 1) as f64);
                let k = rng.random_range(a.ln()..b.ln()).exp().floor() as usize;
                k.clamp(lo / step, hi / step) * step
            }
            WidthDomain::List(v) => v[rng.random_range(0..v.len())],
        }
    }

    /// The domain width nearest to `w` (in ratio, for lists).
    pub fn snap(&self, w: usize) -> usize {
        match self {
            WidthDomain::Range { lo, hi, step } => {
                ((w.clamp(*lo, *hi) + step / 2) / step * step).clamp(*lo, *hi)
            }
            WidthDomain::List(v) => {
                let ratio = |x: usize| (x as f64 / w.max(1) as f64).ln().abs();
                let mut best = v[0];
                for &x in v {
                    if ratio(x) < ratio(best) {
                        best = x;
                    }
                }
                best
            }
        }
    }

    /// `w` moved one log step up or down, and at least to the neighbouring domain value; `w`
    /// itself at the domain's edge.
    pub fn nudge(&self, w: usize, up: bool) -> usize {
        let target = if up {
            (w as f64 * LOG_STEP).round() as usize
        } else {
            (w as f64 / LOG_STEP).round() as usize
        };
        let snapped = self.snap(target);
        if snapped != w {
            return snapped;
        }
        match self {
            WidthDomain::Range { lo, hi, step } if up => (w + step).min(*hi).max(*lo),
            WidthDomain::Range { lo, step, .. } => w.saturating_sub(*step).max(*lo),
            WidthDomain::List(v) => {
                let i = v.iter().position(|x| *x == w).unwrap_or(0);
                let j = if up {
                    (i + 1).min(v.len() - 1)
                } else {
                    i.saturating_sub(1)
                };
                v[j]
            }
        }
    }

    /// The next smaller width for shrinking into a budget: the largest domain value at most
    /// `w/√2`, else the minimum; `None` once `w` is the minimum.
    pub fn below(&self, w: usize) -> Option<usize> {
        let target = (w as f64 / LOG_STEP).floor() as usize;
        let v = match self {
            WidthDomain::Range { lo, step, .. } => (target / step * step).max(*lo),
            WidthDomain::List(v) => v.iter().copied().rfind(|x| *x <= target).unwrap_or(v[0]),
        };
        (v < w).then_some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn log_range_samples_stay_in_bounds_and_favour_small_octaves() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let d = WidthDomain::new(&WidthChoice::LogRange(1, 512), 384, 1).unwrap();
        assert_eq!((d.min(), d.max()), (1, 384));
        let draws: Vec<usize> = (0..4000).map(|_| d.sample(&mut rng)).collect();
        assert!(draws.iter().all(|w| (1..=384).contains(w)));
        assert!(draws.contains(&1) && draws.contains(&384));
        // log-uniform: 1..=19 (ln 20 of ln 385) holds about half the mass, not 5%.
        let low = draws.iter().filter(|w| **w < 20).count() as f64 / 4000.0;
        assert!((0.45..0.56).contains(&low), "{low}");
    }

    #[test]
    fn per_head_domains_hold_multiples_of_the_head_count() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let d = WidthDomain::new(&WidthChoice::LogRange(1, 512), 384, 12).unwrap();
        assert_eq!((d.min(), d.max()), (12, 384));
        for _ in 0..500 {
            let w = d.sample(&mut rng);
            assert!(w.is_multiple_of(12) && (12..=384).contains(&w), "{w}");
        }
        assert_eq!(d.snap(50), 48);
        assert_eq!(d.snap(1000), 384);
        assert_eq!(d.snap(1), 12);
        // No multiple of 12 fits under a cap of 8.
        assert_eq!(
            WidthDomain::new(&WidthChoice::LogRange(1, 512), 8, 12),
            None
        );
        let l = WidthDomain::new(&WidthChoice::List(vec![512, 8, 24, 30]), 384, 12).unwrap();
        assert_eq!(l, WidthDomain::List(vec![24]));
    }

    #[test]
    fn nudges_and_shrinks_move_by_log_steps() {
        let d = WidthDomain::new(&WidthChoice::LogRange(1, 512), 384, 1).unwrap();
        assert_eq!(d.nudge(16, true), 23);
        assert_eq!(d.nudge(16, false), 11);
        assert_eq!(d.nudge(1, true), 2);
        assert_eq!(d.nudge(384, true), 384);
        assert_eq!(d.below(16), Some(11));
        assert_eq!(d.below(2), Some(1));
        assert_eq!(d.below(1), None);
        let l = WidthDomain::List(vec![4, 8, 64]);
        assert_eq!(l.nudge(8, true), 64);
        assert_eq!(l.nudge(8, false), 4);
        assert_eq!(l.below(64), Some(8));
        assert_eq!(l.below(4), None);
    }
}
