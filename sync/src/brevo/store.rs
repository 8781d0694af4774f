//! The embedded on-disk store (SQLite): accepted changes live here until Brevo acknowledges them.
//!
//! Tables: `contacts` (one row per contact: persisted state, digest of its derived attributes,
//! the digest Brevo acknowledged, the digest Brevo rejected) and `events` (conversions not yet
//! acknowledged). A contact is pending when `digest` differs from `acked` and `rejected`.
//! The database runs in WAL mode with `synchronous=NORMAL`: a committed transaction survives
//! the process being killed; an OS crash or power loss may lose the last transactions.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};

use super::error::BrevoError;

/// A contact row read back at start.
#[derive(Debug, Clone)]
pub(crate) struct StoredContact {
    pub contact: String,
    pub state: String,
    pub digest: u64,
    pub acked: u64,
    pub rejected: u64,
}

/// The store.
pub(crate) struct Store {
    conn: Connection,
    path: PathBuf,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS contacts (
    contact  TEXT PRIMARY KEY,
    state    TEXT NOT NULL,
    digest   INTEGER NOT NULL,
    acked    INTEGER NOT NULL DEFAULT 0,
    rejected INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    id   INTEGER PRIMARY KEY AUTOINCREMENT,
    body TEXT NOT NULL
);
";

// Digests are u64; SQLite integers are i64. The bit pattern is stored as is.
fn to_sql(d: u64) -> i64 {
    d as i64
}
fn from_sql(d: i64) -> u64 {
    d as u64
}

impl Store {
    /// Opens (or creates) the store at `path`; `None` opens a private in-memory database
    /// (not durable).
    pub(crate) fn open(path: Option<&Path>) -> Result<Store, BrevoError> {
        let shown = path.map_or_else(|| PathBuf::from(":memory:"), Path::to_path_buf);
        let err = |source| BrevoError::Store {
            path: shown.clone(),
            source,
        };
        let conn = match path {
            Some(p) => Connection::open(p),
            None => Connection::open_in_memory(),
        }
        .map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        Ok(Store { conn, path: shown })
    }

    fn err(&self, source: rusqlite::Error) -> BrevoError {
        BrevoError::Store {
            path: self.path.clone(),
            source,
        }
    }

    /// Every contact row.
    pub(crate) fn load_contacts(&self) -> Result<Vec<StoredContact>, BrevoError> {
        let run = || -> rusqlite::Result<Vec<StoredContact>> {
            let mut stmt = self
                .conn
                .prepare("SELECT contact, state, digest, acked, rejected FROM contacts")?;
            let rows = stmt.query_map([], |r| {
                Ok(StoredContact {
                    contact: r.get(0)?,
                    state: r.get(1)?,
                    digest: from_sql(r.get(2)?),
                    acked: from_sql(r.get(3)?),
                    rejected: from_sql(r.get(4)?),
                })
            })?;
            rows.collect()
        };
        run().map_err(|e| self.err(e))
    }

    /// Every event not yet acknowledged, oldest first.
    pub(crate) fn load_events(&self) -> Result<Vec<(i64, String)>, BrevoError> {
        let run = || -> rusqlite::Result<Vec<(i64, String)>> {
            let mut stmt = self
                .conn
                .prepare("SELECT id, body FROM events ORDER BY id")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        };
        run().map_err(|e| self.err(e))
    }

    /// Commits changed contacts and new events in one transaction; returns the events' ids.
    pub(crate) fn commit(
        &mut self,
        contacts: &[(&str, String, u64)],
        events: &[String],
    ) -> Result<Vec<i64>, BrevoError> {
        let run = |conn: &mut Connection| -> rusqlite::Result<Vec<i64>> {
            let tx = conn.transaction()?;
            let mut ids = Vec::with_capacity(events.len());
            {
                let mut upsert = tx.prepare_cached(
                    "INSERT INTO contacts (contact, state, digest) VALUES (?1, ?2, ?3)
                     ON CONFLICT(contact) DO UPDATE SET state = excluded.state, digest = excluded.digest",
                )?;
                for (contact, state, digest) in contacts {
                    upsert.execute(params![contact, state, to_sql(*digest)])?;
                }
                let mut insert = tx.prepare_cached("INSERT INTO events (body) VALUES (?1)")?;
                for body in events {
                    insert.execute(params![body])?;
                    ids.push(tx.last_insert_rowid());
                }
            }
            tx.commit()?;
            Ok(ids)
        };
        run(&mut self.conn).map_err(|e| self.err(e))
    }

    /// Records digests Brevo acknowledged (`rejected == false`) or rejected (`true`).
    pub(crate) fn record_outcomes(
        &mut self,
        outcomes: &[(&str, u64)],
        rejected: bool,
    ) -> Result<(), BrevoError> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let sql = if rejected {
            "UPDATE contacts SET rejected = ?2 WHERE contact = ?1"
        } else {
            "UPDATE contacts SET acked = ?2 WHERE contact = ?1"
        };
        let run = |conn: &mut Connection| -> rusqlite::Result<()> {
            let tx = conn.transaction()?;
            {
                let mut stmt = tx.prepare_cached(sql)?;
                for (contact, digest) in outcomes {
                    stmt.execute(params![contact, to_sql(*digest)])?;
                }
            }
            tx.commit()
        };
        run(&mut self.conn).map_err(|e| self.err(e))
    }

    /// Removes events Brevo acknowledged (or that were set aside).
    pub(crate) fn remove_events(&mut self, ids: &[i64]) -> Result<(), BrevoError> {
        if ids.is_empty() {
            return Ok(());
        }
        let run = |conn: &mut Connection| -> rusqlite::Result<()> {
            let tx = conn.transaction()?;
            {
                let mut stmt = tx.prepare_cached("DELETE FROM events WHERE id = ?1")?;
                for id in ids {
                    stmt.execute(params![id])?;
                }
            }
            tx.commit()
        };
        run(&mut self.conn).map_err(|e| self.err(e))
    }

    /// The acknowledged digest of one contact (tests and diagnostics).
    #[allow(dead_code)]
    pub(crate) fn acked(&self, contact: &str) -> Result<Option<u64>, BrevoError> {
        self.conn
            .query_row(
                "SELECT acked FROM contacts WHERE contact = ?1",
                params![contact],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map(|o| o.map(from_sql))
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("brevo.db");
        {
            let mut s = Store::open(Some(&path)).unwrap();
            s.commit(
                &[("a@x.io", "{}".into(), 7), ("b@x.io", "{}".into(), 8)],
                &[],
            )
            .unwrap();
            let ids = s
                .commit(
                    &[("a@x.io", "{\"f\":[]}".into(), u64::MAX)],
                    &["e1".into(), "e2".into()],
                )
                .unwrap();
            assert_eq!(ids.len(), 2);
            s.record_outcomes(&[("a@x.io", u64::MAX)], false).unwrap();
            s.record_outcomes(&[("b@x.io", 8)], true).unwrap();
            s.remove_events(&ids[..1]).unwrap();
        }
        let s = Store::open(Some(&path)).unwrap();
        let mut rows = s.load_contacts().unwrap();
        rows.sort_by(|a, b| a.contact.cmp(&b.contact));
        assert_eq!(rows[0].digest, u64::MAX);
        assert_eq!(rows[0].acked, u64::MAX);
        assert_eq!(rows[0].state, "{\"f\":[]}");
        assert_eq!((rows[1].acked, rows[1].rejected), (0, 8));
        let events = s.load_events().unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].1, "e2");
        assert_eq!(s.acked("a@x.io").unwrap(), Some(u64::MAX));
    }
}
