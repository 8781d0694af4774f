//! The config file as written: serde types that reject unknown keys and wrong types.
//!
//! [`super::Config`] is the resolved form the commands use; see `docs/config.md`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

pub use super::mapping::{
    FieldMappingSection, MappingFile, MappingSection, MappingValue, DEFAULT_USER_ID_ATTRIBUTE,
};
use super::secret::Secret;
pub use super::store::{StoreSection, DEFAULT_STORE_KEY_PREFIX, DEFAULT_STORE_LEASE_TIMEOUT_SECS};

/// Default cron schedule of the REST sync: every two hours.
pub const DEFAULT_SCHEDULE: &str = "0 */2 * * *";
/// Default address of `flagbridge serve`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default largest accepted HTTP request body (1 MiB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// Default largest number of operations in one `POST /v1/batch` (Agent's limit).
pub const DEFAULT_MAX_BATCH_OPERATIONS: usize = 500;
/// Default time allowed for flushing events and the Brevo outbox at shutdown.
pub const DEFAULT_SHUTDOWN_TIMEOUT_SECS: u64 = 10;
/// Default datafile polling interval (seconds).
pub const DEFAULT_POLL_INTERVAL_SECS: u64 = 60;
/// Default most events per request to Optimizely.
pub const DEFAULT_EVENT_BATCH_SIZE: usize = crate::events::DEFAULT_EVENT_BATCH_SIZE;
/// Default longest time an event waits before its request is sent (seconds).
pub const DEFAULT_EVENT_FLUSH_INTERVAL_SECS: u64 = 1;
/// Default records each deciding thread's ring holds (one per decide call) before spilling.
pub const DEFAULT_EVENT_QUEUE_SIZE: usize = crate::events::DEFAULT_EVENT_QUEUE_CAPACITY;
/// Default requests in flight to the event endpoint.
pub const DEFAULT_EVENT_CONCURRENCY: usize = crate::events::DEFAULT_EVENT_CONCURRENCY;
/// Default interval of group commits to the event store (milliseconds).
pub const DEFAULT_EVENT_COMMIT_INTERVAL_MS: u64 = 100;
/// Default cap of the event store (MiB).
pub const DEFAULT_EVENT_MAX_STORE_MB: u64 = 1024;
/// Default age after which undelivered events become dead letters (hours).
pub const DEFAULT_EVENT_MAX_AGE_HOURS: u64 = 24;
/// Default Brevo requests per second (Brevo's general plan limit for `/contacts`).
pub const DEFAULT_BREVO_PER_SECOND: u32 = 10;
/// Default Brevo requests per hour (Brevo's general plan limit for `/contacts`).
pub const DEFAULT_BREVO_PER_HOUR: u32 = 36_000;
/// Default contacts per Brevo batch call (Brevo's own maximum is UNCONFIRMED).
pub const DEFAULT_BREVO_BATCH_SIZE: usize = 100;
/// Default number of contact updates held while Brevo is slow.
pub const DEFAULT_BREVO_MAX_PENDING: usize = 100_000;
/// Default Brevo API base URL.
pub const DEFAULT_BREVO_BASE_URL: &str = "https://api.brevo.com/v3/";
/// Default public datafile base URL (`{base}/datafiles/{sdk_key}.json`).
pub const DEFAULT_CDN_URL: &str = "https://cdn.optimizely.com";
/// Default authenticated datafile base URL (`{base}/datafiles/auth/{sdk_key}.json`).
pub const DEFAULT_AUTH_DATAFILE_URL: &str = "https://config.optimizely.com";
/// Default event endpoint (US).
pub const DEFAULT_EVENTS_URL: &str = flagbridge_engine::US_ENDPOINT;
/// Default event endpoint for EU data residency.
pub const DEFAULT_EVENTS_EU_URL: &str = flagbridge_engine::EU_ENDPOINT;
/// Default Optimizely REST v2 base URL.
pub const DEFAULT_REST_URL: &str = "https://api.optimizely.com/v2/";
/// Default Optimizely Flags API base URL.
pub const DEFAULT_FLAGS_URL: &str = "https://api.optimizely.com/flags/v1/";
/// Default directory for sync state, results cache and backfill checkpoints.
pub const DEFAULT_STATE_DIR: &str = "flagbridge-state";

