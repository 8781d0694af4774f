//! The running Brevo sync: [`BrevoSync`], the handle the application keeps (its sink, its
//! counters, flush and close).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::error::BrevoError;
use super::shared::{Command, SetAside, Shared};
use super::sink::BrevoSink;

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
    /// With a fleet store: conversion events handed to the shared queue in Redis (each
    /// instance then sends its share of the fleet's events: `events_sent`).
    pub events_published: u64,
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
            events_published: g(&c.events_published),
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

    /// The latest items Brevo refused (at most [`SET_ASIDE_MEMORY`](super::SET_ASIDE_MEMORY)).
    pub fn set_aside(&self) -> Vec<SetAside> {
        self.shared.set_aside_copy()
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
