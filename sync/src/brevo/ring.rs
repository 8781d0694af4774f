//! What the decide path hands to the Brevo worker through the per-thread rings of
//! `crate::handoff`, and how the worker reads it.
//!
//! A decision is a 24-byte record: its stamp, the flag, rule and variation keys as positions in
//! the config (the worker copies the strings), enabled and source. Its config and user snapshot
//! travel as records of their own, only when they changed on the thread: each thread remembers
//! the ones it last sent ([`Sent`]), the worker the ones it last received on that ring
//! ([`Received`]). So a user deciding again (decide-all, several flags, a session) costs no
//! snapshot copy, no comparison of attributes and no reference count on the decide path.
//!
//! Every decision carries a stamp taken on the decide path (`super::stamp`): a decision made
//! after another one (on the same thread, or on a thread that heard of the other one) has a
//! bigger stamp. Records of different threads reach the worker in no particular order; the
//! coalescer compares stamps so an older decision never overwrites a newer one.

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

    crate::handoff::thread_slots!(BrevoHanded);

    fn resolve(received: &mut Received, record: HandedRecord) -> Option<Item> {
        let (seq, keys, enabled, source) = match record {
            HandedRecord::Config(config) => {
                received.config = Some(config);
                return None;
            }
            HandedRecord::User(user) => {
                received.user = Some(user);
                return None;
            }
            HandedRecord::Shared(user, at, segments) => {
                // A thread sends the config before a user whose snapshot carries it.
                let audiences = received.config.as_ref().filter(|_| segments);
                received.user = at
                    .read(&user)
                    .map(|contact| snapshot(audiences, &user, contact));
                return None;
            }
            HandedRecord::Conversion(c) => return Some(Item::Conversion(c)),
            HandedRecord::Decision(p) => {
                // Positions come after their config (a thread sends it first).
                let keys = p.keys(received.config.as_deref()?)?;
                (p.seq, keys, p.enabled, p.source)
            }
            HandedRecord::Copied(c) => (c.seq, c.keys, c.enabled, c.source),
        };
        // A thread sends a decision's user before it (or with an earlier decision).
        let user = Arc::clone(received.user.as_ref()?);
        let (flag_key, rule_key, variation_key) = keys;
        Some(Item::Decision {
            seq,
            record: DecisionRecord {
                user,
                flag_key,
                enabled,
                source,
                rule_key,
                variation_key,
            },
        })
    }
}

/// One record in a ring. A decision's config and user travel as records of their own, only
/// when they changed on the thread, so the common record is small: every byte of it travels
/// to the worker's core.
pub(crate) enum HandedRecord {
    /// A decision of the ring's current config and user.
    Decision(Positions),
    /// A decision with its keys copied (ready-made records, unknown flags, decisions of
    /// another config), for the ring's current user.
    Copied(Box<CopiedDecision>),
    /// The config of the next [`HandedRecord::Decision`]s.
    Config(Arc<ProjectConfig>),
    /// The user of the next decisions.
    User(Arc<UserSnapshot>),
    /// The user of the next decisions, shared with the caller (a `ClientUserContext`), where
    /// its contact is, and whether its snapshot carries the ring's config for segments: copied
    /// into a snapshot on the worker's side, not on the decide path.
    Shared(Arc<UserContext>, ContactAt, bool),
    /// A conversion (boxed: rare and larger).
    Conversion(Box<ConversionRecord>),
}

/// No rule or variation in [`Positions`].
const NO_POSITION: u32 = u32::MAX;

/// A decision with its stamp and its keys as positions in the ring's config
/// (`ProjectConfig::flag_key_at` ...); rule and variation only for experiment decisions.
pub(crate) struct Positions {
    pub seq: u64,
    flag: u32,
    rule: u32,
    variation: u32,
    pub enabled: bool,
    pub source: RuleSource,
}

/// A decision with its stamp and its keys copied.
pub(crate) struct CopiedDecision {
    pub seq: u64,
    pub keys: KeyStrings,
    pub enabled: bool,
    pub source: RuleSource,
}

/// `(flag, rule, variation)` keys.
pub(crate) type KeyStrings = (CompactString, Option<CompactString>, Option<CompactString>);

