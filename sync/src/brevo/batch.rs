//! Request bodies: contact batches, single contact upserts, events and event batches.

use std::ops::Range;

use serde_json::{json, Map, Value};

use super::config::ContactIdentity;

/// Key of the contact identifier in a batch item / create body.
fn identity_key(identity: ContactIdentity) -> &'static str {
    match identity {
        ContactIdentity::Email => "email",
        ContactIdentity::ExtId => "ext_id",
    }
}

/// Adds `listIds` (the lists every synced contact joins) to a contact body, when there are any.
fn with_lists(mut item: Map<String, Value>, list_ids: &[i64]) -> Value {
    if !list_ids.is_empty() {
        item.insert("listIds".into(), json!(list_ids));
    }
    Value::Object(item)
}

fn contact_item(key: &str, contact: &str, attributes: &Map<String, Value>) -> Map<String, Value> {
    let mut item = Map::new();
    item.insert(key.into(), Value::String(contact.into()));
    item.insert("attributes".into(), Value::Object(attributes.clone()));
    item
}

/// `POST /contacts/batch` body (email identity only: the batch has no ext_id identifier).
/// Every item carries `list_ids` (Brevo adds the contact to them; already a member = no change).
pub(crate) fn contacts_batch_body(
    items: &[(&str, &Map<String, Value>)],
    list_ids: &[i64],
) -> Vec<u8> {
    let contacts: Vec<Value> = items
        .iter()
        .map(|(contact, attributes)| {
            with_lists(contact_item("email", contact, attributes), list_ids)
        })
        .collect();
    json!({ "contacts": contacts }).to_string().into_bytes()
}

/// `POST /contacts` upsert body (`updateEnabled: true`), joining `list_ids`.
pub(crate) fn upsert_body(
    identity: ContactIdentity,
    contact: &str,
    attributes: &Map<String, Value>,
    list_ids: &[i64],
) -> Vec<u8> {
    let mut body = contact_item(identity_key(identity), contact, attributes);
    body.insert("updateEnabled".into(), Value::Bool(true));
    with_lists(body, list_ids).to_string().into_bytes()
}

/// `PUT /contacts/{id}` body, joining `list_ids`.
pub(crate) fn update_body(attributes: &Map<String, Value>, list_ids: &[i64]) -> Vec<u8> {
    let mut body = Map::new();
    body.insert("attributes".into(), Value::Object(attributes.clone()));
    with_lists(body, list_ids).to_string().into_bytes()
}

/// `POST /contacts/import` body for contacts unknown to Brevo: into the import list and
/// `list_ids`.
pub(crate) fn import_body(
    list_id: i64,
    items: &[(&str, &Map<String, Value>)],
    list_ids: &[i64],
) -> Vec<u8> {
    let rows: Vec<Value> = items
        .iter()
        .map(|(contact, attributes)| json!({"email": contact, "attributes": attributes}))
        .collect();
    let mut lists = vec![list_id];
    lists.extend(list_ids.iter().filter(|&&l| l != list_id));
    json!({"jsonBody": rows, "listIds": lists, "updateExistingContacts": true})
        .to_string()
        .into_bytes()
}

/// One event item (`POST /events` body, or one element of `/events/batch`).
pub(crate) fn event_item(
    identity: ContactIdentity,
    contact: &str,
    name: &str,
    date: &str,
    properties: Option<&Map<String, Value>>,
) -> String {
    let id_key = match identity {
        ContactIdentity::Email => "email_id",
        ContactIdentity::ExtId => "ext_id",
    };
    let mut item = Map::new();
    item.insert("event_name".into(), Value::String(name.into()));
    item.insert("identifiers".into(), json!({ id_key: contact }));
    item.insert("event_date".into(), Value::String(date.into()));
    if let Some(p) = properties.filter(|p| !p.is_empty()) {
        item.insert("event_properties".into(), Value::Object(p.clone()));
    }
    Value::Object(item).to_string()
}

/// `POST /events/batch` body from event items.
pub(crate) fn events_batch_body<'a>(items: impl Iterator<Item = &'a str>) -> Vec<u8> {
    let mut body = b"{\"events\":[".to_vec();
    for (i, item) in items.enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(item.as_bytes());
    }
    body.extend_from_slice(b"]}");
    body
}

