//! The handle the application keeps, the sink the decide path calls, and the counters.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_queue::ArrayQueue;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::JoinHandle;

use super::config::IdentitySource;
use super::error::BrevoError;
use super::record::{ConversionRecord, DecisionRecord, SyncRecord};
use super::worker::Command;
use crate::lanes::{self, Batch, LaneCounts, Lanes};

/// How many set-aside items [`BrevoSync::set_aside`] remembers.
pub const SET_ASIDE_MEMORY: usize = 100;

/// An idle worker is woken once per `max(capacity / WAKE_DIVISOR, 1)` queued records (it also
/// drains every [`DRAIN_INTERVAL`]), so the decide path rarely pays for a wake-up and the
/// worker drains in bursts instead of fighting the decide path for the queue's cache lines.
/// Records reach the queue in per-thread batches (see `crate::lanes`); the worker takes the
/// partial batches waiting in lanes at each drain, so a record waits at most
/// [`DRAIN_INTERVAL`].
pub(crate) const WAKE_DIVISOR: usize = 4;
/// Longest time a queued record waits for the worker when few records arrive.
pub(crate) const DRAIN_INTERVAL: std::time::Duration = std::time::Duration::from_millis(50);

/// Counters written on the decide path, on their own cache lines (no false sharing with the
/// worker's counters). Records queued and refused are counted per lane (`Shared::lane_counts`:
/// accepted = decisions + conversions queued, refused = queue overflow).
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct ProducerCounters {
    pub conversions_queued: AtomicU64,
    pub skipped_no_identity: AtomicU64,
    pub dropped_stopped: AtomicU64,
    /// Batches handed to the queue (paces the worker's wake-ups).
    pub handoffs: AtomicU64,
}

/// A flag on a cache line of its own.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct PaddedFlag(pub AtomicBool);

/// Counters written by the worker (for `/metrics`). All monotonic except the `*_pending`,
/// `contacts_known` and `fatal` gauges.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Counters {
    pub decisions_processed: AtomicU64,
    pub contacts_known: AtomicU64,
    pub contacts_pending: AtomicU64,
    pub contacts_written: AtomicU64,
    pub contacts_unchanged: AtomicU64,
    pub contacts_created: AtomicU64,
    pub contacts_rejected: AtomicU64,
    pub events_pending: AtomicU64,
    pub events_sent: AtomicU64,
    pub events_rejected: AtomicU64,
    pub requests: AtomicU64,
    pub rate_limited: AtomicU64,
    pub retries: AtomicU64,
    pub attributes_created: AtomicU64,
    pub store_commits: AtomicU64,
    pub store_errors: AtomicU64,
    pub fatal: AtomicU64,
}

/// A point-in-time copy of the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct BrevoCounters {
    /// Decisions put on the queue.
    pub decisions_queued: u64,
    /// Conversions put on the queue.
    pub conversions_queued: u64,
    /// Records dropped because the queue was full.
    pub queue_overflow: u64,
    /// Decisions and conversions skipped: the user has no contact identity.
    pub skipped_no_identity: u64,
    /// Records dropped because the sync had stopped (closed, or a fatal error).
    pub dropped_stopped: u64,
    /// Decisions the worker has folded into contact state.
    pub decisions_processed: u64,
    /// Contacts known to the sync (gauge).
    pub contacts_known: u64,
    /// Contacts with changes not yet sent (gauge).
    pub contacts_pending: u64,
    /// Contact writes Brevo acknowledged.
    pub contacts_written: u64,
    /// Contacts found back at their acknowledged state at flush time (no write).
    pub contacts_unchanged: u64,
    /// Contacts created because Brevo did not know them.
    pub contacts_created: u64,
    /// Contact states Brevo refused (400 or repeated partial failures), set aside.
    pub contacts_rejected: u64,
    /// Events not yet acknowledged (gauge).
    pub events_pending: u64,
    /// Events Brevo acknowledged.
    pub events_sent: u64,
    /// Events Brevo refused, set aside.
    pub events_rejected: u64,
    /// HTTP requests sent to Brevo.
    pub requests: u64,
    /// 429 answers.
    pub rate_limited: u64,
    /// Retries after 5xx, timeouts and partial failures.
    pub retries: u64,
    /// Attributes created at start.
    pub attributes_created: u64,
    /// Store transactions committed.
    pub store_commits: u64,
    /// Store errors.
    pub store_errors: u64,
    /// 1 once the sync stopped on a 401/402/403 (gauge).
    pub fatal: u64,
}

