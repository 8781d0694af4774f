//! The owner loop: folds the decide path's records into the coalescer, commits to the store,
//! sends to Brevo.
//!
//! `contacts.rs` sends contact changes, `events.rs` sends conversions; this file holds the
//! loop, the store commits and the request policy (budget, 429, retries) they share.

mod budget;
mod contacts;
mod events;
mod fleet;
mod setup;

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant, MissedTickBehavior};

use super::answer;
use super::batch;
use super::coalesce::Coalescer;
use super::config::{brevo_event_name, Config};
use super::derive::PersistedState;
use super::error::BrevoError;
use super::record::ConversionRecord;
use super::ring::Item;
use super::shared::{Command, Shared};
use super::store::Store;
use super::time::{day_of, format_timestamp};
use super::transport::{BrevoRequest, BrevoResponse, BrevoTransport, Method};
use crate::http::{self, Verdict};

/// The longest wait a 429 from Brevo can ask for (`x-sib-ratelimit-reset`).
const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Contacts,
    Events,
}

/// Why a call gave no usable answer.
enum CallError {
    /// The sync must stop (401, 402, 403).
    Fatal,
    /// Retries exhausted for this flush.
    GaveUp(String),
}

/// A committed event not yet acknowledged.
struct PendingEvent {
    /// Its row in the local store (-1: none).
    id: i64,
    body: String,
    attempts: u32,
    /// With a fleet: the entry of the shared queue this event was claimed from.
    claim: Option<String>,
}

/// The worker. One per sync; owns everything but the shared counters and hand-off.
pub(crate) struct Worker {
    cfg: Arc<Config>,
    shared: Arc<Shared>,
    /// Batches of records the hand-off's collector moved out of the threads' rings.
    inbox: mpsc::Receiver<Vec<Item>>,
    /// Shared so a request in flight does not borrow the worker (records are folded in and
    /// committed while it is pending).
    transport: Arc<dyn BrevoTransport>,
    store: Store,
    coalescer: Coalescer,
    contacts_budget: budget::Budget,
    events_budget: budget::Budget,
    /// Conversions not yet committed.
    new_events: Vec<String>,
    /// Committed conversions not yet acknowledged, oldest first.
    events: VecDeque<PendingEvent>,
    retry_at: Option<Instant>,
    /// Consecutive 5xx/timeouts across calls (reset by any other answer): drives the backoff,
    /// so an outage is probed less and less often instead of restarting at the base delay.
    failures: u32,
    last_commit: Instant,
    fatal: Option<BrevoError>,
    /// The fleet's shared contact outbox (`store:` Redis), when configured.
    outbox: Option<crate::fleet::outbox::ContactOutbox>,
    /// A second handle on it for publishing local changes, also while a Brevo request of the
    /// delivery side is pending.
    publisher: Option<crate::fleet::outbox::ContactOutbox>,
    /// The fleet's shared queue of conversion events, when configured.
    event_queue: Option<crate::fleet::events::EventQueue>,
    /// Claimed contacts whose write failed, retried at the next flush.
    fleet_retry: Vec<fleet::Writing>,
}

impl Worker {
    /// Opens the store and restores what it holds.
    pub(crate) fn new(
        cfg: Arc<Config>,
        shared: Arc<Shared>,
        transport: Box<dyn BrevoTransport>,
        inbox: mpsc::Receiver<Vec<Item>>,
    ) -> Result<Worker, BrevoError> {
        let store = Store::open(cfg.store_path.as_deref())?;
        let mut coalescer = Coalescer::default();
        coalescer.set_fleet(cfg.fleet.is_some());
        for row in store.load_contacts()? {
            match serde_json::from_str::<PersistedState>(&row.state) {
                Ok(state) => {
                    coalescer.restore(&row.contact, &state, row.digest, row.acked, row.rejected)
                }
                Err(e) => {
                    tracing::warn!(contact = %row.contact, error = %e, "brevo store: unreadable contact state skipped")
                }
            }
        }
        let events: VecDeque<PendingEvent> = store
            .load_events()?
            .into_iter()
            .map(|(id, body)| PendingEvent {
                id,
                body,
                attempts: 0,
                claim: None,
            })
            .collect();
        tracing::info!(
            contacts = coalescer.len(),
            pending_contacts = coalescer.dirty_len(),
            pending_events = events.len(),
            "brevo sync store opened"
        );
        let outbox = cfg
            .fleet
            .clone()
            .map(crate::fleet::outbox::ContactOutbox::new);
        let publisher = cfg
            .fleet
            .clone()
            .map(crate::fleet::outbox::ContactOutbox::new);
        let event_queue = cfg.fleet.clone().map(|f| {
            let consumer = crate::fleet::events::consumer_name(&f, "brevo-events");
            crate::fleet::events::EventQueue::brevo(f, consumer)
        });
        let worker = Worker {
            contacts_budget: budget::Budget::new(
                cfg.contacts_budget,
                cfg.fleet.as_ref(),
                "contacts",
                cfg.request_timeout,
            ),
            events_budget: budget::Budget::new(
                cfg.events_budget,
                cfg.fleet.as_ref(),
                "events",
                cfg.request_timeout,
            ),
            cfg,
            shared,
            inbox,
            transport: Arc::from(transport),
            store,
            coalescer,
            new_events: Vec::new(),
            events,
            retry_at: None,
            failures: 0,
            last_commit: Instant::now(),
            fatal: None,
            outbox,
            publisher,
            event_queue,
            fleet_retry: Vec::new(),
        };
        worker.update_gauges();
        Ok(worker)
    }