/// The record of an engine decision made from `config`: positions when every key it needs
/// has one in `config`, else copied keys. Only experiment decisions need their rule and
/// variation.
#[inline]
pub(crate) fn decision_record(
    seq: u64,
    decision: &Decision<'_>,
    config: &ProjectConfig,
    source: RuleSource,
) -> HandedRecord {
    let experiment = source == RuleSource::Experiment;
    let enabled = decision.enabled();
    let flag = decision
        .flag_index()
        .filter(|_| std::ptr::eq(decision.config(), config));
    let (rule, variation) = if experiment {
        (decision.rule_index(), decision.variation_index())
    } else {
        (None, None)
    };
    // A key without a position (not reached: every rule and variation of a config has one)
    // is copied; the keys are only read then.
    let complete = (rule.is_some() || !experiment || decision.rule_key().is_none())
        && (variation.is_some() || !experiment || decision.variation_key().is_none());
    match flag {
        Some(flag) if complete => HandedRecord::Decision(Positions {
            seq,
            flag,
            rule: rule.unwrap_or(NO_POSITION),
            variation: variation.unwrap_or(NO_POSITION),
            enabled,
            source,
        }),
        _ => HandedRecord::Copied(Box::new(CopiedDecision {
            seq,
            keys: copied_keys(decision, experiment),
            enabled,
            source,
        })),
    }
}

/// The keys of an engine decision, copied.
pub(crate) fn copied_keys(decision: &Decision<'_>, experiment: bool) -> KeyStrings {
    let key = |k: Option<&str>| k.filter(|_| experiment).map(CompactString::new);
    (
        CompactString::new(decision.flag_key()),
        key(decision.rule_key()),
        key(decision.variation_key()),
    )
}

impl Positions {
    /// The keys, read in `config`; `None` when a position is not in it (not reached:
    /// positions come with their config).
    fn keys(&self, config: &ProjectConfig) -> Option<KeyStrings> {
        let at = |i: u32, key_at: fn(&ProjectConfig, u32) -> Option<&str>| match i {
            NO_POSITION => Some(None),
            i => key_at(config, i).map(|k| Some(CompactString::new(k))),
        };
        Some((
            CompactString::new(config.flag_key_at(self.flag)?),
            at(self.rule, ProjectConfig::rule_key_at)?,
            at(self.variation, ProjectConfig::variation_key_at)?,
        ))
    }
}

/// What the worker gets.
pub(crate) enum Item {
    /// A decision and its stamp.
    Decision { seq: u64, record: DecisionRecord },
    /// A conversion.
    Conversion(Box<ConversionRecord>),
}

/// The config and user snapshot a record must carry (`None`: the worker has it).
pub(crate) type Changes = (Option<Arc<ProjectConfig>>, Option<Arc<UserSnapshot>>);

/// The config and user records a decision must come after (`None`: the worker has it).
pub(crate) type UserChanges = (Option<Arc<ProjectConfig>>, Option<HandedRecord>);

/// What a thread remembers of what it sent on its ring (reset by the hand-off after a
/// refusal, so the next record carries everything again).
#[derive(Default)]
pub(crate) struct Sent {
    /// The config of this thread's last engine decision (the worker holds it for the ring).
    config: Option<Arc<ProjectConfig>>,
    /// The user snapshot the worker holds for the ring.
    snapshot: Option<Arc<UserSnapshot>>,
    /// The shared user the worker holds (as a snapshot it made) for the ring.
    shared: Option<Arc<UserContext>>,
    /// The engine user's version the snapshot was copied from, under `config`, and whether it
    /// carries `config` for segments; `None` when it was handed over ready-made.
    copied_from: Option<(u64, bool)>,
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
    /// config and `segments`), else the new one, remembered. `contact` gives the user's
    /// contact identity (a function of the user and of the sync's identity source, which never
    /// changes for one sync's hand-off); it is only called when the user must be copied, and
    /// when it gives `None` nothing is remembered and `None` is returned. With `segments`, the
    /// snapshot carries the config, so the worker updates `OPT_SEGMENTS`.
    #[inline]
    pub(crate) fn engine<'u>(
        &mut self,
        config: &Arc<ProjectConfig>,
        segments: bool,
        user: &'u UserContext,
        contact: impl FnOnce(&'u UserContext) -> Option<&'u str>,
    ) -> Option<Changes> {
        // Compared by address: this memory holds the config, so no other gets its address.
        let same_config = self.config.as_ref().is_some_and(|c| Arc::ptr_eq(c, config));
        let copied_from = Some((user.version(), segments));
        if same_config && self.snapshot.is_some() && self.copied_from == copied_from {
            return Some((None, None));
        }
        let contact = contact(user)?;
        let new_config = (!same_config).then(|| {
            self.config = Some(Arc::clone(config));
            Arc::clone(config)
        });
        let snapshot = snapshot(Some(config).filter(|_| segments), user, contact);
        self.snapshot = Some(Arc::clone(&snapshot));
        self.shared = None;
        self.copied_from = copied_from;
        Some((new_config, Some(snapshot)))
    }

