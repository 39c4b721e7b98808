//! How a study's search trials form generations, each one bracket of successive halving.
//!
//! Generation 0 holds `--initial` designs, every later one `--population` (NSGA-II's offspring);
//! a generation of `n` designs trains them at rung 0, then promotes `ceil(n / eta)` of them to
//! rung 1, `ceil(ceil(n / eta) / eta)` to rung 2, and so on up to full fidelity: its *bracket*.
//! Under `--trials N` the generations are laid out until the trials run out, the last one
//! shrunk to the largest size whose bracket still fits, so every generation reaches full
//! fidelity and the budget is not overrun. Membership follows from the stored trials alone:
//! rung-0 trials fill the generations in trial-number order; a promotion belongs to its parent's.
//! Under `--promotion async` the brackets keep these sizes as caps on each rung, but a rung
//! promotes before the one below has filled and generations overlap (`promotion`).

use super::store::TrialRow;
use std::collections::HashMap;

/// The generation sizes and bracket shape of a study.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Size of generation 0 (`--initial`).
    pub initial: usize,
    /// Size of every later generation (`--population`).
    pub population: usize,
    /// The successive-halving factor.
    pub eta: usize,
    /// Fidelity levels, the last being full fidelity.
    pub rungs: usize,
    /// Search trials the generations may use in all; `None` for no limit.
    pub trials: Option<usize>,
}

impl Layout {
    /// Candidates of each rung, cheapest first, in a generation of `size` designs.
    fn rung_sizes(&self, size: usize) -> impl Iterator<Item = usize> {
        let eta = self.eta.max(2);
        std::iter::successors(Some(size), move |n| Some(n.div_ceil(eta))).take(self.rungs.max(1))
    }

    /// Candidates each rung trains in a generation of `size` designs.
    pub fn bracket(&self, size: usize) -> Vec<usize> {
        self.rung_sizes(size).collect()
    }

    /// Trials a generation of `size` designs uses, promotions included.
    pub fn cost(&self, size: usize) -> usize {
        self.rung_sizes(size).sum()
    }

    /// The sizes of the generations in order, as many as the trial budget holds (endless
    /// without a trial limit).
    pub fn sizes(&self) -> impl Iterator<Item = usize> + '_ {
        let mut used = 0;
        (0..).map_while(move |k| {
            let wanted = if k == 0 {
                self.initial
            } else {
                self.population
            }
            .max(1);
            let size = match self.trials {
                None => wanted,
                Some(n) => {
                    let left = n.saturating_sub(used);
                    (1..=wanted).rev().find(|&s| self.cost(s) <= left)?
                }
            };
            used += self.cost(size);
            Some(size)
        })
    }

    /// The size of generation `g`; `None` when the trial budget holds no generation `g`.
    pub fn size(&self, g: usize) -> Option<usize> {
        self.sizes().nth(g)
    }

    /// Generations the trial budget holds (`None` without a trial limit).
    pub fn generations(&self) -> Option<usize> {
        self.trials?;
        Some(self.sizes().count())
    }

    /// The generation of every search trial in `search` (search trials only), by number.
    pub fn membership(&self, search: &[&TrialRow]) -> HashMap<usize, usize> {
        let mut rung0: Vec<&TrialRow> = search.iter().copied().filter(|t| t.rung == 0).collect();
        rung0.sort_by_key(|t| t.number);
        let mut of = HashMap::new();
        let mut sizes = self.sizes();
        let (mut g, mut size, mut filled) = (0, sizes.next().unwrap_or(0), 0);
        for t in rung0 {
            // Trials beyond the layout (a study of an older pets) join the last generation.
            if filled >= size {
                if let Some(next) = sizes.next() {
                    (g, size, filled) = (g + 1, next, 0);
                }
            }
            of.insert(t.number, g);
            filled += 1;
        }
        let parents: HashMap<usize, Option<usize>> =
            search.iter().map(|t| (t.number, t.parent)).collect();
        for t in search.iter().filter(|t| t.rung > 0) {
            // Walk up to the rung-0 ancestor; a broken chain (corrupt parent) stays unassigned.
            let mut at = t.parent;
            for _ in 0..self.rungs.max(1) {
                match at {
                    Some(p) if of.contains_key(&p) => {
                        of.insert(t.number, of[&p]);
                        break;
                    }
                    Some(p) => at = parents.get(&p).copied().flatten(),
                    None => break,
                }
            }
        }
        of
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(trials: Option<usize>) -> Layout {
        Layout {
            initial: 12,
            population: 6,
            eta: 3,
            rungs: 2,
            trials,
        }
    }

    #[test]
    fn brackets_halve_by_eta_up_to_full_fidelity() {
        let l = layout(None);
        assert_eq!(l.bracket(12), [12, 4]);
        assert_eq!(l.bracket(6), [6, 2]);
        assert_eq!(l.bracket(1), [1, 1]);
        let three = Layout { rungs: 3, ..l };
        assert_eq!(three.bracket(12), [12, 4, 2]);
        assert_eq!(three.cost(12), 18);
    }

    #[test]
    fn the_default_budget_holds_thirty_candidates() {
        // The README's main job: eta 2, 12 + 6, then 6 + 3 three times = 45 trials.
        let l = Layout {
            eta: 2,
            trials: Some(crate::search::limits::DEFAULT_TRIALS),
            ..layout(None)
        };
        let sizes: Vec<usize> = (0..6).map_while(|g| l.size(g)).collect();
        assert_eq!(sizes, [12, 6, 6, 6]);
        assert_eq!(sizes.iter().sum::<usize>(), 30);
    }

    #[test]
    fn the_trial_budget_lays_out_generations_and_shrinks_the_last() {
        // eta 3: 12 + 4, then 6 + 2 three times = 40 trials.
        let l = layout(Some(40));
        let sizes: Vec<usize> = (0..5).map_while(|g| l.size(g)).collect();
        assert_eq!(sizes, [12, 6, 6, 6]);
        assert_eq!(l.generations(), Some(4));
        // 45 trials: 16 + 8 + 8 + 8 leaves 5, which holds a generation of 3 (3 + 1 = 4).
        let l = layout(Some(45));
        let sizes: Vec<usize> = (0..6).map_while(|g| l.size(g)).collect();
        assert_eq!(sizes, [12, 6, 6, 6, 3]);
        let used: usize = sizes.iter().map(|&s| l.cost(s)).sum();
        assert_eq!(used, 44);
        // Fewer trials than one bracket: the first generation shrinks.
        assert_eq!(layout(Some(5)).size(0), Some(3));
        assert_eq!(layout(Some(1)).size(0), None);
        assert_eq!(layout(None).size(1000), Some(6));
        assert_eq!(layout(None).generations(), None);
    }
}
