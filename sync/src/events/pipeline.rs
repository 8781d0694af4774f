//! The event pipeline's owner task: records in, segments stored, requests out.
//!
//! - Records from the hand-off (and its spill) are rendered into the open segment of their
//!   batch context ([`Renderer`]).
//! - Every commit interval (and when a segment reaches the batch size or bytes) open segments
//!   are sealed and written to the store in one transaction; only then do their events count
//!   as stored. A segment's body stays in memory too while the bodies held stay under the
//!   memory budget; past it the body lives only in the store and is read back to be sent.
//! - Ready segments of one context are merged into requests (up to the batch size and bytes)
//!   once they make a full batch, once the oldest has waited the flush interval, or at once
//!   on flush and close. Up to `concurrency` requests are in flight; each retries with backoff
//!   until logx answers 2xx (segments deleted), 4xx (dead letters) or the age limit passes
//!   (dead letters).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::record::{EventHanded, EventRecord};
use super::render::{BatchContext, Renderer, SegmentSink};
use super::send::{hand_over, send_request, Request, SendEnd, SendSettings};
use super::store::EventStore;
use super::{Counters, EventSettings, OnSent, Spill};
use crate::fleet::events::EventQueue;
use crate::handoff::Handoff;

/// Control messages.
pub(crate) enum Control {
    /// Send everything accepted so far; answer when each event is delivered or set aside.
    Flush(oneshot::Sender<()>),
    /// Stop accepting, store everything, send until done or the shutdown timeout; answer with
    /// the events left in the store.
    Close(oneshot::Sender<u64>),
}

/// A segment being filled.
struct Open {
    context: Arc<BatchContext>,
    body: Vec<u8>,
    count: u32,
    first_ms: u64,
}

/// A sealed segment on its way to the store (the body shared with the ready queue).
struct Sealed {
    context: Arc<BatchContext>,
    body: Arc<Vec<u8>>,
    count: u32,
    first_ms: u64,
}

/// Where a sealed segment went.
#[derive(Clone, Copy, Debug)]
enum Stored {
    /// In the store, this row.
    Row(i64),
    /// Past the store's size cap: dropped.
    Full,
    /// The store failed: held in memory only.
    Failed,
    /// There is no store.
    NoStore,
}

/// What a request in flight holds, for the counters.
#[derive(Default)]
pub(crate) struct Flight {
    seqs: Vec<u64>,
    events: u64,
    stored_events: u64,
    stored_bytes: u64,
    /// The segment bodies, back from the request (to be reused for new segments).
    bodies: Vec<Arc<Vec<u8>>>,
}

/// Segment buffers kept for reuse beyond those in use: a full segment grows to the batch
/// bytes, and a fresh buffer that size costs page faults and growth copies every time.
const SPARE_BUFFERS: usize = 8;

/// A sealed segment.
pub(crate) struct Segment {
    /// Order of sealing (flush waits by it).
    pub(crate) seq: u64,
    /// Its row in the store, if stored.
    pub(crate) row: Option<i64>,
    pub(crate) context: Arc<BatchContext>,
    pub(crate) count: u32,
    pub(crate) created_ms: u64,
    pub(crate) bytes: usize,
    /// `None` when it lives only in the store.
    pub(crate) body: Option<Arc<Vec<u8>>>,
    sealed_at: Instant,
}

pub(crate) struct Pipeline {
    pub(crate) records: mpsc::Receiver<Vec<EventRecord>>,
    pub(crate) handoff: Arc<Handoff<EventHanded>>,
    pub(crate) spill: Arc<Spill>,
    pub(crate) control: mpsc::Receiver<Control>,
    pub(crate) settings: EventSettings,
    pub(crate) send: Arc<SendSettings>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) on_sent: Arc<OnSent>,
    /// Taken out while it renders into `self`.
    renderer: Option<Renderer>,
    pub(crate) store: Option<Arc<Mutex<EventStore>>>,
    /// Context ids (the store's, or counted here without a store).
    context_ids: HashMap<Arc<BatchContext>, i64>,
    open: Vec<Open>,
    sealed: Vec<Open>,
    ready: VecDeque<Segment>,
    in_flight: JoinSet<(Flight, SendEnd)>,
    in_flight_seqs: BTreeSet<u64>,
    /// Bytes of segment bodies held in memory.
    memory_bytes: usize,
    /// Bytes of segment bodies in the store.
    store_bytes: u64,
    /// The last segment sealed.
    next_seq: u64,
    flushes: Vec<(u64, oneshot::Sender<()>)>,
    /// Segments up to this seq are sent without waiting for a full batch.
    force_until: u64,
    /// The store cap has dropped events since it last had room (logged once per streak).
    dropping: bool,
    /// Emptied segment buffers, reused by new segments (at most [`SPARE_BUFFERS`]).
    spare: Vec<Vec<u8>>,
    /// With a fleet (`store:` Redis): requests are handed over to the shared queue instead of
    /// posted, and the fleet's senders (stopped at close) post what any replica handed over.
    fleet: Option<FleetPart>,
}

