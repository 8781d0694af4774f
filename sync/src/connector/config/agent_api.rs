//! `server.api:`: the Agent endpoints and behaviours that are off unless configured (as in
//! Agent: overrides, notifications, user profiles and CORS are opt-in).

use serde::Deserialize;

use super::secret::Secret;

/// Default lifetime of a token from `POST /oauth/token` (seconds).
pub const DEFAULT_TOKEN_TTL_SECS: u64 = 3600;

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
    /// `POST /oauth/token` and JWT bearer tokens on `/v1/*`; absent = no token endpoint.
    #[serde(default)]
    pub oauth: Option<OAuthSection>,
}

/// `server.api.oauth:` (Agent's `api.auth`): client credentials exchanged for HS256 JWTs
/// that grant access to the listed SDK keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthSection {
    /// Key that signs and verifies the tokens (HMAC-SHA256).
    pub hmac_secret: Secret,
    /// Token lifetime; default [`DEFAULT_TOKEN_TTL_SECS`].
    #[serde(default = "default_ttl")]
    pub ttl_secs: u64,
    /// The clients allowed to get a token.
    pub clients: Vec<OAuthClient>,
}

/// One OAuth client.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthClient {
    /// `client_id`.
    pub client_id: String,
    /// `client_secret`.
    pub client_secret: Secret,
    /// SDK keys the client's tokens grant.
    pub sdk_keys: Vec<String>,
}

fn default_ttl() -> u64 {
    DEFAULT_TOKEN_TTL_SECS
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
    /// In `state_dir/profiles-<project>.sqlite` (kept across restarts; one process per file).
    Sqlite,
    /// In the fleet's Redis (the top-level `store:`), shared by every instance.
    Redis,
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
