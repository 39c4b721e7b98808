//! The trial lifecycle in the store: begin (numbered, under the lease), complete, fail or prune
//! exactly once, list, and reclaim the trials a dead process left running.

use super::rows::{parse_state, RawRow};
use super::schema::COLUMNS;
use super::{
    now, NewTrial, Store, StoreError, StudyId, TrialId, TrialResult, TrialRow, INTERRUPTED,
};
use rusqlite::{params, OptionalExtension};

impl Store {
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
        let (_, number) = self.insert_running(&tx, study, &name, new, now(), None)?;
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

    /// Inserts `new` as the study's next trial, running since `started`; with an `owner` (a
    /// worker's claim) also its first heartbeat. Returns the row id and the trial number.
    pub(super) fn insert_running(
        &self,
        tx: &rusqlite::Transaction,
        study: StudyId,
        name: &str,
        new: &NewTrial,
        started: f64,
        owner: Option<&str>,
    ) -> Result<(i64, usize), StoreError> {
        let number: usize = tx
            .query_row(
                "SELECT COALESCE(MAX(number) + 1, 0) FROM trials WHERE study_id = ?1",
                [study.0],
                |r| r.get(0),
            )
            .map_err(self.err(format!("numbering a trial of study '{name}'")))?;
        tx.execute(
            "INSERT INTO trials (study_id, number, kind, label, design, canonical, state, fidelity,
             seed, rung, parent, started, owner, heartbeat)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'running', ?7, ?8, ?9, ?10, ?11, ?12,
                     CASE WHEN ?12 IS NULL THEN NULL ELSE ?11 END)",
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
                started,
                owner
            ],
        )
        .map_err(self.err(format!("inserting trial {number} of study '{name}'")))?;
        Ok((tx.last_insert_rowid(), number))
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
            .query_map([study.0], RawRow::sqlite)
            .map_err(self.err(&context))?;
        let rows: Vec<RawRow> = rows.collect::<Result<_, _>>().map_err(self.err(&context))?;
        rows.into_iter().map(|r| r.decode(&name)).collect()
    }

    /// Trials left running by a process that died: marks them failed ([`INTERRUPTED`]) and returns
    /// them so the caller reruns them first. Requires the lease, so it never touches live trials.
    pub fn reclaim_running(&self, study: StudyId) -> Result<Vec<TrialRow>, StoreError> {
        let tx = self.immediate("reclaiming running trials")?;
        self.heartbeat(study)?;
        // Trials of live `pets worker`s (fresh heartbeats) are theirs, not this process's to redo.
        let time = now();
        let cutoff = time - self.stale_after.as_secs_f64();
        let filter =
            format!("AND state = 'running' AND (heartbeat IS NULL OR heartbeat < {cutoff:?})");
        let running = self.select(study, &filter)?;
        let sql = "UPDATE trials SET state = 'failed', finished = ?2, error = ?3 WHERE study_id = ?1 AND state = 'running'
                   AND (heartbeat IS NULL OR heartbeat < ?4)";
        tx.execute(sql, params![study.0, time, INTERRUPTED, cutoff])
            .map_err(self.err("reclaiming running trials"))?;
        tx.commit().map_err(self.err("reclaiming running trials"))?;
        Ok(running)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::store::TrialKind;
    use crate::spec::Design;
    use serde_json::json;
    use std::path::Path;

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