    /// [`engine`](Self::engine) for a user the caller shares in an `Arc`: the user record,
    /// when the worker does not hold this user yet, is the `Arc` itself (one reference count,
    /// no copy); `at` says where its contact is (`None`: no contact, nothing remembered).
    #[inline]
    pub(crate) fn shared(
        &mut self,
        config: &Arc<ProjectConfig>,
        segments: bool,
        user: &Arc<UserContext>,
        at: impl FnOnce(&UserContext) -> Option<ContactAt>,
    ) -> Option<UserChanges> {
        let same_config = self.config.as_ref().is_some_and(|c| Arc::ptr_eq(c, config));
        let copied_from = Some((user.version(), segments));
        let same_user = self.shared.as_ref().is_some_and(|u| Arc::ptr_eq(u, user))
            && self.copied_from == copied_from;
        if same_config && same_user {
            return Some((None, None));
        }
        let at = at(user)?;
        let new_config = (!same_config).then(|| {
            self.config = Some(Arc::clone(config));
            Arc::clone(config)
        });
        // A new config is sent with the user again: its snapshot carries the config.
        self.snapshot = None;
        self.shared = Some(Arc::clone(user));
        self.copied_from = copied_from;
        Some((
            new_config,
            Some(HandedRecord::Shared(Arc::clone(user), at, segments)),
        ))
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
        self.shared = None;
        self.copied_from = None;
        Some(user)
    }
}

/// Where a user's contact identity is: the user id, or the value of the attribute at this
/// position of [`UserContext::attributes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ContactAt(u32);

impl ContactAt {
    const USER_ID: u32 = u32::MAX;

    /// The user id.
    pub(crate) fn user_id() -> Self {
        ContactAt(Self::USER_ID)
    }

    /// The attribute at `position`.
    pub(crate) fn attribute(position: usize) -> Option<Self> {
        u32::try_from(position)
            .ok()
            .filter(|&p| p != Self::USER_ID)
            .map(ContactAt)
    }

