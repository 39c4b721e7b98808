//! The seeded, stratified train/dev split: [`SplitOptions`] and [`stratified_split`].

use super::{DataError, Example};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::collections::BTreeMap;

/// How the dev and test splits are carved out of a task's examples.
///
/// The split rule, identical for every task:
/// 1. Group the examples by label, keeping file order, and visit the classes in label order.
/// 2. One `StdRng::seed_from_u64(seed)` (rand 0.9) shuffles each class in turn. The first
///    `k = round(n_class * dev_fraction)` examples of a class go to dev, the rest stay; the
///    rounding is half to even (as Python's `round`). `k` never takes a class's last example,
///    and takes at least one from a class of two or more when `dev_fraction > 0`.
/// 3. The same generator then shuffles what stayed (all classes together), then the dev split.
///    Up to here the rule is the two-split rule of earlier versions, so dev is unchanged by the
///    test split: same examples, same order.
/// 4. The test split takes no further random numbers: walking the shuffled remainder in order,
///    the first `k = round(n_class * test_fraction)` examples of each class go to test (in the
///    order met), the others to train (in the order met). `n_class` is the class's size before
///    dev was taken; `k` never takes the class's last remaining example and takes at least one
///    when `test_fraction > 0` and two or more remain.
///
/// `dev_fraction` and `test_fraction` are each in [0, 1) and their sum is below 1; a zero
/// `test_fraction` gives an empty test split (and then train is the earlier versions' train).
///
/// With the defaults (`dev_fraction` 0.1, `test_fraction` 0.1, seed 0), `mr` (4,265 + 4,265
/// sentences) gives 6,826 train / 852 dev / 852 test sentences.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SplitOptions {
    pub dev_fraction: f64,
    pub test_fraction: f64,
    pub seed: u64,
}

impl Default for SplitOptions {
    fn default() -> Self {
        SplitOptions {
            dev_fraction: 0.1,
            test_fraction: 0.1,
            seed: 0,
        }
    }
}

/// The three splits of a task.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Splits {
    pub train: Vec<Example>,
    pub dev: Vec<Example>,
    pub test: Vec<Example>,
}

/// How many of a class of `total` examples, `left` of them still available, go to a split of
/// `fraction`: half to even, never the last one left, at least one when it can.
fn take_count(total: usize, left: usize, fraction: f64) -> usize {
    let mut k = ((total as f64 * fraction).round_ties_even() as usize).min(left.saturating_sub(1));
    if fraction > 0.0 && left >= 2 {
        k = k.max(1);
    }
    k
}

