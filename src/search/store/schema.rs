//! The store's SQL schemas (SQLite and PostgreSQL), their versions, and the column list trials are
//! read with (the same names in both, so one decoder serves both).

/// Bumped with every schema change: a file written by another version is refused, not misread.
/// Version 2 added the claim columns of `pets worker` (owner, heartbeat, attempts).
pub const SCHEMA_VERSION: i32 = 2;

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
    owner TEXT,
    heartbeat REAL,
    attempts INTEGER NOT NULL DEFAULT 1,
    UNIQUE (study_id, number)
);
";

/// Version 1 files gain the claim columns; their trials keep NULL owners (a single process ran them).
pub(crate) const MIGRATE_1_TO_2: &str = "
ALTER TABLE trials ADD COLUMN owner TEXT;
ALTER TABLE trials ADD COLUMN heartbeat REAL;
ALTER TABLE trials ADD COLUMN attempts INTEGER NOT NULL DEFAULT 1;
";

/// The PostgreSQL schema: the same columns under `pets_` names (a shared database may hold other
/// tables). Every statement is idempotent; workers starting together create it under an advisory
/// lock. Times are the server's clock (Unix seconds), so workers on machines whose clocks
/// disagree still agree on which heartbeat is stale.
pub(crate) const PG_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS pets_schema (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS pets_studies (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    settings TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS pets_trials (
    id BIGSERIAL PRIMARY KEY,
    study_id BIGINT NOT NULL REFERENCES pets_studies(id),
    number BIGINT NOT NULL,
    kind TEXT NOT NULL,
    label TEXT,
    design TEXT NOT NULL,
    canonical TEXT NOT NULL,
    state TEXT NOT NULL,
    accuracy DOUBLE PRECISION,
    params BIGINT,
    percent DOUBLE PRECISION,
    fidelity BIGINT NOT NULL,
    seed BIGINT NOT NULL,
    rung BIGINT NOT NULL,
    parent BIGINT,
    started DOUBLE PRECISION NOT NULL,
    finished DOUBLE PRECISION,
    seconds DOUBLE PRECISION,
    error TEXT,
    metrics TEXT,
    owner TEXT,
    heartbeat DOUBLE PRECISION,
    attempts BIGINT NOT NULL DEFAULT 1,
    UNIQUE (study_id, number)
);
";

/// Version of [`PG_SCHEMA`], kept in `pets_schema`.
pub(crate) const PG_SCHEMA_VERSION: i32 = 1;

pub(crate) const COLUMNS: &str =
    "id, number, kind, label, design, canonical, state, accuracy, params, percent, \
     fidelity, seed, rung, parent, started, finished, seconds, error, metrics, owner, attempts";
