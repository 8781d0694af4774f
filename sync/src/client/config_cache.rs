//! Each thread's view of the config a `Client` serves.
//!
//! A decide starts by finding the config, and every load on that path delays the whole decide.
//! An `arc_swap` load costs ~11 ns here, so each thread keeps an `arc_swap::Cache` (revalidated
//! by one pointer comparison). Finding that cache through a per-client `ThreadLocal` costs
//! several dependent loads more than a `std` thread-local (measured: a second client on a
//! thread paid ~9 ns more per decide with events), so the caches of the first
//! [`THREAD_SLOTS`] (8) clients that decide on a thread (a process usually has one;
//! `flagbridge serve` one per project) live in a `std` thread-local array, the first entry
//! checked inline and the others in a cold function (a call more); further clients use their
//! `ThreadLocal`. An entry goes to another client once its client is dropped.
//!
//! Memory: an old config stays alive until every thread that used it has decided again; after
//! the client is dropped, a thread's entry keeps its last config until another client takes
//! the entry or the thread exits.

use std::cell::RefCell;
use std::sync::{Arc, Weak};

use arc_swap::cache::Cache;
use arc_swap::ArcSwap;
use flagbridge_engine::ProjectConfig;
use thread_local::ThreadLocal;

use crate::handoff::{claim_slot, THREAD_SLOTS};

/// One thread's cached view of the served config.
type ConfigCache = Cache<Arc<ArcSwap<ProjectConfig>>, Arc<ProjectConfig>>;

/// One entry of a thread's array: the cache of one live client.
struct Slot {
    /// Dead once that client is dropped.
    alive: Weak<()>,
    cache: ConfigCache,
}

type Slots = [Option<Slot>; THREAD_SLOTS];

thread_local! {
    static SLOTS: RefCell<Slots> = const { RefCell::new([const { None }; THREAD_SLOTS]) };
}

/// The served config of one client, and the threads' caches of it.
pub(crate) struct ConfigCaches {
    config: Arc<ArcSwap<ProjectConfig>>,
    alive: Arc<()>,
    others: ThreadLocal<RefCell<ConfigCache>>,
}

impl ConfigCaches {
    pub(crate) fn new(config: Arc<ArcSwap<ProjectConfig>>) -> Self {
        ConfigCaches {
            config,
            alive: Arc::new(()),
            others: ThreadLocal::new(),
        }
    }

    /// Runs `f` with the config being served: this thread's cached `Arc` (in the thread's
    /// array, or in this client's `ThreadLocal` when the array is full of live clients or is in
    /// use further up this thread's stack: a user profile service or sink that decides inside
    /// a decide), or a fresh load when both are in use. One `try_with` serves the common case;
    /// its shape matters (measured: a `try_with` check followed by `with` made a decide ~4 ns
    /// slower).
    #[inline]
    pub(crate) fn with_config<R>(&self, f: impl FnOnce(&Arc<ProjectConfig>) -> R) -> R {
        let mut f = Some(f);
        let served = SLOTS.try_with(|slots| {
            let mut slots = slots.try_borrow_mut().ok()?;
            let slot = match &mut slots[0] {
                Some(first) if std::ptr::eq(first.cache.arc_swap(), &*self.config) => first,
                _ => self.find_or_claim(&mut slots)?,
            };
            f.take().map(|f| f(slot.cache.load()))
        });
        match (served, f) {
            (Ok(Some(r)), _) => r,
            (_, Some(f)) => self.with_other(f),
            // `f` is taken only to be called, and then `served` holds its result.
            (_, None) => unreachable!("the config callback ran without a result"),
        }
    }

