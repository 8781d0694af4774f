//! Impressions and conversions to Optimizely (logx v1): hand-off -> durable queue -> a few
//! senders -> transport.
//!
//! - **Hand-off.** A decide call pushes one record (config, user and forced variations shared,
//!   the flags that need an impression) into its thread's ring (`crate::handoff`); a full ring
//!   spills into a shared overflow list, so a burst never drops a record. Nothing on the
//!   decide path waits.
//! - **Durable queue.** The owner task (`pipeline.rs`) renders each event's JSON straight into
//!   the open segment of its batch context and, every commit interval (default 100 ms), writes
//!   the sealed segments to the SQLite store in one transaction (`store.rs`). A `kill -9`
//!   loses at most the events of the last commit interval (plus the records not yet taken from
//!   the rings). The store has a size cap; past it events are dropped, counted and logged once
//!   per streak.
//! - **Senders.** Up to `concurrency` requests in flight (default 4), each one merged from
//!   ready segments up to the batch size and bytes, retried with backoff and jitter and no
//!   attempt cap until the age limit (`send.rs`). 2xx deletes the segments; 4xx and expired
//!   segments become dead letters (`flagbridge events dead-letters`, `--resend`).
//! - **Close** sends for at most the shutdown timeout; what is left stays in the store and is
//!   sent at the next start.

mod fleet;
pub(crate) mod pipeline;
pub(crate) mod record;
pub(crate) mod render;
pub(crate) mod send;
mod sender;
pub(crate) mod store;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flagbridge_engine::{ClientInfo, DecideOptions};
use tokio::sync::{mpsc, oneshot};

use crate::fleet::events::EventQueue;
use crate::handoff::{Handoff, Pushed};
use pipeline::{Control, Pipeline};
use record::{EventHanded, EventRecord};
use render::Renderer;
use send::SendSettings;
pub use sender::{EventTransport, HttpReply, ReqwestEventTransport};
use store::EventStore;
pub use store::{DeadLetter, EventStoreError};

/// The event endpoints (US, EU data residency): the engine's.
pub use flagbridge_engine::{EU_ENDPOINT, US_ENDPOINT};
/// The largest body the endpoint accepts (3.5 MB); larger batches get 400.
pub const MAX_PAYLOAD_BYTES: usize = 3_500_000;

/// Default file of the durable event store (relative to the working directory).
pub const DEFAULT_EVENT_STORE_PATH: &str = "flagbridge-events.sqlite";
/// Default cap on the bytes of events kept in the store (1 GiB).
pub const DEFAULT_EVENT_MAX_STORE_BYTES: u64 = 1 << 30;
/// Default budget of event bodies held in memory besides the store (64 MiB).
pub const DEFAULT_EVENT_MAX_MEMORY_BYTES: usize = 64 << 20;
/// Default interval of group commits to the store (the `kill -9` window).
pub const DEFAULT_EVENT_COMMIT_INTERVAL: Duration = Duration::from_millis(100);
/// Default records each producing thread's ring holds before it spills.
pub const DEFAULT_EVENT_QUEUE_CAPACITY: usize = 4_096;
/// Default records the overflow list takes when rings are full (past it: dropped, counted).
pub const DEFAULT_EVENT_SPILL_CAPACITY: usize = 1_000_000;
/// Default most events per request.
pub const DEFAULT_EVENT_BATCH_SIZE: usize = 2_000;
/// Default most bytes per request (1 MB).
pub const DEFAULT_EVENT_BATCH_BYTES: usize = 1_000_000;
/// Default wait after which a request is sent even when not full.
pub const DEFAULT_EVENT_FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// Default requests in flight to the event endpoint.
pub const DEFAULT_EVENT_CONCURRENCY: usize = 4;
/// Default first retry backoff step.
pub const DEFAULT_EVENT_RETRY_BASE: Duration = Duration::from_secs(1);
/// Default cap on the retry backoff.
pub const DEFAULT_EVENT_RETRY_MAX: Duration = Duration::from_secs(60);
/// Default age after which events still not accepted become dead letters (24 h).
pub const DEFAULT_EVENT_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// Default time `close` keeps sending before it leaves the rest in the store.
pub const DEFAULT_EVENT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// Default connect timeout for the event endpoint.
pub const DEFAULT_EVENT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default total timeout of one POST.
pub const DEFAULT_EVENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where accepted events wait for the endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventStorage {
    /// The SQLite file at this path (created when missing; one client at a time).
    File(PathBuf),
    /// Memory only: lost on a crash or when `close` times out.
    Memory,
}

