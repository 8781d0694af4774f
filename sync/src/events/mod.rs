//! Event dispatch to Optimizely (logx v1): a handle with a bounded queue that never blocks the
//! decide path, one owner loop that batches and sends, and a transport trait.

pub mod batch;
pub(crate) mod dispatcher;
pub(crate) mod retry;
pub mod sender;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::lanes::{self, Batch, LaneCounts, Lanes};
use batch::LogxBatch;
use dispatcher::{Control, DispatchSettings, Dispatcher, OnSent};
use sender::{EventTransport, RetryPolicy};

/// The US event endpoint.
pub const US_ENDPOINT: &str = "https://logx.optimizely.com/v1/events";
/// The EU event endpoint (datafile `region == "EU"`).
pub const EU_ENDPOINT: &str = "https://eu.logx.optimizely.com/v1/events";
/// The largest body the endpoint accepts (3.5 MB); larger batches get 400.
pub const MAX_PAYLOAD_BYTES: usize = 3_500_000;

/// Default queue capacity (events waiting for the owner loop).
pub const DEFAULT_EVENT_QUEUE_CAPACITY: usize = 100_000;
/// Default number of events that triggers a send.
pub const DEFAULT_EVENT_BATCH_SIZE: usize = 500;
/// Default body size that triggers a send (1 MB).
pub const DEFAULT_EVENT_BATCH_BYTES: usize = 1_000_000;
/// Default interval after which a non-empty batch is sent.
pub const DEFAULT_EVENT_FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// Default retries after the first attempt for 5xx, 429, timeouts and connection errors.
pub const DEFAULT_EVENT_MAX_RETRIES: u32 = 3;
/// Default first retry backoff step.
pub const DEFAULT_EVENT_RETRY_BASE: Duration = Duration::from_secs(1);
/// Default cap on the retry backoff.
pub const DEFAULT_EVENT_RETRY_MAX: Duration = Duration::from_secs(30);
/// Default connect timeout for the event endpoint.
pub const DEFAULT_EVENT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default total timeout of one POST.
pub const DEFAULT_EVENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Event counters, shared between the decide path and the owner loop.
#[derive(Debug, Default)]
pub struct EventCounters {
    /// Queued and overflow counts, one per lane (see `crate::lanes`).
    lanes: Box<[LaneCounts]>,
    sent: AtomicU64,
    dropped: AtomicU64,
    retries: AtomicU64,
    batches: AtomicU64,
    overflowing: AtomicBool,
}

/// A snapshot of [`EventCounters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EventStats {
    /// Events accepted into the queue.
    pub queued: u64,
    /// Events delivered (the endpoint answered 2xx).
    pub sent: u64,
    /// Events dropped: rejected (400...), retries exhausted, too large, or offered after close.
    pub dropped: u64,
    /// Events refused because the queue was full.
    pub overflow: u64,
    /// Retries of batches.
    pub retries: u64,
    /// Batches delivered.
    pub batches: u64,
}

