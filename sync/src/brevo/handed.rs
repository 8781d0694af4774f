//! What the decide path hands to the Brevo worker through the per-thread rings of
//! `crate::handoff`, and how the worker reads it.
//!
//! A decision record carries its user snapshot only when the snapshot changed on its thread:
//! the thread remembers the snapshot it last sent ([`SentUser`]), the worker the one it last
//! received on that ring, so a user deciding again (decide-all, several flags, a session)
//! costs no snapshot copy, no comparison of attributes and no reference count on the decide
//! path.
//!
//! Every decision carries a stamp from one counter of the sync, taken on the decide path: a
//! decision made after another one (on the same thread, or on a thread that heard of the other
//! one) has a bigger stamp. Records of different threads reach the worker in no particular
//! order; the coalescer compares stamps so an older decision never overwrites a newer one.

use std::sync::Arc;

use compact_str::CompactString;
use flagbridge_engine::{AttributeValue, ProjectConfig, UserContext};

use super::record::{AttrValue, ConversionRecord, DecisionRecord, RuleSource, UserSnapshot};
use crate::handoff::Handed;

/// The Brevo sync's records in the hand-off.
pub(crate) struct BrevoHanded;

impl Handed for BrevoHanded {
    type Record = HandedRecord;
    type Sent = SentUser;
    /// The user snapshot of the ring's last record that carried one.
    type Received = Option<Arc<UserSnapshot>>;
    type Item = Item;

    fn resolve(received: &mut Option<Arc<UserSnapshot>>, record: HandedRecord) -> Option<Item> {
        match record {
            HandedRecord::Decision(d) => {
                let user = match d.user {
                    Some(user) => {
                        *received = Some(Arc::clone(&user));
                        user
                    }
                    // A thread only says "same user" after a record of it carried the user.
                    None => Arc::clone(received.as_ref()?),
                };
                Some(Item::Decision {
                    seq: d.seq,
                    record: DecisionRecord {
                        user,
                        flag_key: d.flag_key,
                        enabled: d.enabled,
                        source: d.source,
                        rule_key: d.rule_key,
                        variation_key: d.variation_key,
                    },
                })
            }
            HandedRecord::Conversion(c) => Some(Item::Conversion(c)),
        }
    }
}

/// One record in a ring.
pub(crate) enum HandedRecord {
    /// A decision.
    Decision(HandedDecision),
    /// A conversion (boxed: rare and larger).
    Conversion(Box<ConversionRecord>),
}

/// A [`DecisionRecord`] with its stamp, and its user only when it changed on this thread.
pub(crate) struct HandedDecision {
    pub seq: u64,
    /// `None`: the user of this thread's previous record that carried one.
    pub user: Option<Arc<UserSnapshot>>,
    pub flag_key: CompactString,
    pub enabled: bool,
    pub source: RuleSource,
    pub rule_key: Option<CompactString>,
    pub variation_key: Option<CompactString>,
}

/// What the worker gets.
pub(crate) enum Item {
    /// A decision and its stamp.
    Decision { seq: u64, record: DecisionRecord },
    /// A conversion.
    Conversion(Box<ConversionRecord>),
}

/// What a thread remembers of the user it last sent (reset by the hand-off after a refusal).
#[derive(Default)]
pub(crate) struct SentUser {
    /// The snapshot the worker holds for this thread's ring.
    snapshot: Option<Arc<UserSnapshot>>,
    /// The engine user's version it was copied from; `None` when it was handed over ready-made.
    version: Option<u64>,
    /// Address of the config it was made with (0: none). Only compared, never followed; the
    /// snapshot holds that config, so no other config can get this address meanwhile.
    config: usize,
}

fn address(config: Option<&Arc<ProjectConfig>>) -> usize {
    config.map_or(0, |c| Arc::as_ptr(c) as usize)
}

impl SentUser {
    /// The snapshot a record of this engine user must carry: `None` when the worker already
    /// has it (same user version, same config), else a new one, remembered. `contact` is the
    /// user's contact identity (a function of the user and of the sync's identity source, which
    /// never changes for one sync's hand-off).
    pub(crate) fn engine_user(
        &mut self,
        config: Option<&Arc<ProjectConfig>>,
        user: &UserContext,
        contact: &str,
    ) -> Option<Arc<UserSnapshot>> {
        let config_address = address(config);
        if self.snapshot.is_some()
            && self.version == Some(user.version())
            && self.config == config_address
        {
            return None;
        }
        let snapshot = Arc::new(UserSnapshot {
            user_id: user.user_id().into(),
            contact: contact.into(),
            attributes: user
                .attributes()
                .map(|(k, v)| (Box::from(k), copy_value(v)))
                .collect(),
            audiences: config.map(|c| Arc::clone(c) as _),
        });
        *self = SentUser {
            snapshot: Some(Arc::clone(&snapshot)),
            version: Some(user.version()),
            config: config_address,
        };
        Some(snapshot)
    }