/// Settings of the event pipeline (see the `DEFAULT_EVENT_*` consts).
#[derive(Clone, Debug)]
pub(crate) struct EventSettings {
    pub(crate) storage: EventStorage,
    pub(crate) max_store_bytes: u64,
    pub(crate) max_memory_bytes: usize,
    pub(crate) commit_interval: Duration,
    pub(crate) ring_capacity: usize,
    pub(crate) spill_capacity: usize,
    pub(crate) batch_size: usize,
    pub(crate) batch_bytes: usize,
    pub(crate) flush_interval: Duration,
    pub(crate) concurrency: usize,
    pub(crate) retry_base: Duration,
    pub(crate) retry_max: Duration,
    pub(crate) max_age: Duration,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) endpoint_override: Option<String>,
}

impl Default for EventSettings {
    fn default() -> Self {
        EventSettings {
            storage: EventStorage::File(PathBuf::from(DEFAULT_EVENT_STORE_PATH)),
            max_store_bytes: DEFAULT_EVENT_MAX_STORE_BYTES,
            max_memory_bytes: DEFAULT_EVENT_MAX_MEMORY_BYTES,
            commit_interval: DEFAULT_EVENT_COMMIT_INTERVAL,
            ring_capacity: DEFAULT_EVENT_QUEUE_CAPACITY,
            spill_capacity: DEFAULT_EVENT_SPILL_CAPACITY,
            batch_size: DEFAULT_EVENT_BATCH_SIZE,
            batch_bytes: DEFAULT_EVENT_BATCH_BYTES,
            flush_interval: DEFAULT_EVENT_FLUSH_INTERVAL,
            concurrency: DEFAULT_EVENT_CONCURRENCY,
            retry_base: DEFAULT_EVENT_RETRY_BASE,
            retry_max: DEFAULT_EVENT_RETRY_MAX,
            max_age: DEFAULT_EVENT_MAX_AGE,
            shutdown_timeout: DEFAULT_EVENT_SHUTDOWN_TIMEOUT,
            endpoint_override: None,
        }
    }
}

/// Called with (endpoint, body) after each request the endpoint accepted.
pub(crate) type OnSent = Box<dyn Fn(&str, &[u8]) + Send + Sync>;

/// The pipeline's counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    queued: AtomicU64,
    stored: AtomicI64,
    in_flight: AtomicI64,
    sent: AtomicU64,
    dead_lettered: AtomicU64,
    dropped: AtomicU64,
    spilled: AtomicU64,
    retries: AtomicU64,
    batches: AtomicU64,
    store_errors: AtomicU64,
    handed: AtomicU64,
}

