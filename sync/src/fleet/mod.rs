//! Several instances as one: shared state in Redis (`store: {url: redis://...}`).
//!
//! Without a `store:` section every instance keeps its own SQLite files in `state_dir`
//! (the default). With one, the instances share through Redis:
//! - **one Brevo budget** for the whole fleet (`ratelimit.rs`): a Lua script that reads Redis's
//!   own clock (`TIME`) keeps a sliding-second log and an hour log per endpoint family, so the
//!   instances together never exceed the per-second and per-hour budgets;
//! - **one outbox of Brevo contacts** (`outbox`): per-contact merged state (the newest
//!   decision wins whichever instance made it) and a stream claimed through a consumer group;
//! - **one lease per scheduled run** (`lease.rs`): `SET NX PX`, so a `flagbridge sync` schedule
//!   runs on one instance whichever have it enabled;
//! - **datafile updates** (`pubsub`): a webhook received by one replica refreshes all.
//!
//! Redis is never on the decide path. When it cannot be reached, each instance falls back to
//! its local behaviour (its own budget, its own runs) and says so in `/health` and `/metrics`
//! ([`FleetStats`]); see `docs/deployment.md`.
//!
//! The connection is made lazily (the first command) and re-made by the connection manager
//! after a failure; every command has a short timeout ([`DEFAULT_COMMAND_TIMEOUT`]).

pub(crate) mod events;
pub(crate) mod lease;
pub(crate) mod outbox;
mod pubsub;
pub(crate) mod ratelimit;
pub(crate) mod stream;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// Default prefix of every key flagbridge writes in Redis.
pub const DEFAULT_KEY_PREFIX: &str = "flagbridge:";
/// Default time after which work claimed by an instance that stopped answering is taken over
/// by another (leases of scheduled runs; in-flight slots of the shared budget).
pub const DEFAULT_LEASE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default timeout of one Redis command (and of a connection attempt).
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(1);

/// Errors of the fleet store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FleetError {
    /// The URL is not a Redis URL the client supports.
    #[error("store.url: {reason}")]
    InvalidUrl {
        /// What is wrong (never the password).
        reason: String,
    },
    /// A setting out of range.
    #[error("store.{setting}: {reason}")]
    InvalidSetting {
        /// The setting (`key_prefix`, `lease_timeout_secs`, ...).
        setting: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// The CA file of a `rediss://` store cannot be used.
    #[error("store.tls_ca_file: {path}: {reason}")]
    TlsCaFile {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A Redis command failed (unreachable, timeout, script error).
    #[error("redis {op}: {source}")]
    Redis {
        /// What was being done.
        op: &'static str,
        /// What the client said.
        #[source]
        source: redis::RedisError,
    },
}

/// How to reach the shared store; see the `DEFAULT_*` constants.
#[derive(Clone)]
pub struct FleetConfig {
    url: String,
    key_prefix: String,
    lease_timeout: Duration,
    command_timeout: Duration,
    tls_ca_file: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for FleetConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetConfig")
            .field("url", &redact(&self.url))
            .field("key_prefix", &self.key_prefix)
            .field("lease_timeout", &self.lease_timeout)
            .field("command_timeout", &self.command_timeout)
            .finish()
    }
}

/// The URL with its password (if any) replaced by `***`.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "(unparsable url)".to_string(),
    }
}

impl FleetConfig {
    /// A store at `url`: `redis://[user:password@]host[:port][/db]` or `rediss://...` (TLS).
    /// Every other setting at its default.
    pub fn new(url: impl Into<String>) -> Self {
        FleetConfig {
            url: url.into(),
            key_prefix: DEFAULT_KEY_PREFIX.to_string(),
            lease_timeout: DEFAULT_LEASE_TIMEOUT,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            tls_ca_file: None,
        }
    }