impl EventCounters {
    /// A snapshot of all counters.
    pub fn snapshot(&self) -> EventStats {
        EventStats {
            queued: lanes::sum(&self.lanes, |c| &c.accepted),
            sent: self.sent.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            overflow: lanes::sum(&self.lanes, |c| &c.refused),
            retries: self.retries.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn add_sent(&self, n: u64) {
        self.sent.fetch_add(n, Ordering::Relaxed);
        self.batches.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn add_retries(&self, n: u64) {
        self.retries.fetch_add(n, Ordering::Relaxed);
    }
}

/// Settings of the event pipeline (see the `DEFAULT_EVENT_*` consts).
#[derive(Clone, Debug)]
pub(crate) struct EventSettings {
    pub(crate) capacity: usize,
    pub(crate) dispatch: DispatchSettings,
}

impl Default for EventSettings {
    fn default() -> Self {
        EventSettings {
            capacity: DEFAULT_EVENT_QUEUE_CAPACITY,
            dispatch: DispatchSettings {
                batch_size: DEFAULT_EVENT_BATCH_SIZE,
                batch_bytes: DEFAULT_EVENT_BATCH_BYTES,
                max_payload_bytes: MAX_PAYLOAD_BYTES,
                flush_interval: DEFAULT_EVENT_FLUSH_INTERVAL,
                endpoint_override: None,
                retry: RetryPolicy {
                    max_retries: DEFAULT_EVENT_MAX_RETRIES,
                    base: DEFAULT_EVENT_RETRY_BASE,
                    max: DEFAULT_EVENT_RETRY_MAX,
                },
            },
        }
    }
}

/// Handle to the event pipeline: `push` never blocks; `flush` and `close` are awaitable.
///
/// Each producing thread collects events in its own lane and hands them to the owner loop in
/// batches (see `crate::lanes`); the owner loop also takes every lane's events every 50 ms, on
/// `flush` and on `close`.
pub struct EventProcessor<B> {
    events: mpsc::Sender<Batch<B>>,
    lanes: Arc<Lanes<B>>,
    control: mpsc::Sender<Control>,
    counters: Arc<EventCounters>,
}

impl<B> std::fmt::Debug for EventProcessor<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventProcessor")
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl<B: LogxBatch> EventProcessor<B> {
    /// Spawns the owner loop on the current tokio runtime.
    pub(crate) fn spawn(
        settings: EventSettings,
        transport: Arc<dyn EventTransport>,
        on_sent: OnSent,
    ) -> Self {
        let (lanes, slots) = Lanes::new(settings.capacity);
        let lanes = Arc::new(lanes);
        let (events, events_rx) = mpsc::channel(slots);
        let (control, control_rx) = mpsc::channel(16);
        let counters = Arc::new(EventCounters {
            lanes: (0..lanes.count()).map(|_| LaneCounts::default()).collect(),
            ..EventCounters::default()
        });
        let dispatcher = Dispatcher {
            events: events_rx,
            lanes: Arc::clone(&lanes),
            control: control_rx,
            transport,
            settings: settings.dispatch,
            counters: Arc::clone(&counters),
            on_sent,
            pending: None,
            dropped_streak: 0,
        };
        tokio::spawn(dispatcher.run());
        EventProcessor {
            events,
            lanes,
            control,
            counters,
        }
    }

    /// Offers one event; never waits. A full queue counts an overflow (logged once per streak);
    /// a closed pipeline counts a drop.
    pub fn push(&self, event: B) {
        let mut lane = self.lanes.lock();
        let counts = &self.counters.lanes[lane.index];
        if self.lanes.is_closed() {
            drop(lane);
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let batch = self.lanes.batch();
        lane.push(event, batch);
        if lane.len() < batch {
            LaneCounts::bump(&counts.accepted);
            return;
        }
        let full = lane.take();
        match self.events.try_send(full) {
            Ok(()) => {
                LaneCounts::bump(&counts.accepted);
                drop(lane);
                if self.counters.overflowing.load(Ordering::Relaxed) {
                    self.counters.overflowing.store(false, Ordering::Relaxed);
                    tracing::info!("event queue accepts events again");
                }
            }
            Err(mpsc::error::TrySendError::Full(full)) => {
                // Keeps the older events; the new one is the overflow.
                let refused = lane.put_back(full, batch);
                for _ in 0..refused {
                    LaneCounts::bump(&counts.refused);
                }
                drop(lane);
                if !self.counters.overflowing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        capacity = self.events.max_capacity() * batch,
                        "event queue full; dropping events until it drains"
                    );
                }
            }
            Err(mpsc::error::TrySendError::Closed(full)) => {
                drop(lane);
                self.counters
                    .dropped
                    .fetch_add(full.records.len() as u64, Ordering::Relaxed);
            }
        }
    }

    /// Sends every event queued before this call; returns when they are delivered or dropped.
    pub async fn flush(&self) {
        let (reply, done) = oneshot::channel();
        if self.control.send(Control::Flush(reply)).await.is_ok() {
            let _ = done.await;
        }
    }

    /// Stops accepting events and sends everything queued; returns when the loop has ended.
    pub async fn close(&self) {
        let (reply, done) = oneshot::channel();
        if self.control.send(Control::Close(reply)).await.is_ok() {
            let _ = done.await;
        }
    }

    /// The counters.
    pub fn counters(&self) -> &Arc<EventCounters> {
        &self.counters
    }
}

#[cfg(test)]
mod tests;
