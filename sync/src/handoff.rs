//! Hand-off from the decide path to an owner loop: one ring per producing thread.
//!
//! Handing each record to another core through one shared queue costs about as much as a small
//! decide (atomic read-modify-writes, a lock, cache lines moving between cores). Here every
//! thread that pushes gets its own single-producer ring (`rtrb`), found through a per-object
//! thread-local (`thread_local`): a push is a few plain stores and one release store, with no
//! lock and no atomic read-modify-write. A collector task moves the rings' records into the
//! owner's bounded channel in batches. It runs every [`BUSY_COLLECT_INTERVAL`] while records
//! keep coming and every [`COLLECT_INTERVAL`] when they do not. Waking it from the decide path
//! would cost the pushing thread a futex call (and, in a virtual machine, an interrupt to the
//! other core), so a thread wakes it only when its ring is more than half full (looked at every
//! quarter ring of pushes) or refuses a record: at most once per half ring, and only when a
//! thread pushes faster than the collector's interval drains. On flush and close the owner
//! takes what is left itself ([`Handoff::take_all`]).
//!
//! Memory on both sides: the producer keeps a small state per thread ([`Handed::Sent`]: what it
//! already told the owner, say the config and user of its last record) and the owner one per
//! ring ([`Handed::Received`]: the same facts, received), so a record can say "same as before"
//! instead of carrying shared pointers. [`Handed::resolve`] turns a record and its ring's state
//! into the owner's item. When a push is refused the producer's state is reset, so the next
//! record carries everything again.
//!
//! Order: one thread's records reach the owner in push order (the collector's batches, then
//! what the owner takes itself). Records of different threads have no order between them; an
//! owner that needs one stamps its records.
//!
//! Bounds: a ring holds `ring_capacity` records and the channel `channel_batches` batches of at
//! most `min(ring_capacity, COLLECT_BATCH)` items. A full channel leaves records in the rings; a full ring refuses
//! the record (counted in [`Handoff::refused`]). Rings live as long as the `Handoff`; a thread
//! that ends leaves its ring to the next thread that gets its thread-local slot.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use thread_local::ThreadLocal;
use tokio::sync::{mpsc, Notify};

/// How often the collector looks at the rings when its last look found nothing (a record's
/// longest wait before the owner sees it, when few records arrive).
pub(crate) const COLLECT_INTERVAL: Duration = Duration::from_millis(50);

/// How often the collector looks at the rings while its last look found records. A thread
/// that pushes fewer than half a ring per interval (2 million records/s with the largest
/// ring) never wakes it.
pub(crate) const BUSY_COLLECT_INTERVAL: Duration = Duration::from_millis(1);

/// Most items per batch the collector sends to the owner.
pub(crate) const COLLECT_BATCH: usize = 256;

/// Largest ring per thread (records).
pub(crate) const MAX_RING_CAPACITY: usize = 4_096;

/// What travels through a [`Handoff`], and how the owner reads it.
pub(crate) trait Handed: 'static {
    /// What the decide path pushes.
    type Record: Send + 'static;
    /// What a producing thread remembers of the records it pushed (reset after a refusal).
    type Sent: Default + Send + 'static;
    /// What the owner remembers of one ring's records.
    type Received: Default + Send + 'static;
    /// What the owner gets.
    type Item: Send + 'static;
    /// One record, read with its ring's memory; `None` when it only updated that memory.
    fn resolve(received: &mut Self::Received, record: Self::Record) -> Option<Self::Item>;
}

/// Records that need no memory on either side.
#[cfg(test)]
pub(crate) struct Plain<T>(std::marker::PhantomData<T>);

#[cfg(test)]
impl<T: Send + 'static> Handed for Plain<T> {
    type Record = T;
    type Sent = ();
    type Received = ();
    type Item = T;
    fn resolve(_: &mut (), record: T) -> Option<T> {
        Some(record)
    }
}

/// The outcome of [`Handoff::push`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// In the thread's ring.
    Accepted,
    /// The thread's ring was full (counted in [`Handoff::refused`]).
    Full,
    /// [`Handoff::close`] ran (not counted here).
    Closed,
    /// The entry pushed no record (not counted).
    Empty,
}

/// Pushes the records of one entry into a thread's ring (see [`Handoff::push_each`]).
pub(crate) struct Pusher<'a, T> {
    producer: &'a mut rtrb::Producer<T>,
    full: bool,
    pushed: bool,
}

