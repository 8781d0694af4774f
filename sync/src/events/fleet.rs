//! The fleet's senders (`store:` Redis): claim requests any replica handed over to the shared
//! queue (`crate::fleet::events`), post them with the one retry policy (`send::post`), then
//! acknowledge them. Refused and expired requests become dead letters in this replica's store.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{sleep_until, Instant};

use super::render::BatchContext;
use super::send::{post, Posted, SendSettings};
use super::store::EventStore;
use super::{Counters, OnSent};
use crate::fleet::events::{ClaimedRequest, EventQueue};

/// How often an idle sender looks for requests other replicas handed over.
const IDLE_POLL: Duration = Duration::from_millis(100);
/// How long a sender waits after Redis failed to answer.
const UNREACHABLE_POLL: Duration = Duration::from_secs(1);

/// The senders of one pipeline.
pub(crate) struct FleetSenders {
    pub(crate) queue: EventQueue,
    pub(crate) send: Arc<SendSettings>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) on_sent: Arc<OnSent>,
    pub(crate) store: Option<Arc<Mutex<EventStore>>>,
    pub(crate) concurrency: usize,
    pub(crate) lease: Duration,
    /// `Some(deadline)`: stop claiming, finish what is in flight until the deadline.
    pub(crate) stop: watch::Receiver<Option<Instant>>,
    /// Notified when this pipeline handed a request over: look at once.
    pub(crate) handed: Arc<tokio::sync::Notify>,
}

/// A claimed request's end.
struct Done {
    claimed: ClaimedRequest,
    body: Bytes,
    posted: Posted,
}

impl FleetSenders {
    pub(crate) async fn run(mut self) {
        let mut in_flight: JoinSet<Done> = JoinSet::new();
        let mut ids: HashSet<String> = HashSet::new();
        let mut next_claim = Instant::now();
        let mut renew = tokio::time::interval((self.lease / 3).max(Duration::from_millis(100)));
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let deadline = loop {
            tokio::select! {
                biased;
                changed = self.stop.changed() => {
                    let stop = *self.stop.borrow();
                    match (changed, stop) {
                        (Ok(()), None) => continue,
                        (Ok(()), Some(deadline)) => break deadline,
                        (Err(_), _) => break Instant::now(),
                    }
                }
                Some(done) = in_flight.join_next(), if !in_flight.is_empty() => {
                    if let Ok(done) = done {
                        ids.remove(&done.claimed.id);
                        self.finished(done).await;
                    }
                }
                _ = renew.tick(), if !ids.is_empty() => {
                    let held: Vec<String> = ids.iter().cloned().collect();
                    let _ = self.queue.renew(&held).await;
                }
                _ = self.handed.notified() => next_claim = next_claim.min(Instant::now()),
                _ = sleep_until(next_claim), if in_flight.len() < self.concurrency => {
                    next_claim = match self.queue.claim(self.concurrency - in_flight.len()).await {
                        Ok(claimed) if claimed.is_empty() => Instant::now() + IDLE_POLL,
                        Ok(claimed) => {
                            for c in claimed {
                                ids.insert(c.id.clone());
                                self.start(&mut in_flight, c);
                            }
                            Instant::now()
                        }
                        Err(_) => Instant::now() + UNREACHABLE_POLL,
                    };
                }
            }
        };
        // Closing: finish what is in flight until the deadline (renewing the claims); the
        // rest stays claimed and is taken over by another replica after the lease.
        while !in_flight.is_empty() {
            tokio::select! {
                Some(done) = in_flight.join_next() => {
                    if let Ok(done) = done {
                        ids.remove(&done.claimed.id);
                        self.finished(done).await;
                    }
                }
                _ = renew.tick() => {
                    let held: Vec<String> = ids.iter().cloned().collect();
                    let _ = self.queue.renew(&held).await;
                }
                _ = sleep_until(deadline) => break,
            }
        }
        let left: u64 = in_flight.len() as u64;
        in_flight.abort_all();
        if left > 0 {
            tracing::warn!(
                requests = left,
                "closed with event requests of the fleet's queue in flight; another replica takes them over after the lease"
            );
        }
    }

    fn start(&self, in_flight: &mut JoinSet<Done>, claimed: ClaimedRequest) {
        let send = Arc::clone(&self.send);
        let counters = Arc::clone(&self.counters);
        counters.add_in_flight(i64::from(claimed.request.count));
        in_flight.spawn(async move {
            let r = &claimed.request;
            let context = BatchContext {
                endpoint: r.endpoint.clone(),
                envelope: r.envelope.clone(),
            };
            let body = Bytes::from(context.request_body(std::iter::once(r.visitors.as_slice())));
            let posted = post(&send, &counters, &r.endpoint, &body, r.created_ms, r.count).await;
            Done {
                claimed,
                body,
                posted,
            }
        });
    }

    async fn finished(&self, done: Done) {
        let r = &done.claimed.request;
        self.counters.add_in_flight(-i64::from(r.count));
        match done.posted {
            Posted::Delivered => {
                (self.on_sent)(&r.endpoint, &done.body);
                self.counters.add_sent(u64::from(r.count));
            }
            Posted::SetAside { status, reason } => {
                self.dead_letter(&done.claimed, status, reason).await;
                self.counters.add_dead_lettered(u64::from(r.count));
            }
        }
        if self
            .queue
            .acknowledge(std::slice::from_ref(&done.claimed.id))
            .await
            .is_err()
        {
            tracing::warn!(
                events = r.count,
                "event request done but not acknowledged in Redis; it will be sent again (same uuids)"
            );
        }
    }

    /// Keeps a refused request in this replica's dead letters (`flagbridge events
    /// dead-letters`).
    async fn dead_letter(&self, claimed: &ClaimedRequest, status: u16, reason: String) {
        let Some(store) = &self.store else {
            tracing::error!("no event store: the refused events are not kept");
            return;
        };
        let store = Arc::clone(store);
        let r = claimed.request.clone();
        let now = crate::clock::precise_ms();
        let done = tokio::task::spawn_blocking(move || {
            let mut store = store.lock().unwrap_or_else(|e| e.into_inner());
            let context = store.context_id(&r.endpoint, &r.envelope)?;
            let rows = store.insert_segments(&[(context, r.count, r.created_ms, &r.visitors)])?;
            store.dead_letter(&rows, now, status, &reason)
        })
        .await;
        let error = match done {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        self.counters.add_store_error();
        tracing::error!(%error, "cannot keep a refused event request as a dead letter");
    }
}
