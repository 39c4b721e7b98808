//! The PostgreSQL study store, for workers on many machines. A claim locks the study's row
//! (`SELECT … FOR UPDATE`), so proposals are serialised per study while other studies go on; a
//! trial whose worker is gone is taken with `FOR UPDATE SKIP LOCKED`. Times come from the
//! server's clock.

use super::backend::{reclaimable, redact, Claim, Next, Planner, StudyStore, TrialEnd};
use super::rows::{parse_state, RawRow};
use super::schema::{COLUMNS, PG_SCHEMA, PG_SCHEMA_VERSION};
use super::{StoreError, StudyId, TrialId, TrialRow};
use postgres::{Client, Config, GenericClient, NoTls, Row};
use serde_json::Value;
use std::cell::RefCell;
use std::time::Duration;

/// Seconds since the Unix epoch on the server.
const NOW: &str = "extract(epoch from clock_timestamp())::float8";
/// Key of the advisory lock under which workers starting together create the schema once.
const SCHEMA_LOCK: i64 = 0x7065_7473; // "pets"

pub struct PgStore {
    client: RefCell<Client>,
    /// As given, to connect again (heartbeat threads).
    url: String,
}

fn pg(url: &str, context: impl Into<String>) -> impl FnOnce(postgres::Error) -> StoreError {
    let (url, context) = (redact(url), context.into());
    move |source| StoreError::Postgres {
        url,
        context,
        source,
    }
}

impl PgStore {
    /// Connects (10 s timeout unless the URL sets `connect_timeout`) and creates the tables if
    /// they are missing.
    pub fn connect(url: &str) -> Result<PgStore, StoreError> {
        let mut config: Config = url.parse().map_err(pg(url, "reading the URL"))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        let mut client = config.connect(NoTls).map_err(pg(url, "connecting"))?;
        let mut tx = client
            .transaction()
            .map_err(pg(url, "creating the schema"))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
            .map_err(pg(url, "locking the schema"))?;
        tx.batch_execute(PG_SCHEMA)
            .map_err(pg(url, "creating the schema"))?;
        let found: Option<i32> = tx
            .query_opt("SELECT version FROM pets_schema", &[])
            .map_err(pg(url, "reading the schema version"))?
            .map(|r| r.get(0));
        match found {
            None => {
                tx.execute(
                    "INSERT INTO pets_schema (version) VALUES ($1)",
                    &[&PG_SCHEMA_VERSION],
                )
                .map_err(pg(url, "setting the schema version"))?;
            }
            Some(PG_SCHEMA_VERSION) => {}
            Some(found) => {
                return Err(StoreError::SchemaVersion {
                    path: redact(url),
                    found,
                })
            }
        }
        tx.commit().map_err(pg(url, "creating the schema"))?;
        Ok(PgStore {
            client: RefCell::new(client),
            url: url.to_string(),
        })
    }

    fn err(&self, context: impl Into<String>) -> impl FnOnce(postgres::Error) -> StoreError {
        pg(&self.url, context)
    }

    fn name(&self, c: &mut impl GenericClient, study: StudyId) -> Result<String, StoreError> {
        c.query_opt("SELECT name FROM pets_studies WHERE id = $1", &[&study.0])
            .map_err(self.err("looking up a study name"))?
            .map(|r| r.get(0))
            .ok_or_else(|| StoreError::UnknownStudy {
                study: format!("#{}", study.0),
                path: redact(&self.url),
            })
    }

    fn select(
        &self,
        c: &mut impl GenericClient,
        study: StudyId,
        name: &str,
        filter: &str,
    ) -> Result<Vec<TrialRow>, StoreError> {
        let query = format!(
            "SELECT {COLUMNS} FROM pets_trials WHERE study_id = $1 {filter} ORDER BY number"
        );
        let context = format!("reading the trials of study '{name}'");
        let rows = c
            .query(query.as_str(), &[&study.0])
            .map_err(self.err(&context))?;
        rows.iter()
            .map(|r| raw(r).map_err(self.err(&context))?.decode(name))
            .collect()
    }
}

impl PgStore {
    /// The lowest-numbered [`reclaimable`] running trial of the study, locked with `SKIP LOCKED`
    /// (a trial its worker is finishing right now is not taken). The candidates are read without
    /// locks and re-checked under the lock, so live trials' heartbeats never wait on a claim.
    fn stale(
        &self,
        c: &mut impl GenericClient,
        study: StudyId,
        stale_after: Duration,
        context: &str,
    ) -> Result<Option<i64>, StoreError> {
        let running = format!(
            "SELECT id, owner, {NOW} - heartbeat FROM pets_trials
             WHERE study_id = $1 AND state = 'running' ORDER BY number"
        );
        let lock = format!(
            "SELECT id, owner, {NOW} - heartbeat FROM pets_trials
             WHERE id = $1 AND state = 'running' FOR UPDATE SKIP LOCKED"
        );
        let gone = |r: &Row| -> Result<bool, postgres::Error> {
            let owner: Option<String> = r.try_get(1)?;
            Ok(reclaimable(owner.as_deref(), r.try_get(2)?, stale_after))
        };
        let rows = c
            .query(running.as_str(), &[&study.0])
            .map_err(self.err(context))?;
        for row in rows {
            if !gone(&row).map_err(self.err(context))? {
                continue;
            }
            let id: i64 = row.try_get(0).map_err(self.err(context))?;
            let locked = c
                .query_opt(lock.as_str(), &[&id])
                .map_err(self.err(context))?;
            if let Some(locked) = locked {
                if gone(&locked).map_err(self.err(context))? {
                    return Ok(Some(id));
                }
            }
        }
        Ok(None)
    }
}