fn yes() -> bool {
    true
}

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The HTTP service (`flagbridge serve`).
    #[serde(default)]
    pub server: ServerSection,
    /// Remotes.
    pub connectors: Connectors,
    /// Where sync state and checkpoints live; default [`DEFAULT_STATE_DIR`].
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// Shared state of a fleet of instances (Redis); absent: each instance keeps its own
    /// SQLite files in `state_dir`.
    #[serde(default)]
    pub store: Option<StoreSection>,
}

/// `server:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Listen address; default [`DEFAULT_LISTEN`].
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// When set, every `/v1/*` request needs `Authorization: Bearer <token>`.
    #[serde(default)]
    pub auth_token: Option<Secret>,
    /// Largest accepted request body; default [`DEFAULT_MAX_BODY_BYTES`].
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Largest `/v1/batch`; default [`DEFAULT_MAX_BATCH_OPERATIONS`].
    #[serde(default = "default_max_batch")]
    pub max_batch_operations: usize,
    /// Flush budget at shutdown; default [`DEFAULT_SHUTDOWN_TIMEOUT_SECS`].
    #[serde(default = "default_shutdown")]
    pub shutdown_timeout_secs: u64,
    /// Opt-in Agent endpoints: overrides, user profiles, CORS.
    #[serde(default)]
    pub api: super::agent_api::ApiSection,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            listen: default_listen(),
            auth_token: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_batch_operations: DEFAULT_MAX_BATCH_OPERATIONS,
            shutdown_timeout_secs: DEFAULT_SHUTDOWN_TIMEOUT_SECS,
            api: Default::default(),
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_max_body() -> usize {
    DEFAULT_MAX_BODY_BYTES
}
fn default_max_batch() -> usize {
    DEFAULT_MAX_BATCH_OPERATIONS
}
fn default_shutdown() -> u64 {
    DEFAULT_SHUTDOWN_TIMEOUT_SECS
}

/// `connectors:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connectors {
    /// `connectors.optimizely`.
    pub optimizely: OptimizelySection,
    /// `connectors.brevo`; absent = dry run (nothing is written anywhere).
    #[serde(default)]
    pub brevo: Option<BrevoSection>,
}

/// `connectors.optimizely`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizelySection {
    /// Default true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Personal access token for the REST APIs (`sync`).
    #[serde(default)]
    pub access_token: Option<Secret>,
    /// SDK key of the default project (optional when `projects` is given).
    #[serde(default)]
    pub sdk_key: Option<String>,
    /// Token for authenticated datafiles.
    #[serde(default)]
    pub datafile_access_token: Option<Secret>,
    /// Project id of the default project (needed by `sync`).
    #[serde(default, deserialize_with = "opt_id")]
    pub project_id: Option<String>,
    /// Secret of the datafile-updated webhook of the default project.
    #[serde(default)]
    pub webhook_secret: Option<Secret>,
    /// Read the default project's datafile from this file instead of polling.
    #[serde(default)]
    pub datafile_file: Option<PathBuf>,
    /// What the REST sync reads.
    #[serde(default)]
    pub sync: SyncSection,
    /// Which optional Brevo attributes are written, and optionally their names (one set for
    /// every project).
    #[serde(default)]
    pub mapping: MappingFile,
    /// Contact identity and Brevo attribute names (one set for every project).
    #[serde(default)]
    pub field_mapping: FieldMappingSection,
    /// Verbose diagnostics.
    #[serde(default)]
    pub debug: bool,
    /// Log level; default `info`.
    #[serde(default)]
    pub log_level: LogLevel,
    /// Log every decision at debug level.
    #[serde(default)]
    pub log_decisions: bool,
    /// Log every event batch at debug level.
    #[serde(default)]
    pub log_events: bool,
    /// Further projects, each with its own SDK key.
    #[serde(default)]
    pub projects: Vec<ProjectEntry>,
    /// Datafile polling.
    #[serde(default)]
    pub datafile: DatafileSection,
    /// Event batching.
    #[serde(default)]
    pub events: EventsSection,
    /// Base URLs of the Optimizely remotes.
    #[serde(default)]
    pub urls: OptimizelyUrls,
    /// Pacing of the REST sync, per personal access token.
    #[serde(default)]
    pub rate_limit: RestRateLimitSection,
    /// CMAB predictions of `/v1/decide`.
    #[serde(default)]
    pub cmab: super::remote_section::CmabSection,
    /// ODP segments (`fetchSegments`) and events (`/v1/send-odp-event`).
    #[serde(default)]
    pub odp: super::remote_section::OdpSection,
}

