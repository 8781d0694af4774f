//! What the decide path hands to the Brevo worker through the per-thread rings of
//! `crate::handoff`, and how the worker reads it.
//!
//! A decision record says "same as before" where it can: each thread remembers the config and
//! the user snapshot it last sent ([`Sent`]), the worker the ones it last received on that
//! ring ([`Received`]). So a user deciding again (decide-all, several flags, a session) costs
//! no snapshot copy, no comparison of attributes and no reference count on the decide path,
//! and the flag, rule and variation keys travel as their positions in the config (the worker
//! copies the strings).
//!
//! Every decision carries a stamp taken on the decide path (`super::stamp`): a decision made
//! after another one (on the same thread, or on a thread that heard of the other one) has a
//! stamp at least as big, bigger when the threads differ. Records of different threads reach
//! the worker in no particular order; the coalescer compares stamps so an older decision never
//! overwrites a newer one, and lets the later of two equal stamps (one thread's, in push order)
//! win.

use std::sync::Arc;

use compact_str::CompactString;
use flagbridge_engine::{AttributeValue, Decision, ProjectConfig, UserContext};

use super::record::{AttrValue, ConversionRecord, DecisionRecord, RuleSource, UserSnapshot};
use crate::handoff::Handed;

/// The Brevo sync's records in the hand-off.
pub(crate) struct BrevoHanded;

impl Handed for BrevoHanded {
    type Record = HandedRecord;
    type Sent = Sent;
    type Received = Received;
    type Item = Item;

    fn resolve(received: &mut Received, record: HandedRecord) -> Option<Item> {
        let d = match record {
            HandedRecord::Decision(d) => d,
            HandedRecord::Conversion(c) => return Some(Item::Conversion(c)),
        };
        if let Some(config) = d.config {
            received.config = Some(config);
        }
        let user = match d.user {
            Some(user) => {
                received.user = Some(Arc::clone(&user));
                user
            }
            // A thread only says "same user" after a record of it carried the user.
            None => Arc::clone(received.user.as_ref()?),
        };
        let (flag_key, rule_key, variation_key) =
            d.keys.into_strings(received.config.as_deref())?;
        Some(Item::Decision {
            seq: d.seq,
            record: DecisionRecord {
                user,
                flag_key,
                enabled: d.enabled,
                source: d.source,
                rule_key,
                variation_key,
            },
        })
    }
}

/// One record in a ring.
pub(crate) enum HandedRecord {
    /// A decision.
    Decision(HandedDecision),
    /// A conversion (boxed: rare and larger).
    Conversion(Box<ConversionRecord>),
}

/// A [`DecisionRecord`] with its stamp; its config and user only when they changed on this
/// thread.
pub(crate) struct HandedDecision {
    pub seq: u64,
    /// `Some` when the thread's config changed: the config of this record's and the next
    /// records' [`Keys::At`].
    pub config: Option<Arc<ProjectConfig>>,
    /// `None`: the user of this thread's previous record that carried one.
    pub user: Option<Arc<UserSnapshot>>,
    pub keys: Keys,
    pub enabled: bool,
    pub source: RuleSource,
}

/// `(flag, rule, variation)` keys.
pub(crate) type KeyStrings = (CompactString, Option<CompactString>, Option<CompactString>);

/// The flag key, and the rule and variation keys of experiment decisions.
pub(crate) enum Keys {
    /// Positions in the thread's config (`ProjectConfig::flag_key_at` ...).
    At {
        flag: u32,
        rule: Option<u32>,
        variation: Option<u32>,
    },
    /// The keys themselves: ready-made records, unknown flags. Boxed so that the common
    /// record stays small (every byte of a ring record travels to the worker's core).
    Copied(Box<KeyStrings>),
}

impl Keys {
    /// The keys of an engine decision: positions when it was made from `config` and every key
    /// has one, else copies. Only experiment decisions need the rule and variation.
    #[inline]
    pub(crate) fn of(decision: &Decision<'_>, config: &ProjectConfig, experiment: bool) -> Keys {
        let flag = decision
            .flag_index()
            .filter(|_| std::ptr::eq(decision.config(), config));
        let (rule, variation) = if experiment {
            (decision.rule_index(), decision.variation_index())
        } else {
            (None, None)
        };
        let complete = rule.is_some() == (experiment && decision.rule_key().is_some())
            && variation.is_some() == (experiment && decision.variation_key().is_some());
        match flag {
            Some(flag) if complete => Keys::At {
                flag,
                rule,
                variation,
            },
            _ => Keys::copied(decision, experiment),
        }
    }

