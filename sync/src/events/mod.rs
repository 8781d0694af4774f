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

#[cfg(test)]
use crate::handoff::Plain;
use crate::handoff::{Handed, Handoff, Pushed, Pusher};
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
pub(crate) struct EventCounters {
    sent: AtomicU64,
    dropped: AtomicU64,
    retries: AtomicU64,
    batches: AtomicU64,
    overflowing: AtomicBool,
}

/// A snapshot of the pipeline's counters.
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
    /// A snapshot of all counters; queued and overflow come from the hand-off.
    fn snapshot<H: Handed>(&self, handoff: &Handoff<H>) -> EventStats {
        EventStats {
            queued: handoff.accepted(),
            sent: self.sent.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            overflow: handoff.refused(),
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
/// Each producing thread pushes into its own ring; a collector task moves the rings' events
/// into the owner loop's bounded channel (see `crate::handoff`). `flush` and `close` also take
/// what is still in the rings.
pub(crate) struct EventProcessor<H: Handed> {
    handoff: Arc<Handoff<H>>,
    control: mpsc::Sender<Control>,
    counters: Arc<EventCounters>,
}

impl<H: Handed> std::fmt::Debug for EventProcessor<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventProcessor")
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl<H: Handed> EventProcessor<H>
where
    H::Item: LogxBatch,
{
    /// Spawns the collector and the owner loop on the current tokio runtime. `capacity`
    /// events may wait in the owner's channel, and each producing thread's ring holds up to
    /// `capacity` more (at most `handoff::MAX_RING_CAPACITY`).
    pub(crate) fn spawn(
        settings: EventSettings,
        transport: Arc<dyn EventTransport>,
        on_sent: OnSent,
    ) -> Self {
        let handoff = Arc::new(Handoff::new(settings.capacity));
        let events = handoff.spawn_collector();
        let (control, control_rx) = mpsc::channel(16);
        let counters = Arc::new(EventCounters::default());
        let dispatcher = Dispatcher {
            events,
            handoff: Arc::clone(&handoff),
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
            handoff,
            control,
            counters,
        }
    }

    /// Offers one event: `make` pushes its records, built from this thread's memory of what
    /// it sent (see `crate::handoff`, `Handoff::push_each`); never waits. A full ring counts an
    /// overflow (logged once per streak); a closed pipeline counts a drop.
    #[inline]
    pub(crate) fn push_each(&self, make: impl FnOnce(&mut H::Sent, &mut Pusher<'_, H::Record>)) {
        match self.handoff.push_each(make) {
            Pushed::Accepted => {
                if self.counters.overflowing.load(Ordering::Relaxed) {
                    self.counters.overflowing.store(false, Ordering::Relaxed);
                    tracing::info!("event queue accepts events again");
                }
            }
            Pushed::Full => {
                if !self.counters.overflowing.swap(true, Ordering::Relaxed) {
                    tracing::warn!("event queue full; dropping events until it drains");
                }
            }
            Pushed::Closed => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Pushed::Empty => {}
        }
    }

    /// Sends every event queued before this call; returns when they are delivered or dropped.
    pub(crate) async fn flush(&self) {
        let (reply, done) = oneshot::channel();
        if self.control.send(Control::Flush(reply)).await.is_ok() {
            let _ = done.await;
        }
    }

    /// Stops accepting events and sends everything queued; returns when the loop has ended.
    pub(crate) async fn close(&self) {
        let (reply, done) = oneshot::channel();
        if self.control.send(Control::Close(reply)).await.is_ok() {
            let _ = done.await;
        }
    }

    /// A snapshot of the counters.
    pub(crate) fn stats(&self) -> EventStats {
        self.counters.snapshot(&self.handoff)
    }
}

#[cfg(test)]
impl<T: LogxBatch + Send + 'static> EventProcessor<Plain<T>> {
    /// Offers one self-contained event (see [`push_each`](Self::push_each)).
    pub(crate) fn push(&self, event: T) {
        self.push_each(|_, out| out.push(event));
    }
}

#[cfg(test)]
mod tests;
