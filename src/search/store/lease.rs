//! The study lease of `pets search` on SQLite: one such process runs a study at a time (a second
//! is refused; `pets worker`s are not: they join). Heartbeats keep it, and a stale or dead owner
//! loses it. Resuming a study also checks its settings against the stored ones.

use super::backend::owner_is_dead;
use super::{connect, now, Store, StoreError, StudyId};
use rusqlite::{params, OptionalExtension};
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

/// A lease whose heartbeat is older than this belongs to a dead process and may be taken over.
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(120);

impl Store {
    /// How long a lease may go without a heartbeat before another process may take the study.
    pub fn with_stale_after(mut self, stale_after: Duration) -> Store {
        self.stale_after = stale_after;
        self
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
                check_settings(name, &stored, settings)?;
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
    /// long training run does not let the lease go stale. A failed beat is not reported: a lost
    /// lease only lets a second `pets search` in, which claims trials like any worker.
    pub fn keep_alive(&self, study: StudyId, every: Duration) -> Result<KeepAlive, StoreError> {
        self.heartbeat(study)?;
        let conn = connect(&self.path)?;
        let owner = self.owner.clone();
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                let sql = "UPDATE studies SET heartbeat = ?3 WHERE id = ?1 AND owner = ?2";
                // A lost lease or a locked file: the next beat tries again (see above).
                let _ = conn.execute(sql, params![study.0, owner, now()]);
            }
        });
        Ok(KeepAlive {
            stop: Some(stop),
            thread: Some(thread),
        })
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

/// `SettingsMismatch` naming every key where `given` differs from the study's `stored` settings.
pub(crate) fn check_settings(name: &str, stored: &Value, given: &Value) -> Result<(), StoreError> {
    let mut differences = Vec::new();
    diff("", stored, given, &mut differences);
    if differences.is_empty() {
        return Ok(());
    }
    let keys = differences.iter().map(|(k, _)| k.clone()).collect();
    let differences = differences.into_iter().map(|(_, d)| d).collect();
    Err(StoreError::SettingsMismatch {
        study: name.into(),
        keys,
        differences,
    })
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
}
