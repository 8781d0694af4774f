//! Brevo contact sync: every decision made through the `Client` becomes Brevo contact
//! attributes, every conversion a Brevo event, off the decide path.
//!
//! # Overview
//! - [`BrevoSyncBuilder`] validates the configuration, opens the store, lists Brevo's
//!   attributes and creates the missing ones, then starts the worker: [`BrevoSync`].
//! - [`BrevoSink`] is what the decide path calls: it copies a few keys into its thread's
//!   bounded ring and returns (overflow is counted, never blocks).
//! - The worker keeps the latest state per contact (coalescing: a write only when the derived
//!   attributes differ from what Brevo last acknowledged), commits it to an SQLite store, and
//!   sends `POST /contacts/batch` on size or interval within the rate budget.
//! - [`BrevoTransport`] is the HTTP seam: [`ReqwestTransport`] for Brevo, [`DryRunTransport`]
//!   (the default without an API key) writes each request as a JSON line to a file.
//!
//! # Attributes written
//! `ENABLED_FEATURES`, `EXPERIMENT_VARIATION`, `EXPERIMENT_NAME`, `VARIATION_NAME`,
//! `FEATURE_FLAG`, `FEATURE_ENABLED`, `EXPERIMENT_DATE`, `OPT_SEGMENTS`, `FEATURE_FLAGS_SYNCED`
//! (names configurable with [`BrevoSyncBuilder::attribute_names`]). `EXPERIMENT_DATE` is the day
//! the latest experiment decision took its current value (not the day of every decide, which
//! would force a write per contact per day). `FEATURE_FLAGS_SYNCED` is the day of the write
//! and is not part of the change digest.
//!
//! # Durability
//! Accepted changes are committed to the store at least every
//! [`commit_interval`](BrevoSyncBuilder::commit_interval) (default 1 s), before every send, and
//! on flush and close. A `kill -9` loses at most the changes accepted since the last commit
//! (the window); everything committed is sent after a restart, and contact states Brevo
//! acknowledged are not sent again. Events are not idempotent in Brevo: an event sent but not
//! yet recorded as acknowledged when the process dies is sent again.
//!
//! # UNCONFIRMED Brevo behaviour (configurable)
//! Maximum contacts per batch ([`batch_size`](BrevoSyncBuilder::batch_size)), date encoding
//! ([`date_format`](BrevoSyncBuilder::date_format)), attribute name rules (upper-case
//! `[A-Z][A-Z0-9_]*`, at most 64 characters), the unit of `x-sib-ratelimit-reset` (seconds;
//! [`rate_limit_wait`](BrevoSyncBuilder::rate_limit_wait) when absent), the shape of 207
//! answers, whether `/events/batch` is available ([`use_events_batch`](BrevoSyncBuilder::use_events_batch)).

mod answer;
mod batch;
mod coalesce;
mod config;
pub(crate) mod derive;
mod dry_run;
mod error;
mod record;
mod ring;
mod service;
mod shared;
mod sink;
mod stamp;
mod store;
mod time;
mod transport;
mod worker;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

pub(crate) use config::JITTER_MARGIN;
pub use config::{
    brevo_event_name, validate_attribute_name, ApiKey, AttributeNames, AttributeSwitches,
    AttributeType, ContactIdentity, DateFormat, IdentitySource, RateBudget, DEFAULT_BACKOFF_BASE,
    DEFAULT_BACKOFF_MAX, DEFAULT_BASE_URL, DEFAULT_BATCH_SIZE, DEFAULT_COMMIT_INTERVAL,
    DEFAULT_CONTACTS_PER_HOUR, DEFAULT_CONTACTS_PER_SECOND, DEFAULT_DRY_RUN_PATH,
    DEFAULT_EVENTS_BATCH_SIZE, DEFAULT_EVENTS_PER_HOUR, DEFAULT_EVENTS_PER_SECOND,
    DEFAULT_FLUSH_INTERVAL, DEFAULT_IMPORT_THRESHOLD, DEFAULT_MAX_ATTEMPTS, DEFAULT_QUEUE_CAPACITY,
    DEFAULT_RATE_LIMIT_WAIT, DEFAULT_REQUEST_TIMEOUT, DEFAULT_USER_ID_ATTRIBUTE,
    MAX_ATTRIBUTE_NAME_LEN, MAX_EVENTS_BATCH_BYTES,
};
pub use dry_run::DryRunTransport;
pub use error::BrevoError;
pub use record::{
    AttrValue, AudienceSource, ConversionRecord, DecisionRecord, RuleSource, UserSnapshot,
};
pub use service::{BrevoCounters, BrevoSync};
pub use shared::{SetAside, SET_ASIDE_MEMORY};
pub use sink::BrevoSink;
pub use transport::{BrevoRequest, BrevoResponse, BrevoTransport, Method, ReqwestTransport};