    /// Trust the server certificate of a `rediss://` store when it is signed by a CA in this
    /// PEM file (a private CA), instead of the system's and the webpki roots. Default: none
    /// (those roots).
    pub fn tls_ca_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.tls_ca_file = Some(path.into());
        self
    }

    /// The CA certificates of `tls_ca_file`, checked (PEM with at least one certificate).
    fn read_tls_ca(&self) -> Result<Option<Vec<u8>>, FleetError> {
        let Some(path) = &self.tls_ca_file else {
            return Ok(None);
        };
        let bad = |reason: String| FleetError::TlsCaFile {
            path: path.clone(),
            reason,
        };
        if !self.url.starts_with("rediss://") {
            return Err(bad("set only with a rediss:// url (TLS)".to_string()));
        }
        let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        if !pem
            .windows(b"-----BEGIN CERTIFICATE-----".len())
            .any(|w| w == b"-----BEGIN CERTIFICATE-----")
        {
            return Err(bad(
                "no PEM certificate (-----BEGIN CERTIFICATE-----) in it".to_string(),
            ));
        }
        Ok(Some(pem))
    }

    /// Prefix of every key (several fleets can share one Redis). Default [`DEFAULT_KEY_PREFIX`].
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// Time after which the work of an instance that stopped answering is taken over.
    /// Default [`DEFAULT_LEASE_TIMEOUT`] (30 s).
    pub fn lease_timeout(mut self, timeout: Duration) -> Self {
        self.lease_timeout = timeout;
        self
    }

    /// Timeout of one Redis command and of a connection attempt. Default
    /// [`DEFAULT_COMMAND_TIMEOUT`] (1 s).
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// The lease timeout.
    pub fn lease_timeout_value(&self) -> Duration {
        self.lease_timeout
    }

    /// Checks the settings and the URL without connecting.
    pub fn validate(&self) -> Result<(), FleetError> {
        let parsed = url::Url::parse(&self.url).map_err(|e| FleetError::InvalidUrl {
            reason: format!("not a URL ({e}); expected redis://host:port/db or rediss://..."),
        })?;
        if !matches!(parsed.scheme(), "redis" | "rediss") {
            return Err(FleetError::InvalidUrl {
                reason: format!(
                    "scheme `{}` is not supported; use redis:// or rediss:// (TLS)",
                    parsed.scheme()
                ),
            });
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(FleetError::InvalidUrl {
                reason: "no host".to_string(),
            });
        }
        let path = parsed.path().trim_start_matches('/');
        if !path.is_empty() && path.parse::<u32>().is_err() {
            return Err(FleetError::InvalidUrl {
                reason: format!("database `{path}` is not a number"),
            });
        }
        redis::Client::open(self.url.as_str()).map_err(|e| FleetError::InvalidUrl {
            reason: e.to_string(),
        })?;
        if self.key_prefix.is_empty() {
            return Err(FleetError::InvalidSetting {
                setting: "key_prefix",
                reason: "must not be empty (keys of other applications could collide)",
            });
        }
        if self.key_prefix.chars().any(|c| c.is_whitespace()) {
            return Err(FleetError::InvalidSetting {
                setting: "key_prefix",
                reason: "must not contain whitespace",
            });
        }
        if self.lease_timeout < Duration::from_secs(1) {
            return Err(FleetError::InvalidSetting {
                setting: "lease_timeout_secs",
                reason: "must be at least 1 second",
            });
        }
        if self.command_timeout.is_zero() {
            return Err(FleetError::InvalidSetting {
                setting: "command_timeout",
                reason: "must be positive",
            });
        }
        self.read_tls_ca()?;
        Ok(())
    }

    /// Validates and makes the (lazy) connection: nothing is sent until the first command,
    /// so a Redis that is down does not stop a start. Needs a tokio runtime.
    pub async fn connect(self) -> Result<Fleet, FleetError> {
        self.validate()?;
        let client = match self.read_tls_ca()? {
            None => redis::Client::open(self.url.as_str()),
            Some(root_cert) => redis::Client::build_with_tls(
                self.url.as_str(),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root_cert),
                },
            ),
        }
        .map_err(|e| FleetError::InvalidUrl {
            reason: e.to_string(),
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.command_timeout))
            .set_response_timeout(Some(self.command_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn =
            ConnectionManager::new_lazy_with_config(client.clone(), config).map_err(|source| {
                FleetError::Redis {
                    op: "connect",
                    source,
                }
            })?;
        Ok(Fleet {
            inner: Arc::new(Inner {
                conn,
                client,
                shown_url: redact(&self.url),
                prefix: self.key_prefix,
                lease_timeout: self.lease_timeout,
                command_timeout: self.command_timeout,
                instance: uuid::Uuid::new_v4().simple().to_string(),
                reachable: AtomicBool::new(true),
                ever_failed: AtomicBool::new(false),
                errors: AtomicU64::new(0),
                last_error: Mutex::new(None),
            }),
        })
    }
}

struct Inner {
    conn: ConnectionManager,
    client: redis::Client,
    shown_url: String,
    prefix: String,
    lease_timeout: Duration,
    command_timeout: Duration,
    instance: String,
    reachable: AtomicBool,
    ever_failed: AtomicBool,
    errors: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// A handle to the shared store (cheap to clone).
#[derive(Clone)]
pub struct Fleet {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("url", &self.inner.shown_url)
            .field("prefix", &self.inner.prefix)
            .field("instance", &self.inner.instance)
            .finish_non_exhaustive()
    }
}

