//! Learning-rate choices of a module option: a list or a log range, laid out as an ascending grid
//! of rates that genes index, draws pick uniformly and mutation walks one step at a time.

use super::genome::{Fitted, Gene, Genome};
use serde::{Deserialize, Serialize};

/// Grid points per decade of a [`LrChoice::LogRange`]: 8 makes neighbours ≈ 1.33× apart, finer
/// than the noise of a short training run can tell apart, coarse enough that a nudge matters.
pub const STEPS_PER_DECADE: f64 = 8.0;

/// How close (relative) a design's rate must be to a grid point to count as that point: rates
/// round-trip through RON exactly, so this only absorbs rates written by hand to fewer digits.
const SAME_RATE: f64 = 1e-9;

/// The learning rates a module option may train with.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub enum LrChoice {
    /// No choice of its own: the space's top-level `learning_rate`, else the trainer's default
    /// (or `--lr`). What an option without `learning_rate` means.
    #[default]
    Inherit,
    /// Exactly these rates.
    List(Vec<f64>),
    /// Rates in `min..=max` drawn log-uniformly: the range cut into equal log steps
    /// ([`STEPS_PER_DECADE`] per decade, both ends included), each point equally likely.
    LogRange(f64, f64),
}

impl LrChoice {
    /// Whether the option leaves the rate to the space or the trainer (written as nothing).
    pub fn is_inherit(&self) -> bool {
        *self == LrChoice::Inherit
    }

    /// The rule every choice keeps: rates positive and finite, a list non-empty, `min ≤ max`.
    pub fn check(&self) -> Result<(), String> {
        let bad = |v: &f64| !(v.is_finite() && *v > 0.0);
        match self {
            LrChoice::Inherit => Ok(()),
            LrChoice::List(v) if v.is_empty() => Err("lists no choice".into()),
            LrChoice::List(v) => match v.iter().find(|x| bad(x)) {
                Some(x) => Err(format!("{x} must be positive and finite")),
                None => Ok(()),
            },
            LrChoice::LogRange(lo, hi) if bad(lo) || bad(hi) || lo > hi => Err(format!(
                "LogRange({lo:e}, {hi:e}) needs positive, finite min ≤ max"
            )),
            LrChoice::LogRange(..) => Ok(()),
        }
    }

    /// The rates, ascending and distinct; a range's ends are exactly `min` and `max`. Empty for
    /// `Inherit` and a range [`LrChoice::check`] refuses.
    pub fn grid(&self) -> Vec<f64> {
        match self {
            LrChoice::Inherit => Vec::new(),
            LrChoice::List(v) => {
                let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
                v.sort_by(f64::total_cmp);
                v.dedup();
                v
            }
            LrChoice::LogRange(..) if self.check().is_err() => Vec::new(),
            LrChoice::LogRange(lo, hi) => {
                let decades = (hi / lo).log10();
                // At least one step unless the ends coincide; `ceil` so no step is coarser.
                let steps = (decades * STEPS_PER_DECADE - 1e-9).ceil().max(0.0) as usize;
                if steps == 0 {
                    return vec![*lo];
                }
                let mut grid: Vec<f64> = (0..steps)
                    .map(|k| lo * (hi / lo).powf(k as f64 / steps as f64))
                    .collect();
                grid.push(*hi);
                grid
            }
        }
    }
}

/// The index of the grid point nearest `lr` in log distance (the first of ties); 0 for an empty
/// grid.
pub fn nearest(grid: &[f64], lr: f64) -> usize {
    let distance = |x: f64| (x.ln() - lr.ln()).abs();
    (0..grid.len())
        .min_by(|a, b| distance(grid[*a]).total_cmp(&distance(grid[*b])))
        .unwrap_or(0)
}

/// Whether `lr` is (up to rounding) the grid point `at`.
pub fn is_point(grid: &[f64], at: usize, lr: f64) -> bool {
    grid.get(at)
        .is_some_and(|x| (x - lr).abs() <= SAME_RATE * x.abs())
}