/// Default REST calls per minute per personal access token (the connector page's limit).
pub const DEFAULT_REST_PER_MINUTE: u32 = crate::connector::rest::ratelimit::REST_PER_MINUTE;
/// Default Results API calls per minute (the connector page's limit).
pub const DEFAULT_RESULTS_PER_MINUTE: u32 = crate::connector::rest::ratelimit::RESULTS_PER_MINUTE;

/// `connectors.optimizely.rate_limit`: REST pacing per personal access token, spread evenly
/// over the minute (never a burst).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RestRateLimitSection {
    /// Every REST call of a token; default [`DEFAULT_REST_PER_MINUTE`].
    pub requests_per_minute: u32,
    /// Results calls; default [`DEFAULT_RESULTS_PER_MINUTE`].
    pub results_per_minute: u32,
    /// Seconds before asking again for results still being computed (202); default
    /// [`DEFAULT_RESULTS_RETRY_SECS`].
    pub results_retry_secs: u64,
}

/// Default wait before asking again for results that answered 202 (seconds).
pub const DEFAULT_RESULTS_RETRY_SECS: u64 = 30;

impl Default for RestRateLimitSection {
    fn default() -> Self {
        RestRateLimitSection {
            requests_per_minute: DEFAULT_REST_PER_MINUTE,
            results_per_minute: DEFAULT_RESULTS_PER_MINUTE,
            results_retry_secs: DEFAULT_RESULTS_RETRY_SECS,
        }
    }
}

/// One entry of `connectors.optimizely.projects`; unset fields inherit the section's.
/// `mapping` and `field_mapping` are per Brevo account, so they are not set per project.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectEntry {
    /// Name used in logs, metrics and Brevo list names.
    pub name: String,
    /// SDK key (picks the project in `X-Optimizely-SDK-Key`).
    pub sdk_key: String,
    /// Project id (needed by `sync`).
    #[serde(default, deserialize_with = "opt_id")]
    pub project_id: Option<String>,
    /// Overrides the section's `access_token`.
    #[serde(default)]
    pub access_token: Option<Secret>,
    /// Token for this project's authenticated datafile.
    #[serde(default)]
    pub datafile_access_token: Option<Secret>,
    /// Webhook secret of this project.
    #[serde(default)]
    pub webhook_secret: Option<Secret>,
    /// Read this project's datafile from this file instead of polling.
    #[serde(default)]
    pub datafile_file: Option<PathBuf>,
    /// Overrides the section's `sync`.
    #[serde(default)]
    pub sync: Option<SyncSection>,
}

/// `sync:` — what the scheduled REST sync reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncSection {
    /// Experiments and their results; default true.
    #[serde(default = "yes")]
    pub experiments: bool,
    /// Audiences; default true.
    #[serde(default = "yes")]
    pub audiences: bool,
    /// Events; default true.
    #[serde(default = "yes")]
    pub events: bool,
    /// Flags (Flags API); default true.
    #[serde(default = "yes")]
    pub feature_flags: bool,
    /// Cron schedule (5 fields, or 6 with seconds); default [`DEFAULT_SCHEDULE`].
    #[serde(default)]
    pub schedule: Option<CronSchedule>,
}

impl Default for SyncSection {
    fn default() -> Self {
        SyncSection {
            experiments: true,
            audiences: true,
            events: true,
            feature_flags: true,
            schedule: None,
        }
    }
}

/// Log level names.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Everything.
    Trace,
    /// Debug (`verbose` is accepted as another name for it).
    #[serde(alias = "verbose")]
    Debug,
    /// Default.
    #[default]
    Info,
    /// Warnings.
    Warn,
    /// Errors only.
    Error,
}

impl LogLevel {
    /// The `tracing` filter name.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// `datafile:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatafileSection {
    /// Seconds between polls; default [`DEFAULT_POLL_INTERVAL_SECS`].
    #[serde(default = "default_poll")]
    pub poll_interval_secs: u64,
}

impl Default for DatafileSection {
    fn default() -> Self {
        DatafileSection {
            poll_interval_secs: DEFAULT_POLL_INTERVAL_SECS,
        }
    }
}

fn default_poll() -> u64 {
    DEFAULT_POLL_INTERVAL_SECS
}

