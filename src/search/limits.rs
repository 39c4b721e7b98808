//! A study's trial and time budgets (`--trials`, `--timeout`), as optuna's `n_trials` and
//! `timeout`: how they are written, and how much of them a study's stored trials have spent.
//!
//! Both are read from the store alone, so they hold across resumes and across workers: the trial
//! budget counts the study's search trials (promotions included; baselines and confirmation runs
//! not); the time budget is the study's wall time, the time during which at least one of its
//! trials was running, summed over every process and resume (the gaps between a killed search and
//! its resume, or before the first trial starts, are not counted).

use super::store::TrialRow;
use super::{SearchError, TrialState};
use std::time::Duration;

/// The search trials `--trials` allows when neither budget is given.
pub const DEFAULT_TRIALS: usize = 45;

/// When a study stops starting search trials.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Search trials, promotions included; `None` for no limit.
    pub trials: Option<usize>,
    /// Wall time; `None` for no limit.
    pub timeout: Option<Duration>,
}

impl Limits {
    /// The limits of `--trials` and `--timeout`: without either, [`DEFAULT_TRIALS`] trials; with
    /// only a timeout, as many trials as fit in it.
    pub fn new(trials: Option<usize>, timeout: Option<Duration>) -> Limits {
        let trials = match (trials, timeout) {
            (None, None) => Some(DEFAULT_TRIALS),
            (t, _) => t,
        };
        Limits { trials, timeout }
    }

    /// Whether the time budget is spent at Unix time `now`.
    pub fn out_of_time(&self, rows: &[TrialRow], now: f64) -> bool {
        self.timeout
            .is_some_and(|t| wall_seconds(rows, now) >= t.as_secs_f64())
    }
}

/// Seconds during which at least one trial was running: the union of the trials' intervals,
/// from their start to their end (to `now` for a running trial). A trial claimed again after
/// its worker died counts from its last start.
pub fn wall_seconds(rows: &[TrialRow], now: f64) -> f64 {
    let mut spans: Vec<(f64, f64)> = rows
        .iter()
        .map(|t| {
            let end = match t.state {
                TrialState::Running => now,
                _ => t.finished.unwrap_or(t.started),
            };
            (t.started, end.max(t.started))
        })
        .collect();
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut total = 0.0;
    let mut open: Option<(f64, f64)> = None;
    for (start, end) in spans {
        open = match open {
            Some((s, e)) if start <= e => Some((s, e.max(end))),
            Some((s, e)) => {
                total += e - s;
                Some((start, end))
            }
            None => Some((start, end)),
        };
    }
    total + open.map_or(0.0, |(s, e)| e - s)
}

/// A duration as `--timeout` takes it: `90s`, `45m`, `2h`, `1h30m`, or plain seconds (`5400`).
pub fn parse_timeout(text: &str) -> Result<Duration, SearchError> {
    let bad = || SearchError::Setting {
        setting: "timeout",
        value: text.to_string(),
        expected: "expected a positive duration such as 90s, 45m, 2h or 1h30m".into(),
    };
    let text_trimmed = text.trim();
    if let Ok(seconds) = text_trimmed.parse::<f64>() {
        return positive(seconds).ok_or_else(bad);
    }
    let mut seconds = 0.0;
    let mut number = String::new();
    for c in text_trimmed.chars() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let unit = match c {
            'h' => 3600.0,
            'm' => 60.0,
            's' => 1.0,
            _ => return Err(bad()),
        };
        let value: f64 = number.parse().map_err(|_| bad())?;
        seconds += value * unit;
        number.clear();
    }
    if !number.is_empty() {
        return Err(bad());
    }
    positive(seconds).ok_or_else(bad)
}

/// A duration as reports write it: `2h`, `1h30m`, `45m`, `90s`.
pub fn describe(d: Duration) -> String {
    let total = d.as_secs();
    let (h, m, s) = (total / 3600, total / 60 % 60, total % 60);
    let mut out = String::new();
    for (value, unit) in [(h, "h"), (m, "m"), (s, "s")] {
        if value > 0 {
            out.push_str(&format!("{value}{unit}"));
        }
    }
    if out.is_empty() {
        out = format!("{:.1}s", d.as_secs_f64());
    }
    out
}

fn positive(seconds: f64) -> Option<Duration> {
    (seconds.is_finite() && seconds > 0.0 && seconds < 1e9)
        .then(|| Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::store::{TrialId, TrialKind};
    use crate::spec::Design;

    fn span(kind: TrialKind, state: TrialState, started: f64, finished: Option<f64>) -> TrialRow {
        TrialRow {
            id: TrialId(0),
            number: 0,
            kind,
            label: None,
            design: Design::from_ron("Design(name: \"d\")", "test").unwrap(),
            canonical: String::new(),
            state,
            accuracy: None,
            params: None,
            percent: None,
            fidelity: 1,
            seed: 0,
            rung: 0,
            parent: None,
            started,
            finished,
            seconds: None,
            error: None,
            metrics: None,
            owner: None,
            attempts: 1,
        }
    }

    #[test]
    fn wall_time_is_the_union_of_trial_intervals() {
        use TrialState::{Complete, Failed, Running};
        let rows = [
            // Two trials side by side (jobs 2): 100–160 and 120–150 cover 60 s.
            span(TrialKind::Baseline, Complete, 100.0, Some(160.0)),
            span(TrialKind::Search, Complete, 120.0, Some(150.0)),
            // The process died at 160; the resume started trials again at 1000.
            span(TrialKind::Search, Failed, 1000.0, Some(1010.0)),
            span(TrialKind::Search, Running, 1005.0, None),
        ];
        assert_eq!(wall_seconds(&rows, 1030.0), 60.0 + 30.0);
        assert_eq!(wall_seconds(&[], 5.0), 0.0);
        let limits = Limits::new(None, Some(Duration::from_secs(90)));
        assert!(!limits.out_of_time(&rows, 1029.0));
        assert!(limits.out_of_time(&rows, 1030.0));
    }

    #[test]
    fn budgets_default_to_forty_five_trials_unless_a_timeout_is_given() {
        let hour = Some(Duration::from_secs(3600));
        assert_eq!(Limits::new(None, None).trials, Some(DEFAULT_TRIALS));
        assert_eq!(Limits::new(None, hour).trials, None);
        assert_eq!(Limits::new(Some(7), hour).trials, Some(7));
    }

    #[test]
    fn timeouts_parse_units_and_refuse_nonsense() {
        let cases = [
            ("90s", 90.0),
            ("45m", 2700.0),
            ("2h", 7200.0),
            ("1h30m", 5400.0),
            ("5400", 5400.0),
            ("0.5h", 1800.0),
        ];
        for (text, seconds) in cases {
            assert_eq!(
                parse_timeout(text).unwrap().as_secs_f64(),
                seconds,
                "{text}"
            );
        }
        assert_eq!(describe(parse_timeout("1h30m").unwrap()), "1h30m");
        assert_eq!(describe(parse_timeout("90").unwrap()), "1m30s");
        for text in ["", "0", "-5", "2d", "h", "1h30", "nan", "inf"] {
            let err = parse_timeout(text).unwrap_err().to_string();
            assert!(err.starts_with("timeout "), "{text}: {err}");
        }
    }
}
