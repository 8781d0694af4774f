//! Contacts through the fleet's shared outbox (`store:` Redis): publish, then deliver.
//!
//! - **Publish.** Contacts whose local state changed are merged into the shared state in
//!   Redis (`crate::fleet::outbox`). Locally, "acknowledged" then means "handed to Redis":
//!   while Redis is unreachable the changes stay due in the local store and are published
//!   when it answers. Decisions never wait for Redis.
//! - **Deliver.** The instance claims queued contacts (its share of the fleet's work, and
//!   work of instances that stopped answering for the lease timeout), writes their merged
//!   states to Brevo within the shared budget, and acknowledges them after 2xx. Writes that
//!   failed are retried at the next flush (or by another instance once the lease times out).

use std::sync::atomic::Ordering;
use std::time::SystemTime;

use serde_json::{Map, Value};

use super::super::answer;
use super::super::batch;
use super::super::derive::{ContactState, Interner};
use super::super::shared::SetAside;
use super::super::time::{day_of, format_day};
use super::super::transport::Method;
use super::{CallError, Family, Worker};
use crate::brevo::config::ContactIdentity;
use crate::fleet::outbox::Claimed;
use crate::http::{self, Verdict};

/// Contacts merged into Redis per round trip.
const PUBLISH_BATCH: usize = 500;

/// A claimed contact being written, with its attempts.
pub(super) struct Writing {
    claimed: Claimed,
    attributes: Map<String, Value>,
    attempts: u32,
}

impl Worker {
    /// Publishes local changes, then delivers claimed contacts until none is left.
    pub(super) async fn flush_fleet_contacts(&mut self) -> Result<(), CallError> {
        let Some(mut outbox) = self.outbox.take() else {
            return Ok(());
        };
        let result = self.publish_and_deliver(&mut outbox).await;
        self.outbox = Some(outbox);
        result
    }

    async fn publish_and_deliver(
        &mut self,
        outbox: &mut crate::fleet::outbox::ContactOutbox,
    ) -> Result<(), CallError> {
        self.publish_local().await;
        // Deliver: first what failed last time, then new claims.
        loop {
            let (mut writing, exhausted): (Vec<_>, Vec<_>) = std::mem::take(&mut self.fleet_retry)
                .into_iter()
                .partition(|w| w.attempts < self.cfg.max_attempts);
            if !exhausted.is_empty() {
                self.set_aside_fleet(
                    outbox,
                    exhausted,
                    207,
                    "partial",
                    "failed in every attempt (207 or no answer)",
                )
                .await;
            }
            if writing.len() < self.cfg.batch_size {
                let room = self.cfg.batch_size - writing.len();
                match outbox.claim(room).await {
                    Ok(claimed) => {
                        writing.extend(claimed.into_iter().map(|c| self.writing(c)));
                    }
                    Err(_) if writing.is_empty() => return Ok(()),
                    Err(_) => {}
                }
            }
            if writing.is_empty() {
                return Ok(());
            }
            let had_retries = writing.iter().any(|w| w.attempts > 0);
            let result = self.deliver(outbox, writing).await;
            self.update_gauges();
            result?;
            if had_retries && !self.fleet_retry.is_empty() {
                // The same failures again: leave them for the next flush.
                return Ok(());
            }
        }
    }

    /// Publishes the contacts whose local state changed (after folding in what was handed
    /// over and committing it), 500 per round trip, until none is left or Redis fails (the
    /// changes then stay due here and go with the next publish).
    pub(super) async fn publish_local(&mut self) {
        let Some(mut publisher) = self.publisher.take() else {
            return;
        };
        loop {
            self.drain();
            self.maybe_commit();
            let (due, _) =
                self.coalescer
                    .take_due(PUBLISH_BATCH, &self.cfg.names, self.cfg.date_format);
            if due.is_empty() {
                break;
            }
            let states: Vec<(String, _)> = due
                .iter()
                .map(|d| {
                    (
                        self.coalescer.slot(d.slot).contact.to_string(),
                        self.coalescer.persisted(d.slot),
                    )
                })
                .collect();
            let refs: Vec<(&str, _)> = states
                .iter()
                .map(|(c, s)| (c.as_str(), s.clone()))
                .collect();
            match publisher.publish(&refs).await {
                Ok(_) => {
                    self.settle(&due, "hand-off to the fleet");
                    self.shared
                        .counters
                        .contacts_published
                        .fetch_add(due.len() as u64, Ordering::Relaxed);
                }
                Err(_) => {
                    // Redis unreachable (logged by the fleet handle): the changes wait here.
                    for d in &due {
                        self.coalescer.retry_later(d.slot);
                    }
                    break;
                }
            }
        }
        self.publisher = Some(publisher);
    }