/// The columns of [`COLUMNS`], in that order.
fn raw(r: &Row) -> Result<RawRow, postgres::Error> {
    Ok(RawRow {
        id: r.try_get(0)?,
        number: r.try_get(1)?,
        kind: r.try_get(2)?,
        label: r.try_get(3)?,
        design: r.try_get(4)?,
        canonical: r.try_get(5)?,
        state: r.try_get(6)?,
        accuracy: r.try_get(7)?,
        params: r.try_get(8)?,
        percent: r.try_get(9)?,
        fidelity: r.try_get(10)?,
        seed: r.try_get(11)?,
        rung: r.try_get(12)?,
        parent: r.try_get(13)?,
        started: r.try_get(14)?,
        finished: r.try_get(15)?,
        seconds: r.try_get(16)?,
        error: r.try_get(17)?,
        metrics: r.try_get(18)?,
        owner: r.try_get(19)?,
        attempts: r.try_get(20)?,
    })
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl StudyStore for PgStore {
    fn location(&self) -> String {
        redact(&self.url)
    }

    fn connect_again(&self) -> Result<Box<dyn StudyStore>, StoreError> {
        Ok(Box::new(PgStore::connect(&self.url)?))
    }

    fn join_study(&self, name: &str, settings: &Value) -> Result<StudyId, StoreError> {
        let client = &mut *self.client.borrow_mut();
        let context = format!("joining study '{name}'");
        // ON CONFLICT: workers starting together all create it; one insert wins, all read it.
        client
            .execute(
                &*format!("INSERT INTO pets_studies (name, settings, created) VALUES ($1, $2, {NOW}) ON CONFLICT (name) DO NOTHING"),
                &[&name, &settings.to_string()],
            )
            .map_err(self.err(&context))?;
        let row = client
            .query_one(
                "SELECT id, settings FROM pets_studies WHERE name = $1",
                &[&name],
            )
            .map_err(self.err(&context))?;
        let stored: String = row.get(1);
        let stored: Value =
            serde_json::from_str(&stored).map_err(|e| StoreError::CorruptSettings {
                study: name.into(),
                what: e.to_string(),
            })?;
        super::lease::check_settings(name, &stored, settings)?;
        Ok(StudyId(row.get(0)))
    }

    fn study_id(&self, name: &str) -> Result<StudyId, StoreError> {
        self.client
            .borrow_mut()
            .query_opt("SELECT id FROM pets_studies WHERE name = $1", &[&name])
            .map_err(self.err(format!("looking up study '{name}'")))?
            .map(|r| StudyId(r.get(0)))
            .ok_or_else(|| StoreError::UnknownStudy {
                study: name.into(),
                path: redact(&self.url),
            })
    }

    fn settings(&self, study: StudyId) -> Result<Value, StoreError> {
        let client = &mut *self.client.borrow_mut();
        let name = self.name(client, study)?;
        let text: String = client
            .query_one(
                "SELECT settings FROM pets_studies WHERE id = $1",
                &[&study.0],
            )
            .map_err(self.err(format!("reading the settings of study '{name}'")))?
            .get(0);
        serde_json::from_str(&text).map_err(|e| StoreError::CorruptSettings {
            study: name,
            what: e.to_string(),
        })
    }

    fn trials(&self, study: StudyId) -> Result<Vec<TrialRow>, StoreError> {
        let client = &mut *self.client.borrow_mut();
        let name = self.name(client, study)?;
        self.select(client, study, &name, "")
    }

    fn claim(
        &self,
        study: StudyId,
        owner: &str,
        stale_after: Duration,
        plan: &mut Planner,
    ) -> crate::Result<Claim> {
        let client = &mut *self.client.borrow_mut();
        let mut tx = client.transaction().map_err(self.err("claiming a trial"))?;
        let name: String = tx
            .query_opt(
                "SELECT name FROM pets_studies WHERE id = $1 FOR UPDATE",
                &[&study.0],
            )
            .map_err(self.err("locking a study"))?
            .map(|r| r.get(0))
            .ok_or_else(|| StoreError::UnknownStudy {
                study: format!("#{}", study.0),
                path: redact(&self.url),
            })?;
        let context = format!("claiming a trial of study '{name}'");
        let stale = self.stale(&mut tx, study, stale_after, &context)?;
        let (id, reclaimed): (i64, bool) = match stale {
            Some(id) => {
                tx.execute(
                    &*format!("UPDATE pets_trials SET owner = $2, heartbeat = {NOW}, started = {NOW}, attempts = attempts + 1 WHERE id = $1"),
                    &[&id, &owner],
                )
                .map_err(self.err(&context))?;
                (id, true)
            }
            None => match plan(&self.select(&mut tx, study, &name, "")?)? {
                Next::Wait => return Ok(Claim::Wait),
                Next::Done => return Ok(Claim::Done),
                Next::Trial(new) => {
                    // The study's row lock makes MAX + 1 safe: no other claim runs in between.
                    let number: i64 = tx
                        .query_one(
                            "SELECT COALESCE(MAX(number) + 1, 0) FROM pets_trials WHERE study_id = $1",
                            &[&study.0],
                        )
                        .map_err(self.err(&context))?
                        .get(0);
                    let sql = format!(
                        "INSERT INTO pets_trials (study_id, number, kind, label, design, canonical, state,
                         fidelity, seed, rung, parent, started, owner, heartbeat)
                         VALUES ($1, $2, $3, $4, $5, $6, 'running', $7, $8, $9, $10, {NOW}, $11, {NOW})
                         RETURNING id"
                    );
                    let row = tx
                        .query_one(
                            sql.as_str(),
                            &[
                                &study.0,
                                &number,
                                &new.kind.as_str(),
                                &new.label,
                                &new.design.to_ron(),
                                &new.canonical,
                                &count(new.fidelity),
                                // Bit-for-bit: the cast back on reading restores the seed.
                                &(new.seed as i64),
                                &count(new.rung),
                                &new.parent.map(count),
                                &owner,
                            ],
                        )
                        .map_err(self.err(&context))?;
                    (row.get(0), false)
                }
            },
        };
        let mut rows = self.select(&mut tx, study, &name, &format!("AND id = {id}"))?;
        tx.commit().map_err(self.err(&context))?;
        let row = rows.pop().ok_or_else(|| StoreError::UnknownTrial {
            id,
            path: redact(&self.url),
        })?;
        Ok(Claim::taken(row, reclaimed))
    }

    fn beat(&self, trial: TrialId, owner: &str) -> Result<bool, StoreError> {
        let n = self
            .client
            .borrow_mut()
            .execute(
                &*format!("UPDATE pets_trials SET heartbeat = {NOW} WHERE id = $1 AND owner = $2 AND state = 'running'"),
                &[&trial.0, &owner],
            )
            .map_err(self.err("refreshing a trial's heartbeat"))?;
        Ok(n == 1)
    }

    fn finish(&self, trial: TrialId, owner: &str, end: &TrialEnd) -> Result<(), StoreError> {
        let client = &mut *self.client.borrow_mut();
        let context = format!("finishing trial id {}", trial.0);
        let n = match end {
            TrialEnd::Complete(r) => client.execute(
                &*format!("UPDATE pets_trials SET state = 'complete', finished = {NOW}, accuracy = $3, params = $4,
                 percent = $5, seconds = $6, metrics = $7 WHERE id = $1 AND owner = $2 AND state = 'running'"),
                &[&trial.0, &owner, &r.accuracy, &count(r.params), &r.percent, &r.seconds, &r.metrics.to_string()],
            ),
            TrialEnd::Failed(error) => client.execute(
                &*format!("UPDATE pets_trials SET state = 'failed', finished = {NOW}, seconds = {NOW} - started,
                 error = $3 WHERE id = $1 AND owner = $2 AND state = 'running'"),
                &[&trial.0, &owner, error],
            ),
        }
        .map_err(self.err(&context))?;
        if n == 1 {
            return Ok(());
        }
        // Nothing changed: say why (gone, ended, or someone else's now).
        let row = client
            .query_opt(
                "SELECT study_id, number, state, owner FROM pets_trials WHERE id = $1",
                &[&trial.0],
            )
            .map_err(self.err(&context))?
            .ok_or_else(|| StoreError::UnknownTrial {
                id: trial.0,
                path: redact(&self.url),
            })?;
        let study = self.name(client, StudyId(row.get(0)))?;
        let number = usize::try_from(row.get::<_, i64>(1)).unwrap_or(0);
        let (state, holder): (String, Option<String>) = (row.get(2), row.get(3));
        match (parse_state(&state), holder) {
            (Some(crate::search::TrialState::Running), Some(holder)) => Err(StoreError::NotOwner {
                study,
                number,
                owner: holder,
            }),
            (Some(state), _) => Err(StoreError::NotRunning {
                study,
                number,
                state,
            }),
            (None, _) => Err(StoreError::Corrupt {
                study,
                number,
                what: format!("unknown state '{state}'"),
            }),
        }
    }
}
