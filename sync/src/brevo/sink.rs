//! [`BrevoSink`]: what the decide path calls (the `DecisionSink` hook and the direct
//! `record_*` entry points), and nothing else.
//!
//! On the decide path little is copied: the user snapshot (identity + attributes) once per
//! user version and config on each thread, the keys as positions in the config (see
//! `super::ring`); so a user deciding again costs a version comparison, a stamp (one load
//! while the thread decides alone) and one small push into the thread's ring; the contact is
//! looked up only when the user is copied.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use compact_str::CompactString;
use flagbridge_engine::{Conversion, Decision, DecisionSource, ProjectConfig, UserContext};

use super::config::IdentitySource;
use super::record::{ConversionRecord, DecisionRecord, RuleSource};
use super::ring::{
    copied_keys, decision_record, snapshot, CopiedDecision, HandedRecord, Sent, UserChanges,
};
use super::shared::Shared;
use crate::sink::DecisionSink;

/// The cheap, cloneable entry point for the decide path. Implements the `DecisionSink` hook.
#[derive(Clone)]
pub struct BrevoSink {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for BrevoSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrevoSink").finish_non_exhaustive()
    }
}

impl BrevoSink {
    /// Queues one decision; `false` when dropped (queue full or sync stopped, both counted).
    /// Consecutive records of one thread that share their user `Arc` hand it over once.
    pub fn record_decision(&self, record: DecisionRecord) -> bool {
        self.shared.push_decision(|stamps, sent, out| {
            if let Some(user) = sent.ready_user(record.user) {
                out.push(HandedRecord::User(user));
            }
            out.push(HandedRecord::Copied(Box::new(CopiedDecision {
                seq: stamps.take(),
                keys: (record.flag_key, record.rule_key, record.variation_key),
                enabled: record.enabled,
                source: record.source,
            })));
        })
    }

    /// Queues one conversion; `false` when dropped (counted).
    pub fn record_conversion(&self, record: ConversionRecord) -> bool {
        self.shared.push_conversion(record)
    }

    /// Counts a decision or conversion skipped because the user has no contact identity.
    pub fn count_skipped(&self) {
        self.shared
            .producer
            .skipped_no_identity
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Where the contact identity comes from.
    pub fn identity_source(&self) -> &IdentitySource {
        &self.shared.identity_source
    }
}

/// The rule source of an engine decision.
fn rule_source(decision: &Decision<'_>) -> RuleSource {
    match decision.source() {
        DecisionSource::FeatureTest | DecisionSource::Experiment => RuleSource::Experiment,
        DecisionSource::Rollout => RuleSource::Rollout,
        DecisionSource::Holdout => RuleSource::Holdout,
    }
}

impl BrevoSink {
    /// Queues one engine decision made from `config`, as the `DecisionSink` impl does (with
    /// `segments: true`); `segments: false` leaves `OPT_SEGMENTS` untouched by this decision.
    /// `false` when dropped: no contact identity (`skipped_no_identity`), queue full or sync
    /// stopped (all counted; with a full ring or a stopped sync the identity is not looked at,
    /// so the drop counts there). The cheapest way in for sinks that wrap this one: the user is
    /// copied only when it changed since this thread's previous record, and the keys travel
    /// as positions in `config`.
    pub fn record_engine_decision(
        &self,
        config: &Arc<ProjectConfig>,
        segments: bool,
        user: &UserContext,
        decision: &Decision<'_>,
    ) -> bool {
        let identity = &self.shared.identity;
        self.push_engine_decision(config, decision, |sent| {
            // The contact is looked up only when the user is copied (a new user version).
            let (config, user) = sent.engine(config, segments, user, |u| identity.contact_of(u))?;
            Some((config, user.map(HandedRecord::User)))
        })
    }