    /// The snapshot a record with this ready-made user must carry: `None` when it is the one
    /// the worker already has (the same `Arc`).
    pub(crate) fn ready_user(&mut self, user: Arc<UserSnapshot>) -> Option<Arc<UserSnapshot>> {
        if self
            .snapshot
            .as_ref()
            .is_some_and(|s| Arc::ptr_eq(s, &user))
        {
            return None;
        }
        *self = SentUser {
            snapshot: Some(Arc::clone(&user)),
            version: None,
            config: 0,
        };
        Some(user)
    }
}

fn copy_value(v: &AttributeValue) -> AttrValue {
    match v {
        AttributeValue::String(s) => AttrValue::String(s.as_str().into()),
        AttributeValue::Bool(b) => AttrValue::Bool(*b),
        AttributeValue::Int(i) => AttrValue::Int(*i),
        AttributeValue::Float(f) => AttrValue::Float(*f),
        AttributeValue::Null => AttrValue::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATAFILE: &str = include_str!("../../tests/data/brevo_small_datafile.json");

    fn new_user(sent: &mut SentUser, c: Option<&Arc<ProjectConfig>>, u: &UserContext) -> bool {
        sent.engine_user(c, u, "a@x.io").is_some()
    }

    #[test]
    fn a_snapshot_is_sent_again_only_when_the_user_or_config_changed() {
        let config = Arc::new(ProjectConfig::parse(DATAFILE).unwrap());
        let other_config = Arc::new(ProjectConfig::parse(DATAFILE).unwrap());
        let u = UserContext::new("u1")
            .with_attribute("email", "a@x.io")
            .with_attribute("age", 30i64);
        let mut sent = SentUser::default();
        assert!(new_user(&mut sent, Some(&config), &u));
        assert!(!new_user(&mut sent, Some(&config), &u));
        // A clone is the same user (same version).
        assert!(!new_user(&mut sent, Some(&config), &u.clone()));
        let changed = u.clone().with_attribute("age", 31i64);
        let s = sent.engine_user(Some(&config), &changed, "a@x.io").unwrap();
        assert_eq!(s.attributes[1].1, AttrValue::Int(31));
        assert!(s.audiences.is_some());
        assert!(!new_user(&mut sent, Some(&config), &changed));
        assert!(new_user(&mut sent, Some(&other_config), &changed));
        assert!(new_user(&mut sent, None, &changed));
        assert!(!new_user(&mut sent, None, &changed));
        // The same content built again is another user (another version): copied again.
        let rebuilt = UserContext::new("u1")
            .with_attribute("email", "a@x.io")
            .with_attribute("age", 31i64);
        assert!(new_user(&mut sent, None, &rebuilt));
        // After a reset (a refused push) everything is sent again.
        let mut sent = SentUser::default();
        assert!(new_user(&mut sent, None, &rebuilt));
    }

    #[test]
    fn ready_made_users_are_sent_again_only_when_another_arc() {
        let u = Arc::new(UserSnapshot {
            user_id: "u".into(),
            contact: "a@x.io".into(),
            attributes: Box::new([]),
            audiences: None,
        });
        let mut sent = SentUser::default();
        assert!(sent.ready_user(Arc::clone(&u)).is_some());
        assert!(sent.ready_user(Arc::clone(&u)).is_none());
        let copy = Arc::new((*u).clone());
        assert!(sent.ready_user(copy).is_some());
        // An engine user after a ready-made one is copied (and the other way round).
        let e = UserContext::new("u").with_attribute("email", "a@x.io");
        assert!(new_user(&mut sent, None, &e));
        assert!(sent.ready_user(Arc::clone(&u)).is_some());
    }

    #[test]
    fn the_owner_fills_in_the_user_of_same_user_records() {
        let u = Arc::new(UserSnapshot {
            user_id: "u".into(),
            contact: "a@x.io".into(),
            attributes: Box::new([]),
            audiences: None,
        });
        let decision = |seq, user| {
            HandedRecord::Decision(HandedDecision {
                seq,
                user,
                flag_key: "f".into(),
                enabled: true,
                source: RuleSource::Rollout,
                rule_key: None,
                variation_key: None,
            })
        };
        let mut received = None;
        assert!(BrevoHanded::resolve(&mut received, decision(1, None)).is_none());
        let first = BrevoHanded::resolve(&mut received, decision(2, Some(Arc::clone(&u))));
        let second = BrevoHanded::resolve(&mut received, decision(3, None));
        for (item, want) in [(first, 2), (second, 3)] {
            match item {
                Some(Item::Decision { seq, record }) => {
                    assert_eq!(seq, want);
                    assert!(Arc::ptr_eq(&record.user, &u));
                }
                _ => panic!("expected a decision"),
            }
        }
    }
}
