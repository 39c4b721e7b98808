//! The study store: one SQLite file of studies and their trials, so a search resumes after a
//! crash, reports can be rebuilt at any time, and two processes cannot run one study at once.

use super::{Evaluated, TrialState};
use crate::spec::Design;
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction, TransactionBehavior};
use serde_json::Value;
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use thiserror::Error;

/// Bumped with every schema change: a file written by another version is refused, not misread.
pub const SCHEMA_VERSION: i32 = 1;
/// A lease whose heartbeat is older than this belongs to a dead process and may be taken over.
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(120);
/// Error text of trials found running by [`Store::reclaim_running`].
pub const INTERRUPTED: &str = "interrupted: the process running it stopped";

const SCHEMA: &str = "
CREATE TABLE studies (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    settings TEXT NOT NULL,
    created REAL NOT NULL,
    owner TEXT,
    heartbeat REAL
);
CREATE TABLE trials (
    id INTEGER PRIMARY KEY,
    study_id INTEGER NOT NULL REFERENCES studies(id),
    number INTEGER NOT NULL,
    kind TEXT NOT NULL,
    label TEXT,
    design TEXT NOT NULL,
    canonical TEXT NOT NULL,
    state TEXT NOT NULL,
    accuracy REAL,
    params INTEGER,
    percent REAL,
    fidelity INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    rung INTEGER NOT NULL,
    parent INTEGER,
    started REAL NOT NULL,
    finished REAL,
    seconds REAL,
    error TEXT,
    metrics TEXT,
    UNIQUE (study_id, number)
);
";
const COLUMNS: &str =
    "id, number, kind, label, design, canonical, state, accuracy, params, percent, \
                       fidelity, seed, rung, parent, started, finished, seconds, error, metrics";

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("cannot create folder {path} for the study store: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("study store {path}: {context}: {source}")]
    Sqlite {
        path: String,
        context: String,
        source: rusqlite::Error,
    },
    #[error(
        "study store {path} has schema version {found}; this pets reads version {SCHEMA_VERSION}"
    )]
    SchemaVersion { path: String, found: i32 },
    #[error("study '{study}' was created with other settings ({}); rerun with the original flags or use another study name", differences.join("; "))]
    SettingsMismatch {
        study: String,
        keys: Vec<String>,
        differences: Vec<String>,
    },
    #[error("study '{study}' is being run by {owner} (last heartbeat {age:.0} s ago; a lease goes stale after {stale_after:.0} s)")]
    Busy {
        study: String,
        owner: String,
        age: f64,
        stale_after: f64,
    },
    #[error("study '{study}': this process no longer holds its lease (now held by {owner})")]
    LeaseLost { study: String, owner: String },
    #[error("no study '{study}' in {path}")]
    UnknownStudy { study: String, path: String },
    #[error("study '{study}': no trial number {number} to be the parent of a new trial")]
    UnknownParent { study: String, number: usize },
    #[error("no trial with id {id} in {path}")]
    UnknownTrial { id: i64, path: String },
    #[error(
        "study '{study}', trial {number} is {state:?}, not running: it cannot change state again"
    )]
    NotRunning {
        study: String,
        number: usize,
        state: TrialState,
    },
    #[error("study '{study}', trial {number}: {what}")]
    Corrupt {
        study: String,
        number: usize,
        what: String,
    },
    #[error("study '{study}': stored settings are not JSON: {what}")]
    CorruptSettings { study: String, what: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StudyId(pub i64);
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TrialId(pub i64);

/// What produced a trial: the search, or a named preset evaluated under the same protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrialKind {
    Search,
    Baseline,
}

impl TrialKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TrialKind::Search => "search",
            TrialKind::Baseline => "baseline",
        }
    }
}

/// The word stored for a state (optuna's, lower case).
pub fn state_str(state: TrialState) -> &'static str {
    match state {
        TrialState::Running => "running",
        TrialState::Complete => "complete",
        TrialState::Pruned => "pruned",
        TrialState::Failed => "failed",
    }
}

fn parse_state(s: &str) -> Option<TrialState> {
    [
        TrialState::Running,
        TrialState::Complete,
        TrialState::Pruned,
        TrialState::Failed,
    ]
    .into_iter()
    .find(|&t| state_str(t) == s)
}