impl Fitted<'_> {
    /// The slot whose gene decides a genome's rate: the first (in slot order) holding a gene of
    /// an option with a rate choice. One rule for one rate per design, so the rate stays with the
    /// module that chose it while later slots come and go; `None` leaves it to the space's
    /// top-level `learning_rate`.
    pub fn rate_slot(&self, g: &Genome) -> Option<usize> {
        (0..g.slots.len()).find(|&s| {
            g.slots[s]
                .as_ref()
                .is_some_and(|gene| !self.options[s][gene.option].rates.is_empty())
        })
    }

    /// The learning rate a genome's design trains with (see [`Fitted::rate_slot`]); `None` when
    /// the space chooses none, so the trainer's default or `--lr` applies.
    pub fn rate(&self, g: &Genome) -> Option<f64> {
        match self.rate_slot(g) {
            Some(s) => {
                let gene = g.slots[s].as_ref()?;
                let rates = &self.options[s][gene.option].rates;
                rates.get(gene.learning_rate.min(rates.len() - 1)).copied()
            }
            None => self.space.learning_rate.get(g.learning_rate).copied(),
        }
    }

    /// Of the genes of a slot's options that build its modules (two options may build the same
    /// ones, α = 2·r against α = 16 at r = 8, with other rate choices), the one to encode: while
    /// no earlier slot (`before`) decides the rate, the first whose rates hold `lr`; else the first.
    pub(super) fn rate_preferred(
        &self,
        before: &[Option<Gene>],
        genes: Vec<Gene>,
        lr: Option<f64>,
    ) -> Option<Gene> {
        let decided = before.iter().enumerate().any(|(s, g)| {
            g.as_ref()
                .is_some_and(|g| !self.options[s][g.option].rates.is_empty())
        });
        let slot = before.len();
        let holds = |g: &&Gene| {
            let rates = &self.options[slot][g.option].rates;
            decided || rates.is_empty() || lr.is_some_and(|lr| is_point(rates, g.learning_rate, lr))
        };
        genes.iter().find(holds).or(genes.first()).cloned()
    }

    /// The genome's index into the space's top-level `learning_rate` for a design's rate `lr`
    /// (0 where a module's gene decides it), or `None` when the genome cannot carry `lr`.
    pub(super) fn encode_rate(&self, g: &Genome, lr: Option<f64>) -> Option<usize> {
        match (self.rate_slot(g), lr) {
            // The module's own gene holds the rate (matched there); the space's choice is inert.
            (Some(s), lr) => {
                let gene = g.slots[s].as_ref()?;
                let rates = &self.options[s][gene.option].rates;
                is_point(rates, gene.learning_rate, lr?).then_some(0)
            }
            (None, None) if self.space.learning_rate.is_empty() => Some(0),
            (None, None) => None,
            (None, Some(lr)) => self.space.learning_rate.iter().position(|x| *x == lr),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_range_is_evenly_spaced_in_log_with_exact_ends() {
        let grid = LrChoice::LogRange(1e-4, 3e-3).grid();
        assert_eq!((grid[0], grid[grid.len() - 1]), (1e-4, 3e-3));
        // log10(30) · 8 = 11.8 → 12 steps.
        assert_eq!(grid.len(), 13);
        let ratios: Vec<f64> = grid.windows(2).map(|w| w[1] / w[0]).collect();
        for r in &ratios {
            assert!(
                (r - ratios[0]).abs() < 1e-9 && *r > 1.3 && *r < 1.34,
                "{ratios:?}"
            );
        }
        assert_eq!(LrChoice::LogRange(5e-4, 5e-4).grid(), vec![5e-4]);
        assert_eq!(LrChoice::LogRange(1e-3, 1e-2).grid().len(), 9);
    }

    #[test]
    fn a_list_is_sorted_and_deduplicated() {
        let grid = LrChoice::List(vec![1e-3, 1e-4, 1e-3]).grid();
        assert_eq!(grid, vec![1e-4, 1e-3]);
    }

    #[test]
    fn nearest_is_by_log_distance_and_points_match_exactly() {
        let grid = [1e-4, 1e-3, 1e-2];
        assert_eq!(nearest(&grid, 2e-4), 0);
        assert_eq!(nearest(&grid, 4e-4), 1);
        assert_eq!(nearest(&grid, 1.0), 2);
        assert_eq!(nearest(&[], 1.0), 0);
        assert!(is_point(&grid, 1, 1e-3));
        assert!(!is_point(&grid, 1, 1.1e-3));
        assert!(!is_point(&grid, 3, 1e-3));
    }

    #[test]
    fn bad_choices_are_refused() {
        for bad in [
            LrChoice::List(vec![]),
            LrChoice::List(vec![1e-3, 0.0]),
            LrChoice::List(vec![f64::NAN]),
            LrChoice::LogRange(0.0, 1e-3),
            LrChoice::LogRange(-1e-4, 1e-3),
            LrChoice::LogRange(1e-3, 1e-4),
            LrChoice::LogRange(1e-4, f64::INFINITY),
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
            assert!(
                bad.grid().is_empty() || matches!(bad, LrChoice::List(_)),
                "{bad:?}"
            );
        }
        assert!(LrChoice::LogRange(1e-4, 1e-4).check().is_ok());
        assert!(LrChoice::Inherit.check().is_ok() && LrChoice::Inherit.grid().is_empty());
    }
}