    /// The keys of an engine decision, copied.
    pub(crate) fn copied(decision: &Decision<'_>, experiment: bool) -> Keys {
        let key = |k: Option<&str>| k.filter(|_| experiment).map(CompactString::new);
        Keys::Copied(Box::new((
            CompactString::new(decision.flag_key()),
            key(decision.rule_key()),
            key(decision.variation_key()),
        )))
    }

    /// The keys, positions read in `config`; `None` when a position is not in it (not
    /// reached: positions come with their config).
    pub(crate) fn into_strings(self, config: Option<&ProjectConfig>) -> Option<KeyStrings> {
        match self {
            Keys::Copied(keys) => Some(*keys),
            Keys::At {
                flag,
                rule,
                variation,
            } => {
                let config = config?;
                let flag_key = CompactString::new(config.flag_key_at(flag)?);
                let rule_key = match rule {
                    Some(i) => Some(CompactString::new(config.rule_key_at(i)?)),
                    None => None,
                };
                let variation_key = match variation {
                    Some(i) => Some(CompactString::new(config.variation_key_at(i)?)),
                    None => None,
                };
                Some((flag_key, rule_key, variation_key))
            }
        }
    }
}

/// What the worker gets.
pub(crate) enum Item {
    /// A decision and its stamp.
    Decision { seq: u64, record: DecisionRecord },
    /// A conversion.
    Conversion(Box<ConversionRecord>),
}

/// What a thread remembers of what it sent on its ring (reset by the hand-off after a
/// refusal, so the next record carries everything again).
#[derive(Default)]
pub(crate) struct Sent {
    /// The config of this thread's last engine decision (the worker holds it for the ring).
    config: Option<Arc<ProjectConfig>>,
    /// The user snapshot the worker holds for the ring.
    snapshot: Option<Arc<UserSnapshot>>,
    /// The engine user's version the snapshot was copied from, under `config`, and whether it
    /// carries `config` for segments; `None` when it was handed over ready-made.
    copied_from: Option<(u64, bool)>,
    /// The stamp value this thread owns (`super::stamp`; 0: none).
    pub stamp: u64,
}

/// What the worker remembers of one ring's records.
#[derive(Default)]
pub(crate) struct Received {
    config: Option<Arc<ProjectConfig>>,
    user: Option<Arc<UserSnapshot>>,
}

impl Sent {
    /// The config and user snapshot a record of this engine decision must carry: each `None`
    /// when the worker already has it for this ring (same config `Arc`; same user version,
    /// config and `segments`), else the new one, remembered. `contact` is the user's contact
    /// identity (a function of the user and of the sync's identity source, which never changes
    /// for one sync's hand-off). With `segments`, the snapshot carries the config, so the
    /// worker updates `OPT_SEGMENTS`.
    #[inline]
    pub(crate) fn engine(
        &mut self,
        config: &Arc<ProjectConfig>,
        segments: bool,
        user: &UserContext,
        contact: &str,
    ) -> (Option<Arc<ProjectConfig>>, Option<Arc<UserSnapshot>>) {
        let new_config = match &self.config {
            // Compared by address: this memory holds the config, so no other gets its address.
            Some(c) if Arc::ptr_eq(c, config) => None,
            _ => {
                self.config = Some(Arc::clone(config));
                self.copied_from = None;
                Some(Arc::clone(config))
            }
        };
        let copied_from = Some((user.version(), segments));
        if self.snapshot.is_some() && self.copied_from == copied_from {
            return (new_config, None);
        }
        let snapshot = snapshot(Some(config).filter(|_| segments), user, contact);
        self.snapshot = Some(Arc::clone(&snapshot));
        self.copied_from = copied_from;
        (new_config, Some(snapshot))
    }