/// Splits `examples` into train, dev and test by the rule documented on [`SplitOptions`].
pub fn stratified_split(
    examples: Vec<Example>,
    options: &SplitOptions,
) -> Result<Splits, DataError> {
    let f = options.dev_fraction;
    if !(0.0..1.0).contains(&f) {
        return Err(DataError::BadSplit {
            reason: format!("dev_fraction must be in [0, 1), got {f}"),
        });
    }
    let tf = options.test_fraction;
    if !(0.0..1.0).contains(&tf) {
        return Err(DataError::BadSplit {
            reason: format!("test_fraction must be in [0, 1), got {tf}"),
        });
    }
    if f + tf >= 1.0 {
        return Err(DataError::BadSplit {
            reason: format!("dev_fraction + test_fraction must be below 1, got {f} + {tf}"),
        });
    }
    let mut classes: BTreeMap<u32, Vec<Example>> = BTreeMap::new();
    for ex in examples {
        classes.entry(ex.label).or_default().push(ex);
    }
    let mut rng = StdRng::seed_from_u64(options.seed);
    let (mut rest, mut dev) = (Vec::new(), Vec::new());
    // Per class: how many of what dev leaves go to test.
    let mut want: BTreeMap<u32, usize> = BTreeMap::new();
    for (label, mut class) in classes {
        class.shuffle(&mut rng);
        let n = class.len();
        // Train keeps at least one example of every class; dev gets one of every class it can.
        let k = take_count(n, n, f);
        let left = class.split_off(k);
        want.insert(label, take_count(n, left.len(), tf));
        dev.extend(class);
        rest.extend(left);
    }
    rest.shuffle(&mut rng);
    dev.shuffle(&mut rng);
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for ex in rest {
        match want.get_mut(&ex.label) {
            Some(k) if *k > 0 => {
                *k -= 1;
                test.push(ex);
            }
            _ => train.push(ex),
        }
    }
    Ok(Splits { train, dev, test })
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
            (&[4265, 4265], 0.1, &[426, 426]), // mr: 852 dev (426.5 rounds to even)
            (&[12500, 12500], 0.1, &[1250, 1250]),
            (&[15, 25, 35], 0.1, &[2, 2, 4]), // 1.5 → 2, 2.5 → 2, 3.5 → 4
            (&[5, 5], 0.1, &[1, 1]),          // 0.5 → 0, raised to one per class
            (&[2, 1], 0.9, &[1, 0]),          // 1.8 → 2, lowered to leave one for train
            (&[10, 10], 0.0, &[0, 0]),
        ];
        for &(counts, dev_fraction, want) in cases {
            let options = SplitOptions {
                dev_fraction,
                test_fraction: 0.0,
                seed: 0,
            };
            let Splits { train, dev, test } = stratified_split(examples(counts), &options)?;
            assert!(test.is_empty());
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
                    test_fraction: 0.1,
                    seed,
                },
            )
        };
        let (a, b, other) = (split(0)?, split(0)?, split(1)?);
        assert_eq!(a, b);
        assert_ne!(a.dev, other.dev);
        let mut all: Vec<Example> = a
            .train
            .iter()
            .chain(&a.dev)
            .chain(&a.test)
            .cloned()
            .collect();
        all.sort_by(|x, y| x.text.cmp(&y.text));
        let mut want = examples(&[30, 20]);
        want.sort_by(|x, y| x.text.cmp(&y.text));
        assert_eq!(all, want);
        // The train order is shuffled, not grouped by class.
        assert!(a.train.windows(2).any(|w| w[0].label > w[1].label));
        for f in [-0.1, 1.0, f64::NAN] {
            let msg = stratified_split(
                vec![],
                &SplitOptions {
                    dev_fraction: f,
                    test_fraction: 0.0,
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

    #[test]
    fn test_split_sizes_and_dev_unchanged() -> Result<(), DataError> {
        // (examples per class, dev fraction, test fraction, dev per class, test per class)
        type Case<'a> = (&'a [usize], f64, f64, &'a [usize], &'a [usize]);
        let cases: &[Case] = &[
            // mr: 6,826 train / 852 dev / 852 test
            (&[4265, 4265], 0.1, 0.1, &[426, 426], &[426, 426]),
            (&[15, 25, 35], 0.1, 0.1, &[2, 2, 4], &[2, 2, 4]),
            (&[5, 5], 0.1, 0.1, &[1, 1], &[1, 1]), // 0.5 → 0, raised to one
            (&[3, 2], 0.4, 0.4, &[1, 1], &[1, 0]), // never the class's last train example
            (&[10, 10], 0.1, 0.0, &[1, 1], &[0, 0]), // no test split
        ];
        for &(counts, dev_fraction, test_fraction, want_dev, want_test) in cases {
            let three = SplitOptions {
                dev_fraction,
                test_fraction,
                seed: 0,
            };
            let two = SplitOptions {
                test_fraction: 0.0,
                ..three
            };
            let s = stratified_split(examples(counts), &three)?;
            let old = stratified_split(examples(counts), &two)?;
            let k = counts.len();
            assert_eq!(per_class(&s.dev, k), want_dev, "{counts:?}");
            assert_eq!(per_class(&s.test, k), want_test, "{counts:?}");
            let train_want: Vec<usize> = (0..k)
                .map(|c| counts[c] - want_dev[c] - want_test[c])
                .collect();
            assert_eq!(per_class(&s.train, k), train_want, "{counts:?}");
            // Dev is the two-split rule's dev, same order; train is its train minus test.
            assert_eq!(s.dev, old.dev);
            let kept: Vec<Example> = old
                .train
                .iter()
                .filter(|e| !s.test.contains(e))
                .cloned()
                .collect();
            assert_eq!(s.train, kept);
        }
        let bad = SplitOptions {
            dev_fraction: 0.5,
            test_fraction: 0.5,
            seed: 0,
        };
        let msg = stratified_split(examples(&[4, 4]), &bad)
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            msg.unwrap_or_default(),
            "bad split options: dev_fraction + test_fraction must be below 1, got 0.5 + 0.5"
        );
        Ok(())
    }
}
