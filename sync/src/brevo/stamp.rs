//! Stamps that order decisions across threads: one shared counter, bumped once per decision.
//!
//! The worker must keep the latest decision per contact, but records of different threads reach
//! it in no particular order. The stamp orders them: if decision `a` happened before decision
//! `b` (same thread, or `b`'s thread heard of `a` through any synchronisation), then
//! `stamp(a) < stamp(b)`, because the read-modify-writes of one atomic are totally ordered
//! consistently with happens-before. Every stamp is distinct.
//!
//! It costs one uncontended locked instruction per decision (a few ns; more when threads
//! decide at once). An earlier scheme let a thread deciding alone reuse the value it had
//! bumped to, without writing the shared line; `benches` `users_paired` measured the Brevo
//! sink within its target without it, so the simpler counter stays (issue 14).

use std::sync::atomic::{AtomicU64, Ordering};

/// The counter of one Brevo sync, on a cache line of its own.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Stamps(AtomicU64);

impl Stamps {
    /// The stamp of a decision pushed now (1 for the first).
    #[inline]
    pub(crate) fn take(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed) + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn stamps_are_distinct_and_grow() {
        let stamps = Stamps::default();
        let taken: Vec<u64> = (0..5).map(|_| stamps.take()).collect();
        assert_eq!(taken, [1, 2, 3, 4, 5]);
    }

    #[test]
    fn a_decision_that_heard_of_another_gets_a_bigger_stamp() {
        // Four threads pass a token around; each stamps a few decisions while it holds it.
        // Every stamp is bigger than the one the token carried.
        let stamps = std::sync::Arc::new(Stamps::default());
        let threads = 4;
        let rounds = 2_000;
        let (senders, receivers): (Vec<_>, Vec<_>) =
            (0..threads).map(|_| mpsc::channel::<u64>()).unzip();
        let handles: Vec<_> = receivers
            .into_iter()
            .enumerate()
            .map(|(me, rx)| {
                let next = senders[(me + 1) % threads].clone();
                let stamps = std::sync::Arc::clone(&stamps);
                std::thread::spawn(move || {
                    for last in rx.iter() {
                        if last == u64::MAX {
                            // Pass the end on, then stop.
                            let _ = next.send(u64::MAX);
                            return;
                        }
                        let mut stamp = last;
                        for _ in 0..3 {
                            let s = stamps.take();
                            assert!(s > stamp, "went from {stamp} to {s}");
                            stamp = s;
                        }
                        let _ = next.send(if stamp >= rounds { u64::MAX } else { stamp });
                    }
                })
            })
            .collect();
        senders[0].send(0).unwrap();
        for h in handles {
            h.join().unwrap();
        }
    }
}
