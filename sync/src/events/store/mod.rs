//! The durable event queue: SQLite segments that live until logx answers 2xx.
//!
//! A segment is the events one batch context (endpoint + envelope) gathered during one commit
//! interval, stored as their visitor JSON joined by commas, ready to be put in a request body.
//! Tables: `contexts` (endpoint, envelope JSON without `visitors`), `segments` (context, event
//! count, created time, body) and `dead_letters` (segments logx refused with 4xx, or that
//! outlived the age limit, with the answer).
//!
//! A body is stored LZ4-compressed (an LZ4 block; impression JSON repeats itself, about 11x
//! smaller) when that makes it smaller; `raw_bytes` then holds its length before compression,
//! and is NULL for a body stored as it is (as every body of a file from before this column).
//! Every byte SQLite writes to the WAL, checksums, copies back at checkpoint and frees on
//! delete costs CPU, so this roughly halves the store's cost per event.
//!
//! WAL with `synchronous=NORMAL`: a committed transaction survives the process being killed;
//! an OS crash may lose the last ones.
//!
//! The store is opened in exclusive locking mode: one client (one process) at a time owns it,
//! so two pipelines never send each other's events.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

/// Errors of the event store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventStoreError {
    /// SQLite failed at `path`.
    #[error("event store {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// A stored body could not be decompressed (the sender moves the row to the dead letters).
    #[error("event store {path}: segment {id} cannot be decompressed: {reason}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// The segment's row id.
        id: i64,
        /// What the decoder said.
        reason: String,
    },
    /// Another client or process has the store open.
    #[error("event store {path} is in use by another client or process (each needs its own file)")]
    Locked {
        /// The database file.
        path: PathBuf,
    },
}

/// A segment as read back from the store.
#[derive(Debug, Clone)]
pub(crate) struct StoredSegment {
    pub(crate) id: i64,
    pub(crate) context: i64,
    pub(crate) count: u32,
    pub(crate) created_ms: u64,
    pub(crate) bytes: usize,
}

/// A stored batch context.
#[derive(Debug, Clone)]
pub(crate) struct StoredContext {
    pub(crate) id: i64,
    pub(crate) endpoint: String,
    pub(crate) envelope: Vec<u8>,
}

/// One dead letter, for `flagbridge events dead-letters`.
#[derive(Debug, Clone, serde::Serialize)]
#[non_exhaustive]
pub struct DeadLetter {
    /// Row id (give it to `resend`).
    pub id: i64,
    /// The endpoint the events were sent to.
    pub endpoint: String,
    /// Events in the segment.
    pub events: u32,
    /// When the events were first stored (ms since the epoch).
    pub created_ms: u64,
    /// When they were set aside (ms since the epoch).
    pub failed_ms: u64,
    /// The last HTTP status (0: none, e.g. expired while the endpoint was unreachable).
    pub status: u16,
    /// Why: the endpoint's answer (truncated) or the age limit.
    pub reason: String,
}

