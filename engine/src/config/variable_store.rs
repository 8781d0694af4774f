//! Variable ids, values and the variations' usage lists, each stored once while compiling.

use std::hash::{Hash, Hasher};

use rustc_hash::FxHashMap;
use serde_json::Value;

use super::{Usage, VariableValue};
use crate::variables::cast;

/// Variable ids, values and usage lists, each stored once.
#[derive(Default)]
pub(super) struct VariableStore {
    pub ids: Vec<String>,
    slots: FxHashMap<String, u32>,
    pub values: Vec<VariableValue>,
    /// The type each value was cast by (`None`: left a string), to tell hash collisions apart.
    value_kinds: Vec<Option<String>>,
    value_index: FxHashMap<u64, u32>,
    pub sets: Vec<Box<[Usage]>>,
    set_index: FxHashMap<Box<[Usage]>, u32>,
}

impl VariableStore {
    pub(super) fn slot(&mut self, id: &str) -> u32 {
        if let Some(slot) = self.slots.get(id) {
            return *slot;
        }
        let slot = self.ids.len() as u32;
        self.ids.push(id.to_string());
        self.slots.insert(id.to_string(), slot);
        slot
    }

    /// The index of `raw` cast by `kind` (kept a string without one).
    pub(super) fn value(&mut self, raw: &str, kind: Option<&str>) -> u32 {
        let mut h = rustc_hash::FxHasher::default();
        (raw, kind).hash(&mut h);
        let key = h.finish();
        if let Some(&i) = self.value_index.get(&key) {
            let same = self.values[i as usize].raw() == raw
                && self.value_kinds[i as usize].as_deref() == kind;
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
        self.value_kinds.push(kind.map(str::to_string));
        self.value_index.entry(key).or_insert(index);
        index
    }

    pub(super) fn set(&mut self, usages: Vec<Usage>) -> u32 {
        if let Some(&i) = self.set_index.get(usages.as_slice()) {
            return i;
        }
        let index = self.sets.len() as u32;
        let set: Box<[Usage]> = usages.into_boxed_slice();
        self.sets.push(set.clone());
        self.set_index.insert(set, index);
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