    /// The contact in `user` (the user the position was taken from).
    pub(crate) fn read(self, user: &UserContext) -> Option<&str> {
        if self.0 == Self::USER_ID {
            return Some(user.user_id());
        }
        user.attributes().nth(self.0 as usize)?.1.as_str()
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
        AttributeValue::Json(v) => AttrValue::Json(Arc::clone(v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decision_record_is_small() {
        // Written into a ring on every decision and read on the worker's core.
        let size = size_of::<HandedRecord>();
        assert!(size <= 24, "{size}");
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
        let (config, user) = sent.engine(c, segments, u, |_| Some("a@x.io")).unwrap();
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
        let (_, s) = sent
            .engine(&config, true, &changed, |_| Some("a@x.io"))
            .unwrap();
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
    fn the_contact_is_looked_up_only_when_the_user_is_copied() {
        let config = config();
        let u = UserContext::new("u1").with_attribute("email", "a@x.io");
        let mut sent = Sent::default();
        let lookups = std::cell::Cell::new(0);
        fn counting(
            lookups: &std::cell::Cell<u32>,
        ) -> impl for<'u> Fn(&'u UserContext) -> Option<&'u str> + '_ {
            move |u| {
                lookups.set(lookups.get() + 1);
                u.attribute("email").and_then(|v| v.as_str())
            }
        }
        let contact = &counting(&lookups);
        assert!(sent.engine(&config, true, &u, contact).is_some());
        assert!(sent.engine(&config, true, &u, contact).is_some());
        assert_eq!(lookups.get(), 1);
        // No identity: nothing remembered, nothing to send; the user before stays current.
        let anonymous = UserContext::new("u2");
        assert!(sent.engine(&config, true, &anonymous, contact).is_none());
        assert_eq!(
            sent.engine(&config, true, &u, contact)
                .map(|(c, u)| (c.is_some(), u.is_some())),
            Some((false, false))
        );
        // A new config with no identity: the config is not remembered either.
        let other = tests::config();
        assert!(sent.engine(&other, true, &anonymous, contact).is_none());
        assert_eq!(sends(&mut sent, &other, true, &u), (true, true));
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
    fn a_shared_user_travels_as_its_arc_and_is_copied_on_the_worker_side() {
        let (config, other_config) = (config(), config());
        let u = Arc::new(
            UserContext::new("u1")
                .with_attribute("age", 30i64)
                .with_attribute("email", "a@x.io"),
        );
        let identity = super::super::config::Identity::new(
            &super::super::config::IdentitySource::Attribute("email".into()),
        );
        let mut sent = Sent::default();
        let mut received = Received::default();
        let send = |sent: &mut Sent,
                    received: &mut Received,
                    c: &Arc<ProjectConfig>,
                    u: &Arc<UserContext>| {
            let (config, user) = sent.shared(c, true, u, |u| identity.contact_at(u))?;
            let flags = (config.is_some(), user.is_some());
            for record in config.map(HandedRecord::Config).into_iter().chain(user) {
                assert!(BrevoHanded::resolve(received, record).is_none());
            }
            Some(flags)
        };
        assert_eq!(
            send(&mut sent, &mut received, &config, &u),
            Some((true, true))
        );
        let held = received.user.clone().expect("the worker copied the user");
        assert_eq!(&*held.contact, "a@x.io");
        assert_eq!(held.attributes[0].1, AttrValue::Int(30));
        assert!(held.audiences.is_some());
        // The same Arc again: nothing; another user in turn, then the first again: sent.
        assert_eq!(
            send(&mut sent, &mut received, &config, &u),
            Some((false, false))
        );
        let v = Arc::new(UserContext::new("u2").with_attribute("email", "b@x.io"));
        assert_eq!(
            send(&mut sent, &mut received, &config, &v),
            Some((false, true))
        );
        assert_eq!(&*received.user.clone().expect("user").contact, "b@x.io");
        assert_eq!(
            send(&mut sent, &mut received, &config, &u),
            Some((false, true))
        );
        // Another config: both (the snapshot names its config).
        assert_eq!(
            send(&mut sent, &mut received, &other_config, &u),
            Some((true, true))
        );
        // No contact: skipped, nothing remembered.
        let anonymous = Arc::new(UserContext::new("u3"));
        assert_eq!(
            send(&mut sent, &mut received, &other_config, &anonymous),
            None
        );
        assert_eq!(
            send(&mut sent, &mut received, &other_config, &u),
            Some((false, false))
        );
        // A copied user after a shared one is copied, and the other way round.
        assert_eq!(sends(&mut sent, &other_config, true, &u), (false, true));
        assert_eq!(
            send(&mut sent, &mut received, &other_config, &u),
            Some((false, true))
        );
    }

    #[test]
    fn contact_positions_read_the_contact_back() {
        let u = UserContext::new("id-1")
            .with_attribute("a", 1i64)
            .with_attribute("email", "a@x.io");
        let at = |source: &str| {
            let source = match source {
                "" => super::super::config::IdentitySource::UserId,
                name => super::super::config::IdentitySource::Attribute(name.into()),
            };
            super::super::config::Identity::new(&source).contact_at(&u)
        };
        assert_eq!(at("email").and_then(|p| p.read(&u)), Some("a@x.io"));
        assert_eq!(at("").and_then(|p| p.read(&u)), Some("id-1"));
        assert_eq!(at("a"), None, "not a string");
        assert_eq!(at("missing"), None);
    }

    /// The keys of a record as the worker reads them, in `config`.
    fn keys_of(record: HandedRecord, config: &ProjectConfig) -> Option<KeyStrings> {
        match record {
            HandedRecord::Decision(p) => p.keys(config),
            HandedRecord::Copied(c) => Some(c.keys),
            _ => None,
        }
    }

    #[test]
    fn keys_travel_as_positions_in_the_config_they_came_from() {
        let (config, other_config) = (config(), config());
        let decider = Decider::new(&config);
        let vip = UserContext::new("u1").with_attribute("plan", "vip");
        let experiment = decider.decide(&vip, "checkout", DecideOptions::NONE);
        assert_eq!(experiment.source(), DecisionSource::FeatureTest);
        let want = (
            CompactString::new("checkout"),
            Some(CompactString::new("exp_checkout")),
            Some(CompactString::new("treatment")),
        );
        let record = decision_record(1, &experiment, &config, RuleSource::Experiment);
        assert!(matches!(&record, HandedRecord::Decision(p) if p.rule != NO_POSITION));
        assert_eq!(keys_of(record, &config), Some(want.clone()));
        // Rule and variation only for experiment decisions.
        let record = decision_record(1, &experiment, &config, RuleSource::Rollout);
        assert!(matches!(&record, HandedRecord::Decision(p) if p.rule == NO_POSITION));
        assert_eq!(keys_of(record, &config), Some((want.0.clone(), None, None)));
        // A decision from another config than the one named: copied.
        let record = decision_record(1, &experiment, &other_config, RuleSource::Experiment);
        assert!(matches!(record, HandedRecord::Copied(_)));
        assert_eq!(keys_of(record, &other_config), Some(want));
        // An unknown flag: copied.
        let unknown = decider.decide(&vip, "no_such_flag", DecideOptions::NONE);
        let record = decision_record(1, &unknown, &config, RuleSource::Rollout);
        assert!(matches!(record, HandedRecord::Copied(_)));
        assert_eq!(keys_of(record, &config).unwrap().0, "no_such_flag");
        // Positions outside the config: nothing.
        let far = Positions {
            seq: 1,
            flag: 1_000,
            rule: NO_POSITION,
            variation: NO_POSITION,
            enabled: true,
            source: RuleSource::Rollout,
        };
        assert!(far.keys(&config).is_none());
    }

    #[test]
    fn the_owner_fills_in_what_records_left_out() {
        let config = config();
        let decider = Decider::new(&config);
        let vip = UserContext::new("u1").with_attribute("plan", "vip");
        let decision = decider.decide(&vip, "checkout", DecideOptions::NONE);
        let u = snapshot(None, &vip, "a@x.io");
        let record = |seq| decision_record(seq, &decision, &config, RuleSource::Experiment);
        let mut received = Received::default();
        // Positions before their config, or a decision before any user: nothing (not reached:
        // threads send them first).
        assert!(BrevoHanded::resolve(&mut received, record(1)).is_none());
        assert!(
            BrevoHanded::resolve(&mut received, HandedRecord::Config(Arc::clone(&config)))
                .is_none()
        );
        assert!(BrevoHanded::resolve(&mut received, record(2)).is_none());
        assert!(BrevoHanded::resolve(&mut received, HandedRecord::User(Arc::clone(&u))).is_none());
        let first = BrevoHanded::resolve(&mut received, record(3));
        let second = BrevoHanded::resolve(&mut received, record(4));
        for (item, want) in [(first, 3), (second, 4)] {
            let Some(Item::Decision { seq, record }) = item else {
                panic!("expected a decision");
            };
            assert_eq!(seq, want);
            assert!(Arc::ptr_eq(&record.user, &u));
            assert_eq!(record.flag_key, "checkout");
            assert_eq!(record.rule_key.as_deref(), Some("exp_checkout"));
            assert_eq!(record.variation_key.as_deref(), Some("treatment"));
        }
    }
}
