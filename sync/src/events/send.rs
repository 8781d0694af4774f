//! One request to logx, from its first attempt to its end: retried with backoff and jitter
//! (the same body, hence the same event uuids, every time) until the endpoint answers 2xx
//! (the segments are deleted from the store) or 4xx (dead letters), or until the oldest event
//! passes the age limit (dead letters).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;

use super::pipeline::Segment;
use super::render::BatchContext;
use super::sender::EventTransport;
use super::store::{EventStore, EventStoreError};
use super::{Counters, OnSent};
use crate::fleet::events::{EventQueue, QueuedRequest};
use crate::http::backoff;
use crate::http::{Verdict, LOGX};

/// What every request shares.
pub(crate) struct SendSettings {
    pub(crate) transport: Arc<dyn EventTransport>,
    pub(crate) retry_base: Duration,
    pub(crate) retry_max: Duration,
    pub(crate) max_age: Duration,
    /// Whether a request is retrying now (for logging once per outage).
    pub(crate) failing: AtomicBool,
}

impl SendSettings {
    /// Sleeps the jittered backoff before retry number `attempt`.
    async fn wait_before_retry(&self, attempt: u32) {
        let delay = backoff(self.retry_base, self.retry_max, attempt, fastrand::f64());
        tokio::time::sleep(delay).await;
    }
}

/// Segments of one context sent together.
pub(crate) struct Request {
    pub(crate) context: Arc<BatchContext>,
    pub(crate) segments: Vec<Segment>,
    pub(crate) store: Option<Arc<Mutex<EventStore>>>,
}

/// How a request ended.
#[derive(Debug)]
pub(crate) enum SendEnd {
    /// The endpoint answered 2xx.
    Delivered,
    /// Set aside: 4xx, or too old. Kept in the store's dead letters when there is a store.
    DeadLettered,
    /// Appended to the fleet's shared queue (`store:` Redis), for any replica to post.
    Handed,
    /// Nothing posted: no segment's body could be read back (damaged ones were set aside as
    /// dead letters, the others stay in the store for the next start).
    Unread,
}

/// The store rows of a request's segments, but those whose body could not be read now (they
/// stay in the store: deleting them with the request would lose their events).
fn rows(request: &Request, read: &ReadBack) -> Vec<i64> {
    request
        .segments
        .iter()
        .filter_map(|s| s.row)
        .filter(|row| !read.unread.contains(row))
        .collect()
}

/// Segment bodies read back from the store.
#[derive(Default)]
struct ReadBack {
    bodies: Vec<(i64, Vec<u8>)>,
    /// Rows whose read failed for now.
    unread: Vec<i64>,
}

/// Runs `f` on the store off the async threads; errors are logged and counted.
async fn on_store(
    store: &Option<Arc<Mutex<EventStore>>>,
    counters: &Counters,
    what: &'static str,
    f: impl FnOnce(&mut EventStore) -> Result<(), EventStoreError> + Send + 'static,
) {
    let Some(store) = store else {
        return;
    };
    let store = Arc::clone(store);
    let done = tokio::task::spawn_blocking(move || {
        let mut store = store.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut store)
    })
    .await;
    let error = match done {
        Ok(Ok(())) => return,
        Ok(Err(e)) => e.to_string(),
        Err(e) => e.to_string(),
    };
    counters.add_store_error();
    tracing::error!(%error, what, "event store update failed");
}

