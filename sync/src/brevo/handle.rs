//! The handle the application keeps, the sink the decide path calls, and the counters.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::config::IdentitySource;
use super::error::BrevoError;
use super::handed::{BrevoHanded, CopiedDecision, HandedRecord, Sent};
use super::hook::Identity;
use super::record::{ConversionRecord, DecisionRecord};
use super::stamp::Stamps;
use super::worker::Command;
use crate::handoff::{Handoff, Pushed, Pusher};

/// How many set-aside items [`BrevoSync::set_aside`] remembers.
pub const SET_ASIDE_MEMORY: usize = 100;

/// Counters written on the decide path (rarely: conversions and skips), on their own cache
/// lines (no false sharing with the worker's counters). Records queued and refused are counted
/// by the hand-off (accepted = decisions + conversions queued, refused = queue overflow).
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct ProducerCounters {
    pub conversions_queued: AtomicU64,
    pub skipped_no_identity: AtomicU64,
    pub dropped_stopped: AtomicU64,
}

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
    pub contacts_published: AtomicU64,
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
    /// Records dropped because their thread's ring was full (see `queue_capacity`).
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
    /// With a fleet store: contact changes handed to the shared outbox in Redis (each
    /// instance then writes its share of the fleet's contacts: `contacts_written`).
    pub contacts_published: u64,
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
    /// Per-thread rings from the decide path to the worker (closed when the sync stops).
    pub handoff: Arc<Handoff<BrevoHanded>>,
    stamps: Stamps,
    pub producer: ProducerCounters,
    pub counters: Counters,
    pub identity_source: IdentitySource,
    /// `identity_source`, ready for lookups.
    pub identity: Identity,
    set_aside: Mutex<VecDeque<SetAside>>,
}

impl Shared {
    /// `capacity` is the builder's queue capacity (records that can wait for the worker; see
    /// `Handoff::new`).
    pub(crate) fn new(capacity: usize, identity_source: IdentitySource) -> Self {
        Shared {
            handoff: Arc::new(Handoff::new(capacity)),
            stamps: Stamps::default(),
            producer: ProducerCounters::default(),
            counters: Counters::default(),
            identity: Identity::new(&identity_source),
            identity_source,
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

    /// Puts one decision in this thread's ring: `make` pushes its records (its config and
    /// user first when they changed, then the decision, stamped with `Stamps::take` on this
    /// thread's memory), or nothing to skip it. Never blocks; a full ring or a stopped sync
    /// drops the record (counted) without calling `make`.
    ///
    /// The stamp (`super::stamp`): a decision pushed after another one was pushed (same
    /// thread, or a thread that heard of it) gets a stamp at least as big, bigger when the
    /// threads differ, so the worker keeps the latest decision per contact whatever ring each
    /// came through.
    #[inline]
    pub(crate) fn push_decision(
        &self,
        make: impl FnOnce(&Stamps, &mut Sent, &mut Pusher<'_, HandedRecord>),
    ) -> bool {
        let pushed = self
            .handoff
            .push_each(|sent, out| make(&self.stamps, sent, out));
        self.count(pushed)
    }

    fn push_conversion(&self, record: ConversionRecord) -> bool {
        let pushed = self
            .handoff
            .push(|_| HandedRecord::Conversion(Box::new(record)));
        if pushed == Pushed::Accepted {
            self.producer
                .conversions_queued
                .fetch_add(1, Ordering::Relaxed);
        }
        self.count(pushed)
    }

    #[inline]
    fn count(&self, pushed: Pushed) -> bool {
        match pushed {
            Pushed::Accepted => true,
            // Counted by the hand-off (`queue_overflow`), or by the caller (skipped).
            Pushed::Full | Pushed::Empty => false,
            Pushed::Closed => {
                self.producer
                    .dropped_stopped
                    .fetch_add(1, Ordering::Relaxed);
                false
            }
        }
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
    /// Consecutive records of one thread that share their user `Arc` hand it over once.
    pub fn record_decision(&self, record: DecisionRecord) -> bool {
        self.shared.push_decision(|stamps, sent, out| {
            if let Some(user) = sent.ready_user(record.user) {
                out.push(HandedRecord::User(user));
            }
            out.push(HandedRecord::Copied(Box::new(CopiedDecision {
                seq: stamps.take(&mut sent.stamp),
                keys: (record.flag_key, record.rule_key, record.variation_key),
                enabled: record.enabled,
                source: record.source,
            })));
        })
    }

    /// Queues one conversion; `false` when dropped (counted).
    pub fn record_conversion(&self, record: ConversionRecord) -> bool {
        self.shared.push_conversion(record)
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
        let accepted = self.shared.handoff.accepted();
        BrevoCounters {
            decisions_queued: accepted.saturating_sub(conversions_queued),
            conversions_queued,
            queue_overflow: self.shared.handoff.refused(),
            skipped_no_identity: g(&p.skipped_no_identity),
            dropped_stopped: g(&p.dropped_stopped),
            decisions_processed: g(&c.decisions_processed),
            contacts_known: g(&c.contacts_known),
            contacts_pending: g(&c.contacts_pending),
            contacts_written: g(&c.contacts_written),
            contacts_unchanged: g(&c.contacts_unchanged),
            contacts_created: g(&c.contacts_created),
            contacts_published: g(&c.contacts_published),
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
