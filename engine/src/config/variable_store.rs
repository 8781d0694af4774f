//! Variable ids, values and the variations' usage lists, each stored once while compiling.

use std::hash::{Hash, Hasher};

use rustc_hash::FxHashMap;
use serde_json::Value;

use super::str_index::StrIndex;
use super::{Usage, VariableValue};
use crate::variables::cast;

/// Variable ids, values and usage lists, each stored once.
#[derive(Default)]
pub(super) struct VariableStore {
    pub ids: Vec<String>,
    slots: StrIndex,
    pub values: Vec<VariableValue>,
    /// The type each value was cast by (index into `kinds`; `u32::MAX`: left a string), to tell
    /// hash collisions apart.
    value_kinds: Vec<u32>,
    /// The distinct type names seen (a handful: "string", "integer", ...).
    kinds: Vec<String>,
    value_index: FxHashMap<u64, u32>,
    pub sets: Vec<Box<[Usage]>>,
    /// Set hash -> the first set with that hash (collisions are compared, then stored anew).
    set_index: FxHashMap<u64, u32>,
}

/// `value_kinds` entry of a value left a string.
const NO_KIND: u32 = u32::MAX;

impl VariableStore {
    pub(super) fn slot(&mut self, id: &str) -> u32 {
        let ids = &self.ids;
        if let Some(slot) = self.slots.get(id, |i| &ids[i]) {
            return slot as u32;
        }
        let slot = self.ids.len();
        self.ids.push(id.to_string());
        let ids = &self.ids;
        self.slots.insert(id, slot, |i| &ids[i]);
        slot as u32
    }

    fn kind_index(&mut self, kind: Option<&str>) -> u32 {
        let Some(kind) = kind else {
            return NO_KIND;
        };
        match self.kinds.iter().position(|k| k == kind) {
            Some(i) => i as u32,
            None => {
                self.kinds.push(kind.to_string());
                (self.kinds.len() - 1) as u32
            }
        }
    }

    /// The index of `raw` cast by `kind` (kept a string without one).
    pub(super) fn value(&mut self, raw: &str, kind: Option<&str>) -> u32 {
        let mut h = rustc_hash::FxHasher::default();
        (raw, kind).hash(&mut h);
        let key = h.finish();
        let kind_index = self.kind_index(kind);
        if let Some(&i) = self.value_index.get(&key) {
            let same =
                self.values[i as usize].raw() == raw && self.value_kinds[i as usize] == kind_index;
            if same {
                return i;
            }
        }
        let index = self.values.len() as u32;
        let value = match kind {
            Some(kind) => cast(raw, kind),
            None => Value::String(raw.to_string()),
        };
        let raw = match &value {
            Value::String(s) if s == raw => None,
            _ => Some(Box::from(raw)),
        };
        self.values.push(VariableValue { raw, value });
        self.value_kinds.push(kind_index);
        self.value_index.entry(key).or_insert(index);
        index
    }

    /// The index of the usage list `usages` (stored once; the map keeps only its hash).
    pub(super) fn set(&mut self, usages: Vec<Usage>) -> u32 {
        let mut h = rustc_hash::FxHasher::default();
        usages.hash(&mut h);
        let key = h.finish();
        if let Some(&i) = self.set_index.get(&key) {
            if *self.sets[i as usize] == *usages {
                return i;
            }
        }
        let index = self.sets.len() as u32;
        self.sets.push(usages.into_boxed_slice());
        self.set_index.entry(key).or_insert(index);
        index
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_sets_are_stored_once() {
        let mut store = VariableStore::default();
        let a = store.value("42", Some("integer"));
        assert_eq!(store.value("42", Some("integer")), a);
        let as_string = store.value("42", Some("string"));
        let untyped = store.value("42", None);
        assert_ne!(as_string, a);
        assert_eq!(store.values[a as usize].value, serde_json::json!(42));
        assert_eq!(store.values[a as usize].raw(), "42");
        // A string value keeps its text once, in the cast value.
        assert!(store.values[as_string as usize].raw.is_none());
        assert_eq!(store.values[untyped as usize].raw(), "42");
        let (x, y) = (store.slot("v1"), store.slot("v2"));
        assert_eq!(store.slot("v1"), x);
        let first = store.set(vec![(x, a), (y, as_string)]);
        assert_eq!(store.set(vec![(x, a), (y, as_string)]), first);
        assert_ne!(store.set(vec![(y, as_string), (x, a)]), first);
        assert_eq!(store.ids, ["v1", "v2"]);
    }
}
