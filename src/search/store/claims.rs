//! The SQLite store behind [`StudyStore`]: worker claims on one file, for several processes on one
//! machine. `BEGIN IMMEDIATE` takes the file's write lock up front, which serialises claims the
//! way PostgreSQL's row lock does; WAL lets readers go on meanwhile.

use super::backend::{reclaimable, Claim, Next, Planner, StudyStore, TrialEnd};
use super::{now, Store, StoreError, StudyId, TrialId, TrialRow};
use rusqlite::{params, OptionalExtension};
use serde_json::Value;
use std::time::Duration;

impl StudyStore for Store {
    fn location(&self) -> String {
        self.path().display().to_string()
    }

    fn connect_again(&self) -> Result<Box<dyn StudyStore>, StoreError> {
        Ok(Box::new(Store::open(self.path())?))
    }

    fn join_study(&self, name: &str, settings: &Value) -> Result<StudyId, StoreError> {
        let tx = self.immediate("joining a study")?;
        let found: Option<i64> = tx
            .query_row("SELECT id FROM studies WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()
            .map_err(self.err(format!("looking up study '{name}'")))?;
        let id = match found {
            Some(id) => {
                super::lease::check_settings(name, &Store::settings(self, StudyId(id))?, settings)?;
                id
            }
            None => {
                tx.execute(
                    "INSERT INTO studies (name, settings, created) VALUES (?1, ?2, ?3)",
                    params![name, settings.to_string(), now()],
                )
                .map_err(self.err(format!("creating study '{name}'")))?;
                tx.last_insert_rowid()
            }
        };
        tx.commit()
            .map_err(self.err(format!("joining study '{name}'")))?;
        Ok(StudyId(id))
    }

    fn study_id(&self, name: &str) -> Result<StudyId, StoreError> {
        Store::study_id(self, name)
    }

    fn settings(&self, study: StudyId) -> Result<Value, StoreError> {
        Store::settings(self, study)
    }

    fn trials(&self, study: StudyId) -> Result<Vec<TrialRow>, StoreError> {
        Store::trials(self, study)
    }

    fn claim(
        &self,
        study: StudyId,
        owner: &str,
        stale_after: Duration,
        plan: &mut Planner,
    ) -> crate::Result<Claim> {
        let tx = self.immediate("claiming a trial")?;
        let name = self.study_name(study)?;
        let time = now();
        let stale = {
            let context = format!("looking for stale trials of study '{name}'");
            let mut stmt = tx
                .prepare(
                    "SELECT id, owner, ?2 - heartbeat FROM trials WHERE study_id = ?1
                     AND state = 'running' ORDER BY number",
                )
                .map_err(self.err(&context))?;
            let running = stmt
                .query_map(params![study.0, time], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, Option<f64>>(2)?,
                    ))
                })
                .map_err(self.err(&context))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(self.err(&context))?;
            running
                .into_iter()
                .find(|(_, owner, age)| reclaimable(owner.as_deref(), *age, stale_after))
                .map(|(id, _, _)| id)
        };
        let (id, reclaimed) = match stale {
            Some(id) => {
                tx.execute(
                    "UPDATE trials SET owner = ?2, heartbeat = ?3, started = ?3, attempts = attempts + 1
                     WHERE id = ?1",
                    params![id, owner, time],
                )
                .map_err(self.err(format!("re-claiming a trial of study '{name}'")))?;
                (id, true)
            }
            None => match plan(&Store::trials(self, study)?)? {
                Next::Wait => return Ok(Claim::Wait),
                Next::Done => return Ok(Claim::Done),
                Next::Trial(new) => {
                    let (id, _) = self.insert_running(&tx, study, &name, &new, time, owner)?;
                    (id, false)
                }
            },
        };
        tx.commit()
            .map_err(self.err(format!("claiming a trial of study '{name}'")))?;
        let row = self.trial(study, id)?;
        Ok(Claim::taken(row, reclaimed))
    }

    fn beat(&self, trial: TrialId, owner: &str) -> Result<bool, StoreError> {
        let n = self
            .conn
            .execute(
                "UPDATE trials SET heartbeat = ?3 WHERE id = ?1 AND owner = ?2 AND state = 'running'",
                params![trial.0, owner, now()],
            )
            .map_err(self.err("refreshing a trial's heartbeat"))?;
        Ok(n == 1)
    }

    fn finish(&self, trial: TrialId, owner: &str, end: &TrialEnd) -> Result<(), StoreError> {
        let tx = self.immediate("finishing a trial")?;
        let holder: Option<(i64, Option<String>)> = tx
            .query_row(
                "SELECT study_id, owner FROM trials WHERE id = ?1",
                [trial.0],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(self.err(format!("reading trial id {}", trial.0)))?;
        if let Some((study, Some(holder))) = holder {
            if holder != owner {
                let row = self.trial(StudyId(study), trial.0)?;
                return Err(StoreError::NotOwner {
                    study: self.study_name(StudyId(study))?,
                    number: row.number,
                    owner: holder,
                });
            }
        }
        // The state guard of complete/fail names a trial that already ended.
        match end {
            TrialEnd::Complete(result) => self.complete_trial(trial, result)?,
            TrialEnd::Failed(error) => self.fail_trial(trial, error)?,
        }
        tx.commit()
            .map_err(self.err(format!("finishing trial id {}", trial.0)))
    }
}

impl Store {
    /// One trial by id, checked to belong to `study`.
    fn trial(&self, study: StudyId, id: i64) -> Result<TrialRow, StoreError> {
        Store::trials(self, study)?
            .into_iter()
            .find(|t| t.id == TrialId(id))
            .ok_or_else(|| StoreError::UnknownTrial {
                id,
                path: self.path().display().to_string(),
            })
    }
}