/// Something Brevo refused and the sync set aside.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct SetAside {
    /// The contact identity, or the event's JSON.
    pub what: String,
    /// HTTP status.
    pub status: u16,
    /// Brevo's error code.
    pub code: String,
    /// Brevo's message.
    pub message: String,
}

/// State shared between the handle, the sinks and the worker.
pub(crate) struct Shared {
    /// Full batches handed off by the lanes.
    pub queue: ArrayQueue<Batch<SyncRecord>>,
    /// Per-thread partial batches.
    pub lanes: Lanes<SyncRecord>,
    /// Accepted / refused records, per lane.
    pub lane_counts: Box<[LaneCounts]>,
    /// The worker is (about to be) parked waiting for work.
    pub idle: PaddedFlag,
    pub wake: Notify,
    pub producer: ProducerCounters,
    pub counters: Counters,
    pub stopped: AtomicBool,
    pub identity_source: IdentitySource,
    wake_every: u64,
    set_aside: Mutex<VecDeque<SetAside>>,
}

impl Shared {
    pub(crate) fn new(capacity: usize, identity_source: IdentitySource) -> Self {
        // One record per hand-off: decisions for one contact may come from different threads,
        // and the latest must win, so records of all threads stay in push order. (Per-thread
        // batches reordered them across threads: an older decision could overwrite a newer one.)
        let (lanes, slots) = Lanes::with_max_batch(capacity, 1);
        let wake_every = ((capacity / WAKE_DIVISOR) / lanes.batch()).max(1) as u64;
        Shared {
            queue: ArrayQueue::new(slots),
            lane_counts: (0..lanes.count()).map(|_| LaneCounts::default()).collect(),
            lanes,
            idle: PaddedFlag::default(),
            wake: Notify::new(),
            producer: ProducerCounters::default(),
            counters: Counters::default(),
            stopped: AtomicBool::new(false),
            identity_source,
            wake_every,
            set_aside: Mutex::new(VecDeque::new()),
        }
    }

    pub(crate) fn record_set_aside(&self, item: SetAside) {
        if let Ok(mut list) = self.set_aside.lock() {
            if list.len() >= SET_ASIDE_MEMORY {
                list.pop_front();
            }
            list.push_back(item);
        }
    }

    fn wake_worker(&self) {
        if self.idle.0.load(Ordering::Relaxed) && self.idle.0.swap(false, Ordering::AcqRel) {
            self.wake.notify_one();
        }
    }

    /// Puts one record in this thread's lane, handing the lane's batch to the worker when full:
    /// never blocks, counts overflow. The stop flag is read under the lane's lock, so a record
    /// accepted before the worker's final drain (which sets the flag first) is drained by it.
    #[inline]
    pub(crate) fn push(&self, record: SyncRecord) -> bool {
        let conversion = matches!(record, SyncRecord::Conversion(_));
        let mut lane = self.lanes.lock();
        let counts = &self.lane_counts[lane.index];
        if self.stopped.load(Ordering::Relaxed) {
            drop(lane);
            self.producer
                .dropped_stopped
                .fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let batch = self.lanes.batch();
        lane.push(record, batch);
        if lane.len() >= batch {
            let full = lane.take();
            if let Err(full) = self.queue.push(full) {
                // Keeps the older records; the new one is the overflow.
                let refused = lane.put_back(full, batch);
                for _ in 0..refused {
                    LaneCounts::bump(&counts.refused);
                }
                drop(lane);
                self.wake_worker();
                return false;
            }
            LaneCounts::bump(&counts.accepted);
            drop(lane);
            let n = self.producer.handoffs.fetch_add(1, Ordering::Relaxed);
            if n % self.wake_every == 0 {
                self.wake_worker();
            }
        } else {
            LaneCounts::bump(&counts.accepted);
            drop(lane);
        }
        if conversion {
            self.producer
                .conversions_queued
                .fetch_add(1, Ordering::Relaxed);
        }
        true
    }
}

/// The cheap, cloneable entry point for the decide path. Implements the `DecisionSink` hook.
#[derive(Clone)]
pub struct BrevoSink {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for BrevoSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrevoSink").finish_non_exhaustive()
    }
}

