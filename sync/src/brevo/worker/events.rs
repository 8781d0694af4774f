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
    pub(super) async fn flush_events(&mut self) -> Result<(), CallError> {
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
                    let (code, message) = answer::error_body(&response.body);
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