/// Maps SQLite errors of the store at `path` (for use inside transactions, where `self` is
/// borrowed).
fn sqlite_error(path: PathBuf) -> impl Fn(rusqlite::Error) -> EventStoreError {
    move |source| EventStoreError::Sqlite {
        path: path.clone(),
        source,
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS event_contexts (
    id       INTEGER PRIMARY KEY,
    endpoint TEXT NOT NULL,
    envelope BLOB NOT NULL,
    UNIQUE (endpoint, envelope)
);
CREATE TABLE IF NOT EXISTS event_segments (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    context    INTEGER NOT NULL,
    count      INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    body       BLOB NOT NULL,
    raw_bytes  INTEGER
);
CREATE TABLE IF NOT EXISTS event_dead_letters (
    id         INTEGER PRIMARY KEY,
    context    INTEGER NOT NULL,
    count      INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    failed_ms  INTEGER NOT NULL,
    status     INTEGER NOT NULL,
    reason     TEXT NOT NULL,
    body       BLOB NOT NULL,
    raw_bytes  INTEGER
);
";

/// Tables that gained `raw_bytes` after their first release (a file created before has them
/// without it).
const COMPRESSED_TABLES: [&str; 2] = ["event_segments", "event_dead_letters"];

/// The body to store for `body`: LZ4-compressed with its length when that is smaller.
fn packed(body: &[u8]) -> (std::borrow::Cow<'_, [u8]>, Option<i64>) {
    let compressed = lz4_flex::block::compress(body);
    if compressed.len() < body.len() {
        (compressed.into(), Some(body.len() as i64))
    } else {
        (body.into(), None)
    }
}

/// The SQLite event store.
pub(crate) struct EventStore {
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for EventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl EventStore {
    /// Opens (or creates) the store at `path` and takes its lock.
    pub(crate) fn open(path: &Path) -> Result<EventStore, EventStoreError> {
        let shown = path.to_path_buf();
        let err = |source| EventStoreError::Sqlite {
            path: shown.clone(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            // A missing folder is created; an error here shows up as SQLite's below.
            let _ = std::fs::create_dir_all(parent);
        }
        let conn = Connection::open(path).map_err(&err)?;
        conn.busy_timeout(Duration::from_millis(200))
            .map_err(&err)?;
        let locked = |e: rusqlite::Error| match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                EventStoreError::Locked {
                    path: shown.clone(),
                }
            }
            _ => err(e),
        };
        conn.pragma_update(None, "locking_mode", "EXCLUSIVE")
            .map_err(&err)?;
        // Segments are blobs of up to a megabyte: large pages keep their overflow chains
        // short (takes effect when the file is created).
        conn.pragma_update(None, "page_size", 65_536)
            .map_err(&err)?;
        // Pointer-map pages let a delete free a segment's overflow chain without reading
        // every page of it (about a sixth less time draining a backlog; also only when the
        // file is created). Freed pages are reused, as without it; nothing truncates the file.
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")
            .map_err(locked)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(locked)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(&err)?;
        // A write takes the exclusive lock now, and keeps it while the connection lives.
        conn.execute_batch(&format!("BEGIN IMMEDIATE; {SCHEMA} COMMIT;"))
            .map_err(locked)?;
        for table in COMPRESSED_TABLES {
            let has_column = conn
                .prepare("SELECT 1 FROM pragma_table_info(?1) WHERE name = 'raw_bytes'")
                .and_then(|mut s| s.exists(params![table]))
                .map_err(&err)?;
            if !has_column {
                conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN raw_bytes INTEGER"))
                    .map_err(&err)?;
            }
        }
        Ok(EventStore { conn, path: shown })
    }

    fn err(&self, source: rusqlite::Error) -> EventStoreError {
        EventStoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// The path of the database file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The id of a batch context, stored when new.
    pub(crate) fn context_id(
        &mut self,
        endpoint: &str,
        envelope: &[u8],
    ) -> Result<i64, EventStoreError> {
        let found: Option<i64> = self
            .conn
            .query_row(
                "SELECT id FROM event_contexts WHERE endpoint = ?1 AND envelope = ?2",
                params![endpoint, envelope],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        if let Some(id) = found {
            return Ok(id);
        }
        self.conn
            .execute(
                "INSERT INTO event_contexts (endpoint, envelope) VALUES (?1, ?2)",
                params![endpoint, envelope],
            )
            .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Every stored context.
    pub(crate) fn contexts(&self) -> Result<Vec<StoredContext>, EventStoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, endpoint, envelope FROM event_contexts")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(StoredContext {
                    id: r.get(0)?,
                    endpoint: r.get(1)?,
                    envelope: r.get(2)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Stores segments `(context, count, created_ms, body)` in one transaction; returns their ids.
    pub(crate) fn insert_segments(
        &mut self,
        segments: &[(i64, u32, u64, &[u8])],
    ) -> Result<Vec<i64>, EventStoreError> {
        let err = sqlite_error(self.path.clone());
        let tx = self.conn.transaction().map_err(&err)?;
        let mut ids = Vec::with_capacity(segments.len());
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO event_segments (context, count, created_ms, body, raw_bytes)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(&err)?;
            for (context, count, created_ms, body) in segments {
                let (stored, raw_bytes) = packed(body);
                stmt.execute(params![
                    context,
                    count,
                    *created_ms as i64,
                    stored.as_ref(),
                    raw_bytes
                ])
                .map_err(&err)?;
                ids.push(tx.last_insert_rowid());
            }
        }
        tx.commit().map_err(&err)?;
        Ok(ids)
    }

    /// Every stored segment, oldest first (without bodies; `bytes` is their length before
    /// compression).
    pub(crate) fn segments(&self) -> Result<Vec<StoredSegment>, EventStoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, context, count, created_ms, coalesce(raw_bytes, length(body))
                 FROM event_segments ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(StoredSegment {
                    id: r.get(0)?,
                    context: r.get(1)?,
                    count: r.get(2)?,
                    created_ms: r.get::<_, i64>(3)? as u64,
                    bytes: r.get::<_, i64>(4)? as usize,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// The body of a stored segment (`None` when it is gone), decompressed.
    pub(crate) fn segment_body(&self, id: i64) -> Result<Option<Vec<u8>>, EventStoreError> {
        let raw_bytes: Option<Option<i64>> = self
            .conn
            .prepare_cached("SELECT raw_bytes FROM event_segments WHERE id = ?1")
            .and_then(|mut s| s.query_row(params![id], |r| r.get(0)).optional())
            .map_err(|e| self.err(e))?;
        let Some(raw_bytes) = raw_bytes else {
            return Ok(None);
        };
        let Some(stored) = self.stored_body(id)? else {
            return Ok(None);
        };
        let Some(raw_bytes) = raw_bytes else {
            return Ok(Some(stored));
        };
        let corrupt = |reason: String| EventStoreError::Corrupt {
            path: self.path.clone(),
            id,
            reason,
        };
        let body = lz4_flex::block::decompress(&stored, raw_bytes.max(0) as usize)
            .map_err(|e| corrupt(e.to_string()))?;
        if body.len() as i64 != raw_bytes {
            return Err(corrupt(format!(
                "{} bytes where {raw_bytes} were stored",
                body.len()
            )));
        }
        Ok(Some(body))
    }

    /// A segment's body as stored.
    fn stored_body(&self, id: i64) -> Result<Option<Vec<u8>>, EventStoreError> {
        // Read through the blob API straight into the buffer (a query copies the value
        // twice); a missing row or any other failure goes to the query, which tells them apart.
        if let Ok(blob) = self
            .conn
            .blob_open(rusqlite::MAIN_DB, "event_segments", "body", id, true)
        {
            let mut body = vec![0; blob.len()];
            if blob.read_at_exact(&mut body, 0).is_ok() {
                return Ok(Some(body));
            }
        }
        self.conn
            .query_row(
                "SELECT body FROM event_segments WHERE id = ?1",
                params![id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Deletes delivered segments.
    pub(crate) fn delete_segments(&mut self, ids: &[i64]) -> Result<(), EventStoreError> {
        let err = sqlite_error(self.path.clone());
        let tx = self.conn.transaction().map_err(&err)?;
        {
            let mut stmt = tx
                .prepare_cached("DELETE FROM event_segments WHERE id = ?1")
                .map_err(&err)?;
            for id in ids {
                stmt.execute(params![id]).map_err(&err)?;
            }
        }
        tx.commit().map_err(&err)
    }

    /// Moves segments to the dead letters with the endpoint's answer.
    pub(crate) fn dead_letter(
        &mut self,
        ids: &[i64],
        failed_ms: u64,
        status: u16,
        reason: &str,
    ) -> Result<(), EventStoreError> {
        let err = sqlite_error(self.path.clone());
        let tx = self.conn.transaction().map_err(&err)?;
        {
            let mut copy = tx
                .prepare_cached(
                    "INSERT INTO event_dead_letters
                         (id, context, count, created_ms, failed_ms, status, reason, body, raw_bytes)
                     SELECT id, context, count, created_ms, ?2, ?3, ?4, body, raw_bytes
                     FROM event_segments WHERE id = ?1",
                )
                .map_err(&err)?;
            let mut delete = tx
                .prepare_cached("DELETE FROM event_segments WHERE id = ?1")
                .map_err(&err)?;
            for id in ids {
                copy.execute(params![id, failed_ms as i64, status, reason])
                    .map_err(&err)?;
                delete.execute(params![id]).map_err(&err)?;
            }
        }
        tx.commit().map_err(&err)
    }

    /// The dead letters, oldest first.
    pub(crate) fn dead_letters(&self) -> Result<Vec<DeadLetter>, EventStoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT d.id, c.endpoint, d.count, d.created_ms, d.failed_ms, d.status, d.reason
                 FROM event_dead_letters d JOIN event_contexts c ON c.id = d.context ORDER BY d.id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(DeadLetter {
                    id: r.get(0)?,
                    endpoint: r.get(1)?,
                    events: r.get(2)?,
                    created_ms: r.get::<_, i64>(3)? as u64,
                    failed_ms: r.get::<_, i64>(4)? as u64,
                    status: r.get(5)?,
                    reason: r.get(6)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Moves dead letters back to the queue (all when `ids` is `None`), with a fresh created
    /// time so the age limit starts again; returns how many events were moved.
    pub(crate) fn resend_dead_letters(
        &mut self,
        ids: Option<&[i64]>,
        now_ms: u64,
    ) -> Result<u64, EventStoreError> {
        let err = sqlite_error(self.path.clone());
        let tx = self.conn.transaction().map_err(&err)?;
        let all: Vec<i64> = {
            let mut stmt = tx
                .prepare("SELECT id FROM event_dead_letters ORDER BY id")
                .map_err(&err)?;
            let rows = stmt.query_map([], |r| r.get(0)).map_err(&err)?;
            rows.collect::<Result<_, _>>().map_err(&err)?
        };
        let mut moved = 0u64;
        for id in all
            .into_iter()
            .filter(|id| ids.is_none_or(|ids| ids.contains(id)))
        {
            let count: i64 = tx
                .query_row(
                    "SELECT count FROM event_dead_letters WHERE id = ?1",
                    params![id],
                    |r| r.get(0),
                )
                .map_err(&err)?;
            tx.execute(
                "INSERT INTO event_segments (context, count, created_ms, body, raw_bytes)
                 SELECT context, count, ?2, body, raw_bytes FROM event_dead_letters WHERE id = ?1",
                params![id, now_ms as i64],
            )
            .map_err(&err)?;
            tx.execute("DELETE FROM event_dead_letters WHERE id = ?1", params![id])
                .map_err(&err)?;
            moved += count as u64;
        }
        tx.commit().map_err(&err)?;
        Ok(moved)
    }
}

#[cfg(test)]
mod tests;
