//! `server.api:`: the Agent endpoints and behaviours that are off unless configured (as in
//! Agent: overrides, notifications, user profiles and CORS are opt-in).

use serde::Deserialize;

/// Default `Access-Control-Max-Age` of a CORS preflight answer (seconds).
pub const DEFAULT_CORS_MAX_AGE_SECS: u64 = 300;

/// `server.api:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSection {
    /// `POST /v1/override` (Agent's `api.enableOverrides`); default false (403).
    #[serde(default)]
    pub enable_overrides: bool,
    /// `GET /v1/notifications/event-stream` (Agent's `api.enableNotifications`); default
    /// false (403).
    #[serde(default)]
    pub enable_notifications: bool,
    /// `POST /v1/lookup`, `POST /v1/save` and sticky bucketing; absent = no user profile
    /// service (lookup/save answer 500, as Agent does without one).
    #[serde(default)]
    pub user_profile_service: Option<UserProfileSection>,
    /// CORS headers; absent = none are sent.
    #[serde(default)]
    pub cors: Option<CorsSection>,
}

/// `server.api.user_profile_service:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserProfileSection {
    /// Where profiles live; default [`ProfileStoreKind::Memory`].
    #[serde(default)]
    pub store: ProfileStoreKind,
}

/// A user profile store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProfileStoreKind {
    /// In this process's memory (lost at restart), per project.
    #[default]
    Memory,
}

/// `server.api.cors:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsSection {
    /// Origins allowed (`"*"` allows any).
    pub allowed_origins: Vec<String>,
    /// Request headers a browser may send; default: the ones the API reads.
    #[serde(default = "default_cors_headers")]
    pub allowed_headers: Vec<String>,
    /// Preflight cache time; default [`DEFAULT_CORS_MAX_AGE_SECS`].
    #[serde(default = "default_cors_max_age")]
    pub max_age_secs: u64,
}

fn default_cors_headers() -> Vec<String> {
    ["Content-Type", "Authorization", "X-Optimizely-SDK-Key"]
        .map(str::to_string)
        .to_vec()
}

fn default_cors_max_age() -> u64 {
    DEFAULT_CORS_MAX_AGE_SECS
}
