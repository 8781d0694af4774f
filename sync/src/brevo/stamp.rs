//! Stamps that order decisions across threads without an atomic read-modify-write per
//! decision.
//!
//! The worker must keep the latest decision per contact, but records of different threads reach
//! it in no particular order. A stamp from one shared counter bumped per decision (`fetch_add`)
//! orders them, at the price of a locked instruction on every decide (measured 4-9 ns there,
//! about a third of a decide). Here a thread *owns* the counter's current value when it was the
//! one that bumped it to that value: while the counter still holds it, nobody decided since on
//! another thread, and the thread stamps its decisions with that same value (one plain load).
//! Once another thread bumped it, the next decision bumps again (`fetch_add`) and owns the new
//! value. So a thread deciding alone never writes the shared line, and threads that take turns
//! pay what a counter per decision costs.
//!
//! The guarantee: if decision `a` happened before decision `b` (same thread, or `b`'s thread
//! heard of `a` through any synchronisation), then `stamp(a) <= stamp(b)`, and equal stamps come
//! from one thread. Proof sketch: `b`'s load of the counter sees `stamp(a)` or a later value
//! (coherence). If it sees a value its thread owns, that value is not `a`'s unless both are the
//! same thread (each bumped value has one owner), so it is bigger. Otherwise `b` bumps past it.
//! One thread's records travel through one ring in push order, so the worker settles equal
//! stamps by arrival: the later record wins.

use std::sync::atomic::{AtomicU64, Ordering};

/// The counter of one Brevo sync, on a cache line of its own.
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct Stamps(AtomicU64);

impl Default for Stamps {
    fn default() -> Self {
        // Starts above 0, the "owns nothing" value of a thread's memory.
        Stamps(AtomicU64::new(1))
    }
}

impl Stamps {
    /// The stamp of a decision pushed now by the thread whose memory is `owned` (0 before
    /// its first stamp, and after its memory was reset).
    #[inline]
    pub(crate) fn take(&self, owned: &mut u64) -> u64 {
        if self.0.load(Ordering::Relaxed) != *owned {
            *owned = self.0.fetch_add(1, Ordering::Relaxed) + 1;
        }
        *owned
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn a_thread_alone_keeps_its_stamp_and_turns_take_new_ones() {
        let stamps = Stamps::default();
        let (mut a, mut b) = (0, 0);
        // (thread, expected stamp)
        let table: [(char, u64); 8] = [
            ('a', 2),
            ('a', 2),
            ('a', 2),
            ('b', 3),
            ('b', 3),
            ('a', 4),
            ('b', 5),
            ('b', 5),
        ];
        for (i, (thread, expected)) in table.into_iter().enumerate() {
            let owned = if thread == 'a' { &mut a } else { &mut b };
            assert_eq!(stamps.take(owned), expected, "step {i}");
        }
        // A reset memory owns nothing: the next stamp is new.
        let mut reset = 0;
        assert_eq!(stamps.take(&mut reset), 6);
    }

    #[test]
    fn a_decision_that_heard_of_another_never_gets_a_smaller_stamp() {
        // Four threads pass a token around; each stamps a few decisions while it holds it.
        // Every stamp taken after receiving the token is at least the one before it, and
        // bigger when the previous holder was another thread.
        let stamps = std::sync::Arc::new(Stamps::default());
        let threads = 4;
        let rounds = 2_000;
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..threads)
            .map(|_| mpsc::channel::<(usize, u64)>())
            .unzip();
        let handles: Vec<_> = receivers
            .into_iter()
            .enumerate()
            .map(|(me, rx)| {
                let next = senders[(me + 1) % threads].clone();
                let stamps = std::sync::Arc::clone(&stamps);
                std::thread::spawn(move || {
                    let mut owned = 0;
                    for (from, last) in rx.iter() {
                        if last == u64::MAX {
                            // Pass the end on, then stop.
                            let _ = next.send((me, u64::MAX));
                            return;
                        }
                        let mut stamp = last;
                        for _ in 0..3 {
                            let s = stamps.take(&mut owned);
                            assert!(s >= stamp, "went back from {stamp} to {s}");
                            if from != me {
                                assert!(s > last, "another thread's {last}, then {s}");
                            }
                            stamp = s;
                        }
                        let _ = next.send((me, if stamp >= rounds { u64::MAX } else { stamp }));
                    }
                })
            })
            .collect();
        senders[0].send((usize::MAX, 0)).unwrap();
        for h in handles {
            h.join().unwrap();
        }
    }
}