/// What `/health` and `/metrics` show about the shared store.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct FleetStats {
    /// The last command reached Redis.
    pub reachable: bool,
    /// Commands that failed (unreachable, timeout) since the start.
    pub errors: u64,
    /// The last failure's message.
    pub last_error: Option<String>,
    /// The URL (password redacted).
    pub url: String,
    /// This instance's id in the fleet.
    pub instance: String,
}

impl Fleet {
    /// `prefix + suffix`.
    pub(crate) fn key(&self, suffix: &str) -> String {
        let mut key = String::with_capacity(self.inner.prefix.len() + suffix.len());
        key.push_str(&self.inner.prefix);
        key.push_str(suffix);
        key
    }

    /// A connection (multiplexed; cloning is cheap).
    pub(crate) fn conn(&self) -> ConnectionManager {
        self.inner.conn.clone()
    }

    /// The client, for dedicated connections (pub/sub).
    pub(crate) fn client(&self) -> &redis::Client {
        &self.inner.client
    }

    /// This instance's id (random per process).
    pub fn instance(&self) -> &str {
        &self.inner.instance
    }

    /// The lease timeout.
    pub fn lease_timeout(&self) -> Duration {
        self.inner.lease_timeout
    }

    /// The command timeout.
    pub fn command_timeout(&self) -> Duration {
        self.inner.command_timeout
    }

    /// Records the outcome of a command (reachability, errors; a log line when it changes).
    pub(crate) fn observe<T>(
        &self,
        op: &'static str,
        result: redis::RedisResult<T>,
    ) -> Result<T, FleetError> {
        match result {
            Ok(value) => {
                if !self.inner.reachable.swap(true, Ordering::Relaxed) {
                    tracing::info!(url = %self.inner.shown_url, "redis reachable again");
                }
                Ok(value)
            }
            Err(source) => {
                self.inner.errors.fetch_add(1, Ordering::Relaxed);
                self.inner.ever_failed.store(true, Ordering::Relaxed);
                if let Ok(mut last) = self.inner.last_error.lock() {
                    *last = Some(format!("{op}: {source}"));
                }
                if self.inner.reachable.swap(false, Ordering::Relaxed) {
                    tracing::warn!(url = %self.inner.shown_url, op, error = %source, "redis unreachable; falling back to local behaviour until it answers");
                }
                Err(FleetError::Redis { op, source })
            }
        }
    }

    /// Whether the last command reached Redis.
    pub fn is_reachable(&self) -> bool {
        self.inner.reachable.load(Ordering::Relaxed)
    }

    /// Sends `PING`; true when Redis answered.
    pub async fn ping(&self) -> bool {
        let mut conn = self.conn();
        let answer: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut conn).await;
        self.observe("ping", answer).is_ok()
    }

    /// A snapshot for `/health` and `/metrics`.
    pub fn stats(&self) -> FleetStats {
        FleetStats {
            reachable: self.is_reachable(),
            errors: self.inner.errors.load(Ordering::Relaxed),
            last_error: self.inner.last_error.lock().ok().and_then(|l| l.clone()),
            url: self.inner.shown_url.clone(),
            instance: self.inner.instance.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked_and_errors_name_the_key() {
        let cases: [(&str, &str, u64, Option<&str>); 9] = [
            ("redis://127.0.0.1:6379/0", "fb:", 30, None),
            ("rediss://user:pw@redis.example:6380/2", "fb:", 30, None),
            ("redis://:secret@localhost", "fb:", 30, None),
            ("http://127.0.0.1:6379", "fb:", 30, Some("store.url")),
            ("127.0.0.1:6379", "fb:", 30, Some("store.url")),
            ("redis://127.0.0.1:6379/abc", "fb:", 30, Some("store.url")),
            ("redis://127.0.0.1:6379/0", "", 30, Some("store.key_prefix")),
            (
                "redis://127.0.0.1:6379/0",
                "a b",
                30,
                Some("store.key_prefix"),
            ),
            (
                "redis://127.0.0.1:6379/0",
                "fb:",
                0,
                Some("store.lease_timeout_secs"),
            ),
        ];
        for (url, prefix, lease, expected) in cases {
            let result = FleetConfig::new(url)
                .key_prefix(prefix)
                .lease_timeout(Duration::from_secs(lease))
                .validate();
            match (result, expected) {
                (Ok(()), None) => {}
                (Err(e), Some(key)) => {
                    let shown = e.to_string();
                    assert!(shown.starts_with(key), "{url}: {shown}");
                    assert!(!shown.contains("secret"), "{shown}");
                }
                (other, _) => panic!("{url} {prefix:?} {lease}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_password_never_shows() {
        let cfg = FleetConfig::new("redis://:hunter2@127.0.0.1:6379/0");
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("***"), "{shown}");
        assert_eq!(
            redact("redis://127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
    }
}
