//! The state the Brevo sync's handle, sinks and worker share: the per-thread rings, the stamps,
//! the counters, the set-aside list and the commands the handle sends the worker.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::config::{Identity, IdentitySource};
use super::error::BrevoError;
use super::record::ConversionRecord;
use super::ring::{BrevoHanded, HandedRecord, Sent};
use super::stamp::Stamps;
use crate::handoff::{Handoff, Pushed, Pusher};

/// How many set-aside items [`BrevoSync::set_aside`](super::BrevoSync::set_aside) remembers.
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
    pub events_published: AtomicU64,
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

/// A request from the handle to the worker.
pub(crate) enum Command {
    /// Send everything pending now; reply when done.
    Flush(oneshot::Sender<Result<(), BrevoError>>),
    /// Flush, commit and stop.
    Close(oneshot::Sender<Result<(), BrevoError>>),
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

    /// The latest items set aside, oldest first.
    pub(crate) fn set_aside_copy(&self) -> Vec<SetAside> {
        self.set_aside
            .lock()
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default()
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
    /// user first when they changed, then the decision, stamped with `Stamps::take`), or
    /// nothing to skip it. Never blocks; a full ring or a stopped sync drops the record
    /// (counted) without calling `make`.
    ///
    /// The stamp (`super::stamp`): a decision pushed after another one was pushed (same
    /// thread, or a thread that heard of it) gets a bigger stamp, so the worker keeps the
    /// latest decision per contact whatever ring each came through.
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

    pub(crate) fn push_conversion(&self, record: ConversionRecord) -> bool {
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
