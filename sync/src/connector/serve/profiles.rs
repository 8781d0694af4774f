//! User profiles: `POST /v1/lookup` and `POST /v1/save` (Agent's shapes), over a pluggable
//! store that is also the projects' user profile service (sticky bucketing). Enabled by
//! `server.api.user_profile_service`; the default store keeps profiles in memory, `sqlite`
//! keeps them in `state_dir/profiles-<project>.sqlite` across restarts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use flagbridge_engine::{UserProfile, UserProfileService};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::state::ProjectRuntime;

/// Profiles in this process's memory, by user id (one store per project).
#[derive(Debug, Default)]
pub struct MemoryProfiles {
    profiles: Mutex<HashMap<String, HashMap<String, String>>>,
}

impl UserProfileService for MemoryProfiles {
    fn lookup(&self, user_id: &str) -> Option<UserProfile> {
        let map = self.profiles.lock().unwrap_or_else(|e| e.into_inner());
        map.get(user_id).map(|m| UserProfile {
            user_id: user_id.to_string(),
            experiment_bucket_map: m.clone(),
        })
    }

    fn save(&self, profile: &UserProfile) {
        let mut map = self.profiles.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(
            profile.user_id.clone(),
            profile.experiment_bucket_map.clone(),
        );
    }
}

/// Profiles in a SQLite file (WAL), one row per user: the experiment -> variation map as a
/// JSON object. Lookups and saves run on the deciding thread, as the user profile service's
/// contract is synchronous; a failing read counts as no profile and a failing write is
/// logged (the decision itself is never held back).
#[derive(Debug)]
pub struct SqliteProfiles {
    path: PathBuf,
    conn: Mutex<rusqlite::Connection>,
}

impl SqliteProfiles {
    /// Opens (creating when missing) the profile store at `path`.
    pub fn open(path: &Path) -> Result<Self, rusqlite::Error> {
        let conn = rusqlite::Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(2))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute(
            "CREATE TABLE IF NOT EXISTS user_profiles (
                user_id TEXT PRIMARY KEY,
                experiment_bucket_map TEXT NOT NULL
            )",
            [],
        )?;
        Ok(SqliteProfiles {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
        })
    }

    fn read(&self, user_id: &str) -> Result<Option<HashMap<String, String>>, String> {
        use rusqlite::OptionalExtension;
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let text: Option<String> = conn
            .prepare_cached("SELECT experiment_bucket_map FROM user_profiles WHERE user_id = ?1")
            .and_then(|mut s| s.query_row([user_id], |r| r.get(0)).optional())
            .map_err(|e| e.to_string())?;
        text.map(|t| serde_json::from_str(&t).map_err(|e| format!("stored profile: {e}")))
            .transpose()
    }
}

impl UserProfileService for SqliteProfiles {
    fn lookup(&self, user_id: &str) -> Option<UserProfile> {
        match self.read(user_id) {
            Ok(map) => map.map(|experiment_bucket_map| UserProfile {
                user_id: user_id.to_string(),
                experiment_bucket_map,
            }),
            Err(error) => {
                tracing::error!(path = %self.path.display(), user_id, %error, "user profile lookup failed; deciding without it");
                None
            }
        }
    }

    fn save(&self, profile: &UserProfile) {
        let text = match serde_json::to_string(&profile.experiment_bucket_map) {
            Ok(t) => t,
            Err(_) => return,
        };
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let saved = conn
            .prepare_cached(
                "INSERT INTO user_profiles (user_id, experiment_bucket_map) VALUES (?1, ?2)
                 ON CONFLICT(user_id) DO UPDATE SET experiment_bucket_map = excluded.experiment_bucket_map",
            )
            .and_then(|mut s| s.execute((&profile.user_id, &text)));
        if let Err(error) = saved {
            tracing::error!(path = %self.path.display(), user_id = %profile.user_id, %error, "user profile save failed");
        }
    }
}

/// Profiles in the fleet's Redis (`store:`), shared by every instance: one string key per user,
/// `{prefix}profiles:{project}:{user}`, holding the experiment -> variation map as JSON. The
/// user profile service's contract is synchronous, so each lookup and save is one blocking
/// round trip on the deciding thread, bounded by the store's command timeout; an unreachable
/// Redis reads as no profile and a failed save is logged (decisions go on).
pub struct RedisProfiles {
    client: redis::Client,
    conn: Mutex<Option<redis::Connection>>,
    prefix: String,
    timeout: std::time::Duration,
}