    /// The attributes of a claimed merged state (plus the write date).
    fn writing(&self, claimed: Claimed) -> Writing {
        let mut interner = Interner::default();
        let state = ContactState::from_persisted(&claimed.state, &mut interner);
        let mut attributes = state
            .derive(&interner, &self.cfg.names, self.cfg.date_format)
            .attributes;
        attributes.insert(
            self.cfg.names.synced.clone(),
            Value::String(format_day(day_of(SystemTime::now()), self.cfg.date_format)),
        );
        Writing {
            claimed,
            attributes,
            attempts: 0,
        }
    }

    /// Writes one claimed batch: `/contacts/batch` (email) or one `PUT` each (ext_id),
    /// creating unknown contacts and splitting on refusals.
    async fn deliver(
        &mut self,
        outbox: &mut crate::fleet::outbox::ContactOutbox,
        writing: Vec<Writing>,
    ) -> Result<(), CallError> {
        let mut groups = vec![writing];
        while let Some(group) = groups.pop() {
            let (method, path, body) = match self.cfg.identity {
                ContactIdentity::Email => {
                    let items: Vec<(&str, &Map<String, Value>)> = group
                        .iter()
                        .map(|w| (w.claimed.contact.as_str(), &w.attributes))
                        .collect();
                    (
                        Method::Post,
                        "/contacts/batch".to_string(),
                        batch::contacts_batch_body(&items, &self.cfg.list_ids),
                    )
                }
                ContactIdentity::ExtId if group.len() > 1 => {
                    let mut group = group;
                    while let Some(one) = group.pop() {
                        groups.push(vec![one]);
                    }
                    continue;
                }
                ContactIdentity::ExtId => (
                    Method::Put,
                    format!(
                        "/contacts/{}?identifierType=ext_id",
                        super::contacts::percent_encode(&group[0].claimed.contact)
                    ),
                    batch::update_body(&group[0].attributes, &self.cfg.list_ids),
                ),
            };
            let response = match self.call(Family::Contacts, method, path, Some(body)).await {
                Ok(r) => r,
                Err(e) => {
                    self.retry_fleet(group.into_iter().chain(groups.into_iter().flatten()));
                    return Err(e);
                }
            };
            match http::BREVO.verdict(Some(response.status)) {
                // A 207 names failures in a shape we cannot always map: the whole group is
                // written again (contact writes are idempotent), up to max_attempts.
                Verdict::Done if response.status == 207 => self.retry_fleet(group),
                Verdict::Done => self.written(outbox, group).await,
                Verdict::Missing => {
                    let (_, message) = answer::error_body(&response.body);
                    let unknown = answer::unknown_indexes(&message)
                        .map(|ix| {
                            ix.into_iter()
                                .filter(|&i| i < group.len())
                                .collect::<Vec<_>>()
                        })
                        .filter(|ix| !ix.is_empty())
                        .unwrap_or_else(|| (0..group.len()).collect());
                    let (mut missing, mut rest) = (Vec::new(), Vec::new());
                    for (i, w) in group.into_iter().enumerate() {
                        if unknown.contains(&i) {
                            missing.push(w);
                        } else {
                            rest.push(w);
                        }
                    }
                    if !rest.is_empty() {
                        groups.push(rest);
                    }
                    if let Err(e) = self.create_fleet_contacts(outbox, missing).await {
                        self.retry_fleet(groups.into_iter().flatten());
                        return Err(e);
                    }
                }
                _ if group.len() > 1 => {
                    let mut first = group;
                    let second = first.split_off(first.len() / 2);
                    groups.push(second);
                    groups.push(first);
                }
                _ => {
                    let (code, message) = answer::error_body(&response.body);
                    self.set_aside_fleet(outbox, group, response.status, &code, &message)
                        .await;
                }
            }
        }
        Ok(())
    }

