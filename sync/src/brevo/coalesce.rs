//! Keeps only the latest state per contact and knows which contacts Brevo must hear about.
//!
//! Per contact the coalescer holds the latest decision of each flag (as interned ids), the
//! matching audiences, and two digests: the state Brevo last acknowledged and the state Brevo
//! rejected (set aside). A contact is sent only when the digest of its derived attributes
//! differs from both, so a million identical decides make one write.

use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHasher};

use super::config::{AttributeNames, DateFormat};
use super::derive::{ContactState, Derived, FlagState, Interner, LastExperiment, PersistedState};
use super::record::{AttrValue, AudienceSource, DecisionRecord, RuleSource, UserSnapshot};

/// One contact slot.
#[derive(Debug)]
pub(crate) struct Slot {
    pub contact: Box<str>,
    pub state: ContactState,
    /// Digest Brevo last acknowledged (0 = none).
    pub acked: u64,
    /// Digest Brevo rejected with a 4xx (0 = none); not retried until the state changes.
    pub rejected: u64,
    /// Failed attempts of the current state.
    pub attempts: u32,
    /// In the dirty list.
    dirty: bool,
    /// In the unsaved list.
    unsaved: bool,
    /// Digest of the state last written to the store (`None`: never written). A contact
    /// whose state went back to it before the commit (a decide_all of a returning user walks
    /// the latest experiment through every flag and back) is not written again.
    saved: Option<u64>,
    /// (config generation, attribute hash) of the last audience evaluation.
    segment_key: (u32, u64),
}

/// The coalescer. Owned by the worker; not shared.
#[derive(Default)]
pub(crate) struct Coalescer {
    slots: Vec<Slot>,
    index: FxHashMap<Box<str>, u32>,
    pub(crate) interner: Interner,
    /// Oldest change first, so a steady inflow cannot starve old contacts.
    dirty: VecDeque<u32>,
    unsaved: Vec<u32>,
    audiences: Option<Arc<dyn AudienceSource>>,
    audiences_generation: u32,
    last_user: Option<(Arc<UserSnapshot>, u64)>,
    /// Wall-clock microseconds given to the decisions applied next ([`Coalescer::set_now`]).
    now_us: u64,
    /// Fleet mode: every decision newer than the state makes the contact due (another
    /// instance may hold a different value), not only a change of what Brevo sees.
    fleet: bool,
}

/// A contact whose derived attributes differ from what Brevo acknowledged.
#[derive(Debug, Clone)]
pub(crate) struct DueContact {
    pub slot: u32,
    pub derived: Derived,
}

impl Coalescer {
    /// Number of contacts known.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Contacts waiting to be sent (may include some whose state is back to the acknowledged one).
    pub(crate) fn dirty_len(&self) -> usize {
        self.dirty.len()
    }

    pub(crate) fn slot(&self, slot: u32) -> &Slot {
        &self.slots[slot as usize]
    }

    fn slot_of(&mut self, contact: &str) -> u32 {
        if let Some(&i) = self.index.get(contact) {
            return i;
        }
        let i = self.slots.len() as u32;
        self.slots.push(Slot {
            contact: contact.into(),
            state: ContactState::default(),
            acked: 0,
            rejected: 0,
            attempts: 0,
            dirty: false,
            unsaved: false,
            saved: None,
            segment_key: (0, 0),
        });
        self.index.insert(contact.into(), i);
        i
    }

    fn touch(&mut self, slot: u32) {
        let s = &mut self.slots[slot as usize];
        s.attempts = 0;
        if !s.dirty {
            s.dirty = true;
            self.dirty.push_back(slot);
        }
        if !s.unsaved {
            s.unsaved = true;
            self.unsaved.push(slot);
        }
    }

    /// Marks a contact to be sent again (after a retryable failure).
    pub(crate) fn retry_later(&mut self, slot: u32) {
        let s = &mut self.slots[slot as usize];
        s.attempts += 1;
        if !s.dirty {
            s.dirty = true;
            self.dirty.push_back(slot);
        }
    }

