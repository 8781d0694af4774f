//! The owner loop: drains the queue into the coalescer, commits to the store, sends to Brevo.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{sleep_until, Instant, MissedTickBehavior};

use super::batch;
use super::coalesce::{Coalescer, DueContact};
use super::config::{brevo_event_name, Config, ContactIdentity};
use super::derive::PersistedState;
use super::error::BrevoError;
use super::handle::{SetAside, Shared, DRAIN_INTERVAL};
use super::ratelimit::RateLimiter;
use super::record::{ConversionRecord, SyncRecord};
use super::retry::{self, Class};
use super::store::Store;
use super::time::{day_of, format_day, format_timestamp};
use super::transport::{BrevoRequest, BrevoResponse, BrevoTransport, Method};

/// A request from the handle to the worker.
pub(crate) enum Command {
    /// Send everything pending now; reply when done.
    Flush(oneshot::Sender<Result<(), BrevoError>>),
    /// Flush, commit and stop.
    Close(oneshot::Sender<Result<(), BrevoError>>),
}

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
    id: i64,
    body: String,
    attempts: u32,
}

/// The worker. One per sync; owns everything but the shared counters and queue.
pub(crate) struct Worker {
    cfg: Arc<Config>,
    shared: Arc<Shared>,
    transport: Box<dyn BrevoTransport>,
    store: Store,
    coalescer: Coalescer,
    contacts_budget: RateLimiter,
    events_budget: RateLimiter,
    /// Conversions not yet committed.
    new_events: Vec<String>,
    /// Committed conversions not yet acknowledged, oldest first.
    events: VecDeque<PendingEvent>,
    retry_at: Option<Instant>,
    last_commit: Instant,
    fatal: Option<BrevoError>,
}