/// The bodies of a request's segments not held in memory, read back from the store (all in
/// one blocking call). Each failed read is logged and counted, and its segment left out of
/// the request: a body that no longer decompresses is moved to the dead letters (it can
/// never be sent); after any other failure the segment stays in the store.
async fn read_back(request: &Request, counters: &Counters) -> ReadBack {
    let missing: Vec<i64> = request
        .segments
        .iter()
        .filter(|s| s.body.is_none())
        .filter_map(|s| s.row)
        .collect();
    let (Some(store), false) = (&request.store, missing.is_empty()) else {
        return ReadBack::default();
    };
    let store = Arc::clone(store);
    let rows = missing.clone();
    let done = tokio::task::spawn_blocking(move || {
        let mut store = store.lock().unwrap_or_else(|e| e.into_inner());
        let mut read = ReadBack::default();
        let mut errors = Vec::new();
        for row in rows {
            match store.segment_body(row) {
                Ok(Some(body)) => read.bodies.push((row, body)),
                Ok(None) => {}
                Err(e @ EventStoreError::Corrupt { .. }) => {
                    let reason = e.to_string();
                    let now = crate::clock::precise_ms();
                    if let Err(e) = store.dead_letter(&[row], now, 0, &reason) {
                        errors.push(e.to_string());
                        read.unread.push(row);
                    }
                    errors.push(reason);
                }
                Err(e) => {
                    errors.push(e.to_string());
                    read.unread.push(row);
                }
            }
        }
        (read, errors)
    })
    .await;
    let (read, errors) = done.unwrap_or_else(|e| {
        let read = ReadBack {
            bodies: Vec::new(),
            unread: missing,
        };
        (read, vec![e.to_string()])
    });
    for error in errors {
        counters.add_store_error();
        tracing::error!(%error, "cannot read stored events; left out of this request");
    }
    read
}

/// Every segment's visitors, from memory or as read back.
fn segment_bodies<'a>(
    request: &'a Request,
    read: &'a ReadBack,
) -> impl Iterator<Item = &'a [u8]> + Clone {
    request
        .segments
        .iter()
        .filter_map(|s| match (&s.body, s.row) {
            (Some(body), _) => Some(body.as_slice()),
            (None, Some(row)) => read
                .bodies
                .iter()
                .find(|(r, _)| *r == row)
                .map(|(_, b)| b.as_slice()),
            (None, None) => None,
        })
}

/// The request body (the envelope around every readable segment's visitors) and what was read
/// back; `None` when no segment could be read.
async fn body(request: &Request, counters: &Counters) -> (Option<Bytes>, ReadBack) {
    let read = read_back(request, counters).await;
    let mut bodies = segment_bodies(request, &read).peekable();
    let body = bodies
        .peek()
        .is_some()
        .then(|| Bytes::from(request.context.request_body(bodies)));
    (body, read)
}

/// How posting one body ended.
pub(crate) enum Posted {
    /// 2xx.
    Delivered,
    /// Refused (4xx) or past the age limit: to be kept as a dead letter.
    SetAside { status: u16, reason: String },
}

/// Posts `body` until logx answers 2xx or refuses it, or its oldest event (stored at
/// `oldest_ms`) passes the age limit: retried with backoff and jitter, the same body (the
/// same uuids) every time. The one retry policy of both the local senders and the fleet's.
pub(crate) async fn post(
    settings: &SendSettings,
    counters: &Counters,
    endpoint: &str,
    body: &Bytes,
    oldest_ms: u64,
    events: u32,
) -> Posted {
    let mut attempt = 0u32;
    loop {
        let (verdict, status, reason) = match settings.transport.post(endpoint, body.clone()).await
        {
            Ok(reply) => (
                LOGX.verdict(Some(reply.status)),
                reply.status,
                format!("HTTP {}: {}", reply.status, truncate(&reply.body, 300)),
            ),
            Err(error) => (Verdict::Retry, 0, error.to_string()),
        };
        match verdict {
            Verdict::Done => {
                if settings.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("event endpoint accepts events again");
                }
                counters.add_batch();
                return Posted::Delivered;
            }
            Verdict::SetAside | Verdict::Missing | Verdict::Stop => {
                tracing::error!(%endpoint, events, bytes = body.len(), %reason, "event endpoint refused a batch; kept as dead letters (`flagbridge events dead-letters`)");
                return Posted::SetAside { status, reason };
            }
            Verdict::Retry | Verdict::Wait => {
                attempt += 1;
                let age_ms = crate::clock::precise_ms().saturating_sub(oldest_ms);
                if u128::from(age_ms) > settings.max_age.as_millis() {
                    let reason = format!(
                        "older than the age limit after {attempt} attempts; last: {reason}"
                    );
                    tracing::error!(%endpoint, events, %reason, "event batch expired; kept as dead letters");
                    return Posted::SetAside { status, reason };
                }
                counters.add_retries(1);
                if !settings.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(%endpoint, %reason, "event endpoint failing; retrying with backoff (events stay stored)");
                } else {
                    tracing::debug!(%endpoint, %reason, attempt, "event batch retry");
                }
                settings.wait_before_retry(attempt).await;
            }
        }
    }
}

