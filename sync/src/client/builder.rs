//! `ClientBuilder`: every setting of the `Client`, with its default.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use flagbridge_engine::{DecideOptions, UserProfileService};

use crate::datafile::source::DatafileSource;
use crate::events::EventTransport;
use crate::events::{self, EventSettings, EventStorage, MAX_PAYLOAD_BYTES};
use crate::notify::DEFAULT_NOTIFICATION_CAPACITY;
use crate::remote::{CmabService, CmabServiceBuilder, OdpManager, OdpManagerBuilder};
use crate::sink::DecisionSink;
use crate::BuildError;

/// Default interval between datafile polls.
pub const DEFAULT_POLLING_INTERVAL: Duration = Duration::from_secs(60);
/// Intervals below this are accepted with a warning ("not recommended").
pub const RECOMMENDED_MIN_POLLING_INTERVAL: Duration = Duration::from_secs(30);
/// Intervals below this are refused.
pub const MIN_POLLING_INTERVAL: Duration = Duration::from_secs(1);
/// Default time `start` waits for a first config.
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(10);
/// Default connect timeout of datafile requests.
pub const DEFAULT_DATAFILE_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default total timeout of one datafile request.
pub const DEFAULT_DATAFILE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default first backoff step after a failed poll (it doubles up to the polling interval).
pub const DEFAULT_DATAFILE_BACKOFF_BASE: Duration = Duration::from_secs(1);
/// Default `client_name` in event batches. Whether Optimizely's results pipeline accepts any
/// name is UNCONFIRMED; set `client_info("node-sdk", ...)` if reports need an SDK name.
pub const DEFAULT_CLIENT_NAME: &str = "flagbridge";
/// Default `client_version` in event batches: this crate's version.
pub const DEFAULT_CLIENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Builds a [`Client`](crate::Client); finish with [`start`](ClientBuilder::start).
///
/// ```no_run
/// # async fn run() -> Result<(), flagbridge_sync::StartError> {
/// let client = flagbridge_sync::Client::builder()
///     .sdk_key("YOUR_SDK_KEY")
///     .cache_file("/var/cache/flagbridge/datafile.json")
///     .start()
///     .await?;
/// let user = client.create_user_context("user-1");
/// let decision = user.decide("checkout_flow", Default::default());
/// println!("{} -> {:?}", decision.flag_key, decision.variation_key);
/// client.close().await;
/// # Ok(()) }
/// ```
pub struct ClientBuilder {
    pub(crate) source: Option<DatafileSource>,
    pub(crate) base_url: Option<String>,
    pub(crate) polling_interval: Duration,
    pub(crate) start_timeout: Duration,
    pub(crate) datafile_connect_timeout: Duration,
    pub(crate) datafile_timeout: Duration,
    pub(crate) backoff_base: Duration,
    pub(crate) cache_file: Option<PathBuf>,
    pub(crate) events_enabled: bool,
    pub(crate) events: EventSettings,
    pub(crate) event_connect_timeout: Duration,
    pub(crate) event_timeout: Duration,
    pub(crate) event_transport: Option<Arc<dyn EventTransport>>,
    pub(crate) client_name: String,
    pub(crate) client_version: String,
    pub(crate) default_options: DecideOptions,
    pub(crate) user_profile_service: Option<Arc<dyn UserProfileService>>,
    pub(crate) sinks: Vec<Arc<dyn DecisionSink>>,
    pub(crate) notification_capacity: usize,
    pub(crate) cmab: CmabServiceBuilder,
    pub(crate) cmab_service: Option<Arc<CmabService>>,
    pub(crate) odp: Option<OdpManagerBuilder>,
    pub(crate) odp_manager: Option<Arc<OdpManager>>,
    pub(crate) fleet: Option<crate::fleet::Fleet>,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field(
                "source",
                &self.source.as_ref().map(DatafileSource::describe),
            )
            .field("polling_interval", &self.polling_interval)
            .field("cache_file", &self.cache_file)
            .field("events_enabled", &self.events_enabled)
            .field("sinks", &self.sinks.len())
            .finish_non_exhaustive()
    }
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            source: None,
            base_url: None,
            polling_interval: DEFAULT_POLLING_INTERVAL,
            start_timeout: DEFAULT_START_TIMEOUT,
            datafile_connect_timeout: DEFAULT_DATAFILE_CONNECT_TIMEOUT,
            datafile_timeout: DEFAULT_DATAFILE_TIMEOUT,
            backoff_base: DEFAULT_DATAFILE_BACKOFF_BASE,
            cache_file: None,
            events_enabled: true,
            events: EventSettings::default(),
            event_connect_timeout: events::DEFAULT_EVENT_CONNECT_TIMEOUT,
            event_timeout: events::DEFAULT_EVENT_TIMEOUT,
            event_transport: None,
            client_name: DEFAULT_CLIENT_NAME.to_owned(),
            client_version: DEFAULT_CLIENT_VERSION.to_owned(),
            default_options: DecideOptions::NONE,
            user_profile_service: None,
            sinks: Vec::new(),
            notification_capacity: DEFAULT_NOTIFICATION_CAPACITY,
            cmab: CmabServiceBuilder::default(),
            cmab_service: None,
            odp: None,
            odp_manager: None,
            fleet: None,
        }
    }
}