use config::Config;
use shared::Shared;
use worker::Worker;

/// Default path of the on-disk store.
pub const DEFAULT_STORE_PATH: &str = "flagbridge-brevo.sqlite";

/// Builds a [`BrevoSync`].
#[derive(Debug)]
pub struct BrevoSyncBuilder {
    cfg: Config,
    event_names: Vec<(String, String)>,
    transport: Option<Box<dyn BrevoTransport>>,
}

impl std::fmt::Debug for dyn BrevoTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BrevoTransport")
    }
}

impl Default for BrevoSyncBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl BrevoSync {
    /// A builder with every default.
    pub fn builder() -> BrevoSyncBuilder {
        BrevoSyncBuilder::new()
    }
}

impl BrevoSyncBuilder {
    /// A builder with every default: dry run (no key), email identity from the `email`
    /// attribute, store at [`DEFAULT_STORE_PATH`].
    pub fn new() -> Self {
        BrevoSyncBuilder {
            cfg: Config {
                api_key: None,
                base_url: DEFAULT_BASE_URL.to_string(),
                identity: ContactIdentity::Email,
                identity_source: IdentitySource::Attribute(DEFAULT_USER_ID_ATTRIBUTE.to_string()),
                names: AttributeNames::default(),
                date_format: DateFormat::Date,
                event_names: HashMap::new(),
                batch_size: DEFAULT_BATCH_SIZE,
                events_batch_size: DEFAULT_EVENTS_BATCH_SIZE,
                use_events_batch: true,
                flush_interval: DEFAULT_FLUSH_INTERVAL,
                commit_interval: DEFAULT_COMMIT_INTERVAL,
                queue_capacity: DEFAULT_QUEUE_CAPACITY,
                contacts_budget: RateBudget {
                    per_second: DEFAULT_CONTACTS_PER_SECOND,
                    per_hour: DEFAULT_CONTACTS_PER_HOUR,
                },
                events_budget: RateBudget {
                    per_second: DEFAULT_EVENTS_PER_SECOND,
                    per_hour: DEFAULT_EVENTS_PER_HOUR,
                },
                import_list_id: None,
                list_ids: Vec::new(),
                import_threshold: DEFAULT_IMPORT_THRESHOLD,
                request_timeout: DEFAULT_REQUEST_TIMEOUT,
                backoff_base: DEFAULT_BACKOFF_BASE,
                backoff_max: DEFAULT_BACKOFF_MAX,
                rate_limit_wait: DEFAULT_RATE_LIMIT_WAIT,
                max_attempts: DEFAULT_MAX_ATTEMPTS,
                store_path: Some(PathBuf::from(DEFAULT_STORE_PATH)),
                dry_run_path: PathBuf::from(DEFAULT_DRY_RUN_PATH),
                fleet: None,
            },
            event_names: Vec::new(),
            transport: None,
        }
    }

    /// Brevo API key. Default: none, which selects the dry run.
    pub fn api_key(mut self, key: ApiKey) -> Self {
        self.cfg.api_key = Some(key);
        self
    }