    /// The owner loop.
    pub(crate) async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut flush_tick = tokio::time::interval_at(
            Instant::now() + self.cfg.flush_interval,
            self.cfg.flush_interval,
        );
        flush_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut commit_tick = tokio::time::interval_at(
            Instant::now() + self.cfg.commit_interval,
            self.cfg.commit_interval,
        );
        commit_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            if self.fatal.is_none() && self.coalescer.dirty_len() >= self.cfg.batch_size {
                if let Err(e) = self.flush_all().await {
                    tracing::warn!(error = %e, "brevo flush on size failed");
                }
                continue;
            }
            tokio::select! {
                biased;
                command = commands.recv() => {
                    match command {
                        Some(Command::Flush(reply)) => {
                            let result = self.flush_all().await;
                            let _ = reply.send(result);
                        }
                        Some(Command::Close(reply)) => {
                            // Close first: a record accepted before this is in a ring or the
                            // inbox, taken by the flush; later ones count as dropped.
                            self.shared.handoff.close();
                            let result = self.flush_all().await;
                            let result = result.and(self.commit());
                            let _ = reply.send(result);
                            return;
                        }
                        None => {
                            // Handle dropped without close: keep what was accepted.
                            self.shared.handoff.close();
                            self.drain();
                            let _ = self.commit();
                            return;
                        }
                    }
                }
                Some(items) = self.inbox.recv() => self.apply(items),
                _ = commit_tick.tick() => {
                    let _ = self.commit();
                }
                _ = flush_tick.tick() => {
                    if self.fatal.is_none() {
                        if let Err(e) = self.flush_all().await {
                            tracing::warn!(error = %e, "brevo flush failed");
                        }
                    }
                }
            }
        }
    }

    /// Takes every record handed over so far (the inbox, then what is left in the threads'
    /// rings) and folds it in.
    fn drain(&mut self) {
        let items = self.shared.handoff.take_all(&mut self.inbox);
        if !items.is_empty() {
            self.apply(items);
        }
    }

    /// Folds records into the coalescer / event list. Each thread's records come in push
    /// order; across threads the decisions' stamps decide which one is the latest.
    fn apply(&mut self, items: Vec<Item>) {
        let now = SystemTime::now();
        let today = day_of(now);
        self.coalescer.set_now(
            now.duration_since(std::time::UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
                .unwrap_or(0),
        );
        let mut decisions = 0u64;
        for item in &items {
            match item {
                Item::Decision { seq, record } => {
                    decisions += 1;
                    self.coalescer.apply(record, *seq, today);
                }
                Item::Conversion(c) => self.accept_conversion(c),
            }
        }
        self.shared
            .counters
            .decisions_processed
            .fetch_add(decisions, Ordering::Relaxed);
        self.update_gauges();
    }

    fn accept_conversion(&mut self, c: &ConversionRecord) {
        let name = match self.cfg.event_names.get(c.event_key.as_str()) {
            Some(name) => name.clone(),
            None => brevo_event_name(&c.event_key),
        };
        let item = batch::event_item(
            self.cfg.identity,
            &c.contact,
            &name,
            &format_timestamp(c.at),
            c.tags.as_ref(),
        );
        self.new_events.push(item);
    }

    fn update_gauges(&self) {
        let c = &self.shared.counters;
        c.contacts_known
            .store(self.coalescer.len() as u64, Ordering::Relaxed);
        c.contacts_pending
            .store(self.coalescer.dirty_len() as u64, Ordering::Relaxed);
        c.events_pending.store(
            (self.events.len() + self.new_events.len()) as u64,
            Ordering::Relaxed,
        );
    }

    /// Commits changed contacts and new events to the store.
    fn commit(&mut self) -> Result<(), BrevoError> {
        self.last_commit = Instant::now();
        if !self.coalescer.has_unsaved() && self.new_events.is_empty() {
            return Ok(());
        }
        let changed = self
            .coalescer
            .take_unsaved(&self.cfg.names, self.cfg.date_format);
        let mut rows = Vec::with_capacity(changed.len());
        for (slot, state, digest) in &changed {
            let text = serde_json::to_string(state).unwrap_or_default();
            rows.push((&*self.coalescer.slot(*slot).contact, text, *digest));
        }
        let new_events = std::mem::take(&mut self.new_events);
        let store = &mut self.store;
        match crate::blocking::blocking(|| store.commit(&rows, &new_events)) {
            Ok(ids) => {
                self.shared
                    .counters
                    .store_commits
                    .fetch_add(1, Ordering::Relaxed);
                for (id, body) in ids.into_iter().zip(new_events) {
                    self.events.push_back(PendingEvent {
                        id,
                        body,
                        attempts: 0,
                        claim: None,
                    });
                }
                Ok(())
            }
            Err(e) => {
                // Keep going from memory; the changes are sent but not durable.
                self.shared
                    .counters
                    .store_errors
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "brevo store commit failed");
                for body in new_events {
                    self.events.push_back(PendingEvent {
                        id: -1,
                        body,
                        attempts: 0,
                        claim: None,
                    });
                }
                Err(e)
            }
        }
    }

    fn maybe_commit(&mut self) {
        if self.last_commit.elapsed() >= self.cfg.commit_interval {
            let _ = self.commit();
        }
    }

    /// Waits until `until`, folding in the records that arrive and committing meanwhile.
    async fn pause_until(&mut self, until: Instant) {
        loop {
            self.maybe_commit();
            if Instant::now() >= until {
                return;
            }
            tokio::select! {
                _ = sleep_until(until) => {}
                Some(items) = self.inbox.recv() => self.apply(items),
            }
        }
    }

    /// Sends one request and waits for its answer, meanwhile folding in the records that
    /// arrive, committing them every commit interval and, with a fleet, publishing them every
    /// flush interval: a request that hangs (up to the request timeout, and again on each
    /// retry) neither holds accepted records outside the store nor keeps them from the fleet.
    async fn await_answer(
        &mut self,
        request: BrevoRequest,
    ) -> Result<BrevoResponse, crate::TransportError> {
        let transport = Arc::clone(&self.transport);
        let mut answer = transport.send(request);
        let mut publish_at = Instant::now() + self.cfg.flush_interval;
        loop {
            let commit_at = self.last_commit + self.cfg.commit_interval;
            tokio::select! {
                biased;
                answer = &mut answer => return answer,
                Some(items) = self.inbox.recv() => self.apply(items),
                _ = sleep_until(commit_at) => self.maybe_commit(),
                _ = sleep_until(publish_at), if self.publisher.is_some() => {
                    self.publish_local().await;
                    publish_at = Instant::now() + self.cfg.flush_interval;
                }
            }
        }
    }

    /// Sends one request within the family's budget, waiting out 429s and retrying 5xx and
    /// timeouts with jittered backoff. Returns the first answer that is neither.
    async fn call(
        &mut self,
        family: Family,
        method: Method,
        path: String,
        body: Option<Vec<u8>>,
    ) -> Result<BrevoResponse, CallError> {
        let mut attempt = 0u32;
        loop {
            if self.fatal.is_some() {
                return Err(CallError::Fatal);
            }
            if let Some(at) = self.retry_at.take() {
                self.pause_until(at).await;
            }
            loop {
                let budget = match family {
                    Family::Contacts => &mut self.contacts_budget,
                    Family::Events => &mut self.events_budget,
                };
                match budget.try_acquire(Instant::now()).await {
                    Ok(()) => break,
                    Err(at) => self.pause_until(at).await,
                }
            }
            // Every state about to be sent (and so every acknowledgement recorded after this
            // answer) must be committed first: an acknowledged digest the store does not hold
            // would make a restart send an older committed state back to Brevo. Records
            // drained since the last commit are saved here; one transaction at most per send.
            let _ = self.commit();
            self.shared
                .counters
                .requests
                .fetch_add(1, Ordering::Relaxed);
            let request = BrevoRequest {
                method,
                path: path.clone(),
                body: body.clone(),
            };
            let answer = self.await_answer(request).await;
            match family {
                Family::Contacts => self.contacts_budget.finished(Instant::now()).await,
                Family::Events => self.events_budget.finished(Instant::now()).await,
            }
            let status = answer.as_ref().ok().map(|r| r.status);
            match http::BREVO.verdict(status) {
                Verdict::Wait => {
                    self.shared
                        .counters
                        .rate_limited
                        .fetch_add(1, Ordering::Relaxed);
                    let reset = answer
                        .as_ref()
                        .ok()
                        .and_then(|r| r.rate_limit_reset.as_deref());
                    let wait =
                        http::header_wait(reset, self.cfg.rate_limit_wait, MAX_RATE_LIMIT_WAIT);
                    tracing::debug!(path = %path, wait_ms = wait.as_millis() as u64, "brevo 429");
                    let until = Instant::now() + wait;
                    match family {
                        Family::Contacts => self.contacts_budget.block_until(until).await,
                        Family::Events => self.events_budget.block_until(until).await,
                    }
                }
                Verdict::Retry => {
                    attempt += 1;
                    self.failures = self.failures.saturating_add(1);
                    self.shared.counters.retries.fetch_add(1, Ordering::Relaxed);
                    let detail = match &answer {
                        Ok(r) => {
                            let (code, message) = answer::error_body(&r.body);
                            format!(
                                "{} {} -> {} {code} {message}",
                                method.as_str(),
                                path,
                                r.status
                            )
                        }
                        Err(e) => format!("{} {} -> {e}", method.as_str(), path),
                    };
                    let delay = http::backoff(
                        self.cfg.backoff_base,
                        self.cfg.backoff_max,
                        self.failures,
                        fastrand::f64(),
                    );
                    self.retry_at = Some(Instant::now() + delay);
                    tracing::warn!(
                        attempt,
                        delay_ms = delay.as_millis() as u64,
                        "brevo retry: {detail}"
                    );
                    if attempt >= self.cfg.max_attempts {
                        return Err(CallError::GaveUp(detail));
                    }
                }
                Verdict::Stop => {
                    let (status, (code, message)) = match &answer {
                        Ok(r) => (r.status, answer::error_body(&r.body)),
                        Err(_) => (0, Default::default()),
                    };
                    let error = if status == 401 {
                        BrevoError::Unauthorized { code, message }
                    } else {
                        BrevoError::Forbidden {
                            status,
                            code,
                            message,
                        }
                    };
                    tracing::error!(error = %error, "brevo sync stopped");
                    self.fatal = Some(error);
                    self.shared.handoff.close();
                    self.shared.counters.fatal.store(1, Ordering::Relaxed);
                    return Err(CallError::Fatal);
                }
                Verdict::Done | Verdict::Missing | Verdict::SetAside => {
                    self.failures = 0;
                    // `answer` is Ok for every class but Retry.
                    return answer.map_err(|e| CallError::GaveUp(e.to_string()));
                }
            }
        }
    }

    /// Commits, then sends every pending contact change and event.
    async fn flush_all(&mut self) -> Result<(), BrevoError> {
        if self.fatal.is_some() {
            return Err(self.fatal_error());
        }
        self.drain();
        let _ = self.commit();
        let c = &self.shared.counters;
        let before = (
            c.contacts_written.load(Ordering::Relaxed),
            c.events_sent.load(Ordering::Relaxed),
            c.requests.load(Ordering::Relaxed),
        );
        let contacts = self.flush_contacts().await;
        let events = self.flush_events().await;
        self.update_gauges();
        let _ = self.commit();
        let c = &self.shared.counters;
        let requests = c.requests.load(Ordering::Relaxed) - before.2;
        if requests > 0 {
            tracing::info!(
                contacts_written = c.contacts_written.load(Ordering::Relaxed) - before.0,
                events_sent = c.events_sent.load(Ordering::Relaxed) - before.1,
                requests,
                contacts_pending = c.contacts_pending.load(Ordering::Relaxed),
                contacts_rejected = c.contacts_rejected.load(Ordering::Relaxed),
                "{}",
                if self.transport.is_dry_run() {
                    "brevo dry run: flush written to the dry-run file, nothing sent to Brevo"
                } else {
                    "brevo flush"
                }
            );
        }
        let result = contacts.and(events);
        match result {
            Err(CallError::Fatal) => Err(self.fatal_error()),
            Err(CallError::GaveUp(detail)) => Err(BrevoError::Unavailable { detail }),
            Ok(()) => Ok(()),
        }
    }
}
