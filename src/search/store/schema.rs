//! The store's SQL schema, its version, and the column list trials are read with.

/// Bumped with every schema change: a file written by another version is refused, not misread.
pub const SCHEMA_VERSION: i32 = 1;

pub(crate) const SCHEMA: &str = "
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
pub(crate) const COLUMNS: &str =
    "id, number, kind, label, design, canonical, state, accuracy, params, percent, \
                       fidelity, seed, rung, parent, started, finished, seconds, error, metrics";