    /// [`record_engine_decision`](Self::record_engine_decision) of a user shared in an `Arc`
    /// (a `ClientUserContext`): when the user changed on this thread, the record carries the
    /// `Arc` and the worker's side copies the user, so users deciding in turn cost no copy on
    /// the decide path.
    pub(crate) fn record_shared_decision(
        &self,
        config: &Arc<ProjectConfig>,
        segments: bool,
        user: &Arc<UserContext>,
        decision: &Decision<'_>,
    ) -> bool {
        let identity = &self.shared.identity;
        self.push_engine_decision(config, decision, |sent| {
            sent.shared(config, segments, user, |u| identity.contact_at(u))
        })
    }

    /// Pushes a decision of `config` after the config and user records `changes` gives
    /// (`None`: the user has no contact identity; skipped and counted).
    #[inline]
    fn push_engine_decision(
        &self,
        config: &Arc<ProjectConfig>,
        decision: &Decision<'_>,
        changes: impl FnOnce(&mut Sent) -> Option<UserChanges>,
    ) -> bool {
        let source = rule_source(decision);
        let mut skipped = false;
        let queued = self.shared.push_decision(|stamps, sent, out| {
            let Some((config_change, user_change)) = changes(sent) else {
                skipped = true;
                return;
            };
            if let Some(config) = config_change {
                out.push(HandedRecord::Config(config));
            }
            if let Some(user) = user_change {
                out.push(user);
            }
            let seq = stamps.take();
            out.push(decision_record(seq, decision, config, source));
        });
        if skipped {
            self.count_skipped();
        }
        queued
    }

    /// The user's contact identity per this sync's identity source (`None`: the user's
    /// decisions and conversions are skipped).
    pub fn contact<'u>(&self, user: &'u UserContext) -> Option<&'u str> {
        self.shared.identity.contact_of(user)
    }

    /// The queue record of one engine decision, for sinks that need it before calling
    /// [`record_decision`](Self::record_decision); it copies the user and the keys every
    /// time, so prefer [`record_engine_decision`](Self::record_engine_decision) when the
    /// record itself is not needed. `audiences: None` leaves `OPT_SEGMENTS` untouched by this
    /// decision. `None`, counted in `skipped_no_identity`, when the user has no contact
    /// identity.
    pub fn decision_record(
        &self,
        audiences: Option<&Arc<ProjectConfig>>,
        user: &UserContext,
        decision: &Decision<'_>,
    ) -> Option<DecisionRecord> {
        let Some(contact) = self.contact(user) else {
            self.count_skipped();
            return None;
        };
        let source = rule_source(decision);
        let (flag_key, rule_key, variation_key) =
            copied_keys(decision, source == RuleSource::Experiment);
        Some(DecisionRecord {
            user: snapshot(audiences, user, contact),
            flag_key,
            enabled: decision.enabled(),
            source,
            rule_key,
            variation_key,
        })
    }

    /// The queue record of one conversion; `None` (counted) without a contact identity.
    pub fn conversion_record(
        &self,
        user: &UserContext,
        conversion: &Conversion<'_>,
        tags: Option<&serde_json::Map<String, serde_json::Value>>,
    ) -> Option<ConversionRecord> {
        let Some(contact) = self.contact(user) else {
            self.count_skipped();
            return None;
        };
        Some(ConversionRecord {
            contact: contact.into(),
            event_key: CompactString::new(conversion.event_key()),
            tags: tags.cloned(),
            at: SystemTime::now(),
        })
    }
}

impl DecisionSink for BrevoSink {
    fn on_decision(
        &self,
        config: &Arc<ProjectConfig>,
        user: &UserContext,
        decision: &Decision<'_>,
    ) {
        self.record_engine_decision(config, true, user, decision);
    }

    fn on_shared_decision(
        &self,
        config: &Arc<ProjectConfig>,
        user: &Arc<UserContext>,
        decision: &Decision<'_>,
    ) {
        self.record_shared_decision(config, true, user, decision);
    }

    fn on_conversion(
        &self,
        _config: &Arc<ProjectConfig>,
        user: &UserContext,
        conversion: &Conversion<'_>,
        tags: Option<&serde_json::Map<String, serde_json::Value>>,
    ) {
        if let Some(record) = self.conversion_record(user, conversion, tags) {
            self.record_conversion(record);
        }
    }
}
