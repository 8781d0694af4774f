//! Hand-off from the decide path to an owner loop: one ring per producing thread.
//!
//! Handing each record to another core through one shared queue costs about as much as a small
//! decide (atomic read-modify-writes, a lock, cache lines moving between cores). Here every
//! thread that pushes gets its own single-producer ring (`rtrb`): a push is a few plain stores
//! and one release store, with no lock and no atomic read-modify-write.
//!
//! Finding the thread's ring: a `std` thread-local array per [`Handed`] type holds the lanes
//! of the first [`THREAD_SLOTS`] (8) live hand-offs of that type that a thread pushed to (a
//! process usually has one client and one Brevo sync; `flagbridge serve` one of each per
//! project), the first entry checked inline and the others in a cold function (a call more);
//! further hand-offs find their lane through a per-object
//! `thread_local::ThreadLocal`, several dependent loads more. A push from inside a push (a sink
//! that decides) also uses the `ThreadLocal` lane. An entry goes to another hand-off once its
//! own is dropped.
//!
//! A collector task moves the rings' records into the
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
//! most `min(ring_capacity, COLLECT_BATCH)` items. A full channel leaves records in the rings;
//! a full ring refuses the record (counted in [`Handoff::refused`]). An array's lane ends with
//! its thread; the owner drains its ring and then drops it (its entries stay counted in
//! [`Handoff::accepted`]). A `ThreadLocal` lane lives as long as the `Handoff`: a thread that
//! ends leaves it to the next thread that gets its `ThreadLocal` entry.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::LocalKey;
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

/// Hand-offs of one [`Handed`] type (and clients, for their config caches) per thread that
/// find their lane in a `std` thread-local array; further ones use their `ThreadLocal`.
pub(crate) const THREAD_SLOTS: usize = 8;

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
    /// This thread's array of lanes of its first live hand-offs of this type (see the module
    /// docs), declared with `thread_slots!`; `None` (the default, and the only choice for a
    /// generic type): every lane is found through the hand-off's `ThreadLocal`.
    fn thread_slots() -> Option<&'static LocalKey<ThreadSlots<Self>>>
    where
        Self: Sized,
    {
        None
    }
}

/// Implements [`Handed::thread_slots`] with a `std` thread-local of its own (inside an
/// `impl Handed for $handed` of a non-generic type).
macro_rules! thread_slots {
    ($handed:ty) => {
        fn thread_slots(
        ) -> Option<&'static ::std::thread::LocalKey<crate::handoff::ThreadSlots<Self>>> {
            ::std::thread_local! {
                static SLOTS: crate::handoff::ThreadSlots<$handed> =
                    const { crate::handoff::ThreadSlots::new() };
            }
            Some(&SLOTS)
        }
    };
}
pub(crate) use thread_slots;

/// The entry of a thread's array that `mine` picks, or else the first one that is empty or
/// `reusable` (its owner was dropped), filled by `make`; `None` when every entry is taken.
pub(crate) fn claim_slot<T>(
    slots: &mut [Option<T>; THREAD_SLOTS],
    mine: impl Fn(&T) -> bool,
    reusable: impl Fn(&T) -> bool,
    make: impl FnOnce() -> T,
) -> Option<&mut T> {
    let index = match slots.iter().position(|s| s.as_ref().is_some_and(&mine)) {
        Some(index) => index,
        None => {
            let free = slots
                .iter()
                .position(|s| s.as_ref().is_none_or(&reusable))?;
            slots[free] = Some(make());
            free
        }
    };
    slots[index].as_mut()
}

/// A thread's lanes of its first live hand-offs of one [`Handed`] type (see the module docs).
pub(crate) struct ThreadSlots<H: Handed>(RefCell<[Option<SlotLane<H>>; THREAD_SLOTS]>);

impl<H: Handed> ThreadSlots<H> {
    /// No lanes.
    pub(crate) const fn new() -> Self {
        ThreadSlots(RefCell::new([const { None }; THREAD_SLOTS]))
    }
}

struct SlotLane<H: Handed> {
    /// [`Handoff::id`] of the lane's hand-off.
    handoff: u64,
    lane: Lane<H>,
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

