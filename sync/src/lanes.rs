//! Per-thread batching of hand-off records between the decide path and an owner loop.
//!
//! Handing one record to another core costs more than a small decide (the queue slot's cache
//! lines move between cores on every record). So each producing thread appends to its own lane
//! (a `Vec` behind a mutex that only that thread and the owner's drains ever take, chosen by a
//! per-thread index) and hands a whole batch of `batch()` records to the owner loop at once.
//! The owner loop takes every lane's records every [`LANE_DRAIN_INTERVAL`] and on flush/close,
//! so a record waits in a lane at most that long.
//!
//! Order: each batch carries its lane and a per-lane sequence number, so an owner that needs
//! one thread's records in order (the latest decision wins) sorts what it took by both.
//!
//! Bounds: a lane keeps at most `batch() - 1` records while its hand-off fails, and only full
//! batches are handed off, so `lanes * (batch - 1) + batch_slots * batch <= capacity`.
//! Queues too small for that (fewer than `2 * lanes * LANE_BATCH` records) use batches of one:
//! every record is handed off at once, exactly as an unbatched bounded queue.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Records a lane collects before handing them to the owner loop in one step.
pub(crate) const LANE_BATCH: usize = 64;

/// How often an owner loop takes the records waiting in lanes (a partial batch's deadline).
pub(crate) const LANE_DRAIN_INTERVAL: std::time::Duration = std::time::Duration::from_millis(50);

/// Most lanes per queue (threads beyond share lanes; still correct, possibly contended).
const MAX_LANES: usize = 64;

static NEXT_THREAD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static THREAD_INDEX: usize = NEXT_THREAD.fetch_add(1, Ordering::Relaxed);
}

/// One lane's records, on cache lines of its own.
#[repr(align(128))]
struct Lane<T> {
    state: Mutex<LaneState<T>>,
}

struct LaneState<T> {
    records: Vec<T>,
    next_seq: u64,
}

/// Records taken from one lane at once.
pub(crate) struct Batch<T> {
    /// The lane they come from.
    pub lane: usize,
    /// Taken after every batch of the same lane with a lower number.
    pub seq: u64,
    /// The records, oldest first.
    pub records: Vec<T>,
}

impl<T> Batch<T> {
    /// Puts batches in the order their records were pushed, per lane.
    pub(crate) fn sort(batches: &mut [Batch<T>]) {
        batches.sort_unstable_by_key(|b| (b.lane, b.seq));
    }
}

impl<T> LaneState<T> {
    fn take(&mut self, lane: usize) -> Batch<T> {
        let seq = self.next_seq;
        self.next_seq += 1;
        Batch {
            lane,
            seq,
            records: std::mem::take(&mut self.records),
        }
    }
}

/// Counters written by a lane's producers while they hold its lock (plain load + store, no
/// atomic read-modify-write), read without the lock by snapshots. One per lane.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct LaneCounts {
    /// Records accepted into the lane.
    pub accepted: AtomicU64,
    /// Records refused: the lane was full and the owner's queue too.
    pub refused: AtomicU64,
}

impl LaneCounts {
    /// Adds one; only call while holding this lane's lock.
    #[inline]
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }
}

/// Sums one field over every lane.
pub(crate) fn sum(counts: &[LaneCounts], field: impl Fn(&LaneCounts) -> &AtomicU64) -> u64 {
    counts
        .iter()
        .map(|c| field(c).load(Ordering::Relaxed))
        .sum()
}

/// The lanes of one queue.
pub(crate) struct Lanes<T> {
    lanes: Box<[Lane<T>]>,
    batch: usize,
    closed: AtomicBool,
}

/// This thread's lane, locked.
pub(crate) struct LaneGuard<'a, T> {
    /// Index of the lane (for per-lane counters).
    pub index: usize,
    state: MutexGuard<'a, LaneState<T>>,
}

impl<T> Lanes<T> {
    /// Lanes for a queue of `capacity` records; also returns how many full batches the owner's
    /// queue may hold so that lanes and queue together never exceed `capacity`.
    pub(crate) fn new(capacity: usize) -> (Self, usize) {
        Self::with_max_batch(capacity, LANE_BATCH)
    }

    /// As [`new`](Self::new), with batches of at most `max_batch` records. `max_batch == 1`
    /// hands every record off at once, so the owner sees records of all threads in the order
    /// they were pushed (what an owner needs when records of different threads must not pass
    /// each other).
    pub(crate) fn with_max_batch(capacity: usize, max_batch: usize) -> (Self, usize) {
        let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
        let count = (cores * 2).next_power_of_two().min(MAX_LANES);
        let capacity = capacity.max(1);
        let batch = if max_batch > 1 && capacity >= 2 * count * max_batch {
            max_batch
        } else {
            1
        };
        let slots = ((capacity - count * (batch - 1)) / batch).max(1);
        let lanes = (0..count)
            .map(|_| Lane {
                state: Mutex::new(LaneState {
                    records: Vec::new(),
                    next_seq: 0,
                }),
            })
            .collect();
        (
            Lanes {
                lanes,
                batch,
                closed: AtomicBool::new(false),
            },
            slots,
        )
    }

