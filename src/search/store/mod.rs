//! The study store: studies and their trials, so a search resumes after a crash, reports can be
//! rebuilt at any time, and many workers can share one study.
//!
//! This module owns [`Store`] (the SQLite file: opening it, looking studies up) with the error and
//! id types; `backend` is the interface both stores implement ([`StudyStore`]) and the parsing of
//! `--storage`; `pg` the PostgreSQL store; `claims` the SQLite side of worker claims;
//! `schema` the tables, `lease` the one-process-per-study lease of `pets search` on SQLite,
//! `trials` the SQLite trial lifecycle and `rows` the trial types and their decoding.

mod backend;
mod claims;
mod lease;
mod pg;
mod rows;
mod schema;
mod trials;

pub use backend::{
    host_identity, open_storage, owner_name, redact, Claim, Next, Planner, Storage, StudyStore,
    TrialEnd,
};
pub use lease::{KeepAlive, DEFAULT_STALE_AFTER};
pub use pg::PgStore;
pub use rows::{state_str, NewTrial, TrialKind, TrialResult, TrialRow};
pub use schema::SCHEMA_VERSION;

use super::TrialState;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior};
use schema::SCHEMA;
use serde_json::Value;
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use thiserror::Error;

/// Error text that the single-process `pets search` of earlier versions gave the trials a killed
/// process had left running (it redid them under new numbers). Stores may still hold such trials:
/// they count for nothing. Today a trial whose process died is claimed again with its number.
pub const INTERRUPTED: &str = "interrupted: the process running it stopped";

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
    #[error("study '{study}' was created with other settings ({}); rerun with the original settings or use another study name", differences.join("; "))]
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
    #[error("study store {url}: {context}: {source}")]
    Postgres {
        /// Without its password.
        url: String,
        context: String,
        source: ::postgres::Error,
    },
    #[error("unsupported study store {location}: expected a SQLite path, sqlite://PATH or postgres://USER@HOST/DATABASE")]
    UnsupportedStorage { location: String },
    #[error("study '{study}', trial {number} is now held by {owner}: this worker's heartbeat went stale and the trial was claimed again")]
    NotOwner {
        study: String,
        number: usize,
        owner: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StudyId(pub i64);
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TrialId(pub i64);

pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// This store's identity in study leases: pid, host and a nonce (two stores of one process differ).
    owner: String,
    stale_after: Duration,
    /// Leases this store took, released on drop.
    held: RefCell<Vec<StudyId>>,
}

/// Unix time in seconds.
pub fn now() -> f64 {
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
        // Two stores of one process hold leases under different names.
        static OPENED: AtomicU64 = AtomicU64::new(0);
        let owner = owner_name(&format!(
            " store {}",
            OPENED.fetch_add(1, Ordering::Relaxed)
        ));
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
            1 => {
                tx.execute_batch(schema::MIGRATE_1_TO_2)
                    .map_err(store.err("upgrading the schema to version 2"))?;
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
}
