//! Summaries of one design's accuracies over seeds, and the rule that turns two of them into a
//! verdict on a claim.

/// Accuracies of the seeds that finished.
#[derive(Debug, Clone, PartialEq)]
pub struct Spread {
    pub n: usize,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    /// Sample standard deviation (0 for one seed).
    pub sd: f64,
}

impl Spread {
    pub fn of(values: &[f64]) -> Option<Spread> {
        if values.is_empty() {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = match n % 2 {
            1 => v[n / 2],
            _ => 0.5 * (v[n / 2 - 1] + v[n / 2]),
        };
        let mean = v.iter().sum::<f64>() / n as f64;
        let sd = match n {
            1 => 0.0,
            _ => (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt(),
        };
        Some(Spread {
            n,
            median,
            min: v[0],
            max: v[n - 1],
            mean,
            sd,
        })
    }
}

/// Differences of medians smaller than this are never called (half a point of accuracy: with
/// 852 dev sentences one accuracy alone has a standard error of ~1.3 points).
pub const MIN_EFFECT: f64 = 0.005;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Reproduced,
    NotReproduced,
    Inconclusive,
}

impl Verdict {
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Reproduced => "reproduced",
            Verdict::NotReproduced => "not reproduced",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// The margin a difference of medians must clear: twice the standard error of the difference
/// of means over seeds, and at least [`MIN_EFFECT`].
pub fn margin(a: &Spread, b: &Spread) -> f64 {
    let se = (a.sd.powi(2) / a.n as f64 + b.sd.powi(2) / b.n as f64).sqrt();
    (2.0 * se).max(MIN_EFFECT)
}

/// "`better` beats `worse`" (or, with `tie`, "neither is ahead") judged on medians over seeds.
/// Fewer than two seeds a side is always inconclusive.
pub fn judge(better: &Spread, worse: &Spread, tie: bool) -> Verdict {
    if better.n < 2 || worse.n < 2 {
        return Verdict::Inconclusive;
    }
    let diff = better.median - worse.median;
    let m = margin(better, worse);
    match (tie, diff.abs() <= m) {
        (true, true) => Verdict::Reproduced,
        (true, false) => Verdict::NotReproduced,
        (false, _) if diff > m => Verdict::Reproduced,
        (false, _) if diff < -m => Verdict::NotReproduced,
        _ => Verdict::Inconclusive,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_of_odd_and_even_counts() {
        let s = Spread::of(&[0.80, 0.82, 0.81]).expect("values");
        assert_eq!((s.n, s.median, s.min, s.max), (3, 0.81, 0.80, 0.82));
        assert!((s.sd - 0.01).abs() < 1e-12);
        assert_eq!(Spread::of(&[0.5, 0.7]).expect("values").median, 0.6);
        assert!(Spread::of(&[]).is_none());
    }

    #[test]
    fn verdicts_follow_the_margin() {
        let s = |v: &[f64]| Spread::of(v).expect("values");
        let low = s(&[0.80, 0.801, 0.802]);
        let high = s(&[0.82, 0.821, 0.822]);
        let near = s(&[0.803, 0.804, 0.805]);
        let cases = [
            (&high, &low, false, Verdict::Reproduced),
            (&low, &high, false, Verdict::NotReproduced),
            (&near, &low, false, Verdict::Inconclusive),
            (&near, &low, true, Verdict::Reproduced),
            (&high, &low, true, Verdict::NotReproduced),
        ];
        for (a, b, tie, want) in cases {
            assert_eq!(judge(a, b, tie), want, "{a:?} vs {b:?} tie {tie}");
        }
        let one = s(&[0.9]);
        assert_eq!(judge(&one, &low, false), Verdict::Inconclusive);
    }
}