impl<T> Pusher<'_, T> {
    /// Appends one record; once the ring is full, this and later records are dropped and the
    /// entry is refused.
    #[inline]
    pub(crate) fn push(&mut self, record: T) {
        if self.full || self.producer.push(record).is_err() {
            self.full = true;
        }
        self.pushed = true;
    }
}

/// One producing thread's side.
struct Lane<H: Handed> {
    producer: rtrb::Producer<H::Record>,
    /// Pushes left before this thread next looks at how full its ring is.
    until_check: u64,
    /// Written by this thread only (load + store), read by [`Handoff::accepted`].
    accepted: Arc<AtomicU64>,
    sent: H::Sent,
}

/// The owner's side of one ring.
struct Ring<H: Handed> {
    consumer: rtrb::Consumer<H::Record>,
    accepted: Arc<AtomicU64>,
    received: H::Received,
}

/// Per-thread rings and their owner side. See the module docs.
pub(crate) struct Handoff<H: Handed> {
    lanes: ThreadLocal<RefCell<Lane<H>>>,
    rings: Mutex<Vec<Ring<H>>>,
    ring_capacity: usize,
    /// Items per batch sent to the owner.
    batch: usize,
    /// Batches the owner's channel holds.
    channel_batches: usize,
    /// Pushes between two looks at how full a ring is.
    check_every: u64,
    closed: AtomicBool,
    refused: AtomicU64,
    wake: Notify,
}

impl<H: Handed> Handoff<H> {
    /// A hand-off for `capacity` waiting records: each thread's ring holds
    /// `min(capacity, MAX_RING_CAPACITY)` of them (at least 1), and the owner's channel about
    /// `capacity` more (see [`spawn_collector`](Self::spawn_collector)).
    pub(crate) fn new(capacity: usize) -> Self {
        let ring_capacity = capacity.clamp(1, MAX_RING_CAPACITY);
        let batch = ring_capacity.min(COLLECT_BATCH);
        Handoff {
            lanes: ThreadLocal::new(),
            rings: Mutex::new(Vec::new()),
            ring_capacity,
            batch,
            channel_batches: (capacity / batch).max(1),
            check_every: (ring_capacity / 4).max(1) as u64,
            closed: AtomicBool::new(false),
            refused: AtomicU64::new(0),
            wake: Notify::new(),
        }
    }

    fn rings(&self) -> MutexGuard<'_, Vec<Ring<H>>> {
        self.rings.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn new_lane(&self) -> RefCell<Lane<H>> {
        let (producer, consumer) = rtrb::RingBuffer::new(self.ring_capacity);
        let accepted = Arc::new(AtomicU64::new(0));
        self.rings().push(Ring {
            consumer,
            accepted: Arc::clone(&accepted),
            received: H::Received::default(),
        });
        RefCell::new(Lane {
            producer,
            until_check: self.check_every,
            accepted,
            sent: H::Sent::default(),
        })
    }

    /// Pushes the record `make` builds from this thread's memory of what it sent. Never
    /// blocks; `make` is not called when the ring is full or the hand-off closed.
    #[inline]
    pub(crate) fn push(&self, make: impl FnOnce(&mut H::Sent) -> H::Record) -> Pushed {
        self.push_each(|sent, pusher| pusher.push(make(sent)))
    }

    /// Like [`push`](Self::push) for one entry made of several records: `make` pushes them
    /// through the [`Pusher`], memory updates first (see [`Handed::resolve`]), the entry's own
    /// record last. The entry counts once in [`accepted`](Self::accepted); one that pushes
    /// nothing is [`Pushed::Empty`] and not counted (`make` may leave the memory as it was
    /// then, not halfway). When the ring fills
    /// on the way the entry is refused; the records already pushed only update the owner's
    /// memory, and this thread's memory is reset so the next entry carries everything again.
    #[inline]
    pub(crate) fn push_each(
        &self,
        make: impl FnOnce(&mut H::Sent, &mut Pusher<'_, H::Record>),
    ) -> Pushed {
        if self.closed.load(Ordering::Relaxed) {
            return Pushed::Closed;
        }
        let cell = self.lanes.get_or(|| self.new_lane());
        // Only a push from inside `make` on the same thread could find it borrowed.
        let Ok(mut lane) = cell.try_borrow_mut() else {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Pushed::Full;
        };
        let lane = &mut *lane;
        let mut pusher = Pusher {
            producer: &mut lane.producer,
            full: false,
            pushed: false,
        };
        let refused = pusher.producer.is_full() || {
            make(&mut lane.sent, &mut pusher);
            if !pusher.pushed {
                return Pushed::Empty;
            }
            pusher.full
        };
        if refused {
            lane.sent = H::Sent::default();
            self.refused.fetch_add(1, Ordering::Relaxed);
            self.wake.notify_one();
            return Pushed::Full;
        }
        let accepted = lane.accepted.load(Ordering::Relaxed) + 1;
        lane.accepted.store(accepted, Ordering::Relaxed);
        lane.until_check -= 1;
        if lane.until_check == 0 {
            lane.until_check = self.check_every;
            // Reads the owner's position: one cache line from its core, once per quarter ring.
            if lane.producer.slots() < self.ring_capacity / 2 {
                self.wake.notify_one();
            }
        }
        Pushed::Accepted
    }

    /// Entries accepted so far, all threads.
    pub(crate) fn accepted(&self) -> u64 {
        self.rings()
            .iter()
            .map(|r| r.accepted.load(Ordering::Relaxed))
            .sum()
    }

    /// Records refused because a ring was full.
    pub(crate) fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Refuses later pushes ([`Pushed::Closed`]). A push already past its check still lands in
    /// its ring; take the rings after this to get it (it may race with the take).
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }

    /// Whether [`close`](Self::close) ran.
    #[cfg(test)]
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// Moves up to `max` items out of the rings (ring by ring, each in push order).
    fn drain(rings: &mut [Ring<H>], max: usize, out: &mut Vec<H::Item>) {
        for ring in rings.iter_mut() {
            while out.len() < max {
                let Ok(record) = ring.consumer.pop() else {
                    break;
                };
                if let Some(item) = H::resolve(&mut ring.received, record) {
                    out.push(item);
                }
            }
        }
    }

    /// Starts the collector on the current tokio runtime; returns the owner's end of a channel
    /// of `capacity / batch` batches (at least one; `capacity` as given to [`new`](Self::new),
    /// `batch` the most items per batch). The collector ends when that end is dropped.
    pub(crate) fn spawn_collector(self: &Arc<Self>) -> mpsc::Receiver<Vec<H::Item>> {
        let (tx, rx) = mpsc::channel(self.channel_batches);
        let handoff = Arc::clone(self);
        tokio::spawn(async move {
            let mut interval = COLLECT_INTERVAL;
            loop {
                tokio::select! {
                    _ = tx.closed() => return,
                    _ = handoff.wake.notified() => {}
                    _ = tokio::time::sleep(interval) => {}
                }
                interval = if handoff.collect_once(&tx) {
                    BUSY_COLLECT_INTERVAL
                } else {
                    COLLECT_INTERVAL
                };
            }
        });
        rx
    }

    /// Fills the channel from the rings while both have something; true when it sent a
    /// batch or the channel was full (records are coming). Holds the rings' lock while
    /// sending, so [`take_all`](Self::take_all) never misses a batch in flight.
    fn collect_once(&self, tx: &mpsc::Sender<Vec<H::Item>>) -> bool {
        let mut rings = self.rings();
        let mut busy = false;
        loop {
            let Ok(permit) = tx.try_reserve() else {
                return true;
            };
            let mut batch = Vec::new();
            Self::drain(&mut rings, self.batch, &mut batch);
            if batch.is_empty() {
                return busy;
            }
            permit.send(batch);
            busy = true;
        }
    }