/// `events:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsSection {
    /// Events per batch; default [`DEFAULT_EVENT_BATCH_SIZE`].
    #[serde(default = "default_event_batch")]
    pub batch_size: usize,
    /// Seconds before a partial batch is sent; default [`DEFAULT_EVENT_FLUSH_INTERVAL_SECS`].
    #[serde(default = "default_event_flush")]
    pub flush_interval_secs: u64,
    /// Records per deciding thread's ring; default [`DEFAULT_EVENT_QUEUE_SIZE`].
    #[serde(default = "default_event_queue")]
    pub queue_size: usize,
    /// Requests in flight; default [`DEFAULT_EVENT_CONCURRENCY`].
    #[serde(default = "default_event_concurrency")]
    pub concurrency: usize,
    /// Keep accepted events in `state_dir/events-<project>.sqlite` until logx accepts them;
    /// default true (false: memory only, lost on a crash).
    #[serde(default = "default_true")]
    pub durable: bool,
    /// Group-commit interval (the `kill -9` window), ms; default
    /// [`DEFAULT_EVENT_COMMIT_INTERVAL_MS`].
    #[serde(default = "default_event_commit")]
    pub commit_interval_ms: u64,
    /// Store cap in MiB (past it new events are dropped and counted); default
    /// [`DEFAULT_EVENT_MAX_STORE_MB`].
    #[serde(default = "default_event_store_mb")]
    pub max_store_mb: u64,
    /// Hours after which events still refused by 5xx/timeouts become dead letters; default
    /// [`DEFAULT_EVENT_MAX_AGE_HOURS`].
    #[serde(default = "default_event_age")]
    pub max_age_hours: u64,
    /// Send no events at all (decisions still reach Brevo); default false.
    #[serde(default)]
    pub disabled: bool,
}

impl Default for EventsSection {
    fn default() -> Self {
        EventsSection {
            batch_size: DEFAULT_EVENT_BATCH_SIZE,
            flush_interval_secs: DEFAULT_EVENT_FLUSH_INTERVAL_SECS,
            queue_size: DEFAULT_EVENT_QUEUE_SIZE,
            concurrency: DEFAULT_EVENT_CONCURRENCY,
            durable: true,
            commit_interval_ms: DEFAULT_EVENT_COMMIT_INTERVAL_MS,
            max_store_mb: DEFAULT_EVENT_MAX_STORE_MB,
            max_age_hours: DEFAULT_EVENT_MAX_AGE_HOURS,
            disabled: false,
        }
    }
}

fn default_event_batch() -> usize {
    DEFAULT_EVENT_BATCH_SIZE
}
fn default_event_flush() -> u64 {
    DEFAULT_EVENT_FLUSH_INTERVAL_SECS
}
fn default_event_queue() -> usize {
    DEFAULT_EVENT_QUEUE_SIZE
}
fn default_event_concurrency() -> usize {
    DEFAULT_EVENT_CONCURRENCY
}
fn default_event_commit() -> u64 {
    DEFAULT_EVENT_COMMIT_INTERVAL_MS
}
fn default_event_store_mb() -> u64 {
    DEFAULT_EVENT_MAX_STORE_MB
}
fn default_event_age() -> u64 {
    DEFAULT_EVENT_MAX_AGE_HOURS
}

/// `urls:` under `connectors.optimizely` (checked to be http(s) URLs when resolved).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimizelyUrls {
    /// Public datafile base URL; default [`DEFAULT_CDN_URL`].
    pub cdn: String,
    /// Authenticated datafile base URL; default [`DEFAULT_AUTH_DATAFILE_URL`].
    pub auth_datafile: String,
    /// Event endpoint; default [`DEFAULT_EVENTS_URL`].
    pub events: String,
    /// EU event endpoint; default [`DEFAULT_EVENTS_EU_URL`].
    pub events_eu: String,
    /// REST v2 base; default [`DEFAULT_REST_URL`].
    pub rest: String,
    /// Flags API base; default [`DEFAULT_FLAGS_URL`].
    pub flags: String,
}

impl Default for OptimizelyUrls {
    fn default() -> Self {
        OptimizelyUrls {
            cdn: DEFAULT_CDN_URL.into(),
            auth_datafile: DEFAULT_AUTH_DATAFILE_URL.into(),
            events: DEFAULT_EVENTS_URL.into(),
            events_eu: DEFAULT_EVENTS_EU_URL.into(),
            rest: DEFAULT_REST_URL.into(),
            flags: DEFAULT_FLAGS_URL.into(),
        }
    }
}