    /// Appends one record, or gives it back when the ring is full (the entry is then
    /// refused, as with [`push`](Self::push)).
    #[inline]
    pub(crate) fn try_push(&mut self, record: T) -> Result<(), T> {
        self.pushed = true;
        if self.full {
            return Err(record);
        }
        match self.producer.push(record) {
            Ok(()) => Ok(()),
            Err(rtrb::PushError::Full(record)) => {
                self.full = true;
                Err(record)
            }
        }
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
    /// Unique per hand-off (a thread's array names each lane's hand-off by it).
    id: u64,
    /// Lanes of the threads whose array is full of other hand-offs' lanes.
    lanes: ThreadLocal<RefCell<Lane<H>>>,
    rings: Mutex<Vec<Ring<H>>>,
    /// Entries accepted by rings removed after their thread ended.
    retired: AtomicU64,
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
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Handoff {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            lanes: ThreadLocal::new(),
            rings: Mutex::new(Vec::new()),
            retired: AtomicU64::new(0),
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

    fn new_lane(&self) -> Lane<H> {
        let (producer, consumer) = rtrb::RingBuffer::new(self.ring_capacity);
        let accepted = Arc::new(AtomicU64::new(0));
        self.rings().push(Ring {
            consumer,
            accepted: Arc::clone(&accepted),
            received: H::Received::default(),
        });
        Lane {
            producer,
            until_check: self.check_every,
            accepted,
            sent: H::Sent::default(),
        }
    }

    /// Pushes the record `make` builds from this thread's memory of what it sent. Never
    /// blocks; `make` is not called when the hand-off is closed, and its record is dropped
    /// when the ring is full.
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
        let Some(slots) = H::thread_slots() else {
            return self.push_on_other_lane(make);
        };
        let mut make = Some(make);
        let pushed = slots.try_with(|slots| {
            let mut slots = slots.0.try_borrow_mut().ok()?;
            let slot = match &mut slots[0] {
                Some(first) if first.handoff == self.id => first,
                _ => self.find_or_claim(&mut slots)?,
            };
            make.take().map(|make| self.push_on(&mut slot.lane, make))
        });
        match (pushed, make) {
            (Ok(Some(pushed)), _) => pushed,
            // A full array, a push from inside `make`, or the array torn down (a push from a
            // thread-local destructor).
            (_, Some(make)) => self.push_on_other_lane(make),
            // `make` is taken only to be called, and then `pushed` holds the outcome.
            (_, None) => unreachable!("a push ran without an outcome"),
        }
    }

    /// This hand-off's entry in a thread's array past the first: found, or claimed when an
    /// entry is empty or its hand-off was dropped (nothing holds the other end of its ring);
    /// `None` when all hold live hand-offs.
    #[cold]
    #[inline(never)]
    fn find_or_claim<'s>(
        &self,
        slots: &'s mut [Option<SlotLane<H>>; THREAD_SLOTS],
    ) -> Option<&'s mut SlotLane<H>> {
        claim_slot(
            slots,
            |s| s.handoff == self.id,
            |s| Arc::strong_count(&s.lane.accepted) == 1,
            || SlotLane {
                handoff: self.id,
                lane: self.new_lane(),
            },
        )
    }

    /// [`push_each`](Self::push_each) on this thread's lane in the `ThreadLocal`.
    fn push_on_other_lane(
        &self,
        make: impl FnOnce(&mut H::Sent, &mut Pusher<'_, H::Record>),
    ) -> Pushed {
        let cell = self.lanes.get_or(|| RefCell::new(self.new_lane()));
        // Only a push from inside `make` on the same thread could find it borrowed.
        let Ok(mut lane) = cell.try_borrow_mut() else {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Pushed::Full;
        };
        self.push_on(&mut lane, make)
    }

    /// [`push_each`](Self::push_each) on `lane`.
    #[inline]
    fn push_on(
        &self,
        lane: &mut Lane<H>,
        make: impl FnOnce(&mut H::Sent, &mut Pusher<'_, H::Record>),
    ) -> Pushed {
        let mut pusher = Pusher {
            producer: &mut lane.producer,
            full: false,
            pushed: false,
        };
        make(&mut lane.sent, &mut pusher);
        if !pusher.pushed {
            return Pushed::Empty;
        }
        if pusher.full {
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
        let rings = self.rings();
        let live: u64 = rings
            .iter()
            .map(|r| r.accepted.load(Ordering::Relaxed))
            .sum();
        live + self.retired.load(Ordering::Relaxed)
    }

    /// Removes the rings whose thread ended (its lane dropped with its thread's array) once
    /// they are empty. Call with the rings drained.
    fn retire_ended(&self, rings: &mut Vec<Ring<H>>) {
        rings.retain(|ring| {
            let ended = ring.consumer.is_abandoned() && ring.consumer.is_empty();
            if ended {
                self.retired
                    .fetch_add(ring.accepted.load(Ordering::Relaxed), Ordering::Relaxed);
            }
            !ended
        });
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
                self.retire_ended(&mut rings);
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
        self.retire_ended(&mut rings);
        out
    }
}

#[cfg(test)]
mod tests;
