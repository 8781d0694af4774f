//! Attribute names that conditions read, numbered once per config ("slots"), and the user's
//! attributes as one decide call sees them.
//!
//! A condition names its attribute by slot. A single `decide` looks a slot up in the user's
//! (short) attribute list by key hash, allocating nothing. Calls that decide many flags resolve
//! every user attribute to its slot once ([`UserAttributes::resolved`]), so each condition then
//! reads one table entry, and remember each whole audience's result, as rules of many flags
//! often name the same audience (evaluation is pure, so a result holds for the whole call).

use std::cell::Cell;

use rustc_hash::FxHashMap;

use crate::user::{key_hash, AttributeValue, UserContext};

/// The distinct attribute names of every condition in a config.
#[derive(Debug, Clone, Default)]
pub(crate) struct AttributeSlots {
    /// `(key_hash(name), name)` by slot.
    names: Vec<(u64, String)>,
    by_name: FxHashMap<String, u32>,
}

impl AttributeSlots {
    /// The slot of `name`, numbered on first use.
    pub(crate) fn intern(&mut self, name: String) -> u32 {
        if let Some(slot) = self.by_name.get(&name) {
            return *slot;
        }
        let slot = self.names.len() as u32;
        self.names.push((key_hash(&name), name.clone()));
        self.by_name.insert(name, slot);
        slot
    }

    /// Number of slots.
    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }
}

/// The user's attributes for one decide call.
#[derive(Debug)]
pub(crate) struct UserAttributes<'a, 'u> {
    user: &'u UserContext,
    slots: &'a AttributeSlots,
    /// Every slot resolved; empty when lookups scan the user's attributes instead.
    table: Vec<Option<&'u AttributeValue>>,
    /// Audience results by audience index: 0 not evaluated yet, else [`encode`]d. Empty
    /// when results are not kept.
    audiences: Vec<Cell<u8>>,
}

fn encode(result: Option<bool>) -> u8 {
    match result {
        None => 1,
        Some(false) => 2,
        Some(true) => 3,
    }
}

impl<'a, 'u> UserAttributes<'a, 'u> {
    /// Lookups scan the user's attributes (no allocation; best for one flag).
    pub(crate) fn scan(user: &'u UserContext, slots: &'a AttributeSlots) -> Self {
        UserAttributes {
            user,
            slots,
            table: Vec::new(),
            audiences: Vec::new(),
        }
    }

    /// Every user attribute resolved to its slot up front, and audience results kept for
    /// `audience_count` audiences (two allocations; best for many flags).
    pub(crate) fn resolved(
        user: &'u UserContext,
        slots: &'a AttributeSlots,
        audience_count: usize,
    ) -> Self {
        let mut table = vec![None; slots.len()];
        for (key, value) in user.attributes() {
            if let Some(slot) = slots.by_name.get(key) {
                table[*slot as usize] = Some(value);
            }
        }
        UserAttributes {
            user,
            slots,
            table,
            audiences: vec![Cell::new(0); audience_count],
        }
    }

    /// The result of audience `index`: remembered from earlier in the call, or `evaluate`d now.
    #[inline]
    pub(crate) fn audience(
        &self,
        index: u32,
        evaluate: impl FnOnce() -> Option<bool>,
    ) -> Option<bool> {
        let Some(cell) = self.audiences.get(index as usize) else {
            return evaluate();
        };
        match cell.get() {
            0 => {
                let result = evaluate();
                cell.set(encode(result));
                result
            }
            1 => None,
            2 => Some(false),
            _ => Some(true),
        }
    }

    /// The user.
    #[inline]
    pub(crate) fn user(&self) -> &'u UserContext {
        self.user
    }

    /// The user's value of the attribute in `slot` (`None` when absent).
    #[inline]
    pub(crate) fn get(&self, slot: u32) -> Option<&'u AttributeValue> {
        let slot = slot as usize;
        if !self.table.is_empty() {
            return self.table[slot];
        }
        let (hash, name) = &self.slots.names[slot];
        self.user.attribute_hashed(*hash, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_and_resolved_agree() {
        let mut slots = AttributeSlots::default();
        let names = ["a", "b", "missing", "a"];
        let ids: Vec<u32> = names.iter().map(|n| slots.intern(n.to_string())).collect();
        assert_eq!(ids, [0, 1, 2, 0]);
        let user = UserContext::new("u")
            .with_attribute("b", 2i64)
            .with_attribute("a", "x")
            .with_attribute("unused", true);
        let scan = UserAttributes::scan(&user, &slots);
        let resolved = UserAttributes::resolved(&user, &slots, 1);
        for slot in 0..3 {
            assert_eq!(scan.get(slot), resolved.get(slot));
        }
        for result in [None, Some(false), Some(true)] {
            let kept = UserAttributes::resolved(&user, &slots, 1);
            assert_eq!(kept.audience(0, || result), result);
            assert_eq!(kept.audience(0, || unreachable!()), result);
            assert_eq!(scan.audience(0, || result), result);
        }
        assert_eq!(scan.get(0), Some(&AttributeValue::from("x")));
        assert_eq!(scan.get(2), None);
    }
}
