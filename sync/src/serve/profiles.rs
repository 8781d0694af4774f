//! User profiles: `POST /v1/lookup` and `POST /v1/save` (Agent's shapes), over a pluggable
//! store that is also the projects' user profile service (sticky bucketing). Enabled by
//! `server.api.user_profile_service`; the default store keeps profiles in memory.

use std::collections::HashMap;
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

/// The store configured by `server.api.user_profile_service`.
pub fn store(kind: crate::config::agent_api::ProfileStoreKind) -> Arc<dyn UserProfileService> {
    match kind {
        crate::config::agent_api::ProfileStoreKind::Memory => Arc::new(MemoryProfiles::default()),
    }
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
