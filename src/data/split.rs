//! The seeded, stratified train/dev split: [`SplitOptions`] and [`stratified_split`].

use super::{DataError, Example};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::collections::BTreeMap;

/// How the dev split is carved out of a task's examples.
///
/// The split rule, identical for every task:
/// 1. Group the examples by label, keeping file order, and visit the classes in label order.
/// 2. One `StdRng::seed_from_u64(seed)` (rand 0.9) shuffles each class in turn. The first
///    `k = round(n_class * dev_fraction)` examples of a class go to dev, the rest to train; the
///    rounding is half to even (as Python's `round`). `k` never takes a class's last example,
///    and takes at least one from a class of two or more when `dev_fraction > 0`.
/// 3. The same generator then shuffles the train split, then the dev split.
///
/// With the defaults (`dev_fraction` 0.1, seed 0), `mr` (4,265 + 4,265 sentences) gives
/// 7,678 train / 852 dev sentences.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SplitOptions {
    pub dev_fraction: f64,
    pub seed: u64,
}

impl Default for SplitOptions {
    fn default() -> Self {
        SplitOptions {
            dev_fraction: 0.1,
            seed: 0,
        }
    }
}

/// Splits `examples` into (train, dev) by the rule documented on [`SplitOptions`].
pub fn stratified_split(
    examples: Vec<Example>,
    options: &SplitOptions,
) -> Result<(Vec<Example>, Vec<Example>), DataError> {
    let f = options.dev_fraction;
    if !(0.0..1.0).contains(&f) {
        return Err(DataError::BadSplit {
            reason: format!("dev_fraction must be in [0, 1), got {f}"),
        });
    }
    let mut classes: BTreeMap<u32, Vec<Example>> = BTreeMap::new();
    for ex in examples {
        classes.entry(ex.label).or_default().push(ex);
    }
    let mut rng = StdRng::seed_from_u64(options.seed);
    let (mut train, mut dev) = (Vec::new(), Vec::new());
    for (_, mut class) in classes {
        class.shuffle(&mut rng);
        let n = class.len();
        // Train keeps at least one example of every class; dev gets one of every class it can.
        let mut k = ((n as f64 * f).round_ties_even() as usize).min(n.saturating_sub(1));
        if f > 0.0 && n >= 2 {
            k = k.max(1);
        }
        let rest = class.split_off(k);
        dev.extend(class);
        train.extend(rest);
    }
    train.shuffle(&mut rng);
    dev.shuffle(&mut rng);
    Ok((train, dev))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `counts[c]` examples of class `c`, texts numbered so every example is distinct.
    fn examples(counts: &[usize]) -> Vec<Example> {
        let per_class = counts
            .iter()
            .enumerate()
            .flat_map(|(c, &n)| (0..n).map(move |i| (c, i)));
        per_class
            .map(|(c, i)| Example {
                text: format!("{c}-{i}"),
                label: c as u32,
            })
            .collect()
    }

    pub(crate) fn per_class(split: &[Example], classes: usize) -> Vec<usize> {
        let mut counts = vec![0; classes];
        split.iter().for_each(|e| counts[e.label as usize] += 1);
        counts
    }

    #[test]
    fn split_sizes_follow_the_documented_rule() -> Result<(), DataError> {
        // (examples per class, dev fraction, expected dev examples per class)
        let cases: &[(&[usize], f64, &[usize])] = &[
            (&[4265, 4265], 0.1, &[426, 426]), // mr: 7,678 / 852 (426.5 rounds to even)
            (&[12500, 12500], 0.1, &[1250, 1250]),
            (&[15, 25, 35], 0.1, &[2, 2, 4]), // 1.5 → 2, 2.5 → 2, 3.5 → 4
            (&[5, 5], 0.1, &[1, 1]),          // 0.5 → 0, raised to one per class
            (&[2, 1], 0.9, &[1, 0]),          // 1.8 → 2, lowered to leave one for train
            (&[10, 10], 0.0, &[0, 0]),
        ];
        for &(counts, dev_fraction, want) in cases {
            let options = SplitOptions {
                dev_fraction,
                seed: 0,
            };
            let (train, dev) = stratified_split(examples(counts), &options)?;
            assert_eq!(
                per_class(&dev, counts.len()),
                want,
                "{counts:?} at {dev_fraction}"
            );
            let train_want: Vec<usize> = counts.iter().zip(want).map(|(n, d)| n - d).collect();
            assert_eq!(per_class(&train, counts.len()), train_want);
        }
        Ok(())
    }

    #[test]
    fn split_is_seeded_and_loses_nothing() -> Result<(), DataError> {
        let split = |seed| {
            stratified_split(
                examples(&[30, 20]),
                &SplitOptions {
                    dev_fraction: 0.2,
                    seed,
                },
            )
        };
        let (a, b, other) = (split(0)?, split(0)?, split(1)?);
        assert_eq!(a, b);
        assert_ne!(a.1, other.1);
        let mut all: Vec<Example> = a.0.iter().chain(&a.1).cloned().collect();
        all.sort_by(|x, y| x.text.cmp(&y.text));
        let mut want = examples(&[30, 20]);
        want.sort_by(|x, y| x.text.cmp(&y.text));
        assert_eq!(all, want);
        // The train order is shuffled, not grouped by class.
        assert!(a.0.windows(2).any(|w| w[0].label > w[1].label));
        for f in [-0.1, 1.0, f64::NAN] {
            let msg = stratified_split(
                vec![],
                &SplitOptions {
                    dev_fraction: f,
                    seed: 0,
                },
            )
            .err()
            .map(|e| e.to_string());
            assert_eq!(
                msg.unwrap_or_default(),
                format!("bad split options: dev_fraction must be in [0, 1), got {f}")
            );
        }
        Ok(())
    }
}