/// The pipeline's part of the fleet's event queue.
pub(crate) struct FleetPart {
    pub(crate) queue: EventQueue,
    pub(crate) stop: watch::Sender<Option<Instant>>,
    pub(crate) senders: tokio::task::JoinHandle<()>,
    /// Wakes the senders when a request was handed over (else they look every 100 ms).
    pub(crate) handed: Arc<tokio::sync::Notify>,
}

impl Pipeline {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        records: mpsc::Receiver<Vec<EventRecord>>,
        handoff: Arc<Handoff<EventHanded>>,
        spill: Arc<Spill>,
        control: mpsc::Receiver<Control>,
        settings: EventSettings,
        send: Arc<SendSettings>,
        counters: Arc<Counters>,
        on_sent: Arc<OnSent>,
        renderer: Renderer,
        store: Option<Arc<Mutex<EventStore>>>,
    ) -> Self {
        Pipeline {
            records,
            handoff,
            spill,
            control,
            settings,
            send,
            counters,
            on_sent,
            renderer: Some(renderer),
            store,
            context_ids: HashMap::new(),
            open: Vec::new(),
            sealed: Vec::new(),
            ready: VecDeque::new(),
            in_flight: JoinSet::new(),
            in_flight_seqs: BTreeSet::new(),
            memory_bytes: 0,
            store_bytes: 0,
            next_seq: 0,
            flushes: Vec::new(),
            force_until: 0,
            dropping: false,
            spare: Vec::new(),
            fleet: None,
        }
    }

    /// Hands requests over to the fleet's queue instead of posting them.
    pub(crate) fn set_fleet(&mut self, fleet: FleetPart) {
        self.fleet = Some(fleet);
    }

    /// Queues what a previous run left in the store.
    pub(crate) fn restore(&mut self) -> Result<u64, super::EventStoreError> {
        let Some(store) = &self.store else {
            return Ok(0);
        };
        let store = store.lock().unwrap_or_else(|e| e.into_inner());
        let contexts: HashMap<i64, Arc<BatchContext>> = store
            .contexts()?
            .into_iter()
            .map(|c| {
                (
                    c.id,
                    Arc::new(BatchContext {
                        endpoint: c.endpoint,
                        envelope: c.envelope,
                    }),
                )
            })
            .collect();
        let mut events = 0u64;
        let now = Instant::now();
        for s in store.segments()? {
            let Some(context) = contexts.get(&s.context) else {
                continue;
            };
            events += u64::from(s.count);
            self.store_bytes += s.bytes as u64;
            self.next_seq += 1;
            self.ready.push_back(Segment {
                seq: self.next_seq,
                row: Some(s.id),
                context: Arc::clone(context),
                count: s.count,
                created_ms: s.created_ms,
                bytes: s.bytes,
                body: None,
                sealed_at: now,
            });
        }
        for (id, context) in contexts {
            self.context_ids.insert(context, id);
        }
        self.counters.add_stored(events as i64);
        Ok(events)
    }

    pub(crate) async fn run(mut self) {
        let mut commit = tokio::time::interval(self.settings.commit_interval);
        commit.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        commit.tick().await;
        loop {
            self.dispatch();
            tokio::select! {
                biased;
                control = self.control.recv() => match control {
                    Some(Control::Flush(reply)) => {
                        self.take_everything();
                        self.commit().await;
                        self.flushes.push((self.next_seq, reply));
                        self.force_until = self.force_until.max(self.next_seq);
                        self.answer_flushes();
                    }
                    Some(Control::Close(reply)) => {
                        let left = self.close().await;
                        let _ = reply.send(left);
                        return;
                    }
                    None => {
                        self.close().await;
                        return;
                    }
                },
                Some(done) = self.in_flight.join_next(), if !self.in_flight.is_empty() => {
                    self.finished(done);
                }
                batch = self.records.recv() => match batch {
                    Some(batch) => self.render_all(batch),
                    None => {
                        self.close().await;
                        return;
                    }
                },
                _ = commit.tick() => {
                    self.render_all(self.spill.take());
                    self.commit().await;
                }
            }
            if self.sealed.iter().map(|s| s.body.len()).sum::<usize>() >= self.settings.batch_bytes
            {
                self.commit().await;
            }
        }
    }

    fn render_all(&mut self, records: Vec<EventRecord>) {
        if records.is_empty() {
            return;
        }
        let Some(mut renderer) = self.renderer.take() else {
            return;
        };
        for record in records {
            let n = renderer.render(record, self);
            self.counters.add_queued(u64::from(n));
        }
        self.renderer = Some(renderer);
    }

    /// Everything in the rings, the collector's channel and the spill.
    fn take_everything(&mut self) {
        let taken = self.handoff.take_all(&mut self.records);
        self.render_all(taken);
        self.render_all(self.spill.take());
    }

    fn now_ms() -> u64 {
        crate::clock::precise_ms()
    }

    /// Seals the open segments and stores every sealed one in one transaction.
    async fn commit(&mut self) {
        self.sealed.append(&mut self.open);
        if self.sealed.is_empty() {
            return;
        }
        let sealed: Vec<Sealed> = std::mem::take(&mut self.sealed)
            .into_iter()
            .map(|o| Sealed {
                context: o.context,
                body: Arc::new(o.body),
                count: o.count,
                first_ms: o.first_ms,
            })
            .collect();
        let outcomes = match &self.store {
            None => vec![Stored::NoStore; sealed.len()],
            Some(store) => self.store_segments(Arc::clone(store), &sealed).await,
        };
        let now = Instant::now();
        for (segment, outcome) in sealed.into_iter().zip(outcomes) {
            let bytes = segment.body.len();
            let row = match outcome {
                Stored::Row(row) => Some(row),
                Stored::Full => {
                    self.drop_events(segment.count, "event store full (max_store_bytes)");
                    continue;
                }
                Stored::NoStore if self.memory_bytes + bytes > self.settings.max_memory_bytes => {
                    self.drop_events(segment.count, "event memory budget full (no store)");
                    continue;
                }
                Stored::NoStore | Stored::Failed => None,
            };
            if self.dropping {
                self.dropping = false;
                tracing::info!("the event pipeline has room again");
            }
            if row.is_some() {
                self.store_bytes += bytes as u64;
                self.counters.add_stored(i64::from(segment.count));
            }
            let body =
                if row.is_none() || self.memory_bytes + bytes <= self.settings.max_memory_bytes {
                    self.memory_bytes += bytes;
                    Some(segment.body)
                } else {
                    None
                };
            self.next_seq += 1;
            self.ready.push_back(Segment {
                seq: self.next_seq,
                row,
                context: segment.context,
                count: segment.count,
                created_ms: segment.first_ms,
                bytes,
                body,
                sealed_at: now,
            });
        }
    }

    /// Writes sealed segments to the store in one transaction (those that fit under the cap).
    async fn store_segments(
        &mut self,
        store: Arc<Mutex<EventStore>>,
        sealed: &[Sealed],
    ) -> Vec<Stored> {
        let mut room = self
            .settings
            .max_store_bytes
            .saturating_sub(self.store_bytes);
        let fits: Vec<bool> = sealed
            .iter()
            .map(|s| {
                let bytes = s.body.len() as u64;
                let fits = bytes <= room;
                if fits {
                    room -= bytes;
                }
                fits
            })
            .collect();
        let known = self.context_ids.clone();
        let rows: Vec<Sealed> = sealed
            .iter()
            .zip(&fits)
            .filter(|(_, fits)| **fits)
            .map(|(s, _)| Sealed {
                context: Arc::clone(&s.context),
                body: Arc::clone(&s.body),
                count: s.count,
                first_ms: s.first_ms,
            })
            .collect();
        let written = tokio::task::spawn_blocking(move || {
            let mut store = store.lock().unwrap_or_else(|e| e.into_inner());
            let mut ids = known;
            let mut segments = Vec::with_capacity(rows.len());
            for row in &rows {
                let id = match ids.get(&row.context) {
                    Some(id) => *id,
                    None => {
                        let id = store.context_id(&row.context.endpoint, &row.context.envelope)?;
                        ids.insert(Arc::clone(&row.context), id);
                        id
                    }
                };
                segments.push((id, row.count, row.first_ms, row.body.as_slice()));
            }
            let rowids = store.insert_segments(&segments)?;
            Ok::<_, super::EventStoreError>((ids, rowids))
        })
        .await;
        let error = match written {
            Ok(Ok((contexts, rowids))) => {
                self.context_ids = contexts;
                let mut rowids = rowids.into_iter();
                return fits
                    .iter()
                    .map(
                        |fits| match (fits, if *fits { rowids.next() } else { None }) {
                            (true, Some(row)) => Stored::Row(row),
                            (true, None) => Stored::Failed,
                            (false, _) => Stored::Full,
                        },
                    )
                    .collect();
            }
            Ok(Err(error)) => error.to_string(),
            Err(join) => join.to_string(),
        };
        // Not stored: held in memory only and sent as usual (lost on a crash).
        self.counters.add_store_error();
        tracing::error!(%error, "event store write failed; these events are held in memory only");
        vec![Stored::Failed; sealed.len()]
    }

    fn drop_events(&mut self, count: u32, why: &str) {
        self.counters.add_dropped(u64::from(count));
        if !self.dropping {
            self.dropping = true;
            tracing::error!(
                reason = why,
                "dropping events until there is room again (counted in `dropped`)"
            );
        }
    }

    /// Starts requests while slots are free and a request is due.
    fn dispatch(&mut self) {
        while self.in_flight.len() < self.settings.concurrency {
            let Some(first) = self.ready.front() else {
                return;
            };
            let context = Arc::clone(&first.context);
            let forced = first.seq <= self.force_until;
            let waited = first.sealed_at.elapsed() >= self.settings.flush_interval;
            // Which ready segments of this context fit in one request.
            let mut picked = Vec::new();
            let (mut count, mut bytes) = (0usize, 0usize);
            for (i, segment) in self.ready.iter().enumerate() {
                if !Arc::ptr_eq(&segment.context, &context) {
                    continue;
                }
                if !picked.is_empty()
                    && (count + segment.count as usize > self.settings.batch_size
                        || bytes + segment.bytes + 1 > self.settings.batch_bytes)
                {
                    break;
                }
                picked.push(i);
                count += segment.count as usize;
                bytes += segment.bytes + 1;
            }
            let full = count >= self.settings.batch_size || bytes >= self.settings.batch_bytes;
            if !(full || forced || waited) {
                return;
            }
            let mut segments = Vec::with_capacity(picked.len());
            for i in picked.into_iter().rev() {
                if let Some(segment) = self.ready.remove(i) {
                    segments.push(segment);
                }
            }
            segments.reverse();
            let mut flight = Flight::default();
            for segment in &segments {
                if segment.body.is_some() {
                    self.memory_bytes -= segment.bytes;
                }
                flight.seqs.push(segment.seq);
                flight.events += u64::from(segment.count);
                if segment.row.is_some() {
                    flight.stored_events += u64::from(segment.count);
                    flight.stored_bytes += segment.bytes as u64;
                }
            }
            self.in_flight_seqs.extend(flight.seqs.iter().copied());
            self.counters.add_in_flight(flight.events as i64);
            let request = Request {
                context,
                segments,
                store: self.store.clone(),
            };
            let send = Arc::clone(&self.send);
            let on_sent = Arc::clone(&self.on_sent);
            let counters = Arc::clone(&self.counters);
            let queue = self.fleet.as_ref().map(|f| f.queue.clone());
            self.in_flight.spawn(async move {
                let end = match &queue {
                    Some(queue) => hand_over(&request, queue, &send, &counters).await,
                    None => send_request(&request, &send, &counters, &on_sent).await,
                };
                let mut flight = flight;
                flight.bodies = request
                    .segments
                    .into_iter()
                    .filter_map(|s| s.body)
                    .collect();
                (flight, end)
            });
        }
    }

    fn finished(&mut self, done: Result<(Flight, SendEnd), tokio::task::JoinError>) {
        let Ok((mut flight, end)) = done else {
            // A panicked send: its segments stay in the store for the next start.
            return;
        };
        for body in flight.bodies.drain(..) {
            if self.spare.len() >= SPARE_BUFFERS {
                break;
            }
            if let Ok(mut buffer) = Arc::try_unwrap(body) {
                buffer.clear();
                self.spare.push(buffer);
            }
        }
        for seq in &flight.seqs {
            self.in_flight_seqs.remove(seq);
        }
        self.counters.add_in_flight(-(flight.events as i64));
        self.counters.add_stored(-(flight.stored_events as i64));
        self.store_bytes = self.store_bytes.saturating_sub(flight.stored_bytes);
        match end {
            SendEnd::Delivered => self.counters.add_sent(flight.events),
            SendEnd::DeadLettered => self.counters.add_dead_lettered(flight.events),
            SendEnd::Handed => {
                self.counters.add_handed(flight.events);
                if let Some(fleet) = &self.fleet {
                    fleet.handed.notify_one();
                }
            }
            // Counted as store errors where the reads failed.
            SendEnd::Unread => {}
        }
        self.answer_flushes();
    }

    fn answer_flushes(&mut self) {
        if self.flushes.is_empty() {
            return;
        }
        let oldest_waiting = self
            .ready
            .iter()
            .map(|s| s.seq)
            .chain(self.in_flight_seqs.first().copied())
            .min()
            .unwrap_or(u64::MAX);
        let mut still = Vec::new();
        for (target, reply) in self.flushes.drain(..) {
            if oldest_waiting > target {
                let _ = reply.send(());
            } else {
                still.push((target, reply));
            }
        }
        self.flushes = still;
    }

    /// Closes the hand-off, stores everything and sends until done or the shutdown timeout;
    /// returns the events left in the store.
    async fn close(&mut self) -> u64 {
        self.handoff.close();
        self.records.close();
        self.take_everything();
        self.commit().await;
        self.force_until = u64::MAX;
        let deadline = Instant::now() + self.settings.shutdown_timeout;
        loop {
            self.dispatch();
            if self.in_flight.is_empty() {
                break;
            }
            tokio::select! {
                done = self.in_flight.join_next() => match done {
                    Some(done) => self.finished(done),
                    None => break,
                },
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        self.in_flight.abort_all();
        while self.in_flight.join_next().await.is_some() {}
        if let Some(fleet) = self.fleet.take() {
            let _ = fleet.stop.send(Some(deadline));
            let _ = fleet.senders.await;
        }
        let left: u64 = self.ready.iter().map(|s| u64::from(s.count)).sum::<u64>()
            + self.counters.in_flight_now();
        if left > 0 {
            if self.store.is_some() {
                tracing::warn!(
                    events = left,
                    "event pipeline closed with events not yet delivered; they stay in the store and are sent at the next start"
                );
            } else {
                self.counters.add_dropped(left);
                tracing::error!(
                    events = left,
                    "event pipeline closed with events not yet delivered and no store: they are lost"
                );
            }
        }
        for (_, reply) in self.flushes.drain(..) {
            let _ = reply.send(());
        }
        left
    }
}

impl SegmentSink for Pipeline {
    fn body_for(&mut self, context: &Arc<BatchContext>, extra: usize) -> &mut Vec<u8> {
        let position = self
            .open
            .iter()
            .position(|o| Arc::ptr_eq(&o.context, context));
        let index = match position {
            Some(i)
                if (self.open[i].count as usize) < self.settings.batch_size
                    && self.open[i].body.len() + extra <= self.settings.batch_bytes =>
            {
                i
            }
            Some(i) => {
                let full = self.open.swap_remove(i);
                self.sealed.push(full);
                self.open_new(context)
            }
            None => self.open_new(context),
        };
        &mut self.open[index].body
    }

    fn appended(&mut self, context: &Arc<BatchContext>, count: u32) {
        if let Some(open) = self
            .open
            .iter_mut()
            .find(|o| Arc::ptr_eq(&o.context, context))
        {
            open.count += count;
        }
    }
}

impl Pipeline {
    fn open_new(&mut self, context: &Arc<BatchContext>) -> usize {
        let body = self
            .spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.settings.batch_bytes.min(64 * 1024)));
        self.open.push(Open {
            context: Arc::clone(context),
            body,
            count: 0,
            first_ms: Self::now_ms(),
        });
        self.open.len() - 1
    }
}
