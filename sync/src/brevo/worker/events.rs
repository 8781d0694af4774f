//! Sending conversions: `/events/batch` (or `/events`), split by count and bytes.

use std::sync::atomic::Ordering;

use serde_json::Value;

use super::super::answer;
use super::super::batch;
use super::super::shared::SetAside;
use super::super::transport::Method;
use super::{CallError, Family, PendingEvent, Worker};
use crate::http::{self, Verdict};

impl Worker {
    /// Sends the pending conversions. With a fleet: first hands this instance's committed
    /// events over to the shared queue (then deletes them locally), then sends what it
    /// claims from the queue, whoever handed it over, until the queue has nothing for it.
    /// While Redis does not answer, local events are sent directly (as without a fleet).
    pub(super) async fn flush_events(&mut self) -> Result<(), CallError> {
        loop {
            if self.event_queue.is_some() {
                self.hand_over_events().await;
                if self.claim_events().await == 0 && self.events.is_empty() {
                    return Ok(());
                }
            }
            self.send_pending_events().await?;
            if self.event_queue.is_none() {
                return Ok(());
            }
        }
    }

    /// Hands the local events over to the fleet's queue; on success they leave the store.
    async fn hand_over_events(&mut self) {
        let Some(queue) = self.event_queue.clone() else {
            return;
        };
        self.drain();
        let _ = self.commit();
        let local: Vec<&str> = self
            .events
            .iter()
            .filter(|e| e.claim.is_none())
            .map(|e| e.body.as_str())
            .collect();
        if local.is_empty() {
            return;
        }
        let handed = local.len() as u64;
        if queue.hand_over_items(&local).await.is_err() {
            // Redis unreachable (logged by the fleet handle): sent from here instead.
            return;
        }
        let ids: Vec<i64> = self
            .events
            .iter()
            .filter(|e| e.claim.is_none())
            .map(|e| e.id)
            .collect();
        self.events.retain(|e| e.claim.is_some());
        self.remove_events(&ids);
        self.shared
            .counters
            .events_published
            .fetch_add(handed, Ordering::Relaxed);
        self.update_gauges();
    }

    /// Claims a batch from the fleet's queue into the pending events; returns how many.
    async fn claim_events(&mut self) -> usize {
        let Some(queue) = self.event_queue.clone() else {
            return 0;
        };
        let Ok(items) = queue.claim_items(self.cfg.events_batch_size.max(1)).await else {
            return 0;
        };
        let n = items.len();
        for (entry, body) in items {
            self.events.push_back(PendingEvent {
                id: -1,
                body,
                attempts: 0,
                claim: Some(entry),
            });
        }
        n
    }

    /// Acknowledges claimed events in the fleet's queue (sent or set aside). A failed
    /// acknowledgement only means another instance sends them again after the lease.
    async fn acknowledge_claims(&mut self, claims: Vec<String>) {
        let Some(queue) = &self.event_queue else {
            return;
        };
        if !claims.is_empty() && queue.acknowledge(&claims).await.is_err() {
            tracing::warn!(
                events = claims.len(),
                "brevo events sent but not acknowledged in Redis; they will be sent again"
            );
        }
    }

    async fn send_pending_events(&mut self) -> Result<(), CallError> {
        while !self.events.is_empty() {
            self.drain();
            self.maybe_commit();
            let max = if self.cfg.use_events_batch {
                self.cfg.events_batch_size
            } else {
                1
            };
            let sizes: Vec<usize> = self.events.iter().take(max).map(|e| e.body.len()).collect();
            let take =
                batch::split_batches(&sizes, max, super::super::config::MAX_EVENTS_BATCH_BYTES)
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
            match http::BREVO.verdict(Some(response.status)) {
                Verdict::Done => {
                    let failed = if response.status == 207 {
                        // An answer we cannot read fails the whole call: retried, never counted as sent.
                        event_failures(&response.body, group.len())
                            .unwrap_or_else(|| (0..group.len()).collect())
                    } else {
                        Vec::new()
                    };
                    let mut done = Vec::new();
                    let mut claims = Vec::new();
                    for (i, mut ev) in group.into_iter().enumerate() {
                        if failed.contains(&i) {
                            ev.attempts += 1;
                            if ev.attempts >= self.cfg.max_attempts {
                                claims.extend(ev.claim.clone());
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
                            claims.extend(ev.claim);
                            self.shared
                                .counters
                                .events_sent
                                .fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    self.remove_events(&done);
                    self.acknowledge_claims(claims).await;
                }
                _ if group.len() > 1 => {
                    let mut first = group;
                    let second = first.split_off(first.len() / 2);
                    groups.push(second);
                    groups.push(first);
                }
                _ => {
                    let (code, message) = answer::error_body(&response.body);
                    let claims: Vec<String> =
                        group.iter().filter_map(|e| e.claim.clone()).collect();
                    for ev in group {
                        self.drop_event(ev, response.status, &code, &message);
                    }
                    self.acknowledge_claims(claims).await;
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
        let store = &mut self.store;
        if let Err(e) = crate::blocking::blocking(|| store.remove_events(&ids)) {
            self.shared
                .counters
                .store_errors
                .fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, "brevo store: event acknowledgement not recorded");
        }
    }
}

/// Indexes of failed events in a 207 `/events/batch` answer: Brevo lists them as
/// `errors[].eventIndex[]` (each error names the positions it applies to; a single integer is
/// read too). `None` when the body has no such list: the caller then fails the whole call.
fn event_failures(body: &[u8], len: usize) -> Option<Vec<usize>> {
    let parsed: Value = serde_json::from_slice(body).ok()?;
    let errors = parsed.get("errors")?.as_array()?;
    let mut failed = Vec::new();
    for error in errors {
        match error.get("eventIndex")? {
            Value::Array(indexes) => {
                for index in indexes {
                    failed.push(index.as_u64()? as usize);
                }
            }
            Value::Number(n) => failed.push(n.as_u64()? as usize),
            _ => return None,
        }
    }
    if failed.iter().any(|&i| i >= len) {
        return None;
    }
    failed.sort_unstable();
    failed.dedup();
    Some(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_failure_indexes() {
        let cases: [(&[u8], Option<Vec<usize>>); 7] = [
            (
                br#"{"errors":[{"eventIndex":[0,2],"message":"bad name"},{"eventIndex":[2]}]}"#,
                Some(vec![0, 2]),
            ),
            (br#"{"errors":[{"eventIndex":1}]}"#, Some(vec![1])),
            (br#"{"errors":[]}"#, Some(vec![])),
            // Unknown shapes fail the whole call.
            (br#"{"failures":[{"index":1}]}"#, None),
            (br#"{"count":3}"#, None),
            (br#"{"errors":[{"eventIndex":[7]}]}"#, None),
            (b"not json", None),
        ];
        for (body, expected) in cases {
            assert_eq!(
                event_failures(body, 3),
                expected,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