    /// Brevo API root, `/v3` included. Default [`DEFAULT_BASE_URL`].
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.cfg.base_url = url.into();
        self
    }

    /// How contacts are identified in Brevo. Default [`ContactIdentity::Email`].
    pub fn identity(mut self, identity: ContactIdentity) -> Self {
        self.cfg.identity = identity;
        self
    }

    /// Where the identity comes from (`field_mapping.user_id`). Default: the user attribute
    /// [`DEFAULT_USER_ID_ATTRIBUTE`] (`email`). Users without it are skipped and counted.
    pub fn identity_source(mut self, source: IdentitySource) -> Self {
        self.cfg.identity_source = source;
        self
    }

    /// Names of the attributes written, and which optional ones are written
    /// ([`AttributeNames::written`]). Default [`AttributeNames::default`] (all written).
    pub fn attribute_names(mut self, names: AttributeNames) -> Self {
        self.cfg.names = names;
        self
    }

    /// Encoding of date attributes. Default [`DateFormat::Date`] (`YYYY-MM-DD`).
    pub fn date_format(mut self, format: DateFormat) -> Self {
        self.cfg.date_format = format;
        self
    }

    /// Maps an Optimizely event key to a Brevo event name. Default: the key itself, with
    /// characters Brevo refuses replaced by `_` ([`brevo_event_name`]).
    pub fn event_name(
        mut self,
        event_key: impl Into<String>,
        brevo_name: impl Into<String>,
    ) -> Self {
        self.event_names.push((event_key.into(), brevo_name.into()));
        self
    }

    /// Contacts per `/contacts/batch` request (1..=10,000). Default [`DEFAULT_BATCH_SIZE`].
    pub fn batch_size(mut self, size: usize) -> Self {
        self.cfg.batch_size = size;
        self
    }

    /// Events per `/events/batch` request (1..=200). Default [`DEFAULT_EVENTS_BATCH_SIZE`].
    pub fn events_batch_size(mut self, size: usize) -> Self {
        self.cfg.events_batch_size = size;
        self
    }

    /// Use `/events/batch` (true) or one `/events` call per event (false). Default true.
    pub fn use_events_batch(mut self, yes: bool) -> Self {
        self.cfg.use_events_batch = yes;
        self
    }

    /// How often pending changes are sent. Default [`DEFAULT_FLUSH_INTERVAL`] (5 s).
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.cfg.flush_interval = interval;
        self
    }

    /// Longest time an accepted change stays uncommitted (the loss window of a `kill -9`).
    /// Default [`DEFAULT_COMMIT_INTERVAL`] (1 s).
    pub fn commit_interval(mut self, interval: Duration) -> Self {
        self.cfg.commit_interval = interval;
        self
    }

    /// Records that can wait between the decide path and the worker: each thread that decides
    /// gets a ring of `min(capacity, 4,096)` records, and the worker's inbox holds
    /// `capacity / 256` batches (at least one) of up to 256 records. A decision takes one
    /// record, plus one when its thread's user changed and one when its config did. A full
    /// ring drops the decision and counts it (`queue_overflow`). Default
    /// [`DEFAULT_QUEUE_CAPACITY`].
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.cfg.queue_capacity = capacity;
        self
    }

    /// Budget shared by every `/v3/contacts/*` call. Default 10/s and 36,000/h (General plan).
    pub fn contacts_budget(mut self, budget: RateBudget) -> Self {
        self.cfg.contacts_budget = budget;
        self
    }

    /// Budget of the events calls. Default 10/s and 36,000/h (General plan).
    pub fn events_budget(mut self, budget: RateBudget) -> Self {
        self.cfg.events_budget = budget;
        self
    }

    /// Brevo list that unknown contacts are imported into when a batch names at least
    /// [`import_threshold`](Self::import_threshold) of them. Default: none (one upsert each).
    pub fn import_list_id(mut self, list_id: i64) -> Self {
        self.cfg.import_list_id = Some(list_id);
        self
    }

    /// Brevo lists every synced contact joins: each contact write (`/contacts/batch` item,
    /// create, `PUT`, import) carries them as `listIds`, so a contact removed from one of these
    /// lists by hand joins it again at its next write. Default: none.
    pub fn list_ids(mut self, ids: impl IntoIterator<Item = i64>) -> Self {
        self.cfg.list_ids = ids.into_iter().collect();
        self
    }

    /// Unknown contacts from which the import list is used. Default [`DEFAULT_IMPORT_THRESHOLD`].
    pub fn import_threshold(mut self, threshold: usize) -> Self {
        self.cfg.import_threshold = threshold;
        self
    }

    /// Timeout of one request. Default [`DEFAULT_REQUEST_TIMEOUT`] (30 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.cfg.request_timeout = timeout;
        self
    }

    /// Backoff after 5xx and timeouts: first delay and cap. Defaults [`DEFAULT_BACKOFF_BASE`]
    /// (500 ms) and [`DEFAULT_BACKOFF_MAX`] (60 s).
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.cfg.backoff_base = base;
        self.cfg.backoff_max = max;
        self
    }

    /// Wait after a 429 without a usable `x-sib-ratelimit-reset`. Default
    /// [`DEFAULT_RATE_LIMIT_WAIT`] (1 s).
    pub fn rate_limit_wait(mut self, wait: Duration) -> Self {
        self.cfg.rate_limit_wait = wait;
        self
    }

    /// Attempts per request within one flush (5xx, timeouts), and per contact or event on
    /// partial failures before it is set aside. Default [`DEFAULT_MAX_ATTEMPTS`].
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.cfg.max_attempts = attempts;
        self
    }

    /// Path of the SQLite store; `None` keeps it in memory (not durable). Default
    /// [`DEFAULT_STORE_PATH`] in the working directory.
    pub fn store_path(mut self, path: Option<PathBuf>) -> Self {
        self.cfg.store_path = path;
        self
    }

    /// File the dry run appends requests to. Default [`DEFAULT_DRY_RUN_PATH`].
    pub fn dry_run_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.cfg.dry_run_path = path.into();
        self
    }

    /// Shares the request budgets with every instance connected to the same fleet store
    /// (Redis, same key prefix): together they never exceed `contacts_budget` and
    /// `events_budget`. While Redis is unreachable each instance falls back to its own budget.
    /// Default: none (this instance's budget is its own).
    pub fn fleet(mut self, fleet: crate::fleet::Fleet) -> Self {
        self.cfg.fleet = Some(fleet);
        self
    }

    /// Replaces the transport (tests, proxies with their own client). Default: reqwest with
    /// the API key, or the dry run without one.
    pub fn transport(mut self, transport: Box<dyn BrevoTransport>) -> Self {
        self.transport = Some(transport);
        self
    }

    fn validate(&mut self) -> Result<(), BrevoError> {
        let bad = |setting, reason| Err(BrevoError::InvalidSetting { setting, reason });
        self.cfg.names.validate()?;
        if !(1..=10_000).contains(&self.cfg.batch_size) {
            return bad("batch_size", "must be 1..=10000");
        }
        if !(1..=DEFAULT_EVENTS_BATCH_SIZE).contains(&self.cfg.events_batch_size) {
            return bad("events_batch_size", "must be 1..=200");
        }
        if self.cfg.flush_interval.is_zero() {
            return bad("flush_interval", "must be positive");
        }
        if self.cfg.commit_interval.is_zero() {
            return bad("commit_interval", "must be positive");
        }
        if self.cfg.queue_capacity == 0 {
            return bad("queue_capacity", "must be positive");
        }
        if self.cfg.list_ids.iter().any(|&id| id <= 0) {
            return bad("list_ids", "list ids must be positive");
        }
        if self.cfg.max_attempts == 0 {
            return bad("max_attempts", "must be positive");
        }
        for budget in [self.cfg.contacts_budget, self.cfg.events_budget] {
            if budget.per_second == 0 || budget.per_hour == 0 {
                return bad(
                    "budget",
                    "requests per second and per hour must be positive",
                );
            }
        }
        if let IdentitySource::Attribute(name) = &self.cfg.identity_source {
            if name.is_empty() {
                return bad("identity_source", "attribute name is empty");
            }
        }
        for (key, name) in &self.event_names {
            config::validate_event_name(name)?;
            self.cfg.event_names.insert(key.clone(), name.clone());
        }
        Ok(())
    }

    /// Validates, opens the store, makes sure the attributes exist in Brevo (creating the
    /// missing ones), and starts the worker on the current tokio runtime.
    pub async fn start(mut self) -> Result<BrevoSync, BrevoError> {
        self.validate()?;
        let (transport, dry_run): (Box<dyn BrevoTransport>, bool) = match self.transport.take() {
            Some(t) => (t, false),
            None => match &self.cfg.api_key {
                Some(key) => (
                    Box::new(ReqwestTransport::new(
                        &self.cfg.base_url,
                        key.clone(),
                        self.cfg.request_timeout,
                    )?),
                    false,
                ),
                None => {
                    tracing::info!(path = %self.cfg.dry_run_path.display(), "no Brevo API key: dry run, requests are written to the file");
                    (
                        Box::new(DryRunTransport::open(&self.cfg.dry_run_path)?),
                        true,
                    )
                }
            },
        };
        let cfg = Arc::new(self.cfg);
        let shared = Arc::new(Shared::new(cfg.queue_capacity, cfg.identity_source.clone()));
        let inbox = shared.handoff.spawn_collector();
        let mut worker = Worker::new(Arc::clone(&cfg), Arc::clone(&shared), transport, inbox)?;
        worker.ensure_attributes().await?;
        let (tx, rx) = mpsc::channel(16);
        let join = tokio::spawn(worker.run(rx));
        Ok(BrevoSync {
            shared,
            commands: tx,
            worker: Mutex::new(Some(join)),
            dry_run,
        })
    }
}