    /// Creates contacts Brevo does not know: one import when many, else one upsert each.
    async fn create_fleet_contacts(
        &mut self,
        outbox: &mut crate::fleet::outbox::ContactOutbox,
        missing: Vec<Writing>,
    ) -> Result<(), CallError> {
        if missing.is_empty() {
            return Ok(());
        }
        let import_list = self
            .cfg
            .import_list_id
            .or_else(|| self.cfg.list_ids.first().copied());
        if let (Some(list), ContactIdentity::Email) = (import_list, self.cfg.identity) {
            if missing.len() >= self.cfg.import_threshold {
                let items: Vec<(&str, &Map<String, Value>)> = missing
                    .iter()
                    .map(|w| (w.claimed.contact.as_str(), &w.attributes))
                    .collect();
                let body = batch::import_body(list, &items, &self.cfg.list_ids);
                match self
                    .call(
                        Family::Contacts,
                        Method::Post,
                        "/contacts/import".into(),
                        Some(body),
                    )
                    .await
                {
                    Ok(r) if http::BREVO.verdict(Some(r.status)) == Verdict::Done => {
                        self.shared
                            .counters
                            .contacts_created
                            .fetch_add(missing.len() as u64, Ordering::Relaxed);
                        self.written(outbox, missing).await;
                        return Ok(());
                    }
                    Ok(r) => {
                        let (code, message) = answer::error_body(&r.body);
                        tracing::warn!(
                            status = r.status,
                            code,
                            message,
                            "brevo import refused; creating contacts one by one"
                        );
                    }
                    Err(e) => {
                        self.retry_fleet(missing);
                        return Err(e);
                    }
                }
            }
        }
        let mut missing = missing.into_iter();
        while let Some(w) = missing.next() {
            match self.create_contact(&w.claimed.contact, &w.attributes).await {
                Ok(r) if http::BREVO.verdict(Some(r.status)) == Verdict::Done => {
                    self.shared
                        .counters
                        .contacts_created
                        .fetch_add(1, Ordering::Relaxed);
                    self.written(outbox, vec![w]).await;
                }
                Ok(r) => {
                    let (code, message) = answer::error_body(&r.body);
                    self.set_aside_fleet(outbox, vec![w], r.status, &code, &message)
                        .await;
                }
                Err(e) => {
                    self.retry_fleet(std::iter::once(w).chain(missing));
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Brevo answered 2xx: acknowledged in Redis (a failed acknowledgement only means the
    /// write is made again: at-least-once).
    async fn written(
        &mut self,
        outbox: &mut crate::fleet::outbox::ContactOutbox,
        group: Vec<Writing>,
    ) {
        let done: Vec<&Claimed> = group.iter().map(|w| &w.claimed).collect();
        if outbox.acknowledge(&done).await.is_err() {
            tracing::warn!(
                contacts = done.len(),
                "written to Brevo but not acknowledged in Redis; they will be written again"
            );
        }
        self.shared
            .counters
            .contacts_written
            .fetch_add(group.len() as u64, Ordering::Relaxed);
    }

    /// Keeps writes for the next flush, or sets them aside after `max_attempts`.
    fn retry_fleet(&mut self, writes: impl IntoIterator<Item = Writing>) {
        for mut w in writes {
            w.attempts += 1;
            self.shared.counters.retries.fetch_add(1, Ordering::Relaxed);
            self.fleet_retry.push(w);
        }
    }

    async fn set_aside_fleet(
        &mut self,
        outbox: &mut crate::fleet::outbox::ContactOutbox,
        group: Vec<Writing>,
        status: u16,
        code: &str,
        message: &str,
    ) {
        let done: Vec<&Claimed> = group.iter().map(|w| &w.claimed).collect();
        let _ = outbox.acknowledge(&done).await;
        for w in &group {
            tracing::warn!(contact = %w.claimed.contact, status, code, message, "brevo refused a contact; set aside until its state changes");
            self.shared
                .counters
                .contacts_rejected
                .fetch_add(1, Ordering::Relaxed);
            self.shared.record_set_aside(SetAside {
                what: w.claimed.contact.clone(),
                status,
                code: code.to_string(),
                message: message.to_string(),
            });
        }
    }
}