    /// The snapshot a record with this ready-made user must carry: `None` when it is the one
    /// the worker already has (the same `Arc`, held here).
    pub(crate) fn ready_user(&mut self, user: Arc<UserSnapshot>) -> Option<Arc<UserSnapshot>> {
        if self
            .snapshot
            .as_ref()
            .is_some_and(|s| Arc::ptr_eq(s, &user))
        {
            return None;
        }
        self.snapshot = Some(Arc::clone(&user));
        self.copied_from = None;
        Some(user)
    }
}

/// A copy of the user for the worker; `audiences` set for `OPT_SEGMENTS`.
pub(crate) fn snapshot(
    audiences: Option<&Arc<ProjectConfig>>,
    user: &UserContext,
    contact: &str,
) -> Arc<UserSnapshot> {
    Arc::new(UserSnapshot {
        user_id: user.user_id().into(),
        contact: contact.into(),
        attributes: user
            .attributes()
            .map(|(k, v)| (CompactString::new(k), copy_value(v)))
            .collect(),
        audiences: audiences.map(|c| Arc::clone(c) as _),
    })
}

fn copy_value(v: &AttributeValue) -> AttrValue {
    match v {
        AttributeValue::String(s) => AttrValue::String(CompactString::new(s)),
        AttributeValue::Bool(b) => AttrValue::Bool(*b),
        AttributeValue::Int(i) => AttrValue::Int(*i),
        AttributeValue::Float(f) => AttrValue::Float(*f),
        AttributeValue::Null => AttrValue::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ring_record_fits_in_a_cache_line() {
        // Written into a ring on every decision and read on the worker's core.
        let size = std::mem::size_of::<HandedRecord>();
        assert!(size <= 64, "{size}");
    }
    use flagbridge_engine::{DecideOptions, Decider, DecisionSource};

    const DATAFILE: &str = include_str!("../../tests/data/brevo_small_datafile.json");

    fn config() -> Arc<ProjectConfig> {
        Arc::new(ProjectConfig::parse(DATAFILE).unwrap())
    }

    /// Which of (config, user) a record must carry.
    fn sends(
        sent: &mut Sent,
        c: &Arc<ProjectConfig>,
        segments: bool,
        u: &UserContext,
    ) -> (bool, bool) {
        let (config, user) = sent.engine(c, segments, u, "a@x.io");
        (config.is_some(), user.is_some())
    }

    #[test]
    fn config_and_user_are_sent_again_only_when_they_changed() {
        let (config, other_config) = (config(), config());
        let u = UserContext::new("u1")
            .with_attribute("email", "a@x.io")
            .with_attribute("age", 30i64);
        let mut sent = Sent::default();
        assert_eq!(sends(&mut sent, &config, true, &u), (true, true));
        assert_eq!(sends(&mut sent, &config, true, &u), (false, false));
        // A clone is the same user (same version).
        assert_eq!(sends(&mut sent, &config, true, &u.clone()), (false, false));
        let changed = u.clone().with_attribute("age", 31i64);
        let (_, s) = sent.engine(&config, true, &changed, "a@x.io");
        let s = s.unwrap();
        assert_eq!(s.attributes[1].1, AttrValue::Int(31));
        assert_eq!(&*s.contact, "a@x.io");
        assert!(s.audiences.is_some());
        assert_eq!(sends(&mut sent, &config, true, &changed), (false, false));
        // Without segments the snapshot carries no config: another snapshot.
        assert_eq!(sends(&mut sent, &config, false, &changed), (false, true));
        assert_eq!(sends(&mut sent, &config, false, &changed), (false, false));
        // Another config: both again (a snapshot with segments names its config).
        assert_eq!(
            sends(&mut sent, &other_config, false, &changed),
            (true, true)
        );
        assert_eq!(
            sends(&mut sent, &other_config, false, &changed),
            (false, false)
        );
        // The same content built again is another user (another version): copied again.
        let rebuilt = UserContext::new("u1")
            .with_attribute("email", "a@x.io")
            .with_attribute("age", 31i64);
        assert_eq!(
            sends(&mut sent, &other_config, false, &rebuilt),
            (false, true)
        );
        // After a reset (a refused push) everything is sent again.
        let mut sent = Sent::default();
        assert_eq!(
            sends(&mut sent, &other_config, false, &rebuilt),
            (true, true)
        );
    }

    #[test]
    fn ready_made_users_are_sent_again_only_when_another_arc() {
        let u = snapshot(None, &UserContext::new("u"), "a@x.io");
        let mut sent = Sent::default();
        assert!(sent.ready_user(Arc::clone(&u)).is_some());
        assert!(sent.ready_user(Arc::clone(&u)).is_none());
        assert!(sent.ready_user(Arc::new((*u).clone())).is_some());
        // An engine user after a ready-made one is copied, and the other way round.
        let config = config();
        let e = UserContext::new("u").with_attribute("email", "a@x.io");
        assert_eq!(sends(&mut sent, &config, false, &e), (true, true));
        assert!(sent.ready_user(Arc::clone(&u)).is_some());
        assert_eq!(sends(&mut sent, &config, false, &e), (false, true));
    }

    #[test]
    fn keys_travel_as_positions_in_the_config_they_came_from() {
        let (config, other_config) = (config(), config());
        let decider = Decider::new(&config);
        let vip = UserContext::new("u1").with_attribute("plan", "vip");
        let experiment = decider.decide(&vip, "checkout", DecideOptions::NONE);
        assert_eq!(experiment.source(), DecisionSource::FeatureTest);
        let strings = |keys: Keys, c: &ProjectConfig| keys.into_strings(Some(c)).unwrap();
        let want = (
            CompactString::new("checkout"),
            Some(CompactString::new("exp_checkout")),
            Some(CompactString::new("treatment")),
        );
        let keys = Keys::of(&experiment, &config, true);
        assert!(matches!(
            keys,
            Keys::At {
                rule: Some(_),
                variation: Some(_),
                ..
            }
        ));
        assert_eq!(strings(keys, &config), want);
        // Rule and variation only for experiment decisions.
        let keys = Keys::of(&experiment, &config, false);
        assert!(matches!(
            keys,
            Keys::At {
                rule: None,
                variation: None,
                ..
            }
        ));
        assert_eq!(strings(keys, &config), (want.0.clone(), None, None));
        // A decision from another config than the one named: copied.
        let keys = Keys::of(&experiment, &other_config, true);
        assert!(matches!(keys, Keys::Copied(_)));
        assert_eq!(strings(keys, &other_config), want);
        // An unknown flag: copied.
        let unknown = decider.decide(&vip, "no_such_flag", DecideOptions::NONE);
        let keys = Keys::of(&unknown, &config, false);
        assert!(matches!(keys, Keys::Copied(_)));
        assert_eq!(strings(keys, &config).0, "no_such_flag");
        // Positions without their config, or outside it: nothing.
        assert!(Keys::of(&experiment, &config, true)
            .into_strings(None)
            .is_none());
        let far = Keys::At {
            flag: 1_000,
            rule: None,
            variation: None,
        };
        assert!(far.into_strings(Some(&config)).is_none());
    }

    #[test]
    fn the_owner_fills_in_what_records_left_out() {
        let config = config();
        let decider = Decider::new(&config);
        let vip = UserContext::new("u1").with_attribute("plan", "vip");
        let decision = decider.decide(&vip, "checkout", DecideOptions::NONE);
        let u = snapshot(None, &vip, "a@x.io");
        let record = |seq, with_config: bool, user: Option<&Arc<UserSnapshot>>| {
            HandedRecord::Decision(HandedDecision {
                seq,
                config: with_config.then(|| Arc::clone(&config)),
                user: user.cloned(),
                keys: Keys::of(&decision, &config, true),
                enabled: true,
                source: RuleSource::Experiment,
            })
        };
        let mut received = Received::default();
        // No user yet on this ring: nothing (not reached: threads send the user first).
        assert!(BrevoHanded::resolve(&mut received, record(1, true, None)).is_none());
        let first = BrevoHanded::resolve(&mut received, record(2, false, Some(&u)));
        let second = BrevoHanded::resolve(&mut received, record(3, false, None));
        for (item, want) in [(first, 2), (second, 3)] {
            let Some(Item::Decision { seq, record }) = item else {
                panic!("expected a decision");
            };
            assert_eq!(seq, want);
            assert!(Arc::ptr_eq(&record.user, &u));
            assert_eq!(record.flag_key, "checkout");
            assert_eq!(record.variation_key.as_deref(), Some("treatment"));
        }
    }
}