impl Counters {
    pub(crate) fn add_queued(&self, n: u64) {
        self.queued.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn add_stored(&self, n: i64) {
        self.stored.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn add_in_flight(&self, n: i64) {
        self.in_flight.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn in_flight_now(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed).max(0) as u64
    }
    pub(crate) fn add_sent(&self, n: u64) {
        self.sent.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn add_dead_lettered(&self, n: u64) {
        self.dead_lettered.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn add_dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn add_retries(&self, n: u64) {
        self.retries.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn add_batch(&self) {
        self.batches.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn add_handed(&self, n: u64) {
        self.handed.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn add_store_error(&self) {
        self.store_errors.fetch_add(1, Ordering::Relaxed);
    }
}

/// A snapshot of the pipeline's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct EventStats {
    /// Events accepted (rendered from the decide calls and conversions handed over).
    pub queued: u64,
    /// Events in the durable store, not yet delivered (includes those in flight).
    pub in_store: u64,
    /// Events in requests being sent.
    pub in_flight: u64,
    /// Events delivered (the endpoint answered 2xx).
    pub sent: u64,
    /// Events set aside as dead letters (4xx, or older than the age limit).
    pub dead_lettered: u64,
    /// Events dropped: store (or memory budget) full, or handed over after close.
    pub dropped: u64,
    /// Decide calls whose record found its thread's ring full and went to the overflow list.
    pub spilled: u64,
    /// Decide calls whose record was dropped because the overflow list was full too.
    pub overflow: u64,
    /// Retries of requests.
    pub retries: u64,
    /// Requests delivered.
    pub batches: u64,
    /// Store operations that failed (the events stay in memory or in the store as they were).
    pub store_errors: u64,
    /// With a fleet (`store:` Redis): events this pipeline handed over to the shared queue
    /// (`sent` then counts the events this replica's senders posted, whoever handed them over).
    pub handed_to_fleet: u64,
}

/// Records that found their ring full, waiting for the owner (bounded).
#[derive(Debug, Default)]
pub(crate) struct Spill {
    records: Mutex<Vec<EventRecord>>,
    capacity: usize,
    overflow: AtomicU64,
    overflowing: AtomicBool,
}

impl Spill {
    fn push(&self, record: EventRecord, counters: &Counters) {
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        if records.len() < self.capacity {
            records.push(record);
            counters.spilled.fetch_add(1, Ordering::Relaxed);
            return;
        }
        drop(records);
        self.overflow.fetch_add(1, Ordering::Relaxed);
        if !self.overflowing.swap(true, Ordering::Relaxed) {
            tracing::error!("event hand-off full (rings and overflow list); dropping events");
        }
    }

    pub(crate) fn take(&self) -> Vec<EventRecord> {
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        if records.is_empty() {
            return Vec::new();
        }
        self.overflowing.store(false, Ordering::Relaxed);
        std::mem::take(&mut *records)
    }
}

/// Handle to the event pipeline: `push` never blocks; `flush` and `close` are awaitable.
pub(crate) struct EventProcessor {
    handoff: Arc<Handoff<EventHanded>>,
    spill: Arc<Spill>,
    control: mpsc::Sender<Control>,
    counters: Arc<Counters>,
    closed_drops: AtomicU64,
}

impl std::fmt::Debug for EventProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventProcessor")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// What the owner needs to render and send.
pub(crate) struct PipelineParts {
    pub(crate) settings: EventSettings,
    pub(crate) transport: Arc<dyn EventTransport>,
    pub(crate) on_sent: OnSent,
    pub(crate) client: Arc<ClientInfo>,
    pub(crate) default_options: DecideOptions,
    /// The fleet's shared store (`store:` Redis), when configured.
    pub(crate) fleet: Option<crate::fleet::Fleet>,
}

impl EventProcessor {
    /// Opens the store, queues what a previous run left in it, and spawns the collector and
    /// the owner task on the current tokio runtime.
    pub(crate) fn spawn(parts: PipelineParts) -> Result<Self, EventStoreError> {
        let settings = parts.settings;
        let store = match &settings.storage {
            EventStorage::File(path) => Some(Arc::new(Mutex::new(EventStore::open(path)?))),
            EventStorage::Memory => None,
        };
        let handoff = Arc::new(Handoff::new(settings.ring_capacity));
        let records = handoff.spawn_collector();
        let (control, control_rx) = mpsc::channel(16);
        let counters = Arc::new(Counters::default());
        let spill = Arc::new(Spill {
            capacity: settings.spill_capacity,
            ..Spill::default()
        });
        let send = Arc::new(SendSettings {
            transport: parts.transport,
            retry_base: settings.retry_base,
            retry_max: settings.retry_max,
            max_age: settings.max_age,
            failing: AtomicBool::new(false),
        });
        let renderer = Renderer::new(
            parts.client,
            parts.default_options,
            settings.endpoint_override.clone(),
        );
        let on_sent = Arc::new(parts.on_sent);
        let concurrency = settings.concurrency;
        let mut pipeline = Pipeline::new(
            records,
            Arc::clone(&handoff),
            Arc::clone(&spill),
            control_rx,
            settings,
            Arc::clone(&send),
            Arc::clone(&counters),
            Arc::clone(&on_sent),
            renderer,
            store.clone(),
        );
        if let Some(f) = parts.fleet {
            let queue =
                EventQueue::new(f.clone(), crate::fleet::events::consumer_name(&f, "events"));
            let (stop, stop_rx) = tokio::sync::watch::channel(None);
            let handed = Arc::new(tokio::sync::Notify::new());
            let senders = tokio::spawn(
                fleet::FleetSenders {
                    queue: queue.clone(),
                    send,
                    counters: Arc::clone(&counters),
                    on_sent,
                    store: store.clone(),
                    concurrency,
                    lease: f.lease_timeout(),
                    stop: stop_rx,
                    handed: Arc::clone(&handed),
                }
                .run(),
            );
            pipeline.set_fleet(pipeline::FleetPart {
                queue,
                stop,
                senders,
                handed,
            });
        }
        let restored = pipeline.restore()?;
        if restored > 0 {
            let path = store.as_ref().map(|s| {
                s.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .path()
                    .to_path_buf()
            });
            tracing::info!(events = restored, path = ?path, "sending events a previous run left in the store");
        }
        tokio::spawn(pipeline.run());
        Ok(EventProcessor {
            handoff,
            spill,
            control,
            counters,
            closed_drops: AtomicU64::new(0),
        })
    }

    /// Hands one record over: into this thread's ring, else the overflow list. Never waits.
    #[inline]
    pub(crate) fn push(&self, record: EventRecord) {
        let mut record = Some(record);
        let pushed = self.handoff.push_each(|_, out| {
            if let Some(r) = record.take() {
                if let Err(back) = out.try_push(r) {
                    record = Some(back);
                }
            }
        });
        match (pushed, record) {
            (Pushed::Closed, _) => {
                self.closed_drops.fetch_add(1, Ordering::Relaxed);
            }
            (_, Some(record)) => self.spill.push(record, &self.counters),
            _ => {}
        }
    }

    /// Sends every event handed over before this call; returns when each is delivered or set
    /// aside as a dead letter (which, while the endpoint fails, can take up to the age limit:
    /// bound it with a timeout if needed).
    pub(crate) async fn flush(&self) {
        let (reply, done) = oneshot::channel();
        if self.control.send(Control::Flush(reply)).await.is_ok() {
            let _ = done.await;
        }
    }

    /// Stops accepting, stores everything and sends for at most the shutdown timeout; returns
    /// the events left in the store for the next start.
    pub(crate) async fn close(&self) -> u64 {
        let (reply, done) = oneshot::channel();
        if self.control.send(Control::Close(reply)).await.is_ok() {
            return done.await.unwrap_or(0);
        }
        0
    }

    /// A snapshot of the counters.
    pub(crate) fn stats(&self) -> EventStats {
        let c = &self.counters;
        EventStats {
            queued: c.queued.load(Ordering::Relaxed),
            in_store: c.stored.load(Ordering::Relaxed).max(0) as u64,
            in_flight: c.in_flight_now(),
            sent: c.sent.load(Ordering::Relaxed),
            dead_lettered: c.dead_lettered.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed) + self.closed_drops.load(Ordering::Relaxed),
            spilled: c.spilled.load(Ordering::Relaxed),
            overflow: self.spill.overflow.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            batches: c.batches.load(Ordering::Relaxed),
            store_errors: c.store_errors.load(Ordering::Relaxed),
            handed_to_fleet: c.handed.load(Ordering::Relaxed),
        }
    }
}

/// The dead letters of the event store at `path` (opens it: the client using it must be
/// stopped).
pub fn dead_letters(path: &Path) -> Result<Vec<DeadLetter>, EventStoreError> {
    EventStore::open(path)?.dead_letters()
}

/// Moves dead letters of the store at `path` back to the queue (all when `ids` is `None`);
/// they are sent at the next start of a client on that store. Returns the events moved.
pub fn resend_dead_letters(path: &Path, ids: Option<&[i64]>) -> Result<u64, EventStoreError> {
    EventStore::open(path)?.resend_dead_letters(ids, crate::clock::precise_ms())
}

#[cfg(test)]
mod tests;