    /// Applies one decision with its stamp `seq`: each part of the contact's state (the
    /// flag, the latest experiment, the segments) takes it unless it holds a newer decision.
    /// `today` is the day number used for `EXPERIMENT_DATE`.
    pub(crate) fn apply(&mut self, record: &DecisionRecord, seq: u64, today: i64) {
        let slot = self.slot_of(&record.user.contact);
        let flag = self.interner.intern(&record.flag_key);
        let experiment = match (record.source, &record.rule_key, &record.variation_key) {
            (RuleSource::Experiment, Some(rule), Some(variation)) => {
                Some((self.interner.intern(rule), self.interner.intern(variation)))
            }
            _ => None,
        };
        let mut changed = self.slots[slot as usize].state.set_flag(FlagState {
            flag,
            enabled: record.enabled,
            experiment,
            seq,
            at: self.now_us,
        });
        if let Some((rule, variation)) = experiment {
            changed |= self.slots[slot as usize]
                .state
                .set_experiment(LastExperiment {
                    flag,
                    rule,
                    variation,
                    enabled: record.enabled,
                    day: today,
                    seq,
                    at: self.now_us,
                });
        }
        if let Some(source) = &record.user.audiences {
            changed |= self.update_segments(slot, source, &record.user, seq);
            let now = self.now_us;
            let state = &mut self.slots[slot as usize].state;
            state.segments_at = state.segments_at.max(now);
        }
        if changed || self.fleet {
            self.touch(slot);
        }
    }

    /// The wall-clock time (µs) given to the decisions applied from now on.
    pub(crate) fn set_now(&mut self, now_us: u64) {
        self.now_us = now_us;
    }

    /// Fleet mode: see the field.
    pub(crate) fn set_fleet(&mut self, fleet: bool) {
        self.fleet = fleet;
    }

    /// The contact's state as stored (names, not ids).
    pub(crate) fn persisted(&self, slot: u32) -> PersistedState {
        self.slots[slot as usize].state.to_persisted(&self.interner)
    }

    fn update_segments(
        &mut self,
        slot: u32,
        source: &Arc<dyn AudienceSource>,
        user: &Arc<UserSnapshot>,
        seq: u64,
    ) -> bool {
        let state = &mut self.slots[slot as usize].state;
        if seq < state.segments_seq {
            return false;
        }
        state.segments_seq = seq;
        let same_source = self
            .audiences
            .as_ref()
            .is_some_and(|a| std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(source)));
        if !same_source {
            // Holding the current source keeps its address unique while it is compared.
            self.audiences = Some(Arc::clone(source));
            self.audiences_generation = self.audiences_generation.wrapping_add(1);
        }
        let attributes_hash = match &self.last_user {
            Some((last, hash)) if Arc::ptr_eq(last, user) => *hash,
            _ => {
                let hash = hash_attributes(user);
                self.last_user = Some((Arc::clone(user), hash));
                hash
            }
        };
        let key = (self.audiences_generation, attributes_hash);
        if self.slots[slot as usize].segment_key == key {
            return false;
        }
        self.slots[slot as usize].segment_key = key;
        let mut ids: Vec<u32> = source
            .matching_audiences(user)
            .iter()
            .map(|name| self.interner.intern(name))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let state = &mut self.slots[slot as usize].state;
        if state.segments.as_deref() == Some(&ids[..]) {
            return false;
        }
        state.segments = Some(ids.into());
        true
    }

    /// Takes up to `max` contacts whose derived attributes differ from the acknowledged (and
    /// from the rejected) state. Contacts back at the acknowledged state are dropped from the
    /// dirty list and counted in the returned `unchanged`.
    pub(crate) fn take_due(
        &mut self,
        max: usize,
        names: &AttributeNames,
        date_format: DateFormat,
    ) -> (Vec<DueContact>, u64) {
        let mut due = Vec::new();
        let mut unchanged = 0;
        while due.len() < max {
            let Some(slot) = self.dirty.pop_front() else {
                break;
            };
            let s = &mut self.slots[slot as usize];
            s.dirty = false;
            let derived = s.state.derive(&self.interner, names, date_format);
            if !self.fleet && (derived.digest == s.acked || derived.digest == s.rejected) {
                unchanged += 1;
                continue;
            }
            due.push(DueContact { slot, derived });
        }
        (due, unchanged)
    }

    /// Contacts changed since the last commit, with their persisted state and digest; those
    /// whose digest is the one last written are left out (what Brevo would see is stored
    /// already; only decision times differ, which matter to a fleet only).
    pub(crate) fn take_unsaved(
        &mut self,
        names: &AttributeNames,
        date_format: DateFormat,
    ) -> Vec<(u32, PersistedState, u64)> {
        let mut out = Vec::with_capacity(self.unsaved.len());
        for slot in std::mem::take(&mut self.unsaved) {
            let s = &mut self.slots[slot as usize];
            s.unsaved = false;
            let digest = s.state.derive(&self.interner, names, date_format).digest;
            if !self.fleet && s.saved == Some(digest) {
                continue;
            }
            s.saved = Some(digest);
            out.push((slot, s.state.to_persisted(&self.interner), digest));
        }
        out
    }

    /// Whether contacts changed since the last commit.
    pub(crate) fn has_unsaved(&self) -> bool {
        !self.unsaved.is_empty()
    }

    /// Records Brevo's acknowledgement of a digest.
    pub(crate) fn acknowledge(&mut self, slot: u32, digest: u64) {
        let s = &mut self.slots[slot as usize];
        s.acked = digest;
        s.attempts = 0;
    }

    /// Sets a contact's state aside after Brevo rejected it.
    pub(crate) fn reject(&mut self, slot: u32, digest: u64) {
        let s = &mut self.slots[slot as usize];
        s.rejected = digest;
        s.attempts = 0;
    }

    /// Restores a contact read back from the store; it is due when its state was not acknowledged.
    pub(crate) fn restore(
        &mut self,
        contact: &str,
        persisted: &PersistedState,
        digest: u64,
        acked: u64,
        rejected: u64,
    ) {
        let slot = self.slot_of(contact);
        let state = ContactState::from_persisted(persisted, &mut self.interner);
        let s = &mut self.slots[slot as usize];
        s.state = state;
        s.acked = acked;
        s.rejected = rejected;
        s.saved = Some(digest);
        if digest != acked && digest != rejected && !s.dirty {
            s.dirty = true;
            self.dirty.push_back(slot);
        }
    }
}