impl Worker {
    /// Opens the store and restores what it holds.
    pub(crate) fn new(
        cfg: Arc<Config>,
        shared: Arc<Shared>,
        transport: Box<dyn BrevoTransport>,
    ) -> Result<Worker, BrevoError> {
        let store = Store::open(cfg.store_path.as_deref())?;
        let mut coalescer = Coalescer::default();
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
            })
            .collect();
        tracing::info!(
            contacts = coalescer.len(),
            pending_contacts = coalescer.dirty_len(),
            pending_events = events.len(),
            "brevo sync store opened"
        );
        let worker = Worker {
            contacts_budget: RateLimiter::new(cfg.contacts_budget),
            events_budget: RateLimiter::new(cfg.events_budget),
            cfg,
            shared,
            transport,
            store,
            coalescer,
            new_events: Vec::new(),
            events,
            retry_at: None,
            last_commit: Instant::now(),
            fatal: None,
        };
        worker.update_gauges();
        Ok(worker)
    }

    /// Lists Brevo's attributes and creates the missing ones with the right type.
    pub(crate) async fn ensure_attributes(&mut self) -> Result<(), BrevoError> {
        let setup = |call: &str, detail: String| BrevoError::Setup {
            call: call.to_string(),
            detail,
        };
        let list_call = "GET /contacts/attributes";
        let response = self
            .call(
                Family::Contacts,
                Method::Get,
                "/contacts/attributes".into(),
                None,
            )
            .await;
        let response = self.setup_answer(list_call, response)?;
        #[derive(serde::Deserialize)]
        struct Listed {
            name: String,
            #[serde(rename = "type")]
            kind: Option<String>,
        }
        #[derive(serde::Deserialize)]
        struct List {
            #[serde(default)]
            attributes: Vec<Listed>,
        }
        let list: List = serde_json::from_slice(&response.body)
            .map_err(|e| setup(list_call, format!("unreadable answer: {e}")))?;
        let names = self.cfg.names.clone();
        for (name, kind) in names.with_types() {
            if let Some(found) = list.attributes.iter().find(|a| a.name == name) {
                if found.kind.as_deref() != Some(kind.as_str()) {
                    return Err(BrevoError::AttributeTypeMismatch {
                        name: name.to_string(),
                        found: found.kind.clone(),
                        expected: kind.as_str(),
                    });
                }
                continue;
            }
            let path = format!("/contacts/attributes/normal/{name}");
            let call = format!("POST {path}");
            let body = serde_json::json!({ "type": kind.as_str() })
                .to_string()
                .into_bytes();
            let response = self
                .call(Family::Contacts, Method::Post, path, Some(body))
                .await;
            self.setup_answer(&call, response)?;
            self.shared
                .counters
                .attributes_created
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                attribute = name,
                kind = kind.as_str(),
                "brevo attribute created"
            );
        }
        Ok(())
    }

    fn setup_answer(
        &mut self,
        call: &str,
        response: Result<BrevoResponse, CallError>,
    ) -> Result<BrevoResponse, BrevoError> {
        match response {
            Ok(r) if retry::classify(Some(r.status)) == Class::Success => Ok(r),
            Ok(r) => {
                let (code, message) = retry::error_body(&r.body);
                Err(BrevoError::Setup {
                    call: call.to_string(),
                    detail: format!("{} {code}: {message}", r.status),
                })
            }
            Err(CallError::Fatal) => Err(self.fatal_error()),
            Err(CallError::GaveUp(detail)) => Err(BrevoError::Setup {
                call: call.to_string(),
                detail,
            }),
        }
    }

    fn fatal_error(&self) -> BrevoError {
        match &self.fatal {
            Some(BrevoError::Unauthorized { code, message }) => BrevoError::Unauthorized {
                code: code.clone(),
                message: message.clone(),
            },
            Some(BrevoError::Forbidden {
                status,
                code,
                message,
            }) => BrevoError::Forbidden {
                status: *status,
                code: code.clone(),
                message: message.clone(),
            },
            _ => BrevoError::Closed,
        }
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
        let mut drain_tick = tokio::time::interval(DRAIN_INTERVAL);
        drain_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            self.drain();
            if self.fatal.is_none() && self.coalescer.dirty_len() >= self.cfg.batch_size {
                if let Err(e) = self.flush_all().await {
                    tracing::warn!(error = %e, "brevo flush on size failed");
                }
                continue;
            }
            self.shared.idle.0.store(true, Ordering::SeqCst);
            if !self.shared.queue.is_empty() {
                self.shared.idle.0.store(false, Ordering::SeqCst);
                continue;
            }
            tokio::select! {
                biased;
                command = commands.recv() => {
                    self.shared.idle.0.store(false, Ordering::SeqCst);
                    self.drain();
                    match command {
                        Some(Command::Flush(reply)) => {
                            let result = self.flush_all().await;
                            let _ = reply.send(result);
                        }
                        Some(Command::Close(reply)) => {
                            let result = self.flush_all().await;
                            let result = result.and(self.commit());
                            self.shared.stopped.store(true, Ordering::SeqCst);
                            let _ = reply.send(result);
                            return;
                        }
                        None => {
                            // Handle dropped without close: keep what was accepted.
                            let _ = self.commit();
                            return;
                        }
                    }
                }
                _ = self.shared.wake.notified() => {}
                _ = drain_tick.tick() => {}
                _ = commit_tick.tick() => {
                    self.drain();
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
            self.shared.idle.0.store(false, Ordering::SeqCst);
        }
    }

    /// Moves every queued record into the coalescer / event list.
    fn drain(&mut self) {
        if self.shared.queue.is_empty() {
            return;
        }
        let now = SystemTime::now();
        let today = day_of(now);
        let mut decisions = 0u64;
        while let Some(record) = self.shared.queue.pop() {
            match record {
                SyncRecord::Decision(d) => {
                    decisions += 1;
                    self.coalescer.apply(&d, today);
                }
                SyncRecord::Conversion(c) => self.accept_conversion(&c),
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
        match self.store.commit(&rows, &new_events) {
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

    /// Waits until `until`, draining the queue and committing meanwhile.
    async fn pause_until(&mut self, until: Instant) {
        loop {
            self.drain();
            self.maybe_commit();
            if Instant::now() >= until {
                return;
            }
            self.shared.idle.0.store(true, Ordering::SeqCst);
            if self.shared.queue.is_empty() {
                let next = until.min(Instant::now() + DRAIN_INTERVAL);
                tokio::select! {
                    _ = sleep_until(next) => {}
                    _ = self.shared.wake.notified() => {}
                }
            }
            self.shared.idle.0.store(false, Ordering::SeqCst);
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
                match budget.try_acquire(Instant::now()) {
                    Ok(()) => break,
                    Err(at) => self.pause_until(at).await,
                }
            }
            self.shared
                .counters
                .requests
                .fetch_add(1, Ordering::Relaxed);
            let request = BrevoRequest {
                method,
                path: path.clone(),
                body: body.clone(),
            };
            let answer = self.transport.send(request).await;
            let status = answer.as_ref().ok().map(|r| r.status);
            match retry::classify(status) {
                Class::RateLimited => {
                    self.shared
                        .counters
                        .rate_limited
                        .fetch_add(1, Ordering::Relaxed);
                    let reset = answer
                        .as_ref()
                        .ok()
                        .and_then(|r| r.rate_limit_reset.as_deref());
                    let wait = retry::rate_limit_wait(reset, self.cfg.rate_limit_wait);
                    tracing::debug!(path = %path, wait_ms = wait.as_millis() as u64, "brevo 429");
                    let until = Instant::now() + wait;
                    match family {
                        Family::Contacts => self.contacts_budget.block_until(until),
                        Family::Events => self.events_budget.block_until(until),
                    }
                }
                Class::Retry => {
                    attempt += 1;
                    self.shared.counters.retries.fetch_add(1, Ordering::Relaxed);
                    let detail = match &answer {
                        Ok(r) => {
                            let (code, message) = retry::error_body(&r.body);
                            format!(
                                "{} {} -> {} {code} {message}",
                                method.as_str(),
                                path,
                                r.status
                            )
                        }
                        Err(e) => format!("{} {} -> {e}", method.as_str(), path),
                    };
                    let delay = retry::backoff(
                        attempt,
                        self.cfg.backoff_base,
                        self.cfg.backoff_max,
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
                Class::Unauthorized | Class::Forbidden => {
                    let (status, (code, message)) = match &answer {
                        Ok(r) => (r.status, retry::error_body(&r.body)),
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
                    self.shared.stopped.store(true, Ordering::SeqCst);
                    self.shared.counters.fatal.store(1, Ordering::Relaxed);
                    return Err(CallError::Fatal);
                }
                Class::Success | Class::NotFound | Class::Reject => {
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
                "brevo flush"
            );
        }
        let result = contacts.and(events);
        match result {
            Err(CallError::Fatal) => Err(self.fatal_error()),
            Err(CallError::GaveUp(detail)) => Err(BrevoError::Unavailable { detail }),
            Ok(()) => Ok(()),
        }
    }

    async fn flush_contacts(&mut self) -> Result<(), CallError> {
        loop {
            self.drain();
            self.maybe_commit();
            let max = match self.cfg.identity {
                ContactIdentity::Email => self.cfg.batch_size,
                ContactIdentity::ExtId => 1,
            };
            let (due, unchanged) =
                self.coalescer
                    .take_due(max, &self.cfg.names, self.cfg.date_format);
            self.shared
                .counters
                .contacts_unchanged
                .fetch_add(unchanged, Ordering::Relaxed);
            if due.is_empty() {
                return Ok(());
            }
            let sent = match self.cfg.identity {
                ContactIdentity::Email => self.send_batch(due).await,
                ContactIdentity::ExtId => self.send_single(due).await,
            };
            sent?;
        }
    }

    /// The attributes to write: derived ones plus the write date.
    fn write_attributes(&self, due: &DueContact) -> serde_json::Map<String, Value> {
        let mut attributes = due.derived.attributes.clone();
        attributes.insert(
            self.cfg.names.synced.clone(),
            Value::String(format_day(day_of(SystemTime::now()), self.cfg.date_format)),
        );
        attributes
    }

    /// Sends contacts with `POST /contacts/batch`, splitting on 400 and creating unknown ones.
    async fn send_batch(&mut self, due: Vec<DueContact>) -> Result<(), CallError> {
        let mut groups = vec![due];
        while let Some(group) = groups.pop() {
            let attributes: Vec<_> = group.iter().map(|d| self.write_attributes(d)).collect();
            let items: Vec<(&str, &serde_json::Map<String, Value>)> = group
                .iter()
                .zip(&attributes)
                .map(|(d, a)| (&*self.coalescer.slot(d.slot).contact, a))
                .collect();
            let body = batch::contacts_batch_body(&items);
            let answer = self
                .call(
                    Family::Contacts,
                    Method::Post,
                    "/contacts/batch".into(),
                    Some(body),
                )
                .await;
            let response = match answer {
                Ok(r) => r,
                Err(e) => {
                    for d in group.iter().chain(groups.iter().flatten()) {
                        self.coalescer.retry_later(d.slot);
                    }
                    return Err(e);
                }
            };
            match retry::classify(Some(response.status)) {
                Class::Success if response.status == 207 => {
                    let failed = partial_failures(&response.body, &group, |slot| {
                        &self.coalescer.slot(slot).contact
                    });
                    let (bad, good): (Vec<_>, Vec<_>) =
                        group.into_iter().zip(failed).partition(|(_, f)| *f);
                    self.acknowledge(good.into_iter().map(|(d, _)| d).collect());
                    for (d, _) in bad {
                        self.retry_or_set_aside(
                            &d,
                            "partial",
                            "207: failed in a partial batch answer",
                        );
                    }
                }
                Class::Success => self.acknowledge(group),
                Class::NotFound => {
                    let (_, message) = retry::error_body(&response.body);
                    let unknown = retry::unknown_indexes(&message)
                        .map(|ix| {
                            ix.into_iter()
                                .filter(|&i| i < group.len())
                                .collect::<Vec<_>>()
                        })
                        .filter(|ix| !ix.is_empty())
                        .unwrap_or_else(|| (0..group.len()).collect());
                    let mut missing = Vec::with_capacity(unknown.len());
                    let mut rest = Vec::with_capacity(group.len());
                    for (i, d) in group.into_iter().enumerate() {
                        if unknown.contains(&i) {
                            missing.push(d);
                        } else {
                            rest.push(d);
                        }
                    }
                    if !rest.is_empty() {
                        groups.push(rest);
                    }
                    self.create_contacts(missing).await?;
                }
                _ => {
                    // 400 and other refusals: split to find the contacts Brevo refuses.
                    if group.len() > 1 {
                        let mut first = group;
                        let second = first.split_off(first.len() / 2);
                        groups.push(second);
                        groups.push(first);
                    } else {
                        let (code, message) = retry::error_body(&response.body);
                        for d in group {
                            self.set_aside(&d, response.status, &code, &message);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Creates contacts Brevo does not know, with their attributes: one import into the
    /// configured list when there are many, else one upsert each.
    async fn create_contacts(&mut self, missing: Vec<DueContact>) -> Result<(), CallError> {
        if missing.is_empty() {
            return Ok(());
        }
        if let Some(list) = self.cfg.import_list_id {
            if missing.len() >= self.cfg.import_threshold {
                let attributes: Vec<_> = missing.iter().map(|d| self.write_attributes(d)).collect();
                let items: Vec<(&str, &serde_json::Map<String, Value>)> = missing
                    .iter()
                    .zip(&attributes)
                    .map(|(d, a)| (&*self.coalescer.slot(d.slot).contact, a))
                    .collect();
                let body = batch::import_body(list, &items);
                let answer = self
                    .call(
                        Family::Contacts,
                        Method::Post,
                        "/contacts/import".into(),
                        Some(body),
                    )
                    .await;
                match answer {
                    Ok(r) if retry::classify(Some(r.status)) == Class::Success => {
                        self.shared
                            .counters
                            .contacts_created
                            .fetch_add(missing.len() as u64, Ordering::Relaxed);
                        self.acknowledge(missing);
                        return Ok(());
                    }
                    Ok(r) => {
                        let (code, message) = retry::error_body(&r.body);
                        tracing::warn!(
                            status = r.status,
                            code,
                            message,
                            "brevo import refused; creating contacts one by one"
                        );
                    }
                    Err(e) => {
                        for d in &missing {
                            self.coalescer.retry_later(d.slot);
                        }
                        return Err(e);
                    }
                }
            }
        }
        let mut missing = missing.into_iter();
        while let Some(d) = missing.next() {
            let attributes = self.write_attributes(&d);
            let contact = self.coalescer.slot(d.slot).contact.clone();
            let body = batch::upsert_body(self.cfg.identity, &contact, &attributes);
            match self
                .call(
                    Family::Contacts,
                    Method::Post,
                    "/contacts".into(),
                    Some(body),
                )
                .await
            {
                Ok(r) if retry::classify(Some(r.status)) == Class::Success => {
                    self.shared
                        .counters
                        .contacts_created
                        .fetch_add(1, Ordering::Relaxed);
                    self.acknowledge(vec![d]);
                }
                Ok(r) => {
                    let (code, message) = retry::error_body(&r.body);
                    self.set_aside(&d, r.status, &code, &message);
                }
                Err(e) => {
                    self.coalescer.retry_later(d.slot);
                    for d in missing {
                        self.coalescer.retry_later(d.slot);
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// ext_id identity: `PUT /contacts/{ext_id}?identifierType=ext_id`, upsert on 404.
    async fn send_single(&mut self, due: Vec<DueContact>) -> Result<(), CallError> {
        for (i, d) in due.iter().enumerate() {
            let contact = self.coalescer.slot(d.slot).contact.clone();
            let body = batch::update_body(&self.write_attributes(d));
            let path = format!(
                "/contacts/{}?identifierType=ext_id",
                percent_encode(&contact)
            );
            match self
                .call(Family::Contacts, Method::Put, path, Some(body))
                .await
            {
                Ok(r) => match retry::classify(Some(r.status)) {
                    Class::Success => self.acknowledge(vec![d.clone()]),
                    Class::NotFound => self.create_contacts(vec![d.clone()]).await?,
                    _ => {
                        let (code, message) = retry::error_body(&r.body);
                        self.set_aside(d, r.status, &code, &message);
                    }
                },
                Err(e) => {
                    for d in &due[i..] {
                        self.coalescer.retry_later(d.slot);
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    fn acknowledge(&mut self, done: Vec<DueContact>) {
        if done.is_empty() {
            return;
        }
        for d in &done {
            self.coalescer.acknowledge(d.slot, d.derived.digest);
        }
        let rows: Vec<(&str, u64)> = done
            .iter()
            .map(|d| (&*self.coalescer.slot(d.slot).contact, d.derived.digest))
            .collect();
        if let Err(e) = self.store.record_outcomes(&rows, false) {
            self.shared
                .counters
                .store_errors
                .fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, "brevo store: acknowledgement not recorded");
        }
        self.shared
            .counters
            .contacts_written
            .fetch_add(done.len() as u64, Ordering::Relaxed);
    }

    fn retry_or_set_aside(&mut self, d: &DueContact, code: &str, message: &str) {
        if self.coalescer.slot(d.slot).attempts + 1 >= self.cfg.max_attempts {
            self.set_aside(d, 207, code, message);
        } else {
            self.shared.counters.retries.fetch_add(1, Ordering::Relaxed);
            self.coalescer.retry_later(d.slot);
        }
    }

    fn set_aside(&mut self, d: &DueContact, status: u16, code: &str, message: &str) {
        let contact = self.coalescer.slot(d.slot).contact.to_string();
        tracing::warn!(contact = %contact, status, code, message, "brevo refused a contact; set aside until its state changes");
        self.coalescer.reject(d.slot, d.derived.digest);
        if let Err(e) = self
            .store
            .record_outcomes(&[(&contact, d.derived.digest)], true)
        {
            self.shared
                .counters
                .store_errors
                .fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, "brevo store: rejection not recorded");
        }
        self.shared
            .counters
            .contacts_rejected
            .fetch_add(1, Ordering::Relaxed);
        self.shared.record_set_aside(SetAside {
            what: contact,
            status,
            code: code.to_string(),
            message: message.to_string(),
        });
    }

    async fn flush_events(&mut self) -> Result<(), CallError> {
        while !self.events.is_empty() {
            self.drain();
            self.maybe_commit();
            let max = if self.cfg.use_events_batch {
                self.cfg.events_batch_size
            } else {
                1
            };
            let sizes: Vec<usize> = self.events.iter().take(max).map(|e| e.body.len()).collect();
            let take = batch::split_batches(&sizes, max, super::config::MAX_EVENTS_BATCH_BYTES)
                .first()
                .map_or(1, |r| r.len());
            let group: Vec<PendingEvent> = self.events.drain(..take).collect();
            self.send_events(group).await?;
        }
        Ok(())
    }

    async fn send_events(&mut self, group: Vec<PendingEvent>) -> Result<(), CallError> {
        let mut groups = vec![group];
        while let Some(group) = groups.pop() {
            let (path, body) = if self.cfg.use_events_batch {
                (
                    "/events/batch",
                    batch::events_batch_body(group.iter().map(|e| e.body.as_str())),
                )
            } else {
                (
                    "/events",
                    group
                        .iter()
                        .map(|e| e.body.as_bytes().to_vec())
                        .next()
                        .unwrap_or_default(),
                )
            };
            let answer = self
                .call(Family::Events, Method::Post, path.into(), Some(body))
                .await;
            let response = match answer {
                Ok(r) => r,
                Err(e) => {
                    // Put them back in front, oldest first.
                    for ev in groups
                        .into_iter()
                        .flatten()
                        .rev()
                        .chain(group.into_iter().rev())
                    {
                        self.events.push_front(ev);
                    }
                    return Err(e);
                }
            };
            match retry::classify(Some(response.status)) {
                Class::Success => {
                    let failed = event_failures(&response.body, group.len());
                    let mut done = Vec::new();
                    for (i, mut ev) in group.into_iter().enumerate() {
                        if failed.contains(&i) {
                            ev.attempts += 1;
                            if ev.attempts >= self.cfg.max_attempts {
                                self.drop_event(
                                    ev,
                                    response.status,
                                    "partial",
                                    "failed in a partial answer",
                                );
                            } else {
                                self.shared.counters.retries.fetch_add(1, Ordering::Relaxed);
                                self.events.push_back(ev);
                            }
                        } else {
                            done.push(ev.id);
                            self.shared
                                .counters
                                .events_sent
                                .fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    self.remove_events(&done);
                }
                _ if group.len() > 1 => {
                    let mut first = group;
                    let second = first.split_off(first.len() / 2);
                    groups.push(second);
                    groups.push(first);
                }
                _ => {
                    let (code, message) = retry::error_body(&response.body);
                    for ev in group {
                        self.drop_event(ev, response.status, &code, &message);
                    }
                }
            }
        }
        Ok(())
    }

    fn drop_event(&mut self, ev: PendingEvent, status: u16, code: &str, message: &str) {
        tracing::warn!(status, code, message, event = %ev.body, "brevo refused an event; set aside");
        self.shared
            .counters
            .events_rejected
            .fetch_add(1, Ordering::Relaxed);
        self.shared.record_set_aside(SetAside {
            what: ev.body.clone(),
            status,
            code: code.to_string(),
            message: message.to_string(),
        });
        self.remove_events(&[ev.id]);
    }

    fn remove_events(&mut self, ids: &[i64]) {
        let ids: Vec<i64> = ids.iter().copied().filter(|&id| id >= 0).collect();
        if let Err(e) = self.store.remove_events(&ids) {
            self.shared
                .counters
                .store_errors
                .fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, "brevo store: event acknowledgement not recorded");
        }
    }
}

/// Which items of a 207 `/contacts/batch` answer failed. Brevo's body is
/// `{"successIds": [...], "failureIds": [...]}`; whether the ids are emails or contact ids is
/// UNCONFIRMED, so string ids are matched against the items' identity and, when no failure
/// can be matched, every item not named in `successIds` counts as failed.
fn partial_failures<'a>(
    body: &[u8],
    group: &[DueContact],
    contact: impl Fn(u32) -> &'a str,
) -> Vec<bool> {
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let names = |key: &str| -> Vec<String> {
        parsed
            .get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|v| match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let failures = names("failureIds");
    let marks: Vec<bool> = group
        .iter()
        .map(|d| failures.iter().any(|f| f == contact(d.slot)))
        .collect();
    if marks.iter().any(|m| *m) {
        return marks;
    }
    let successes = names("successIds");
    group
        .iter()
        .map(|d| !successes.iter().any(|s| s == contact(d.slot)))
        .collect()
}

/// Indexes of failed events in a 207 `/events/batch` answer. The body's shape is UNCONFIRMED:
/// any array of objects with an `index` field under `failures`, `errors` or `failed` counts.
fn event_failures(body: &[u8], len: usize) -> Vec<usize> {
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    ["failures", "errors", "failed"]
        .iter()
        .filter_map(|k| parsed.get(*k).and_then(Value::as_array))
        .flatten()
        .filter_map(|f| f.get("index").and_then(Value::as_u64))
        .map(|i| i as usize)
        .filter(|&i| i < len)
        .collect()
}

/// Percent-encodes a path segment (everything but unreserved characters).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_path_segments() {
        assert_eq!(percent_encode("a b/c@d.io"), "a%20b%2Fc%40d.io");
        assert_eq!(percent_encode("é"), "%C3%A9");
    }

    #[test]
    fn event_failure_indexes() {
        assert_eq!(
            event_failures(br#"{"failures":[{"index":1},{"index":9}]}"#, 3),
            vec![1]
        );
        assert!(event_failures(br#"{"count":3}"#, 3).is_empty());
    }
}
