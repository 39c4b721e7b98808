//! The trial lifecycle in the SQLite store: insert a claimed trial (numbered, running), complete,
//! fail or prune it exactly once, list.

use super::rows::{parse_state, RawRow};
use super::schema::COLUMNS;
use super::{now, NewTrial, Store, StoreError, StudyId, TrialId, TrialResult, TrialRow};
use rusqlite::{params, OptionalExtension};

impl Store {
    /// Inserts `new` as the study's next trial, running since `started`, owned by `owner` (its
    /// claimer) with its first heartbeat. Returns the row id and the trial number; a parent
    /// (the trial a promotion comes from) must exist in the study.
    pub(super) fn insert_running(
        &self,
        tx: &rusqlite::Transaction,
        study: StudyId,
        name: &str,
        new: &NewTrial,
        started: f64,
        owner: &str,
    ) -> Result<(i64, usize), StoreError> {
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
                    study: name.into(),
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
        tx.execute(
            "INSERT INTO trials (study_id, number, kind, label, design, canonical, state, fidelity,
             seed, rung, parent, started, owner, heartbeat)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'running', ?7, ?8, ?9, ?10, ?11, ?12, ?11)",
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
        let name = self.study_name(study)?;
        let query = format!("SELECT {COLUMNS} FROM trials WHERE study_id = ?1 ORDER BY number");
        let context = format!("reading the trials of study '{name}'");
        let mut stmt = self.conn.prepare(&query).map_err(self.err(&context))?;
        let rows = stmt
            .query_map([study.0], RawRow::sqlite)
            .map_err(self.err(&context))?;
        let rows: Vec<RawRow> = rows.collect::<Result<_, _>>().map_err(self.err(&context))?;
        rows.into_iter().map(|r| r.decode(&name)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::store::{Claim, Next, StudyStore, TrialKind};
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
        let long = std::time::Duration::from_secs(60);
        let numbers: Vec<usize> = (0..3)
            .map(|_| {
                let mut plan = |_: &[TrialRow]| Ok(Next::Trial(new.clone()));
                match store.claim(study, "me", long, &mut plan).unwrap() {
                    Claim::New(row) => row.number,
                    other => panic!("{other:?}"),
                }
            })
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