/// A trial about to run.
#[derive(Debug, Clone)]
pub struct NewTrial {
    pub kind: TrialKind,
    /// The baseline preset's name; `None` for search trials.
    pub label: Option<String>,
    pub design: Design,
    pub canonical: String,
    /// Training steps (the fidelity).
    pub fidelity: usize,
    pub seed: u64,
    /// Multi-fidelity level, 0 for the lowest.
    pub rung: usize,
    /// Number of the lower-fidelity trial of the same study this one was promoted from.
    pub parent: Option<usize>,
}

/// What a finished training run reports.
#[derive(Debug, Clone)]
pub struct TrialResult {
    pub accuracy: f64,
    pub params: usize,
    pub percent: f64,
    pub seconds: f64,
    /// The full run record (`RunMetrics` as JSON), kept for later analysis.
    pub metrics: Value,
}

/// One stored trial. Times are Unix seconds.
#[derive(Debug, Clone)]
pub struct TrialRow {
    pub id: TrialId,
    /// 0-based, per study, in order of starting.
    pub number: usize,
    pub kind: TrialKind,
    pub label: Option<String>,
    pub design: Design,
    pub canonical: String,
    pub state: TrialState,
    pub accuracy: Option<f64>,
    pub params: Option<usize>,
    pub percent: Option<f64>,
    pub fidelity: usize,
    pub seed: u64,
    pub rung: usize,
    pub parent: Option<usize>,
    pub started: f64,
    pub finished: Option<f64>,
    /// The run's own training time when complete; wall time from start when failed or pruned.
    pub seconds: Option<f64>,
    pub error: Option<String>,
    pub metrics: Option<Value>,
}

impl TrialRow {
    /// The trial as samplers see it; `None` unless complete.
    pub fn evaluated(&self) -> Option<Evaluated> {
        match (self.state, self.accuracy, self.params) {
            (TrialState::Complete, Some(accuracy), Some(params)) => Some(Evaluated {
                design: self.design.clone(),
                canonical: self.canonical.clone(),
                accuracy,
                params,
                fidelity: self.fidelity,
            }),
            _ => None,
        }
    }
}

pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// This store's identity in study leases: pid, host and a nonce (two stores of one process differ).
    owner: String,
    stale_after: Duration,
    /// Leases this store took, released on drop.
    held: RefCell<Vec<StudyId>>,
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn sql(path: &Path, context: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> StoreError {
    let (path, context) = (path.display().to_string(), context.into());
    move |source| StoreError::Sqlite {
        path,
        context,
        source,
    }
}

fn connect(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(sql(path, "opening"))?;
    // Another process may hold the write lock for a moment (a trial insert); wait, don't fail.
    conn.busy_timeout(Duration::from_secs(30))
        .map_err(sql(path, "setting the busy timeout"))?;
    Ok(conn)
}

impl Store {
    /// Opens (creating folders, file and schema as needed) the store at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let conn = connect(path)?;
        // WAL lets `pets report` read while a search writes; FULL sync makes every committed state
        // change survive even a power loss (a few writes per minutes-long trial cost nothing).
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0))
            .map_err(sql(path, "enabling WAL"))?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(sql(path, "setting synchronous"))?;
        static NONCE: AtomicU64 = AtomicU64::new(0);
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::env::var("HOSTNAME"))
            .map_or_else(|_| "unknown host".into(), |h| h.trim().to_string());
        let nonce = NONCE.fetch_add(1, Ordering::Relaxed) ^ (now().fract() * 1e9) as u64;
        let owner = format!("pid {} on {host} ({nonce:x})", std::process::id());
        let store = Store {
            conn,
            path: path.to_path_buf(),
            owner,
            stale_after: DEFAULT_STALE_AFTER,
            held: RefCell::default(),
        };
        let tx = store.immediate("creating the schema")?;
        let found: i32 = tx
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(store.err("reading the schema version"))?;
        match found {
            0 => {
                tx.execute_batch(SCHEMA)
                    .map_err(store.err("creating the schema"))?;
                tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                    .map_err(store.err("setting the schema version"))?;
            }
            SCHEMA_VERSION => {}
            found => {
                return Err(StoreError::SchemaVersion {
                    path: path.display().to_string(),
                    found,
                })
            }
        }
        tx.commit().map_err(store.err("creating the schema"))?;
        Ok(store)
    }

    /// How long a lease may go without a heartbeat before another process may take the study.
    pub fn with_stale_after(mut self, stale_after: Duration) -> Store {
        self.stale_after = stale_after;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, context: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> StoreError {
        sql(&self.path, context)
    }

    /// IMMEDIATE takes the write lock up front, so read-then-write sequences (next trial number,
    /// lease checks) cannot interleave with another process.
    fn immediate(&self, context: &str) -> Result<Transaction<'_>, StoreError> {
        Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)
            .map_err(self.err(context))
    }

    /// Creates the study, or resumes it when the settings match; takes its lease either way.
    pub fn open_study(&self, name: &str, settings: &Value) -> Result<StudyId, StoreError> {
        let tx = self.immediate("opening a study")?;
        let found = tx
            .query_row(
                "SELECT id, settings, owner, heartbeat FROM studies WHERE name = ?1",
                [name],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, Option<f64>>(3)?,
                    ))
                },
            )
            .optional()
            .map_err(self.err(format!("looking up study '{name}'")))?;
        let time = now();
        let id = match found {
            None => {
                tx.execute(
                    "INSERT INTO studies (name, settings, created, owner, heartbeat) VALUES (?1, ?2, ?3, ?4, ?3)",
                    params![name, settings.to_string(), time, self.owner],
                )
                .map_err(self.err(format!("creating study '{name}'")))?;
                tx.last_insert_rowid()
            }
            Some((id, stored, owner, heartbeat)) => {
                let stored: Value =
                    serde_json::from_str(&stored).map_err(|e| StoreError::CorruptSettings {
                        study: name.into(),
                        what: e.to_string(),
                    })?;
                let mut differences = Vec::new();
                diff("", &stored, settings, &mut differences);
                if !differences.is_empty() {
                    let keys = differences.iter().map(|(k, _)| k.clone()).collect();
                    let differences = differences.into_iter().map(|(_, d)| d).collect();
                    return Err(StoreError::SettingsMismatch {
                        study: name.into(),
                        keys,
                        differences,
                    });
                }
                if let (Some(owner), Some(beat)) = (owner, heartbeat) {
                    let stale_after = self.stale_after.as_secs_f64();
                    let fresh = time - beat < stale_after && !owner_is_dead(&owner);
                    if owner != self.owner && fresh {
                        return Err(StoreError::Busy {
                            study: name.into(),
                            owner,
                            age: time - beat,
                            stale_after,
                        });
                    }
                }
                tx.execute(
                    "UPDATE studies SET owner = ?2, heartbeat = ?3 WHERE id = ?1",
                    params![id, self.owner, time],
                )
                .map_err(self.err(format!("taking the lease of study '{name}'")))?;
                id
            }
        };
        tx.commit()
            .map_err(self.err(format!("opening study '{name}'")))?;
        let mut held = self.held.borrow_mut();
        if !held.contains(&StudyId(id)) {
            held.push(StudyId(id));
        }
        Ok(StudyId(id))
    }

    /// The id of an existing study, without taking its lease (for reports while a search runs).
    pub fn study_id(&self, name: &str) -> Result<StudyId, StoreError> {
        self.conn
            .query_row("SELECT id FROM studies WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()
            .map_err(self.err(format!("looking up study '{name}'")))?
            .map(StudyId)
            .ok_or_else(|| StoreError::UnknownStudy {
                study: name.into(),
                path: self.path.display().to_string(),
            })
    }

    pub fn study_names(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT name FROM studies ORDER BY id")
            .map_err(self.err("listing studies"))?;
        let names = stmt
            .query_map([], |r| r.get(0))
            .map_err(self.err("listing studies"))?;
        names
            .collect::<Result<_, _>>()
            .map_err(self.err("listing studies"))
    }

    pub fn study_name(&self, study: StudyId) -> Result<String, StoreError> {
        self.conn
            .query_row("SELECT name FROM studies WHERE id = ?1", [study.0], |r| {
                r.get(0)
            })
            .optional()
            .map_err(self.err("looking up a study name"))?
            .ok_or_else(|| StoreError::UnknownStudy {
                study: format!("#{}", study.0),
                path: self.path.display().to_string(),
            })
    }

    pub fn settings(&self, study: StudyId) -> Result<Value, StoreError> {
        let name = self.study_name(study)?;
        let text: String = self
            .conn
            .query_row(
                "SELECT settings FROM studies WHERE id = ?1",
                [study.0],
                |r| r.get(0),
            )
            .map_err(self.err(format!("reading the settings of study '{name}'")))?;
        serde_json::from_str(&text).map_err(|e| StoreError::CorruptSettings {
            study: name,
            what: e.to_string(),
        })
    }

    /// Refreshes this store's lease; `LeaseLost` when another process has taken the study over.
    pub fn heartbeat(&self, study: StudyId) -> Result<(), StoreError> {
        let n = self
            .conn
            .execute(
                "UPDATE studies SET heartbeat = ?3 WHERE id = ?1 AND owner = ?2",
                params![study.0, self.owner, now()],
            )
            .map_err(self.err("refreshing a lease"))?;
        if n == 1 {
            return Ok(());
        }
        let name = self.study_name(study)?; // UnknownStudy for an id from another file
        let owner: Option<String> = self
            .conn
            .query_row("SELECT owner FROM studies WHERE id = ?1", [study.0], |r| {
                r.get(0)
            })
            .map_err(self.err("reading a lease"))?;
        Err(StoreError::LeaseLost {
            study: name,
            owner: owner.unwrap_or_else(|| "nobody".into()),
        })
    }

    /// Heartbeats from a background thread (its own connection) every `every` until dropped, so a
    /// long training run does not let the lease go stale. Failures surface at the next `begin_trial`.
    pub fn keep_alive(&self, study: StudyId, every: Duration) -> Result<KeepAlive, StoreError> {
        self.heartbeat(study)?;
        let conn = connect(&self.path)?;
        let owner = self.owner.clone();
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                let sql = "UPDATE studies SET heartbeat = ?3 WHERE id = ?1 AND owner = ?2";
                // A lost lease or a locked file is reported by the owner's next write, not here.
                let _ = conn.execute(sql, params![study.0, owner, now()]);
            }
        });
        Ok(KeepAlive {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Starts a trial (state running, number = next in the study). Requires the study's lease.
    pub fn begin_trial(&self, study: StudyId, new: &NewTrial) -> Result<TrialRow, StoreError> {
        let tx = self.immediate("starting a trial")?;
        // Inside the transaction (same connection): nobody can take the lease before the insert.
        self.heartbeat(study)?;
        let name = self.study_name(study)?;
        if let Some(parent) = new.parent {
            let exists: Option<i64> = tx
                .query_row(
                    "SELECT id FROM trials WHERE study_id = ?1 AND number = ?2",
                    params![study.0, parent],
                    |r| r.get(0),
                )
                .optional()
                .map_err(self.err(format!(
                    "looking up parent trial {parent} of study '{name}'"
                )))?;
            if exists.is_none() {
                return Err(StoreError::UnknownParent {
                    study: name,
                    number: parent,
                });
            }
        }
        let number: usize = tx
            .query_row(
                "SELECT COALESCE(MAX(number) + 1, 0) FROM trials WHERE study_id = ?1",
                [study.0],
                |r| r.get(0),
            )
            .map_err(self.err(format!("numbering a trial of study '{name}'")))?;
        let started = now();
        tx.execute(
            "INSERT INTO trials (study_id, number, kind, label, design, canonical, state, fidelity, seed, rung, parent, started)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'running', ?7, ?8, ?9, ?10, ?11)",
            params![
                study.0,
                number,
                new.kind.as_str(),
                new.label,
                new.design.to_ron(),
                new.canonical,
                new.fidelity,
                // Bit-for-bit: SQLite integers are signed; the cast back restores the seed.
                new.seed as i64,
                new.rung,
                new.parent,
                started
            ],
        )
        .map_err(self.err(format!("inserting trial {number} of study '{name}'")))?;
        tx.commit()
            .map_err(self.err(format!("inserting trial {number} of study '{name}'")))?;
        // Read back rather than rebuild: the caller gets exactly what a resumed study would see.
        let mut rows = self.select(study, &format!("AND number = {number}"))?;
        rows.pop().ok_or_else(|| StoreError::Corrupt {
            study: name,
            number,
            what: "vanished right after insertion".into(),
        })
    }

    pub fn complete_trial(&self, id: TrialId, result: &TrialResult) -> Result<(), StoreError> {
        let sql = "UPDATE trials SET state = 'complete', finished = ?2, accuracy = ?3, params = ?4, percent = ?5,
                   seconds = ?6, metrics = ?7 WHERE id = ?1 AND state = 'running'";
        let values = params![
            id.0,
            now(),
            result.accuracy,
            result.params,
            result.percent,
            result.seconds,
            result.metrics.to_string()
        ];
        self.finish(id, sql, values)
    }

    pub fn fail_trial(&self, id: TrialId, error: &str) -> Result<(), StoreError> {
        self.end_with_error(id, "failed", error)
    }

    /// Stops a trial early (the pruner found it hopeless); `reason` goes to the error column.
    pub fn prune_trial(&self, id: TrialId, reason: &str) -> Result<(), StoreError> {
        self.end_with_error(id, "pruned", reason)
    }

    fn end_with_error(&self, id: TrialId, state: &str, error: &str) -> Result<(), StoreError> {
        let sql = "UPDATE trials SET state = ?3, finished = ?2, seconds = ?2 - started, error = ?4
                   WHERE id = ?1 AND state = 'running'";
        self.finish(id, sql, params![id.0, now(), state, error])
    }

    /// One UPDATE guarded by `state = 'running'`: atomic, and a trial never changes state twice.
    fn finish(
        &self,
        id: TrialId,
        sql: &str,
        values: &[&dyn rusqlite::ToSql],
    ) -> Result<(), StoreError> {
        if self
            .conn
            .execute(sql, values)
            .map_err(self.err(format!("finishing trial id {}", id.0)))?
            == 1
        {
            return Ok(());
        }
        let found = self
            .conn
            .query_row(
                "SELECT study_id, number, state FROM trials WHERE id = ?1",
                [id.0],
                |r| {
                    Ok((
                        StudyId(r.get(0)?),
                        r.get::<_, usize>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                },
            )
            .optional()
            .map_err(self.err(format!("reading trial id {}", id.0)))?;
        let Some((study, number, state)) = found else {
            return Err(StoreError::UnknownTrial {
                id: id.0,
                path: self.path.display().to_string(),
            });
        };
        let study = self.study_name(study)?;
        match parse_state(&state) {
            Some(state) => Err(StoreError::NotRunning {
                study,
                number,
                state,
            }),
            None => Err(StoreError::Corrupt {
                study,
                number,
                what: format!("unknown state '{state}'"),
            }),
        }
    }

    /// Every trial of the study, by number.
    pub fn trials(&self, study: StudyId) -> Result<Vec<TrialRow>, StoreError> {
        self.select(study, "")
    }

    fn select(&self, study: StudyId, filter: &str) -> Result<Vec<TrialRow>, StoreError> {
        let name = self.study_name(study)?;
        let query =
            format!("SELECT {COLUMNS} FROM trials WHERE study_id = ?1 {filter} ORDER BY number");
        let context = format!("reading the trials of study '{name}'");
        let mut stmt = self.conn.prepare(&query).map_err(self.err(&context))?;
        let rows = stmt
            .query_map([study.0], |r| read_row(r, &name))
            .map_err(self.err(&context))?;
        let rows: Vec<_> = rows.collect::<Result<_, _>>().map_err(self.err(&context))?;
        rows.into_iter().collect()
    }

    /// Trials left running by a process that died: marks them failed ([`INTERRUPTED`]) and returns
    /// them so the caller reruns them first. Requires the lease, so it never touches live trials.
    pub fn reclaim_running(&self, study: StudyId) -> Result<Vec<TrialRow>, StoreError> {
        let tx = self.immediate("reclaiming running trials")?;
        self.heartbeat(study)?;
        let running = self.select(study, "AND state = 'running'")?;
        let sql = "UPDATE trials SET state = 'failed', finished = ?2, error = ?3 WHERE study_id = ?1 AND state = 'running'";
        tx.execute(sql, params![study.0, now(), INTERRUPTED])
            .map_err(self.err("reclaiming running trials"))?;
        tx.commit().map_err(self.err("reclaiming running trials"))?;
        Ok(running)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        for study in self.held.borrow().iter() {
            // Best effort: if this fails the lease simply goes stale after `stale_after`.
            let _ = self.conn.execute(
                "UPDATE studies SET owner = NULL, heartbeat = NULL WHERE id = ?1 AND owner = ?2",
                params![study.0, self.owner],
            );
        }
    }
}

/// Background heartbeat of [`Store::keep_alive`]; stops when dropped.
pub struct KeepAlive {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Differences between stored and given settings as (dotted key, "key: stored X, now Y").
fn diff(prefix: &str, stored: &Value, given: &Value, out: &mut Vec<(String, String)>) {
    if let (Value::Object(a), Value::Object(b)) = (stored, given) {
        let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
        for key in keys {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            diff(
                &path,
                a.get(key).unwrap_or(&Value::Null),
                b.get(key).unwrap_or(&Value::Null),
                out,
            );
        }
    } else if stored != given {
        let key = if prefix.is_empty() {
            "settings".to_string()
        } else {
            prefix.to_string()
        };
        out.push((key.clone(), format!("{key}: stored {stored}, now {given}")));
    }
}

/// Reads one row; the outer error is SQLite's, the inner one a corrupt value naming the trial.
fn read_row(r: &Row, study: &str) -> rusqlite::Result<Result<TrialRow, StoreError>> {
    let number: usize = r.get(1)?;
    let corrupt = |what: String| StoreError::Corrupt {
        study: study.into(),
        number,
        what,
    };
    let (kind, state, design, metrics): (String, String, String, Option<String>) =
        (r.get(2)?, r.get(6)?, r.get(4)?, r.get(18)?);
    let kind = match kind.as_str() {
        "search" => TrialKind::Search,
        "baseline" => TrialKind::Baseline,
        other => return Ok(Err(corrupt(format!("unknown kind '{other}'")))),
    };
    let Some(state) = parse_state(&state) else {
        return Ok(Err(corrupt(format!("unknown state '{state}'"))));
    };
    let design = match Design::from_ron(&design, "stored design") {
        Ok(design) => design,
        Err(e) => return Ok(Err(corrupt(format!("bad design: {e}")))),
    };
    let metrics = match metrics.map(|m| serde_json::from_str(&m)).transpose() {
        Ok(metrics) => metrics,
        Err(e) => return Ok(Err(corrupt(format!("bad metrics JSON: {e}")))),
    };
    Ok(Ok(TrialRow {
        id: TrialId(r.get(0)?),
        number,
        kind,
        label: r.get(3)?,
        design,
        canonical: r.get(5)?,
        state,
        accuracy: r.get(7)?,
        params: r.get(8)?,
        percent: r.get(9)?,
        fidelity: r.get(10)?,
        // Bit-for-bit inverse of the cast on insert.
        seed: r.get::<_, i64>(11)? as u64,
        rung: r.get(12)?,
        parent: r.get(13)?,
        started: r.get(14)?,
        finished: r.get(15)?,
        seconds: r.get(16)?,
        error: r.get(17)?,
        metrics,
    }))
}

/// A lease holder on this host whose process is gone (killed, crashed) holds nothing: its lease
/// is taken over at once instead of after `stale_after`. Owners on other hosts can't be checked.
fn owner_is_dead(owner: &str) -> bool {
    let mut words = owner.split_whitespace();
    let (Some("pid"), Some(pid), Some("on"), Some(host)) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return false;
    };
    let this_host =
        std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string());
    match (pid.parse::<u32>(), this_host) {
        (Ok(pid), Ok(this)) if this == host => {
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
    use serde_json::json;

    #[test]
    fn diff_names_nested_and_missing_keys() {
        let mut out = Vec::new();
        let stored = json!({ "a": 1, "b": { "c": [1, 2], "d": "x" }, "gone": true });
        diff(
            "",
            &stored,
            &json!({ "a": 1, "b": { "c": [1, 3], "d": "x" }, "new": 0 }),
            &mut out,
        );
        let keys: Vec<&str> = out.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["b.c", "gone", "new"]);
        assert_eq!(out[1].1, "gone: stored true, now null");
        out.clear();
        diff("", &json!(1), &json!("1"), &mut out);
        assert_eq!(out[0].0, "settings");
    }

    #[test]
    fn states_round_trip_through_their_words() {
        for s in [
            TrialState::Running,
            TrialState::Complete,
            TrialState::Pruned,
            TrialState::Failed,
        ] {
            assert_eq!(parse_state(state_str(s)), Some(s));
        }
        assert_eq!(parse_state("done"), None);
    }

    #[test]
    fn in_memory_store_numbers_trials_from_zero() {
        let store = Store::open(Path::new(":memory:")).expect("in-memory store");
        let study = store.open_study("s", &json!({})).unwrap();
        let design = Design::from_ron("Design(name: \"empty\")", "test").unwrap();
        let new = NewTrial {
            kind: TrialKind::Baseline,
            label: Some("empty".into()),
            design,
            canonical: "h".into(),
            fidelity: 10,
            seed: 7,
            rung: 0,
            parent: None,
        };
        let numbers: Vec<usize> = (0..3)
            .map(|_| store.begin_trial(study, &new).unwrap().number)
            .collect();
        assert_eq!(numbers, [0, 1, 2]);
        let missing = store.complete_trial(
            TrialId(99),
            &TrialResult {
                accuracy: 1.0,
                params: 0,
                percent: 0.0,
                seconds: 0.0,
                metrics: json!(null),
            },
        );
        assert!(matches!(
            missing,
            Err(StoreError::UnknownTrial { id: 99, .. })
        ));
        assert_eq!(
            store.trials(study).unwrap()[2].label.as_deref(),
            Some("empty")
        );
    }
}
