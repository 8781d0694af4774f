//! The engine side: `DecisionSink` for [`BrevoSink`] and audience evaluation for `ProjectConfig`.
//!
//! On the decide path little is copied: the user snapshot (identity + attributes) once per
//! user version and config on each thread, the keys as positions in the config (see
//! `super::handed`); so a user deciding again costs a version comparison, a stamp (one load
//! while the thread decides alone) and one small push into the thread's ring; the contact is
//! looked up only when the user is copied.

use std::sync::Arc;
use std::time::SystemTime;

use compact_str::CompactString;
use flagbridge_engine::{
    AttributeKey, AttributeValue, Conversion, Decision, DecisionSource, ProjectConfig, UserContext,
};

use super::config::IdentitySource;
use super::handed::{copied_keys, decision_record, snapshot, HandedRecord};
use super::handle::BrevoSink;
use super::record::{
    AttrValue, AudienceSource, ConversionRecord, DecisionRecord, RuleSource, UserSnapshot,
};
use crate::sink::DecisionSink;

fn engine_value(v: &AttrValue) -> AttributeValue {
    match v {
        AttrValue::String(s) => AttributeValue::String(s.to_string()),
        AttrValue::Bool(b) => AttributeValue::Bool(*b),
        AttrValue::Int(i) => AttributeValue::Int(*i),
        AttrValue::Float(f) => AttributeValue::Float(*f),
        AttrValue::Null => AttributeValue::Null,
    }
}

/// Where contact identities come from, ready for lookups on the decide path.
pub(crate) enum Identity {
    /// A user attribute (its name hashed once).
    Attribute(AttributeKey),
    /// The user id.
    UserId,
}

impl Identity {
    pub(crate) fn new(source: &IdentitySource) -> Self {
        match source {
            IdentitySource::Attribute(name) => {
                Identity::Attribute(AttributeKey::new(name.as_str()))
            }
            IdentitySource::UserId => Identity::UserId,
        }
    }

    /// The contact identity of a user; `None` when missing, not a string, or empty.
    #[inline]
    pub(crate) fn contact_of<'u>(&self, user: &'u UserContext) -> Option<&'u str> {
        let contact = match self {
            Identity::Attribute(key) => user.attribute_by_key(key)?.as_str()?,
            Identity::UserId => user.user_id(),
        };
        (!contact.is_empty()).then_some(contact)
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
        let source = rule_source(decision);
        let identity = &self.shared.identity;
        let mut skipped = false;
        let queued = self.shared.push_decision(|stamps, sent, out| {
            // The contact is looked up only when the user is copied (a new user version).
            let Some((config_change, user_change)) =
                sent.engine(config, segments, user, |u| identity.contact_of(u))
            else {
                skipped = true;
                return;
            };
            if let Some(config) = config_change {
                out.push(HandedRecord::Config(config));
            }
            if let Some(user) = user_change {
                out.push(HandedRecord::User(user));
            }
            let seq = stamps.take(&mut sent.stamp);
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

impl AudienceSource for ProjectConfig {
    /// Names of the datafile audiences whose conditions evaluate to true for the user
    /// (unknown counts as no match).
    fn matching_audiences(&self, user: &UserSnapshot) -> Vec<String> {
        let mut context = UserContext::new(&*user.user_id);
        for (key, value) in user.attributes.iter() {
            context.set_attribute(&**key, engine_value(value));
        }
        self.audiences()
            .filter(|(id, _)| self.evaluate_audience(id, &context) == Some(true))
            .map(|(_, name)| name.to_string())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_sources() {
        let u = UserContext::new("u1").with_attribute("email", "a@x.io");
        let by_attr = Identity::new(&IdentitySource::Attribute("email".into()));
        let by_id = Identity::new(&IdentitySource::UserId);
        assert_eq!(by_attr.contact_of(&u), Some("a@x.io"));
        assert_eq!(by_id.contact_of(&u), Some("u1"));
        let none = UserContext::new("u2").with_attribute("email", 5i64);
        assert_eq!(by_attr.contact_of(&none), None);
        assert_eq!(by_attr.contact_of(&UserContext::new("u3")), None);
        assert_eq!(
            by_attr.contact_of(&UserContext::new("u4").with_attribute("email", "")),
            None
        );
        assert_eq!(by_id.contact_of(&UserContext::new("")), None);
    }
}
