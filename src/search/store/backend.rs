//! One interface over the two study stores: SQLite (the embedded default) and PostgreSQL (shared by
//! workers on many machines). Workers claim trials through it; reports read through it.
//!
//! The model is optuna's relational storage: the store is the only shared state. A claim is one
//! transaction that holds the study's row lock, so of all workers proposing at once, exactly one
//! sees the history at a time and inserts the next trial number; a worker's heartbeats keep its
//! claim, and a running trial whose worker is gone ([`reclaimable`]) is claimed again (same
//! number, same design), so a trial is never evaluated twice to completion and never lost.

use super::{NewTrial, StoreError, StudyId, TrialId, TrialResult, TrialRow};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What a study should do next, as its planner decides from the trials.
#[derive(Debug, Clone)]
pub enum Next {
    /// Start this trial.
    Trial(NewTrial),
    /// Nothing to start until a running trial ends (a rung waits for the one below it).
    Wait,
    /// The study's trial budget is spent and no trial is running.
    Done,
}

/// What a claim got.
#[derive(Debug, Clone)]
pub enum Claim {
    /// A new trial, inserted running and owned by the claimer.
    New(Box<TrialRow>),
    /// A running trial whose owner stopped heartbeating, now the claimer's (`attempts` counts up).
    Reclaimed(Box<TrialRow>),
    Wait,
    Done,
}

impl Claim {
    /// The trial a claim took: re-claimed from a silent owner, or new.
    pub(crate) fn taken(row: TrialRow, reclaimed: bool) -> Claim {
        match reclaimed {
            true => Claim::Reclaimed(Box::new(row)),
            false => Claim::New(Box::new(row)),
        }
    }
}

/// How a claimed trial ended.
#[derive(Debug, Clone)]
pub enum TrialEnd {
    Complete(TrialResult),
    Failed(String),
}

/// A planner: every trial of the study (inside the claim's transaction) in, the next step out.
pub type Planner<'a> = dyn FnMut(&[TrialRow]) -> crate::Result<Next> + 'a;

/// The study store as workers and reports use it. Implemented by [`super::Store`] (SQLite) and
/// [`super::PgStore`] (PostgreSQL).
pub trait StudyStore: Send {
    /// Where the store lives, for messages: a path, or the URL without its password.
    fn location(&self) -> String;
    /// A second connection to the same store, for a heartbeat thread.
    fn connect_again(&self) -> Result<Box<dyn StudyStore>, StoreError>;
    /// Creates the study, or joins it when the settings match (`SettingsMismatch` otherwise).
    /// Takes no lease: any number of workers join one study.
    fn join_study(&self, name: &str, settings: &Value) -> Result<StudyId, StoreError>;
    fn study_id(&self, name: &str) -> Result<StudyId, StoreError>;
    fn settings(&self, study: StudyId) -> Result<Value, StoreError>;
    /// Every trial of the study, by number.
    fn trials(&self, study: StudyId) -> Result<Vec<TrialRow>, StoreError>;
    /// In one transaction holding the study's lock: re-claims the lowest-numbered running trial
    /// that is `reclaimable` after `stale_after`, or else asks `plan` what to do given every
    /// trial and inserts its trial (next number, running, owned by `owner`, heartbeat now).
    fn claim(
        &self,
        study: StudyId,
        owner: &str,
        stale_after: Duration,
        plan: &mut Planner,
    ) -> crate::Result<Claim>;
    /// Refreshes the heartbeat of a trial `owner` holds; `false` when it is no longer theirs (it
    /// was re-claimed after a stale heartbeat, or has ended).
    fn beat(&self, trial: TrialId, owner: &str) -> Result<bool, StoreError>;
    /// Ends a trial `owner` holds, once: `NotOwner` when another worker re-claimed it meanwhile
    /// (that worker's result will count), `NotRunning` when it already ended.
    fn finish(&self, trial: TrialId, owner: &str, end: &TrialEnd) -> Result<(), StoreError>;
}

/// Where a study store lives, parsed from `--storage`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// A SQLite file: a plain path or `sqlite://PATH`.
    Sqlite(PathBuf),
    /// `postgres://user[:password]@host[:port]/database` (or `postgresql://`).
    Postgres(String),
}

impl Storage {
    pub fn parse(location: &str) -> Result<Storage, StoreError> {
        if location.starts_with("postgres://") || location.starts_with("postgresql://") {
            Ok(Storage::Postgres(location.to_string()))
        } else if let Some(path) = location.strip_prefix("sqlite://") {
            Ok(Storage::Sqlite(PathBuf::from(path)))
        } else if location.contains("://") {
            Err(StoreError::UnsupportedStorage {
                location: redact(location),
            })
        } else {
            Ok(Storage::Sqlite(PathBuf::from(location)))
        }
    }

    /// Opens the store (creating a SQLite file, or the tables in a PostgreSQL database, as needed).
    pub fn open(&self) -> Result<Box<dyn StudyStore>, StoreError> {
        match self {
            Storage::Sqlite(path) => Ok(Box::new(super::Store::open(path)?)),
            Storage::Postgres(url) => Ok(Box::new(super::PgStore::connect(url)?)),
        }
    }

    /// The default folder of trial run folders: beside a SQLite file; `studies/` under the working
    /// directory for a database (give workers on many machines a shared one with `--trials-dir`).
    pub fn default_trials_dir(&self) -> PathBuf {
        match self {
            Storage::Sqlite(path) => path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or_else(|| Path::new("."))
                .to_path_buf(),
            Storage::Postgres(_) => PathBuf::from("studies"),
        }
    }
}