fn hash_attributes(user: &UserSnapshot) -> u64 {
    let mut h = FxHasher::default();
    for (key, value) in user.attributes.iter() {
        key.hash(&mut h);
        match value {
            AttrValue::String(s) => (0u8, s).hash(&mut h),
            AttrValue::Bool(b) => (1u8, b).hash(&mut h),
            AttrValue::Int(i) => (2u8, i).hash(&mut h),
            AttrValue::Float(f) => (3u8, f.to_bits()).hash(&mut h),
            AttrValue::Null => 4u8.hash(&mut h),
            AttrValue::Json(v) => (5u8, v.to_string()).hash(&mut h),
        }
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use compact_str::CompactString;
    use serde_json::Value;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

    struct Vip(AtomicUsize);
    impl AudienceSource for Vip {
        fn matching_audiences(&self, user: &UserSnapshot) -> Vec<String> {
            self.0.fetch_add(1, Ordering::Relaxed);
            user.attributes
                .iter()
                .filter(|(k, v)| &**k == "plan" && *v == AttrValue::String("vip".into()))
                .map(|_| "VIPs".to_string())
                .collect()
        }
    }

    /// Stamps of decisions made one after another.
    fn stamp() -> u64 {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }

    fn user(contact: &str, plan: &str) -> Arc<UserSnapshot> {
        Arc::new(UserSnapshot {
            user_id: contact.into(),
            contact: contact.into(),
            attributes: vec![("plan".into(), AttrValue::String(plan.into()))].into(),
            audiences: None,
        })
    }

    fn decision(user: &Arc<UserSnapshot>, flag: &str, enabled: bool) -> DecisionRecord {
        DecisionRecord {
            user: Arc::clone(user),
            flag_key: CompactString::from(flag),
            enabled,
            source: RuleSource::Rollout,
            rule_key: None,
            variation_key: None,
        }
    }

    #[test]
    fn a_million_identical_decides_make_one_write() {
        let mut c = Coalescer::default();
        let names = AttributeNames::default();
        let u = user("a@x.io", "free");
        for _ in 0..1_000_000 {
            c.apply(&decision(&u, "f", true), stamp(), 1);
        }
        let (due, _) = c.take_due(10, &names, DateFormat::Date);
        assert_eq!(due.len(), 1);
        c.acknowledge(due[0].slot, due[0].derived.digest);
        for _ in 0..1000 {
            c.apply(&decision(&u, "f", true), stamp(), 1);
        }
        assert_eq!(c.take_due(10, &names, DateFormat::Date).0.len(), 0);
        // A flip and a flip back before the flush: nothing to send either.
        c.apply(&decision(&u, "f", false), stamp(), 1);
        c.apply(&decision(&u, "f", true), stamp(), 1);
        let (due, unchanged) = c.take_due(10, &names, DateFormat::Date);
        assert_eq!((due.len(), unchanged), (0, 1));
    }

    /// A returning user's decide_all walks the latest experiment through every flag and back
    /// to the same state: nothing to write to the store; a real change is written.
    #[test]
    fn a_state_back_to_the_saved_one_is_not_written_again() {
        let mut c = Coalescer::default();
        let names = AttributeNames::default();
        let u = user("a@x.io", "free");
        let decide_all = |c: &mut Coalescer, last: &str| {
            let s = stamp();
            for (flag, variation) in [("f1", "a"), ("f2", "b"), ("f3", last)] {
                c.apply(&experiment(&u, flag, variation), s, 1);
            }
        };
        decide_all(&mut c, "c");
        assert_eq!(c.take_unsaved(&names, DateFormat::Date).len(), 1);
        decide_all(&mut c, "c");
        assert!(
            c.has_unsaved(),
            "the walk through the flags touched the contact"
        );
        assert!(c.take_unsaved(&names, DateFormat::Date).is_empty());
        decide_all(&mut c, "d");
        assert_eq!(c.take_unsaved(&names, DateFormat::Date).len(), 1);
        // In a fleet every newer decision is written (its time orders instances' states).
        c.set_fleet(true);
        decide_all(&mut c, "d");
        assert_eq!(c.take_unsaved(&names, DateFormat::Date).len(), 1);
    }

    #[test]
    fn segments_evaluated_once_per_attribute_change() {
        let mut c = Coalescer::default();
        let src = Arc::new(Vip(AtomicUsize::new(0)));
        let dyn_src: Arc<dyn AudienceSource> = src.clone();
        let names = AttributeNames::default();
        let with_source = |contact: &str, plan: &str| {
            let mut u = (*user(contact, plan)).clone();
            u.audiences = Some(dyn_src.clone());
            Arc::new(u)
        };
        let vip = with_source("a@x.io", "vip");
        for flag in ["f1", "f2", "f3"] {
            c.apply(&decision(&vip, flag, true), stamp(), 1);
        }
        assert_eq!(src.0.load(Ordering::Relaxed), 1);
        let (due, _) = c.take_due(10, &names, DateFormat::Date);
        assert_eq!(due[0].derived.attributes["OPT_SEGMENTS"], "VIPs");
        c.apply(
            &decision(&with_source("a@x.io", "free"), "f1", true),
            stamp(),
            1,
        );
        assert_eq!(src.0.load(Ordering::Relaxed), 2);
        let (due, _) = c.take_due(10, &names, DateFormat::Date);
        assert_eq!(due[0].derived.attributes["OPT_SEGMENTS"], "");
    }

    #[test]
    fn rejected_state_is_not_retried_until_it_changes() {
        let mut c = Coalescer::default();
        let names = AttributeNames::default();
        let u = user("bad", "free");
        c.apply(&decision(&u, "f", true), stamp(), 1);
        let (due, _) = c.take_due(10, &names, DateFormat::Date);
        c.reject(due[0].slot, due[0].derived.digest);
        c.retry_later(due[0].slot);
        assert!(c.take_due(10, &names, DateFormat::Date).0.is_empty());
        c.apply(&decision(&u, "g", true), stamp(), 1);
        assert_eq!(c.take_due(10, &names, DateFormat::Date).0.len(), 1);
    }

    fn experiment(user: &Arc<UserSnapshot>, flag: &str, variation: &str) -> DecisionRecord {
        DecisionRecord {
            source: RuleSource::Experiment,
            rule_key: Some(CompactString::from("exp")),
            variation_key: Some(CompactString::from(variation)),
            ..decision(user, flag, true)
        }
    }

    /// The attributes Brevo would get for the only contact.
    fn attributes(c: &Coalescer) -> serde_json::Map<String, Value> {
        let names = AttributeNames::default();
        c.slot(0)
            .state
            .derive(&c.interner, &names, DateFormat::Date)
            .attributes
    }

    #[test]
    fn an_older_decision_does_not_overwrite_a_flag_and_a_newer_one_does() {
        // (stamp, enabled) applied in this order, then the expected ENABLED_FEATURES.
        let cases: [(&[(u64, bool)], &str); 8] = [
            (&[(10, true), (5, false)], "f"),
            // Equal stamps come from one thread, in push order: the later one wins.
            (&[(10, true), (10, false)], ""),
            (&[(10, false), (10, true)], "f"),
            (&[(5, false), (10, true)], "f"),
            (&[(10, true), (20, false)], ""),
            // A repeat with a newer stamp holds that stamp: an older change loses to it.
            (&[(10, true), (30, true), (20, false)], "f"),
            (&[(10, false), (30, false), (20, true)], ""),
            // Stamp 0: a state read back from the store; any decision of this run wins.
            (&[(0, true), (1, false)], ""),
        ];
        for (decisions, want) in cases {
            let mut c = Coalescer::default();
            let u = user("a@x.io", "free");
            for &(seq, enabled) in decisions {
                c.apply(&decision(&u, "f", enabled), seq, 1);
            }
            assert_eq!(attributes(&c)["ENABLED_FEATURES"], want, "{decisions:?}");
        }
    }

    #[test]
    fn an_older_experiment_decision_does_not_overwrite_the_last_experiment() {
        let u = user("a@x.io", "free");
        /// (stamp, flag, variation) applied in this order.
        type Decisions<'a> = &'a [(u64, &'a str, &'a str)];
        // Then the expected latest experiment (flag, variation).
        let cases: [(Decisions<'_>, (&str, &str)); 5] = [
            (&[(10, "f", "b"), (5, "g", "a")], ("f", "b")),
            (&[(10, "f", "b"), (10, "g", "a")], ("g", "a")),
            (&[(5, "g", "a"), (10, "f", "b")], ("f", "b")),
            (&[(10, "f", "b"), (20, "g", "a")], ("g", "a")),
            (
                &[(10, "f", "b"), (30, "f", "b"), (20, "g", "a")],
                ("f", "b"),
            ),
        ];
        for (decisions, (flag, variation)) in cases {
            let mut c = Coalescer::default();
            for &(seq, f, v) in decisions {
                c.apply(&experiment(&u, f, v), seq, 1);
            }
            let got = attributes(&c);
            assert_eq!(got["FEATURE_FLAG"], flag, "{decisions:?}");
            assert_eq!(got["VARIATION_NAME"], variation, "{decisions:?}");
        }
    }

    #[test]
    fn an_older_user_does_not_overwrite_the_segments() {
        let src: Arc<dyn AudienceSource> = Arc::new(Vip(AtomicUsize::new(0)));
        let with_plan = |plan: &str| {
            let mut u = (*user("a@x.io", plan)).clone();
            u.audiences = Some(Arc::clone(&src));
            Arc::new(u)
        };
        // (stamp, plan) in this order (each decision for another flag), then OPT_SEGMENTS.
        let cases: [(&[(u64, &str)], &str); 5] = [
            (&[(10, "vip"), (5, "free")], "VIPs"),
            (&[(10, "vip"), (10, "free")], ""),
            (&[(5, "free"), (10, "vip")], "VIPs"),
            (&[(10, "vip"), (20, "free")], ""),
            (&[(10, "vip"), (30, "vip"), (20, "free")], "VIPs"),
        ];
        for (decisions, want) in cases {
            let mut c = Coalescer::default();
            for (i, &(seq, plan)) in decisions.iter().enumerate() {
                c.apply(&decision(&with_plan(plan), &format!("f{i}"), true), seq, 1);
            }
            let got = attributes(&c);
            assert_eq!(got["OPT_SEGMENTS"], want, "{decisions:?}");
            // Every flag decision was applied: the stamps only order decisions of one part.
            assert_eq!(
                got["ENABLED_FEATURES"]
                    .as_str()
                    .map(|f| f.split(',').count()),
                Some(decisions.len())
            );
        }
    }
}
