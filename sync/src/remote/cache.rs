//! The SDK's `InMemoryLruCache`: a size-bounded LRU whose entries expire after a TTL.
//! A lookup refreshes recency and drops an expired entry (`expires_at <= now`); a save at full
//! size evicts the least recently used entry.
//!
//! Time is the coarse monotonic clock (`coarsetime`, `CLOCK_MONOTONIC_COARSE` on Linux): a
//! read costs ~6 ns against ~29 for `std::time::Instant::now` on the benchmark machine, and a
//! CMAB cache hit reads it once. It moves in kernel ticks (1-10 ms), so an entry may live up
//! to one tick longer or shorter than its TTL; JavaScript's `Date.now()` is a millisecond
//! clock. TTLs are minutes by default (30 for CMAB, 10 for ODP segments).

use std::borrow::Borrow;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

use coarsetime::Instant;

use hashlink::LruCache;
use rustc_hash::FxBuildHasher;

type Entries<K, V> = LruCache<K, (Instant, V), FxBuildHasher>;

/// A thread-safe LRU cache with a TTL (see the module doc).
#[derive(Debug)]
pub(crate) struct TtlLru<K: Hash + Eq, V> {
    entries: Mutex<Entries<K, V>>,
    ttl: coarsetime::Duration,
}

impl<K: Hash + Eq, V: Clone> TtlLru<K, V> {
    /// `capacity` entries (at least 1) living `ttl` each.
    pub(crate) fn new(capacity: usize, ttl: Duration) -> Self {
        TtlLru {
            entries: Mutex::new(LruCache::with_hasher(capacity.max(1), FxBuildHasher)),
            ttl: ttl.into(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries<K, V>> {
        // A panic while holding the lock leaves a consistent map; keep using it.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn lookup<Q: Hash + Eq + ?Sized>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        self.lookup_at(key, Instant::now())
    }

    pub(crate) fn lookup_at<Q: Hash + Eq + ?Sized>(&self, key: &Q, now: Instant) -> Option<V>
    where
        K: Borrow<Q>,
    {
        self.lookup_with_at(key, now, V::clone)
    }

    /// What `read` makes of the live entry under `key` (none: expired or missing), without
    /// cloning the entry.
    pub(crate) fn lookup_with<Q: Hash + Eq + ?Sized, R>(
        &self,
        key: &Q,
        read: impl FnOnce(&V) -> R,
    ) -> Option<R>
    where
        K: Borrow<Q>,
    {
        self.lookup_with_at(key, Instant::now(), read)
    }

    fn lookup_with_at<Q: Hash + Eq + ?Sized, R>(
        &self,
        key: &Q,
        now: Instant,
        read: impl FnOnce(&V) -> R,
    ) -> Option<R>
    where
        K: Borrow<Q>,
    {
        let mut entries = self.lock();
        match entries.get(key) {
            None => return None,
            Some((expires_at, value)) if *expires_at > now => return Some(read(value)),
            Some(_) => {}
        }
        entries.remove(key);
        None
    }

    pub(crate) fn save(&self, key: K, value: V) {
        self.save_at(key, value, Instant::now());
    }

    pub(crate) fn save_at(&self, key: K, value: V, now: Instant) {
        let expires_at = now + self.ttl;
        let mut entries = self.lock();
        entries.remove(&key);
        entries.insert(key, (expires_at, value));
    }

    pub(crate) fn remove<Q: Hash + Eq + ?Sized>(&self, key: &Q)
    where
        K: Borrow<Q>,
    {
        self.lock().remove(key);
    }

    pub(crate) fn reset(&self) {
        self.lock().clear();
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_exactly_at_the_ttl() {
        let cache: TtlLru<String, i32> = TtlLru::new(10, Duration::from_millis(100));
        let t0 = Instant::now();
        let ms = |ms| coarsetime::Duration::from(Duration::from_millis(ms));
        cache.save_at("k".into(), 1, t0);
        assert_eq!(cache.lookup_at("k", t0 + ms(99)), Some(1));
        assert_eq!(cache.lookup_at("k", t0 + ms(100)), None);
        assert_eq!(cache.len(), 0, "an expired entry is dropped on lookup");
    }

    #[test]
    fn a_lookup_refreshes_recency_and_a_full_save_evicts_the_oldest() {
        let cache: TtlLru<String, i32> = TtlLru::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        cache.save_at("a".into(), 1, t0);
        cache.save_at("b".into(), 2, t0);
        assert_eq!(cache.lookup_at("a", t0), Some(1));
        cache.save_at("c".into(), 3, t0);
        assert_eq!(
            cache.lookup_at("b", t0),
            None,
            "b was the least recently used"
        );
        assert_eq!(cache.lookup_at("a", t0), Some(1));
        assert_eq!(cache.lookup_at("c", t0), Some(3));
        cache.remove("a");
        assert_eq!(cache.lookup_at("a", t0), None);
        cache.reset();
        assert_eq!(cache.len(), 0);
    }
}