/// Opens the store at `location` (a path or a URL).
pub fn open_storage(location: &str) -> Result<Box<dyn StudyStore>, StoreError> {
    Storage::parse(location)?.open()
}

/// The URL with its password replaced by `***`, fit for messages and logs.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => match rest[..at].split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***{}", &rest[at..]),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// An owner name for claims: pid, host and a nonce (two workers of one process differ by `tag`).
pub fn owner_name(tag: &str) -> String {
    let host = host_identity().unwrap_or_else(|| {
        std::env::var("HOSTNAME").map_or_else(|_| "unknown host".into(), |h| h.trim().into())
    });
    let nonce = super::now().fract().to_bits() & 0xffff_ffff;
    format!("pid {} on {host} ({nonce:x}{tag})", std::process::id())
}

/// Where this process's pids mean something: the host name with the PID namespace
/// (`web1/pid:[4026531836]`). Containers that share a host name (host networking) but not a
/// PID namespace must not judge each other's pids, so their identities differ.
pub fn host_identity() -> Option<String> {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let namespace = std::fs::read_link("/proc/self/ns/pid").ok()?;
    Some(format!("{}/{}", host.trim(), namespace.display()))
}

/// Whether a running trial's worker is gone, so another may claim it again: its heartbeat is
/// older than `stale_after` (or missing), its owner is a process of this host that has ended
/// (a killed `pets search` rerun at once takes its trials back without waiting out the window),
/// or it has no owner (begun by the single-process search of an earlier pets, gone once its
/// study is claimed again). `age` is seconds since the last heartbeat.
pub(crate) fn reclaimable(owner: Option<&str>, age: Option<f64>, stale_after: Duration) -> bool {
    match (owner, age) {
        (None, _) | (_, None) => true,
        (Some(owner), Some(age)) => age > stale_after.as_secs_f64() || owner_is_dead(owner),
    }
}

/// An owner (`pid N on HOST …`, see [`owner_name`]) on this host and PID namespace whose process
/// is gone (killed, crashed) holds nothing. Other owners can't be checked: their heartbeats tell.
pub(crate) fn owner_is_dead(owner: &str) -> bool {
    let mut words = owner.split_whitespace();
    let (Some("pid"), Some(pid), Some("on"), Some(host)) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return false;
    };
    match (pid.parse::<u32>(), host_identity()) {
        (Ok(pid), Some(this)) if this == host => {
            // A zombie (killed, not yet reaped) still has a /proc entry; it holds nothing either.
            match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                Ok(stat) => stat
                    .rsplit(')')
                    .next()
                    .is_some_and(|rest| rest.trim_start().starts_with('Z')),
                Err(_) => true,
            }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trial_is_reclaimable_when_its_worker_is_silent_or_gone() {
        let long = Duration::from_secs(120);
        let me = owner_name("");
        assert!(
            !reclaimable(Some(&me), Some(1.0), long),
            "a live owner beating"
        );
        assert!(
            reclaimable(Some(&me), Some(121.0), long),
            "a stale heartbeat"
        );
        assert!(
            reclaimable(None, None, long),
            "no owner: an earlier pets's single process"
        );
        let host = host_identity().expect("a Linux /proc");
        // Above the largest pid_max (2^22): no such process.
        let dead = format!("pid 4294967 on {host} (1 job 0)");
        assert!(
            reclaimable(Some(&dead), Some(1.0), long),
            "a killed process"
        );
        // The same host name in another PID namespace (a container with host networking): its
        // pids are not ours to look up.
        let hostname = host.split('/').next().unwrap_or_default();
        let elsewhere = format!("pid 4294967 on {hostname}/pid:[1] (1 job 0)");
        assert!(
            !reclaimable(Some(&elsewhere), Some(1.0), long),
            "another PID namespace: trust the beat"
        );
        assert!(
            !reclaimable(Some("worker a"), Some(1.0), long),
            "unknown form: trust the beat"
        );
        assert!(!owner_is_dead(&format!(
            "pid {} on some-other-host",
            std::process::id()
        )));
    }

    #[test]
    fn storage_locations_parse_and_passwords_stay_out_of_messages() {
        assert_eq!(
            Storage::parse("studies/pets.sqlite").unwrap(),
            Storage::Sqlite("studies/pets.sqlite".into())
        );
        assert_eq!(
            Storage::parse("sqlite:///tmp/s.sqlite").unwrap(),
            Storage::Sqlite("/tmp/s.sqlite".into())
        );
        assert!(matches!(
            Storage::parse("postgresql://u@h/db").unwrap(),
            Storage::Postgres(_)
        ));
        let err = Storage::parse("mysql://root:hunter2@db/x").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unsupported study store mysql://root:***@db/x: expected a SQLite path, sqlite://PATH or postgres://USER@HOST/DATABASE"
        );
        assert_eq!(
            redact("postgres://u:p@h:5432/d"),
            "postgres://u:***@h:5432/d"
        );
        assert_eq!(
            redact("postgres://u@h/d?x=a:b@c"),
            "postgres://u@h/d?x=a:b@c"
        );
        assert_eq!(
            Storage::parse("postgres://u@h/d")
                .unwrap()
                .default_trials_dir(),
            PathBuf::from("studies")
        );
        assert_eq!(
            Storage::parse("s.sqlite").unwrap().default_trials_dir(),
            PathBuf::from(".")
        );
    }
}