impl std::fmt::Debug for RedisProfiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisProfiles")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisProfiles {
    /// Profiles of `project` in the fleet store.
    pub fn new(fleet: &crate::fleet::Fleet, project: &str) -> Self {
        RedisProfiles {
            client: fleet.client().clone(),
            conn: Mutex::new(None),
            prefix: fleet.key(&format!("profiles:{project}:")),
            timeout: fleet.command_timeout(),
        }
    }

    /// Runs `f` on the connection (made on first use and after an error).
    fn with_conn<T>(
        &self,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> redis::RedisResult<T> {
        let mut slot = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            let conn = self.client.get_connection_with_timeout(self.timeout)?;
            conn.set_read_timeout(Some(self.timeout))?;
            conn.set_write_timeout(Some(self.timeout))?;
            *slot = Some(conn);
        }
        let Some(conn) = slot.as_mut() else {
            return Err(redis::RedisError::from((
                redis::ErrorKind::Io,
                "no connection",
            )));
        };
        let result = f(conn);
        if result.is_err() {
            *slot = None;
        }
        result
    }
}

impl UserProfileService for RedisProfiles {
    fn lookup(&self, user_id: &str) -> Option<UserProfile> {
        let key = format!("{}{user_id}", self.prefix);
        let text: Option<String> = match self.with_conn(|c| redis::cmd("GET").arg(&key).query(c)) {
            Ok(t) => t,
            Err(error) => {
                tracing::error!(user_id, %error, "user profile lookup in redis failed; deciding without it");
                return None;
            }
        };
        let map: HashMap<String, String> = match text.map(|t| serde_json::from_str(&t)) {
            None => return None,
            Some(Ok(map)) => map,
            Some(Err(error)) => {
                tracing::error!(user_id, %error, "stored user profile in redis is not a map of strings");
                return None;
            }
        };
        Some(UserProfile {
            user_id: user_id.to_string(),
            experiment_bucket_map: map,
        })
    }

    fn save(&self, profile: &UserProfile) {
        let Ok(text) = serde_json::to_string(&profile.experiment_bucket_map) else {
            return;
        };
        let key = format!("{}{}", self.prefix, profile.user_id);
        if let Err(error) =
            self.with_conn(|c| redis::cmd("SET").arg(&key).arg(&text).query::<()>(c))
        {
            tracing::error!(user_id = %profile.user_id, %error, "user profile save in redis failed");
        }
    }
}

/// The store configured by `server.api.user_profile_service` for `project` (SQLite files
/// live in `state_dir`; `redis` needs the top-level `store:`).
pub fn store(
    kind: crate::connector::config::agent_api::ProfileStoreKind,
    state_dir: &Path,
    project: &str,
    fleet: Option<&crate::fleet::Fleet>,
) -> Result<Arc<dyn UserProfileService>, super::ServeError> {
    use crate::connector::config::agent_api::ProfileStoreKind;
    Ok(match kind {
        ProfileStoreKind::Memory => Arc::new(MemoryProfiles::default()),
        ProfileStoreKind::Redis => match fleet {
            Some(fleet) => Arc::new(RedisProfiles::new(fleet, project)),
            None => return Err(super::ServeError::ProfileStoreNeedsRedis),
        },
        ProfileStoreKind::Sqlite => {
            let path = state_dir.join(format!("profiles-{project}.sqlite"));
            let store = SqliteProfiles::open(&path)
                .map_err(|source| super::ServeError::ProfileStore { path, source })?;
            Arc::new(store)
        }
    })
}

/// `POST /v1/lookup` body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LookupContext {
    /// User id.
    pub user_id: String,
}

/// `POST /v1/save` body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SaveContext {
    /// User id.
    pub user_id: String,
    /// `{experimentId: {"variation_id": id}}`.
    #[serde(default)]
    pub experiment_bucket_map: Map<String, Value>,
}

type Answer = (StatusCode, Value);

fn err(status: StatusCode, message: &str) -> Answer {
    (status, json!({ "error": message }))
}