/// Size of the `/events/batch` body holding events of these sizes.
pub(crate) fn events_batch_len(sizes: impl Iterator<Item = usize>) -> usize {
    let (n, total) = sizes.fold((0usize, 0usize), |(n, t), s| (n + 1, t + s));
    b"{\"events\":[]}".len() + total + n.saturating_sub(1)
}

/// Splits items of the given sizes into consecutive batches of at most `max_count` items and
/// `max_bytes` of `/events/batch` body. An item too large on its own gets a batch of its own
/// (Brevo will refuse it and it is set aside).
pub(crate) fn split_batches(
    sizes: &[usize],
    max_count: usize,
    max_bytes: usize,
) -> Vec<Range<usize>> {
    let overhead = events_batch_len(std::iter::empty());
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = overhead;
    for (i, &size) in sizes.iter().enumerate() {
        let count = i - start;
        let extra = size + usize::from(count > 0);
        if count > 0 && (count >= max_count.max(1) || bytes + extra > max_bytes) {
            out.push(start..i);
            start = i;
            bytes = overhead + size;
        } else {
            bytes += extra;
        }
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bodies() {
        let mut attrs = Map::new();
        attrs.insert("ENABLED_FEATURES".into(), json!("a,b"));
        let body: Value =
            serde_json::from_slice(&contacts_batch_body(&[("a@x.io", &attrs)], &[])).unwrap();
        assert_eq!(
            body,
            json!({"contacts":[{"email":"a@x.io","attributes":{"ENABLED_FEATURES":"a,b"}}]})
        );
        let body: Value =
            serde_json::from_slice(&contacts_batch_body(&[("a@x.io", &attrs)], &[3, 9])).unwrap();
        assert_eq!(body["contacts"][0]["listIds"], json!([3, 9]));
        let up: Value =
            serde_json::from_slice(&upsert_body(ContactIdentity::ExtId, "u1", &attrs, &[]))
                .unwrap();
        assert_eq!(up["ext_id"], "u1");
        assert_eq!(up["updateEnabled"], true);
        assert!(up.get("listIds").is_none());
        let up: Value =
            serde_json::from_slice(&upsert_body(ContactIdentity::Email, "a@x.io", &attrs, &[4]))
                .unwrap();
        assert_eq!(up["listIds"], json!([4]));
        let put: Value = serde_json::from_slice(&update_body(&attrs, &[4])).unwrap();
        assert_eq!(
            put,
            json!({"attributes":{"ENABLED_FEATURES":"a,b"},"listIds":[4]})
        );
        let import: Value =
            serde_json::from_slice(&import_body(7, &[("a@x.io", &attrs)], &[4, 7])).unwrap();
        assert_eq!(import["listIds"], json!([7, 4]));
        let mut tags = Map::new();
        tags.insert("revenue".into(), json!(42));
        let e = event_item(
            ContactIdentity::Email,
            "a@x.io",
            "buy",
            "2024-01-01T00:00:00Z",
            Some(&tags),
        );
        let e: Value = serde_json::from_str(&e).unwrap();
        assert_eq!(e["identifiers"]["email_id"], "a@x.io");
        assert_eq!(e["event_properties"]["revenue"], 42);
        let items = ["{\"a\":1}", "{\"b\":2}"];
        let b = events_batch_body(items.iter().copied());
        assert_eq!(b.len(), events_batch_len(items.iter().map(|s| s.len())));
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["events"].as_array().unwrap().len(), 2);
    }

    proptest! {
        /// Every item lands in exactly one batch, in order, and every batch obeys both limits
        /// (unless it holds one item that is too large on its own).
        #[test]
        fn batches_obey_limits(sizes in proptest::collection::vec(1usize..3000, 0..600),
                               max_count in 1usize..250, max_bytes in 100usize..20_000) {
            let batches = split_batches(&sizes, max_count, max_bytes);
            let mut next = 0;
            for r in &batches {
                prop_assert_eq!(r.start, next);
                prop_assert!(r.end > r.start);
                next = r.end;
                prop_assert!(r.len() <= max_count);
                let len = events_batch_len(sizes[r.clone()].iter().copied());
                prop_assert!(len <= max_bytes || r.len() == 1);
            }
            prop_assert_eq!(next, sizes.len());
        }
    }
}