    /// Everything pushed before this call and not yet received by the owner: the channel's
    /// batches, then what is left in the rings (so each thread's items stay in push order).
    pub(crate) fn take_all(&self, rx: &mut mpsc::Receiver<Vec<H::Item>>) -> Vec<H::Item> {
        let mut rings = self.rings();
        let mut out = Vec::new();
        while let Ok(mut batch) = rx.try_recv() {
            out.append(&mut batch);
        }
        Self::drain(&mut rings, usize::MAX, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records that carry a "tag" only when it changed, like a config or user marker.
    struct Tagged;

    impl Handed for Tagged {
        type Record = (Option<u32>, u32);
        type Sent = Option<u32>;
        type Received = Option<u32>;
        type Item = (u32, u32);
        fn resolve(
            received: &mut Option<u32>,
            (tag, value): (Option<u32>, u32),
        ) -> Option<(u32, u32)> {
            if let Some(tag) = tag {
                *received = Some(tag);
            }
            received.map(|tag| (tag, value))
        }
    }

    fn push_tagged(handoff: &Handoff<Tagged>, tag: u32, value: u32) -> Pushed {
        handoff.push(|sent| {
            let marker = (*sent != Some(tag)).then_some(tag);
            *sent = Some(tag);
            (marker, value)
        })
    }

    #[tokio::test]
    async fn every_thread_s_records_arrive_in_order() {
        let handoff = Arc::new(Handoff::<Plain<(u32, u32)>>::new(4096));
        let mut rx = handoff.spawn_collector();
        let threads: Vec<_> = (0..4u32)
            .map(|t| {
                let handoff = Arc::clone(&handoff);
                std::thread::spawn(move || {
                    for i in 0..3000 {
                        while handoff.push(|_| (t, i)) != Pushed::Accepted {
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        let mut got = Vec::new();
        while got.len() < 12_000 {
            tokio::select! {
                batch = rx.recv() => got.extend(batch.unwrap_or_default()),
                _ = tokio::time::sleep(Duration::from_millis(5)) => {
                    if threads.iter().all(|t| t.is_finished()) {
                        got.extend(handoff.take_all(&mut rx));
                    }
                }
            }
        }
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(got.len(), 12_000);
        for t in 0..4 {
            let mine: Vec<u32> = got.iter().filter(|r| r.0 == t).map(|r| r.1).collect();
            assert_eq!(mine, (0..3000).collect::<Vec<_>>(), "thread {t}");
        }
        assert_eq!(handoff.accepted(), 12_000);
    }

    #[tokio::test(start_paused = true)]
    async fn a_thread_wakes_the_collector_only_past_half_its_ring() {
        let handoff = Arc::new(Handoff::<Plain<u32>>::new(64));
        let mut rx = handoff.spawn_collector();
        let soon = Duration::from_millis(5);
        assert!(soon < COLLECT_INTERVAL);
        // A quarter ring is looked at, not handed over before the interval.
        for i in 0..16 {
            handoff.push(|_| i);
        }
        assert!(tokio::time::timeout(soon, rx.recv()).await.is_err());
        // Past half the ring (at the look after 48 pushes) the collector is woken at once.
        for i in 16..48 {
            handoff.push(|_| i);
        }
        let batch = tokio::time::timeout(soon, rx.recv()).await;
        assert_eq!(batch.ok().flatten(), Some((0..48).collect::<Vec<_>>()));
        // The interval hands over the rest.
        handoff.push(|_| 48);
        let batch = tokio::time::timeout(COLLECT_INTERVAL * 2, rx.recv()).await;
        assert_eq!(batch.ok().flatten(), Some(vec![48]));
    }

    #[tokio::test]
    async fn a_full_ring_refuses_and_the_next_record_carries_everything() {
        let handoff = Handoff::<Tagged>::new(2);
        let (_tx, mut rx) = mpsc::channel(1);
        assert_eq!(push_tagged(&handoff, 7, 1), Pushed::Accepted);
        assert_eq!(push_tagged(&handoff, 7, 2), Pushed::Accepted);
        assert_eq!(push_tagged(&handoff, 7, 3), Pushed::Full);
        assert_eq!(handoff.refused(), 1);
        // The owner takes both, then the owner's memory is replaced by a later tag...
        assert_eq!(handoff.take_all(&mut rx), vec![(7, 1), (7, 2)]);
        assert_eq!(push_tagged(&handoff, 7, 4), Pushed::Accepted);
        assert_eq!(handoff.take_all(&mut rx), vec![(7, 4)]);
        assert_eq!(push_tagged(&handoff, 8, 5), Pushed::Accepted);
        assert_eq!(push_tagged(&handoff, 8, 6), Pushed::Accepted);
        assert_eq!(handoff.take_all(&mut rx), vec![(8, 5), (8, 6)]);
        assert_eq!(handoff.accepted(), 5);
    }

    #[test]
    fn closed_refuses_without_building() {
        let handoff = Handoff::<Plain<u32>>::new(8);
        handoff.close();
        assert!(handoff.is_closed());
        assert_eq!(handoff.push(|_| unreachable!()), Pushed::Closed);
    }

    #[tokio::test]
    async fn take_all_keeps_channel_batches_before_ring_records() {
        let handoff = Arc::new(Handoff::<Plain<u32>>::new(64));
        let (tx, mut rx) = mpsc::channel(8);
        for i in 0..10 {
            handoff.push(|_| i);
        }
        handoff.collect_once(&tx);
        for i in 10..20 {
            handoff.push(|_| i);
        }
        assert_eq!(handoff.take_all(&mut rx), (0..20).collect::<Vec<_>>());
    }
}
