//! Sending contact changes: `/contacts/batch`, unknown contacts, ext_id updates, outcomes.

use std::sync::atomic::Ordering;
use std::time::SystemTime;

use serde_json::Value;

use super::super::answer;
use super::super::batch;
use super::super::coalesce::DueContact;
use super::super::config::ContactIdentity;
use super::super::shared::SetAside;
use super::super::time::{day_of, format_day};
use super::super::transport::Method;
use super::{CallError, Family, Worker};
use crate::http::{self, Verdict};

impl Worker {
    pub(super) async fn flush_contacts(&mut self) -> Result<(), CallError> {
        if self.outbox.is_some() {
            return self.flush_fleet_contacts().await;
        }
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
            let body = batch::contacts_batch_body(&items, &self.cfg.list_ids);
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
            match http::BREVO.verdict(Some(response.status)) {
                Verdict::Done if response.status == 207 => {
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
                Verdict::Done => self.acknowledge(group),
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
                        let (code, message) = answer::error_body(&response.body);
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
        // The import list: the configured one, else the first list every contact joins.
        let import_list = self
            .cfg
            .import_list_id
            .or_else(|| self.cfg.list_ids.first().copied());
        if let Some(list) = import_list {
            if missing.len() >= self.cfg.import_threshold {
                let attributes: Vec<_> = missing.iter().map(|d| self.write_attributes(d)).collect();
                let items: Vec<(&str, &serde_json::Map<String, Value>)> = missing
                    .iter()
                    .zip(&attributes)
                    .map(|(d, a)| (&*self.coalescer.slot(d.slot).contact, a))
                    .collect();
                let body = batch::import_body(list, &items, &self.cfg.list_ids);
                let answer = self
                    .call(
                        Family::Contacts,
                        Method::Post,
                        "/contacts/import".into(),
                        Some(body),
                    )
                    .await;
                match answer {
                    Ok(r) if http::BREVO.verdict(Some(r.status)) == Verdict::Done => {
                        self.shared
                            .counters
                            .contacts_created
                            .fetch_add(missing.len() as u64, Ordering::Relaxed);
                        self.acknowledge(missing);
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
            match self.create_contact(&contact, &attributes).await {
                Ok(r) if http::BREVO.verdict(Some(r.status)) == Verdict::Done => {
                    self.shared
                        .counters
                        .contacts_created
                        .fetch_add(1, Ordering::Relaxed);
                    self.acknowledge(vec![d]);
                }
                Ok(r) => {
                    let (code, message) = answer::error_body(&r.body);
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
            let body = batch::update_body(&self.write_attributes(d), &self.cfg.list_ids);
            let path = format!(
                "/contacts/{}?identifierType=ext_id",
                percent_encode(&contact)
            );
            match self
                .call(Family::Contacts, Method::Put, path, Some(body))
                .await
            {
                Ok(r) => match http::BREVO.verdict(Some(r.status)) {
                    Verdict::Done => self.acknowledge(vec![d.clone()]),
                    Verdict::Missing => self.create_contacts(vec![d.clone()]).await?,
                    _ => {
                        let (code, message) = answer::error_body(&r.body);
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
        self.settle(&done, "acknowledgement");
        self.shared
            .counters
            .contacts_written
            .fetch_add(done.len() as u64, Ordering::Relaxed);
    }

    /// `POST /contacts` of one contact with its attributes (created, or updated when it exists).
    pub(super) async fn create_contact(
        &mut self,
        contact: &str,
        attributes: &serde_json::Map<String, Value>,
    ) -> Result<super::super::transport::BrevoResponse, CallError> {
        let body = batch::upsert_body(self.cfg.identity, contact, attributes, &self.cfg.list_ids);
        self.call(
            Family::Contacts,
            Method::Post,
            "/contacts".into(),
            Some(body),
        )
        .await
    }

    /// Marks `done` as written, in the coalescer and in the store (`step` names what is
    /// recorded in the error log line when the store fails).
    pub(super) fn settle(&mut self, done: &[DueContact], step: &'static str) {
        for d in done {
            self.coalescer.acknowledge(d.slot, d.derived.digest);
        }
        let rows: Vec<(&str, u64)> = done
            .iter()
            .map(|d| (&*self.coalescer.slot(d.slot).contact, d.derived.digest))
            .collect();
        let store = &mut self.store;
        if let Err(e) = crate::blocking::blocking(|| store.record_outcomes(&rows, false)) {
            self.shared
                .counters
                .store_errors
                .fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, step, "brevo store: outcome not recorded");
        }
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
}

/// Which items of a 207 `/contacts/batch` answer failed. Brevo's body is
/// `{"successIds": [...], "failureIds": [...]}` with integer ids; whether they are contact ids
/// or item positions is UNCONFIRMED. They are read as positions only when they name every
/// item exactly once; string ids are matched against the items' identity. Anything else (ids
/// we cannot map, an unknown shape) marks every item failed: the call is retried, which is
/// harmless for contact writes (idempotent by state), and never counted as written.
fn partial_failures<'a>(
    body: &[u8],
    group: &[DueContact],
    contact: impl Fn(u32) -> &'a str,
) -> Vec<bool> {
    let all_failed = vec![true; group.len()];
    let Ok(parsed) = serde_json::from_slice::<Value>(body) else {
        return all_failed;
    };
    let ids = |key: &str| parsed.get(key).and_then(Value::as_array).cloned();
    let (Some(successes), Some(failures)) = (ids("successIds"), ids("failureIds")) else {
        return all_failed;
    };
    if failures.is_empty() && successes.len() == group.len() {
        return vec![false; group.len()];
    }
    // Positions: every item named once, in one list or the other.
    let positions: Option<Vec<usize>> = successes
        .iter()
        .chain(&failures)
        .map(|v| v.as_u64().map(|n| n as usize))
        .collect();
    if let Some(mut named) = positions {
        named.sort_unstable();
        if named == (0..group.len()).collect::<Vec<_>>() {
            let failed: Vec<usize> = failures
                .iter()
                .filter_map(|v| v.as_u64().map(|n| n as usize))
                .collect();
            return (0..group.len()).map(|i| failed.contains(&i)).collect();
        }
        return all_failed;
    }
    // Emails: matched against the items.
    let names = |list: &[Value]| -> Option<Vec<String>> {
        list.iter().map(|v| v.as_str().map(str::to_owned)).collect()
    };
    match (names(&successes), names(&failures)) {
        (Some(successes), Some(failures)) => group
            .iter()
            .map(|d| {
                let c = contact(d.slot);
                failures.iter().any(|f| f == c) || !successes.iter().any(|s| s == c)
            })
            .collect(),
        _ => all_failed,
    }
}

/// Percent-encodes a path segment (everything but unreserved characters).
pub(super) fn percent_encode(s: &str) -> String {
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
    use crate::brevo::derive::Derived;

    #[test]
    fn partial_answers_of_contacts_batch() {
        let group: Vec<DueContact> = (0..3)
            .map(|slot| DueContact {
                slot,
                derived: Derived {
                    attributes: serde_json::Map::new(),
                    digest: 1,
                },
            })
            .collect();
        let emails = ["a@x.io", "b@x.io", "c@x.io"];
        let contact = |slot: u32| emails[slot as usize];
        let cases: [(&[u8], [bool; 3]); 8] = [
            // Positions naming every item once.
            (
                br#"{"successIds":[0,2],"failureIds":[1]}"#,
                [false, true, false],
            ),
            (
                br#"{"successIds":[0,1,2],"failureIds":[]}"#,
                [false, false, false],
            ),
            // Contact ids we cannot map: every item retried.
            (
                br#"{"successIds":[5501,5502],"failureIds":[5503]}"#,
                [true, true, true],
            ),
            (
                br#"{"successIds":[0,1],"failureIds":[1]}"#,
                [true, true, true],
            ),
            // Emails.
            (
                br#"{"successIds":["a@x.io","c@x.io"],"failureIds":["b@x.io"]}"#,
                [false, true, false],
            ),
            // Unknown shapes fail the whole call.
            (br#"{"failed":[1]}"#, [true, true, true]),
            (br#"{}"#, [true, true, true]),
            (b"oops", [true, true, true]),
        ];
        for (body, expected) in cases {
            assert_eq!(
                partial_failures(body, &group, contact),
                expected.to_vec(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn encodes_path_segments() {
        assert_eq!(percent_encode("a b/c@d.io"), "a%20b%2Fc%40d.io");
        assert_eq!(percent_encode("é"), "%C3%A9");
    }
}