/// Internals exposed for the criterion benches (feature `testing`); not part of the API.
#[cfg(feature = "testing")]
pub(crate) mod bench_support {
    use super::coalesce::Coalescer;
    use super::config::{AttributeNames, DateFormat};
    use super::record::DecisionRecord;

    /// The coalescer alone (no queue, no store, no I/O).
    #[derive(Default)]
    pub struct CoalescerBench {
        coalescer: Coalescer,
        /// The stamp of the last decision applied (each `apply` is a newer decision).
        seq: u64,
    }

    impl CoalescerBench {
        /// An empty coalescer.
        pub fn new() -> Self {
            Self::default()
        }
        /// Folds one decision into the contact's state.
        pub fn apply(&mut self, record: &DecisionRecord) {
            self.seq += 1;
            self.coalescer.apply(record, self.seq, 20_000);
        }
        /// Contacts known.
        pub fn contacts(&self) -> usize {
            self.coalescer.len()
        }
        /// Takes and counts the contacts due for a write.
        pub fn take_all_due(&mut self) -> usize {
            let names = AttributeNames::default();
            let mut n = 0;
            loop {
                let (due, _) = self.coalescer.take_due(10_000, &names, DateFormat::Date);
                if due.is_empty() {
                    return n;
                }
                for d in &due {
                    self.coalescer.acknowledge(d.slot, d.derived.digest);
                }
                n += due.len();
            }
        }
    }
}