fn service(p: &ProjectRuntime) -> Result<&Arc<dyn UserProfileService>, Answer> {
    p.profiles.as_ref().ok_or_else(|| {
        err(
            StatusCode::INTERNAL_SERVER_ERROR,
            "User Profile Service not found (set server.api.user_profile_service)",
        )
    })
}

/// `POST /v1/lookup`: `{"userId", "experimentBucketMap": {experimentId: {"variation_id"}}}`.
pub(crate) fn lookup_op(p: &ProjectRuntime, body: LookupContext) -> Answer {
    if body.user_id.is_empty() {
        return err(StatusCode::BAD_REQUEST, "body.userId: must not be empty");
    }
    let ups = match service(p) {
        Ok(s) => s,
        Err(a) => return a,
    };
    let mut map: Vec<(String, String)> = ups
        .lookup(&body.user_id)
        .map(|p| p.experiment_bucket_map.into_iter().collect())
        .unwrap_or_default();
    map.sort();
    let bucket_map: Map<String, Value> = map
        .into_iter()
        .map(|(e, v)| (e, json!({ "variation_id": v })))
        .collect();
    (
        StatusCode::OK,
        json!({"userId": body.user_id, "experimentBucketMap": bucket_map}),
    )
}

/// `POST /v1/save`: stores the profile (entries without a string `variation_id` are skipped);
/// answers 200 with an empty body object.
pub(crate) fn save_op(p: &ProjectRuntime, body: SaveContext) -> Answer {
    if body.user_id.is_empty() {
        return err(StatusCode::BAD_REQUEST, "body.userId: must not be empty");
    }
    let ups = match service(p) {
        Ok(s) => s,
        Err(a) => return a,
    };
    let experiment_bucket_map = body
        .experiment_bucket_map
        .iter()
        .filter_map(|(e, entry)| {
            let v = match entry.get("variation_id")? {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return None,
            };
            Some((e.clone(), v))
        })
        .collect();
    ups.save(&UserProfile {
        user_id: body.user_id,
        experiment_bucket_map,
    });
    (StatusCode::OK, json!({}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(user: &str, pairs: &[(&str, &str)]) -> UserProfile {
        UserProfile {
            user_id: user.into(),
            experiment_bucket_map: pairs
                .iter()
                .map(|(e, v)| (e.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// Saved profiles survive reopening the file; a later save replaces the map; other
    /// users are unaffected.
    #[test]
    fn sqlite_profiles_persist_and_replace() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.sqlite");
        {
            let store = SqliteProfiles::open(&path).unwrap();
            assert_eq!(store.lookup("u1"), None);
            store.save(&profile("u1", &[("e1", "v1")]));
            store.save(&profile("u2", &[("e1", "v2"), ("e2", "v3")]));
            store.save(&profile("u1", &[("e1", "v9")]));
        }
        let store = SqliteProfiles::open(&path).unwrap();
        assert_eq!(store.lookup("u1"), Some(profile("u1", &[("e1", "v9")])));
        assert_eq!(
            store.lookup("u2"),
            Some(profile("u2", &[("e1", "v2"), ("e2", "v3")]))
        );
        assert_eq!(store.lookup("u3"), None);
    }

    /// A stored row that is not a JSON object of strings reads as no profile (and is logged),
    /// never as a panic or a wrong variation.
    #[test]
    fn a_damaged_row_reads_as_no_profile() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.sqlite");
        let store = SqliteProfiles::open(&path).unwrap();
        store
            .conn
            .lock()
            .unwrap()
            .execute("INSERT INTO user_profiles VALUES ('u1', '{\"e1\": 5}')", [])
            .unwrap();
        assert_eq!(store.lookup("u1"), None);
    }

    /// A file that cannot be opened is an error naming the path at start.
    #[test]
    fn an_unopenable_store_is_a_start_error() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("not-a-dir");
        std::fs::write(&blocker, "x").unwrap();
        let error = store(
            crate::connector::config::agent_api::ProfileStoreKind::Sqlite,
            &blocker,
            "p",
            None,
        )
        .err()
        .expect("error");
        assert!(error.to_string().contains("profiles-p.sqlite"), "{error}");
    }
}