/// `connectors.brevo`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrevoSection {
    /// API key (`api-key` header). Without it Brevo writes are dry-run only.
    #[serde(default)]
    pub api_key: Option<Secret>,
    /// Base URL; default [`DEFAULT_BREVO_BASE_URL`].
    #[serde(default = "default_brevo_url")]
    pub base_url: String,
    /// Log what would be written instead of writing; default false.
    #[serde(default)]
    pub dry_run: bool,
    /// Request budget.
    #[serde(default)]
    pub rate_limit: RateLimitSection,
    /// Contacts per batch call; default [`DEFAULT_BREVO_BATCH_SIZE`].
    #[serde(default = "default_brevo_batch")]
    pub batch_size: usize,
    /// Updates held while Brevo is slow; default [`DEFAULT_BREVO_MAX_PENDING`].
    #[serde(default = "default_brevo_pending")]
    pub max_pending: usize,
    /// Lists every synced contact is added to; default none.
    #[serde(default)]
    pub list_ids: Vec<u64>,
    /// List that unknown contacts are imported into, in bulk (`/contacts/import`); default
    /// none: the first of `list_ids`, and without either, one `POST /contacts` each (~10/s).
    #[serde(default)]
    pub import_list_id: Option<u64>,
    /// Unknown contacts in one batch from which they are imported in bulk; default
    /// [`crate::brevo::DEFAULT_IMPORT_THRESHOLD`].
    #[serde(default = "default_import_threshold")]
    pub import_threshold: usize,
    /// Folder for the winners' lists created by `sync` (required to create lists).
    #[serde(default)]
    pub winners_folder_id: Option<u64>,
    /// How contacts are identified in Brevo; default `email` (the value of the user attribute
    /// named by `field_mapping.user_id`).
    #[serde(default)]
    pub contact_identity: ContactIdentityKind,
}

/// `connectors.brevo.contact_identity`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ContactIdentityKind {
    /// Brevo email (the default).
    #[default]
    Email,
    /// Brevo `ext_id`.
    ExtId,
}

fn default_brevo_url() -> String {
    DEFAULT_BREVO_BASE_URL.into()
}
fn default_brevo_batch() -> usize {
    DEFAULT_BREVO_BATCH_SIZE
}
fn default_brevo_pending() -> usize {
    DEFAULT_BREVO_MAX_PENDING
}

/// `connectors.brevo.rate_limit`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitSection {
    /// Default [`DEFAULT_BREVO_PER_SECOND`].
    pub per_second: u32,
    /// Default [`DEFAULT_BREVO_PER_HOUR`].
    pub per_hour: u32,
}

impl Default for RateLimitSection {
    fn default() -> Self {
        RateLimitSection {
            per_second: DEFAULT_BREVO_PER_SECOND,
            per_hour: DEFAULT_BREVO_PER_HOUR,
        }
    }
}

/// A validated cron expression (croner syntax: 5 fields, or 6 with seconds, or `@hourly` etc.).
#[derive(Clone)]
pub struct CronSchedule {
    pattern: String,
    cron: croner::Cron,
}

impl CronSchedule {
    /// The expression as written.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The next run strictly after `after`, or None when the pattern never matches again.
    pub fn next_after(
        &self,
        after: &chrono::DateTime<chrono::Utc>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        self.cron.find_next_occurrence(after, false).ok()
    }
}

impl FromStr for CronSchedule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let cron =
            croner::Cron::from_str(s).map_err(|e| format!("invalid cron expression `{s}`: {e}"))?;
        Ok(CronSchedule {
            pattern: s.to_string(),
            cron,
        })
    }
}

impl std::fmt::Debug for CronSchedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CronSchedule({:?})", self.pattern)
    }
}

impl<'de> Deserialize<'de> for CronSchedule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Project ids are numbers in Optimizely; accept `123` and `"123"`.
fn opt_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct IdVisitor;
    impl serde::de::Visitor<'_> for IdVisitor {
        type Value = Option<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a project id (number or string)")
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
            if v < 0 {
                return Err(E::custom("a project id cannot be negative"));
            }
            Ok(Some(v.to_string()))
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(IdVisitor)
}

fn default_true() -> bool {
    true
}

fn default_import_threshold() -> usize {
    crate::brevo::DEFAULT_IMPORT_THRESHOLD
}
