//! A map from an entity's key (or id) to its index that does not own the key: the entity list
//! holds each string once, the map only its hash.

use std::hash::{Hash, Hasher};

use rustc_hash::FxHashMap;

/// Key -> index, where `name_of(index)` gives the key back. Keys whose hash another key already
/// holds go to a small overflow map that owns them (rare: a 64-bit hash collision).
#[derive(Debug, Clone, Default)]
pub(crate) struct StrIndex {
    by_hash: FxHashMap<u64, u32>,
    overflow: FxHashMap<Box<str>, u32>,
}

fn hash(key: &str) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    key.hash(&mut h);
    h.finish()
}

impl StrIndex {
    /// A map with room for `n` keys.
    pub(crate) fn with_capacity(n: usize) -> Self {
        StrIndex {
            by_hash: FxHashMap::with_capacity_and_hasher(n, Default::default()),
            overflow: FxHashMap::default(),
        }
    }

    /// Maps `key` to `index` (a later index for the same key wins, as a map insert does).
    /// `name_of` gives the key of an index already in the map.
    pub(crate) fn insert<'s>(
        &mut self,
        key: &str,
        index: usize,
        name_of: impl Fn(usize) -> &'s str,
    ) {
        let index = index as u32;
        match self.by_hash.entry(hash(key)) {
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(index);
            }
            std::collections::hash_map::Entry::Occupied(mut slot) => {
                if name_of(*slot.get() as usize) == key {
                    slot.insert(index);
                } else {
                    self.overflow.insert(Box::from(key), index);
                }
            }
        }
    }

    /// The index of `key`. `name_of` gives the key of an index in the map.
    #[inline]
    pub(crate) fn get<'s>(&self, key: &str, name_of: impl Fn(usize) -> &'s str) -> Option<usize> {
        if let Some(&i) = self.by_hash.get(&hash(key)) {
            if name_of(i as usize) == key {
                return Some(i as usize);
            }
        }
        if self.overflow.is_empty() {
            return None;
        }
        self.overflow.get(key).map(|i| *i as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_index_wins_and_unknown_keys_miss() {
        let names = ["a", "b", "a"];
        let mut index = StrIndex::default();
        for (i, n) in names.iter().enumerate() {
            index.insert(n, i, |j| names[j]);
        }
        assert_eq!(index.get("a", |j| names[j]), Some(2));
        assert_eq!(index.get("b", |j| names[j]), Some(1));
        assert_eq!(index.get("c", |j| names[j]), None);
    }

    #[test]
    fn colliding_hashes_go_to_the_overflow() {
        // Force a collision by planting another key's index under "y"'s hash.
        let names = ["x", "y"];
        let mut index = StrIndex::default();
        index.by_hash.insert(hash("y"), 0);
        index.insert("y", 1, |j| names[j]);
        assert_eq!(index.get("y", |j| names[j]), Some(1));
        assert_eq!(index.overflow.len(), 1);
    }
}