    /// Number of lanes.
    pub(crate) fn count(&self) -> usize {
        self.lanes.len()
    }

    /// Records per handed-off batch.
    pub(crate) fn batch(&self) -> usize {
        self.batch
    }

    /// Locks the calling thread's lane.
    #[inline]
    pub(crate) fn lock(&self) -> LaneGuard<'_, T> {
        let index = THREAD_INDEX.with(|i| *i) & (self.lanes.len() - 1);
        let state = self.lanes[index]
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        LaneGuard { index, state }
    }

    /// Whether [`close_and_drain`](Self::close_and_drain) ran. Check it while holding a lane
    /// lock: a record pushed under the lock before the close is then drained by it.
    #[inline]
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// Takes every lane's records (owner side), lane by lane.
    pub(crate) fn drain(&self, mut take: impl FnMut(Batch<T>)) {
        for (index, lane) in self.lanes.iter().enumerate() {
            let batch = {
                let mut state = lane.state.lock().unwrap_or_else(|e| e.into_inner());
                if state.records.is_empty() {
                    continue;
                }
                state.take(index)
            };
            take(batch);
        }
    }

    /// Marks the lanes closed (later pushes see it under their lock) and takes what they hold.
    pub(crate) fn close_and_drain(&self, take: impl FnMut(Batch<T>)) {
        self.closed.store(true, Ordering::Relaxed);
        self.drain(take);
    }
}

impl<T> LaneGuard<'_, T> {
    /// Appends one record, making room for a whole batch at once (one allocation per batch).
    #[inline]
    pub(crate) fn push(&mut self, record: T, batch: usize) {
        let records = &mut self.state.records;
        if records.capacity() == 0 {
            records.reserve_exact(batch);
        }
        records.push(record);
    }

    /// Records waiting in the lane.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.state.records.len()
    }

    /// Takes the lane's records for a hand-off.
    pub(crate) fn take(&mut self) -> Batch<T> {
        self.state.take(self.index)
    }

    /// Puts back records whose hand-off failed, keeping at most `batch - 1` of them; returns
    /// how many were dropped (the newest).
    pub(crate) fn put_back(&mut self, failed: Batch<T>, batch: usize) -> usize {
        let mut records = failed.records;
        let keep = batch.saturating_sub(1);
        let dropped = records.len().saturating_sub(keep);
        records.truncate(keep);
        self.state.records = records;
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_queues_hand_off_every_record() {
        let (lanes, slots) = Lanes::<u32>::new(10);
        assert_eq!((lanes.batch(), slots), (1, 10));
        let (lanes, slots) = Lanes::<u32>::new(0);
        assert_eq!((lanes.batch(), slots), (1, 1));
    }

    #[test]
    fn lanes_and_slots_stay_within_capacity() {
        for capacity in [100, 1_000, 16_384, 100_000] {
            let (lanes, slots) = Lanes::<u32>::new(capacity);
            let held = lanes.count() * (lanes.batch() - 1) + slots * lanes.batch();
            assert!(held <= capacity, "{capacity}: {held}");
            assert!(lanes.count().is_power_of_two());
        }
        let (lanes, _) = Lanes::<u32>::new(100_000);
        assert_eq!(lanes.batch(), LANE_BATCH);
    }

    #[test]
    fn drain_takes_records_of_every_thread() {
        let (lanes, _) = Lanes::<u32>::new(100_000);
        let lanes = std::sync::Arc::new(lanes);
        let threads: Vec<_> = (0..4u32)
            .map(|t| {
                let lanes = std::sync::Arc::clone(&lanes);
                std::thread::spawn(move || {
                    for i in 0..10 {
                        lanes.lock().push(t * 100 + i, LANE_BATCH);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let mut all = Vec::new();
        lanes.close_and_drain(|mut b| all.append(&mut b.records));
        all.sort_unstable();
        let expected: Vec<u32> = (0..4)
            .flat_map(|t| (0..10).map(move |i| t * 100 + i))
            .collect();
        assert_eq!(all, expected);
        assert!(lanes.is_closed());
    }

    #[test]
    fn put_back_keeps_less_than_a_batch() {
        let (lanes, _) = Lanes::<u32>::new(100_000);
        let mut lane = lanes.lock();
        for i in 0..64 {
            lane.push(i, 64);
        }
        let full = lane.take();
        assert_eq!(lane.put_back(full, 64), 1);
        assert_eq!(lane.len(), 63);
        lane.push(1, 1);
        let one = lane.take();
        assert_eq!(lane.put_back(one, 1), 64);
        assert_eq!(lane.len(), 0);
    }

    #[test]
    fn batches_sort_back_into_push_order_per_lane() {
        let (lanes, _) = Lanes::<u32>::new(100_000);
        let mut taken = Vec::new();
        for round in 0..3 {
            let mut lane = lanes.lock();
            lane.push(round, LANE_BATCH);
            taken.push(lane.take());
        }
        taken.reverse();
        Batch::sort(&mut taken);
        let order: Vec<u32> = taken.into_iter().flat_map(|b| b.records).collect();
        assert_eq!(order, vec![0, 1, 2]);
    }
}