impl BrevoSink {
    /// Queues one decision; `false` when dropped (queue full or sync stopped, both counted).
    pub fn record_decision(&self, record: DecisionRecord) -> bool {
        self.shared.push(SyncRecord::Decision(record))
    }

    /// Queues one conversion; `false` when dropped (counted).
    pub fn record_conversion(&self, record: ConversionRecord) -> bool {
        self.shared.push(SyncRecord::Conversion(Box::new(record)))
    }

    /// Counts a decision or conversion skipped because the user has no contact identity.
    pub fn count_skipped(&self) {
        self.shared
            .producer
            .skipped_no_identity
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Where the contact identity comes from.
    pub fn identity_source(&self) -> &IdentitySource {
        &self.shared.identity_source
    }
}

/// The running Brevo sync: hand its [`BrevoSink`] to the `Client`, read its counters, flush
/// and close it.
pub struct BrevoSync {
    pub(crate) shared: Arc<Shared>,
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) worker: Mutex<Option<JoinHandle<()>>>,
    pub(crate) dry_run: bool,
}

impl std::fmt::Debug for BrevoSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrevoSync")
            .field("dry_run", &self.dry_run)
            .field("counters", &self.counters())
            .finish_non_exhaustive()
    }
}

impl BrevoSync {
    /// The sink to register with the `Client` (cheap to clone).
    pub fn sink(&self) -> BrevoSink {
        BrevoSink {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Whether requests go to the dry-run file instead of Brevo.
    pub fn is_dry_run(&self) -> bool {
        self.dry_run
    }

    /// A copy of the counters.
    pub fn counters(&self) -> BrevoCounters {
        let c = &self.shared.counters;
        let p = &self.shared.producer;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let conversions_queued = g(&p.conversions_queued);
        let accepted = lanes::sum(&self.shared.lane_counts, |c| &c.accepted);
        BrevoCounters {
            decisions_queued: accepted.saturating_sub(conversions_queued),
            conversions_queued,
            queue_overflow: lanes::sum(&self.shared.lane_counts, |c| &c.refused),
            skipped_no_identity: g(&p.skipped_no_identity),
            dropped_stopped: g(&p.dropped_stopped),
            decisions_processed: g(&c.decisions_processed),
            contacts_known: g(&c.contacts_known),
            contacts_pending: g(&c.contacts_pending),
            contacts_written: g(&c.contacts_written),
            contacts_unchanged: g(&c.contacts_unchanged),
            contacts_created: g(&c.contacts_created),
            contacts_rejected: g(&c.contacts_rejected),
            events_pending: g(&c.events_pending),
            events_sent: g(&c.events_sent),
            events_rejected: g(&c.events_rejected),
            requests: g(&c.requests),
            rate_limited: g(&c.rate_limited),
            retries: g(&c.retries),
            attributes_created: g(&c.attributes_created),
            store_commits: g(&c.store_commits),
            store_errors: g(&c.store_errors),
            fatal: g(&c.fatal),
        }
    }

    /// The latest items Brevo refused (at most [`SET_ASIDE_MEMORY`]).
    pub fn set_aside(&self) -> Vec<SetAside> {
        self.shared
            .set_aside
            .lock()
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Commits and sends everything queued so far; returns when Brevo acknowledged it (or
    /// refused it: see [`BrevoSync::set_aside`]). Errors when the sync stopped or Brevo stayed
    /// unavailable through the retries (the changes stay in the store).
    pub async fn flush(&self) -> Result<(), BrevoError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Flush(tx))
            .await
            .map_err(|_| BrevoError::Closed)?;
        rx.await.map_err(|_| BrevoError::Closed)?
    }

    /// Flushes, commits and stops the worker.
    pub async fn close(self) -> Result<(), BrevoError> {
        let (tx, rx) = oneshot::channel();
        let sent = self.commands.send(Command::Close(tx)).await;
        let result = match sent {
            Ok(()) => rx.await.map_err(|_| BrevoError::Closed).and_then(|r| r),
            Err(_) => Err(BrevoError::Closed),
        };
        let worker = self.worker.lock().ok().and_then(|mut w| w.take());
        if let Some(worker) = worker {
            let _ = worker.await;
        }
        result
    }
}