impl ClientBuilder {
    /// A builder with every default and no datafile source.
    pub fn new() -> Self {
        ClientBuilder::default()
    }

    /// Fetch the datafile of this SDK key from the CDN. No default: one source must be set.
    pub fn sdk_key(mut self, sdk_key: impl Into<String>) -> Self {
        self.source = Some(DatafileSource::sdk_key(sdk_key));
        self
    }

    /// Fetch the authenticated datafile of this SDK key with a datafile access token.
    pub fn authenticated(mut self, sdk_key: impl Into<String>, token: impl Into<String>) -> Self {
        self.source = Some(DatafileSource::authenticated(sdk_key, token));
        self
    }

    /// Fetch the datafile from any URL (conditional GET).
    pub fn datafile_url(mut self, url: impl Into<String>) -> Self {
        self.source = Some(DatafileSource::Url(url.into()));
        self
    }

    /// Read the datafile from a file, re-read at each poll.
    pub fn datafile_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.source = Some(DatafileSource::File(path.into()));
        self
    }

    /// Serve this datafile text; no polling.
    pub fn datafile(mut self, text: impl Into<String>) -> Self {
        self.source = Some(DatafileSource::Static(text.into()));
        self
    }

    /// Any [`DatafileSource`].
    pub fn source(mut self, source: DatafileSource) -> Self {
        self.source = Some(source);
        self
    }

    /// Base URL for the SDK-key sources (tests, private mirrors). Default: the Optimizely CDN
    /// (`https://cdn.optimizely.com`, or `https://config.optimizely.com` when authenticated).
    pub fn datafile_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = Some(base_url.into());
        self
    }

    /// Interval between polls. Default [`DEFAULT_POLLING_INTERVAL`] (60 s); below 30 s logs a
    /// warning; below [`MIN_POLLING_INTERVAL`] (1 s) `start` fails.
    pub fn polling_interval(mut self, interval: Duration) -> Self {
        self.polling_interval = interval;
        self
    }

    /// How long `start` waits for a first config. Default [`DEFAULT_START_TIMEOUT`] (10 s).
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// Connect timeout of datafile requests. Default [`DEFAULT_DATAFILE_CONNECT_TIMEOUT`] (5 s).
    pub fn datafile_connect_timeout(mut self, timeout: Duration) -> Self {
        self.datafile_connect_timeout = timeout;
        self
    }

    /// Total timeout of one datafile request. Default [`DEFAULT_DATAFILE_TIMEOUT`] (10 s).
    pub fn datafile_timeout(mut self, timeout: Duration) -> Self {
        self.datafile_timeout = timeout;
        self
    }

    /// First backoff step after a failed poll; it doubles (with jitter) up to the polling
    /// interval. Default [`DEFAULT_DATAFILE_BACKOFF_BASE`] (1 s).
    pub fn datafile_backoff_base(mut self, base: Duration) -> Self {
        self.backoff_base = base;
        self
    }

    /// Write the last good datafile here (atomically) and serve it at start when the source
    /// cannot be reached. Default: none.
    pub fn cache_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.cache_file = Some(path.into());
        self
    }

    /// Send impressions and conversions to Optimizely. Default true.
    pub fn events_enabled(mut self, enabled: bool) -> Self {
        self.events_enabled = enabled;
        self
    }

    /// Send every event batch to this URL. Default: by datafile region,
    /// [`US_ENDPOINT`](crate::events::US_ENDPOINT) or [`EU_ENDPOINT`](crate::events::EU_ENDPOINT).
    pub fn event_endpoint(mut self, url: impl Into<String>) -> Self {
        self.events.endpoint_override = Some(url.into());
        self
    }

    /// Where accepted events wait for the endpoint. Default: the SQLite file
    /// [`DEFAULT_EVENT_STORE_PATH`](crate::events::DEFAULT_EVENT_STORE_PATH)
    /// (`flagbridge-events.sqlite` in the working directory); one client at a time per file.
    /// [`EventStorage::Memory`] keeps them in memory only (lost on a crash).
    pub fn event_storage(mut self, storage: EventStorage) -> Self {
        self.events.storage = storage;
        self
    }

    /// Cap on the bytes of events in the store, counted as JSON before compression (on disk
    /// they take about a tenth); past it new events are dropped, counted and logged once per
    /// streak. Default
    /// [`DEFAULT_EVENT_MAX_STORE_BYTES`](crate::events::DEFAULT_EVENT_MAX_STORE_BYTES) (1 GiB).
    pub fn event_max_store_bytes(mut self, bytes: u64) -> Self {
        self.events.max_store_bytes = bytes;
        self
    }

    /// Budget of event bodies also held in memory (past it they are read back from the store
    /// to be sent; without a store, past it events are dropped). Default
    /// [`DEFAULT_EVENT_MAX_MEMORY_BYTES`](crate::events::DEFAULT_EVENT_MAX_MEMORY_BYTES) (64 MiB).
    pub fn event_max_memory_bytes(mut self, bytes: usize) -> Self {
        self.events.max_memory_bytes = bytes;
        self
    }

    /// Interval of group commits to the store: what a `kill -9` can lose. Default
    /// [`DEFAULT_EVENT_COMMIT_INTERVAL`](crate::events::DEFAULT_EVENT_COMMIT_INTERVAL) (100 ms).
    pub fn event_commit_interval(mut self, interval: Duration) -> Self {
        self.events.commit_interval = interval;
        self
    }

    /// Records each deciding thread's ring holds (one record per decide call); a full ring
    /// spills into a shared overflow list. Default
    /// [`DEFAULT_EVENT_QUEUE_CAPACITY`](crate::events::DEFAULT_EVENT_QUEUE_CAPACITY) (4,096).
    pub fn event_queue_capacity(mut self, capacity: usize) -> Self {
        self.events.ring_capacity = capacity;
        self
    }

    /// Records the overflow list takes when rings are full; past it records are dropped and
    /// counted (`overflow`). Default
    /// [`DEFAULT_EVENT_SPILL_CAPACITY`](crate::events::DEFAULT_EVENT_SPILL_CAPACITY) (1,000,000).
    pub fn event_spill_capacity(mut self, capacity: usize) -> Self {
        self.events.spill_capacity = capacity;
        self
    }

    /// Most events per request. Default
    /// [`DEFAULT_EVENT_BATCH_SIZE`](crate::events::DEFAULT_EVENT_BATCH_SIZE) (2,000).
    pub fn event_batch_size(mut self, size: usize) -> Self {
        self.events.batch_size = size;
        self
    }

    /// Most bytes per request. Default
    /// [`DEFAULT_EVENT_BATCH_BYTES`](crate::events::DEFAULT_EVENT_BATCH_BYTES) (1 MB); at most
    /// [`MAX_PAYLOAD_BYTES`](crate::events::MAX_PAYLOAD_BYTES) (3.5 MB).
    pub fn event_batch_bytes(mut self, bytes: usize) -> Self {
        self.events.batch_bytes = bytes;
        self
    }

    /// A request that is not full is sent once its oldest events waited this long. Default
    /// [`DEFAULT_EVENT_FLUSH_INTERVAL`](crate::events::DEFAULT_EVENT_FLUSH_INTERVAL) (1 s).
    pub fn event_flush_interval(mut self, interval: Duration) -> Self {
        self.events.flush_interval = interval;
        self
    }

    /// Requests in flight to the event endpoint. Default
    /// [`DEFAULT_EVENT_CONCURRENCY`](crate::events::DEFAULT_EVENT_CONCURRENCY) (4).
    pub fn event_concurrency(mut self, requests: usize) -> Self {
        self.events.concurrency = requests;
        self
    }

    /// Backoff of event retries: first step and cap. Default 1 s and 60 s
    /// ([`DEFAULT_EVENT_RETRY_BASE`](crate::events::DEFAULT_EVENT_RETRY_BASE),
    /// [`DEFAULT_EVENT_RETRY_MAX`](crate::events::DEFAULT_EVENT_RETRY_MAX)).
    pub fn event_retry_backoff(mut self, base: Duration, max: Duration) -> Self {
        self.events.retry_base = base;
        self.events.retry_max = max;
        self
    }

    /// Events still not accepted this long after they were stored become dead letters
    /// (retries have no count limit). Default
    /// [`DEFAULT_EVENT_MAX_AGE`](crate::events::DEFAULT_EVENT_MAX_AGE) (24 h).
    pub fn event_max_age(mut self, age: Duration) -> Self {
        self.events.max_age = age;
        self
    }

    /// How long `close` keeps sending; the rest stays in the store for the next start.
    /// Default [`DEFAULT_EVENT_SHUTDOWN_TIMEOUT`](crate::events::DEFAULT_EVENT_SHUTDOWN_TIMEOUT)
    /// (10 s).
    pub fn event_shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.events.shutdown_timeout = timeout;
        self
    }

    /// Connect and total timeouts of one event POST. Default 5 s and 10 s.
    pub fn event_timeouts(mut self, connect: Duration, total: Duration) -> Self {
        self.event_connect_timeout = connect;
        self.event_timeout = total;
        self
    }

    /// Share the event queue with the other replicas of a fleet (`store:` Redis): requests are
    /// stored locally, then handed over to a Redis stream that every replica's senders post
    /// from (the lease of `fleet` bounds how long a stopped replica's claimed requests wait).
    /// `flush` then returns once the events are in Redis. Default: none (this client posts
    /// its own events).
    pub fn fleet(mut self, fleet: crate::fleet::Fleet) -> Self {
        self.fleet = Some(fleet);
        self
    }

    /// Send events through this transport instead of reqwest (tests, proxies). Default: reqwest.
    pub fn event_transport(mut self, transport: Arc<dyn EventTransport>) -> Self {
        self.event_transport = Some(transport);
        self
    }

    /// `client_name` and `client_version` in event batches. Default [`DEFAULT_CLIENT_NAME`] and
    /// [`DEFAULT_CLIENT_VERSION`].
    pub fn client_info(mut self, name: impl Into<String>, version: impl Into<String>) -> Self {
        self.client_name = name.into();
        self.client_version = version.into();
        self
    }

    /// Options OR-ed into every decide. Default none.
    pub fn default_decide_options(mut self, options: DecideOptions) -> Self {
        self.default_options = options;
        self
    }

    /// Sticky bucketing store. Default none.
    pub fn user_profile_service(mut self, ups: Arc<dyn UserProfileService>) -> Self {
        self.user_profile_service = Some(ups);
        self
    }

    /// Offer every decision and conversion to `sink` (e.g. the Brevo sync). Default none; may be
    /// called several times.
    pub fn decision_sink(mut self, sink: Arc<dyn DecisionSink>) -> Self {
        self.sinks.push(sink);
        self
    }

    /// Notifications waiting for listeners; beyond it they are dropped and counted. Default
    /// [`DEFAULT_NOTIFICATION_CAPACITY`] (10,000).
    pub fn notification_capacity(mut self, capacity: usize) -> Self {
        self.notification_capacity = capacity;
        self
    }

    /// CMAB predictions of the async decide (endpoint template, cache, timeouts). Default:
    /// [`CmabServiceBuilder::default`] (Optimizely's endpoint, 10,000 entries, 30 minutes).
    pub fn cmab(mut self, cmab: CmabServiceBuilder) -> Self {
        self.cmab = cmab;
        self
    }

    /// A CMAB service shared with other clients (its cache with them); replaces
    /// [`cmab`](Self::cmab). Default: none (one is built from `cmab`).
    pub fn cmab_service(mut self, service: Arc<CmabService>) -> Self {
        self.cmab_service = Some(service);
        self
    }

    /// ODP segments and events (opt-in, as in the SDK). Default: none (segment fetches answer
    /// none, events are dropped).
    pub fn odp(mut self, odp: OdpManagerBuilder) -> Self {
        self.odp = Some(odp);
        self
    }

    /// An ODP manager shared with other clients; replaces [`odp`](Self::odp). Default: none.
    pub fn odp_manager(mut self, manager: Arc<OdpManager>) -> Self {
        self.odp_manager = Some(manager);
        self
    }

    /// The source with the base URL override applied.
    pub(crate) fn resolved_source(&self) -> Result<DatafileSource, BuildError> {
        let source = self.source.clone().ok_or(BuildError::NoSource)?;
        Ok(match &self.base_url {
            Some(base) => source.with_base_url(base.clone()),
            None => source,
        })
    }

    /// Checks the settings.
    pub(crate) fn validate(&self) -> Result<(), BuildError> {
        self.resolved_source()?;
        if self.polling_interval < MIN_POLLING_INTERVAL {
            return Err(BuildError::PollingIntervalTooShort {
                interval: self.polling_interval,
                minimum: MIN_POLLING_INTERVAL,
            });
        }
        if self.polling_interval < RECOMMENDED_MIN_POLLING_INTERVAL {
            tracing::warn!(
                interval = ?self.polling_interval,
                "Polling intervals below 30 seconds are not recommended."
            );
        }
        let d = &self.events;
        let checks: [(&'static str, u64, bool, &'static str); 6] = [
            (
                "event_batch_size",
                d.batch_size as u64,
                d.batch_size >= 1,
                ">= 1",
            ),
            (
                "event_batch_bytes",
                d.batch_bytes as u64,
                (1024..=MAX_PAYLOAD_BYTES).contains(&d.batch_bytes),
                "1024..=3500000",
            ),
            (
                "event_queue_capacity",
                d.ring_capacity as u64,
                d.ring_capacity >= 1,
                ">= 1",
            ),
            (
                "event_concurrency",
                d.concurrency as u64,
                (1..=64).contains(&d.concurrency),
                "1..=64",
            ),
            (
                "event_commit_interval_ms",
                d.commit_interval.as_millis() as u64,
                !d.commit_interval.is_zero(),
                "> 0",
            ),
            (
                "event_flush_interval_ms",
                d.flush_interval.as_millis() as u64,
                !d.flush_interval.is_zero(),
                "> 0",
            ),
        ];
        for (setting, value, ok, allowed) in checks {
            if !ok {
                return Err(BuildError::EventSetting {
                    setting,
                    value,
                    allowed,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_table() {
        let ok = || ClientBuilder::new().sdk_key("K");
        let cases: Vec<(ClientBuilder, bool)> = vec![
            (ClientBuilder::new(), false),
            (ok(), true),
            (ok().polling_interval(Duration::from_millis(999)), false),
            (ok().polling_interval(Duration::from_secs(1)), true),
            (ok().event_batch_size(0), false),
            (ok().event_batch_bytes(3_500_001), false),
            (ok().event_batch_bytes(3_500_000), true),
            (ok().event_queue_capacity(0), false),
            (ok().event_flush_interval(Duration::ZERO), false),
        ];
        for (i, (builder, valid)) in cases.into_iter().enumerate() {
            assert_eq!(builder.validate().is_ok(), valid, "case {i}: {builder:?}");
        }
        let source = ok()
            .datafile_base_url("http://127.0.0.1:1")
            .resolved_source()
            .unwrap();
        assert_eq!(source.url().unwrap(), "http://127.0.0.1:1/datafiles/K.json");
    }
}