fn oldest_ms(request: &Request) -> u64 {
    request
        .segments
        .iter()
        .map(|s| s.created_ms)
        .min()
        .unwrap_or(0)
}

/// Sends one request until it ends (see the module docs).
pub(crate) async fn send_request(
    request: &Request,
    settings: &SendSettings,
    counters: &Counters,
    on_sent: &OnSent,
) -> SendEnd {
    let (body, read) = body(request, counters).await;
    let Some(body) = body else {
        return SendEnd::Unread;
    };
    let endpoint = request.context.endpoint.as_str();
    let events: u32 = request.segments.iter().map(|s| s.count).sum();
    match post(
        settings,
        counters,
        endpoint,
        &body,
        oldest_ms(request),
        events,
    )
    .await
    {
        Posted::Delivered => {
            let rows = rows(request, &read);
            on_store(&request.store, counters, "delete delivered", move |s| {
                s.delete_segments(&rows)
            })
            .await;
            on_sent(endpoint, &body);
            SendEnd::Delivered
        }
        Posted::SetAside { status, reason } => {
            dead_letter(request, &read, counters, status, reason).await
        }
    }
}

/// Hands one request over to the fleet's queue instead of posting it: retried with backoff
/// while Redis does not answer (the events stay in the local store meanwhile), then its
/// segments are deleted locally.
pub(crate) async fn hand_over(
    request: &Request,
    queue: &EventQueue,
    settings: &SendSettings,
    counters: &Counters,
) -> SendEnd {
    let read = read_back(request, counters).await;
    if segment_bodies(request, &read).next().is_none() {
        return SendEnd::Unread;
    }
    let mut visitors = Vec::new();
    for (i, segment) in segment_bodies(request, &read).enumerate() {
        if i > 0 {
            visitors.push(b',');
        }
        visitors.extend_from_slice(segment);
    }
    let queued = QueuedRequest {
        endpoint: request.context.endpoint.clone(),
        envelope: request.context.envelope.clone(),
        visitors,
        count: request.segments.iter().map(|s| s.count).sum(),
        created_ms: oldest_ms(request),
    };
    let mut attempt = 0u32;
    while queue
        .hand_over(std::slice::from_ref(&queued))
        .await
        .is_err()
    {
        // Logged by the fleet handle when Redis becomes unreachable.
        attempt += 1;
        settings.wait_before_retry(attempt).await;
    }
    let rows = rows(request, &read);
    on_store(&request.store, counters, "delete handed over", move |s| {
        s.delete_segments(&rows)
    })
    .await;
    SendEnd::Handed
}

async fn dead_letter(
    request: &Request,
    read: &ReadBack,
    counters: &Counters,
    status: u16,
    reason: String,
) -> SendEnd {
    if request.store.is_none() {
        tracing::error!("no event store: the refused events are not kept");
    }
    let rows = rows(request, read);
    let now = crate::clock::precise_ms();
    on_store(&request.store, counters, "dead letter", move |s| {
        s.dead_letter(&rows, now, status, &reason)
    })
    .await;
    SendEnd::DeadLettered
}

fn truncate(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}
