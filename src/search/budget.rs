//! The parameter budget of a search: a share of the frozen backbone (`0.5%`) or a count (`120k`),
//! compared with a design's trainable parameters, head excluded.

use super::error::SearchError;
use std::fmt;
use std::str::FromStr;

/// The most trainable parameters (head excluded) a proposed design may have.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Budget {
    /// Percent of the frozen backbone's parameter count (`0.5` is 0.5%).
    Percent(f64),
    /// An absolute count.
    Params(usize),
}

impl Budget {
    /// The budget in parameters for a backbone of `backbone_params` (a percentage rounds down, so
    /// a design at the limit never exceeds the stated share).
    pub fn limit(&self, backbone_params: usize) -> usize {
        match *self {
            Budget::Percent(p) => (p / 100.0 * backbone_params as f64).floor() as usize,
            Budget::Params(n) => n,
        }
    }
}

impl FromStr for Budget {
    type Err = SearchError;

    /// `0.5%` (0 < p ≤ 100), `120k`, `1.2M`, `120000` or `120_000`.
    fn from_str(input: &str) -> Result<Budget, SearchError> {
        let bad = || SearchError::Budget {
            input: input.to_string(),
        };
        let text: String = input.trim().chars().filter(|c| *c != '_').collect();
        if let Some(p) = text.strip_suffix('%') {
            let p: f64 = p.trim().parse().map_err(|_| bad())?;
            return if p.is_finite() && p > 0.0 && p <= 100.0 {
                Ok(Budget::Percent(p))
            } else {
                Err(bad())
            };
        }
        let (number, scale) = match text.char_indices().last() {
            Some((i, 'k' | 'K')) => (&text[..i], 1e3),
            Some((i, 'M')) => (&text[..i], 1e6),
            _ => (text.as_str(), 1.0),
        };
        // Plain counts must be integers; a suffix may carry a fraction (`1.2M`).
        if scale == 1.0 {
            let n: usize = number.parse().map_err(|_| bad())?;
            return if n > 0 {
                Ok(Budget::Params(n))
            } else {
                Err(bad())
            };
        }
        if !number.chars().all(|c| c.is_ascii_digit() || c == '.') {
            return Err(bad());
        }
        let value: f64 = number.parse().map_err(|_| bad())?;
        let n = (value * scale).round();
        if n.is_finite() && n >= 1.0 {
            Ok(Budget::Params(n as usize))
        } else {
            Err(bad())
        }
    }
}

/// The budget as it parses back: `0.5%`, or a count, shortened to `k` or `M` where exact.
impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Budget::Percent(p) => write!(f, "{p}%"),
            Budget::Params(n) if n % 1_000_000 == 0 => write!(f, "{}M", n / 1_000_000),
            Budget::Params(n) if n % 1_000 == 0 => write!(f, "{}k", n / 1_000),
            Budget::Params(n) => write!(f, "{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_percentages_and_counts() {
        let ok: &[(&str, Budget)] = &[
            ("0.5%", Budget::Percent(0.5)),
            (" 5 % ", Budget::Percent(5.0)),
            ("100%", Budget::Percent(100.0)),
            ("120k", Budget::Params(120_000)),
            ("120K", Budget::Params(120_000)),
            ("1.2M", Budget::Params(1_200_000)),
            ("0.5k", Budget::Params(500)),
            ("120000", Budget::Params(120_000)),
            ("120_000", Budget::Params(120_000)),
        ];
        for (text, expected) in ok {
            assert_eq!(text.parse::<Budget>().unwrap(), *expected, "{text}");
        }
        for text in [
            "abc", "", "%", "0%", "-1%", "101%", "nan%", "1.5", "0", "-3k", "k", "1.2.3M", "12m",
            "1e3k", "inf%",
        ] {
            let err = text.parse::<Budget>().unwrap_err().to_string();
            assert_eq!(
                err,
                format!("budget {text}: expected a percentage like 0.5% or a count like 120k"),
            );
        }
    }

    #[test]
    fn limits_round_down() {
        // minilm-l6 as run has 22,565,376 parameters: 0.5% is 112,826.88.
        assert_eq!(Budget::Percent(0.5).limit(22_565_376), 112_826);
        assert_eq!(Budget::Params(120_000).limit(22_565_376), 120_000);
        assert_eq!(Budget::Percent(0.5).to_string(), "0.5%");
        for text in ["0.5%", "120k", "3M", "1500", "1200k"] {
            let budget: Budget = text.parse().unwrap();
            assert_eq!(budget.to_string(), text);
        }
    }
}