    /// This client's entry in a thread's array past the first: found, or claimed when an entry
    /// is empty or its client was dropped; `None` when all hold live clients.
    #[cold]
    #[inline(never)]
    fn find_or_claim<'s>(&self, slots: &'s mut Slots) -> Option<&'s mut Slot> {
        claim_slot(
            slots,
            |s| std::ptr::eq(s.cache.arc_swap(), &*self.config),
            |s| s.alive.strong_count() == 0,
            || Slot {
                alive: Arc::downgrade(&self.alive),
                cache: Cache::new(Arc::clone(&self.config)),
            },
        )
    }

    /// [`with_config`](Self::with_config) through this client's `ThreadLocal`.
    fn with_other<R>(&self, f: impl FnOnce(&Arc<ProjectConfig>) -> R) -> R {
        let cell = self
            .others
            .get_or(|| RefCell::new(Cache::new(Arc::clone(&self.config))));
        match cell.try_borrow_mut() {
            Ok(mut cache) => f(cache.load()),
            Err(_) => f(&self.config.load_full()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATAFILE: &str = r#"{"version":"4","projectId":"1","accountId":"2","revision":"REV",
        "experiments":[],"featureFlags":[],"rollouts":[],"groups":[],"audiences":[],
        "attributes":[],"events":[]}"#;

    fn config(revision: &str) -> Arc<ProjectConfig> {
        Arc::new(ProjectConfig::parse(&DATAFILE.replace("REV", revision)).unwrap())
    }

    fn caches(revision: &str) -> (Arc<ArcSwap<ProjectConfig>>, ConfigCaches) {
        let swap = Arc::new(ArcSwap::new(config(revision)));
        (Arc::clone(&swap), ConfigCaches::new(swap))
    }

    fn revision(caches: &ConfigCaches) -> String {
        caches.with_config(|c| c.revision().to_string())
    }

    /// Which of the thread's entries holds `caches`' config cache.
    fn entry_of(caches: &ConfigCaches) -> Option<usize> {
        SLOTS.with(|slots| {
            slots.borrow().iter().position(|slot| {
                slot.as_ref()
                    .is_some_and(|s| std::ptr::eq(s.cache.arc_swap(), &*caches.config))
            })
        })
    }

    #[test]
    fn every_client_on_a_thread_sees_its_own_config_and_its_swaps() {
        std::thread::spawn(|| {
            let (swap_a, a) = caches("a1");
            let (swap_b, b) = caches("b1");
            for _ in 0..2 {
                assert_eq!(revision(&a), "a1");
                assert_eq!(revision(&b), "b1");
            }
            assert_eq!((entry_of(&a), entry_of(&b)), (Some(0), Some(1)));
            swap_a.store(config("a2"));
            swap_b.store(config("b2"));
            assert_eq!(revision(&a), "a2");
            assert_eq!(revision(&b), "b2");
            // A dropped client leaves its entry to the next one.
            drop(a);
            let (_, c) = caches("c1");
            assert_eq!(revision(&c), "c1");
            assert_eq!(revision(&b), "b2");
            assert_eq!((entry_of(&c), entry_of(&b)), (Some(0), Some(1)));
        })
        .join()
        .unwrap();
    }

    #[test]
    fn clients_past_the_array_use_their_thread_local() {
        std::thread::spawn(|| {
            let clients: Vec<_> = (0..THREAD_SLOTS + 2)
                .map(|i| caches(&format!("r{i}")))
                .collect();
            for _ in 0..2 {
                for (i, (_, c)) in clients.iter().enumerate() {
                    assert_eq!(revision(c), format!("r{i}"));
                }
            }
            for (i, (_, c)) in clients.iter().enumerate() {
                let expected = (i < THREAD_SLOTS).then_some(i);
                assert_eq!(entry_of(c), expected, "client {i}");
            }
            // The ones past the array still see their swaps.
            let (swap, last) = &clients[THREAD_SLOTS + 1];
            swap.store(config("moved"));
            assert_eq!(revision(last), "moved");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_decide_inside_a_decide_loads_the_config_again() {
        std::thread::spawn(|| {
            let (_, a) = caches("a1");
            let inner = a.with_config(|outer| {
                assert_eq!(outer.revision(), "a1");
                a.with_config(|inner| inner.revision().to_string())
            });
            assert_eq!(inner, "a1");
        })
        .join()
        .unwrap();
    }
}
