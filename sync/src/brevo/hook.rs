//! The engine side: `DecisionSink` for [`BrevoSink`] and audience evaluation for `ProjectConfig`.
//!
//! On the decide path only a few keys are copied: the user snapshot (identity + attributes) is
//! copied once per user version and config on each thread (see `super::handed`), so a user
//! deciding again costs a version comparison, the contact lookup, the flag key (and for
//! experiments the rule and variation keys, inline strings) and one push into the thread's
//! ring.

use std::sync::Arc;
use std::time::SystemTime;

use compact_str::CompactString;
use flagbridge_engine::{
    AttributeValue, Conversion, Decision, DecisionSource, ProjectConfig, UserContext,
};

use super::config::IdentitySource;
use super::handed::{HandedDecision, SentUser};
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

/// The contact identity of a user, per the configured source.
fn contact_of<'u>(source: &IdentitySource, user: &'u UserContext) -> Option<&'u str> {
    let contact = match source {
        IdentitySource::Attribute(name) => user.attribute(name)?.as_str()?,
        IdentitySource::UserId => user.user_id(),
    };
    (!contact.is_empty()).then_some(contact)
}

/// The record of one engine decision, with the user snapshot `user` (`None`: same as before).
fn handed(seq: u64, user: Option<Arc<UserSnapshot>>, decision: &Decision<'_>) -> HandedDecision {
    let source = match decision.source() {
        DecisionSource::FeatureTest => RuleSource::Experiment,
        DecisionSource::Rollout => RuleSource::Rollout,
        DecisionSource::Holdout => RuleSource::Holdout,
    };
    // Only experiment decisions need their rule and variation (EXPERIMENT_* attributes).
    let experiment = source == RuleSource::Experiment;
    let key = |k: Option<&str>| k.filter(|_| experiment).map(CompactString::new);
    HandedDecision {
        seq,
        user,
        flag_key: CompactString::new(decision.flag_key()),
        enabled: decision.enabled(),
        source,
        rule_key: key(decision.rule_key()),
        variation_key: key(decision.variation_key()),
    }
}

impl BrevoSink {
    /// Queues one engine decision, as the `DecisionSink` impl does (with
    /// `audiences: Some(config)`); `audiences: None` leaves `OPT_SEGMENTS` untouched by this
    /// decision. `false` when dropped: no contact identity (`skipped_no_identity`), queue full
    /// or sync stopped (all counted). The cheapest way in for sinks that wrap this one: the
    /// user is copied only when it changed since this thread's previous record.
    pub fn record_engine_decision(
        &self,
        audiences: Option<&Arc<ProjectConfig>>,
        user: &UserContext,
        decision: &Decision<'_>,
    ) -> bool {
        let Some(contact) = self.contact(user) else {
            self.count_skipped();
            return false;
        };
        self.shared.push_decision(|seq, sent: &mut SentUser| {
            handed(seq, sent.engine_user(audiences, user, contact), decision)
        })
    }

    /// The user's contact identity per this sync's identity source (`None`: the user's
    /// decisions and conversions are skipped).
    pub fn contact<'u>(&self, user: &'u UserContext) -> Option<&'u str> {
        contact_of(&self.shared.identity_source, user)
    }

    /// The queue record of one engine decision, for sinks that need it before calling
    /// [`record_decision`](Self::record_decision); it copies the user every time, so
    /// prefer [`record_engine_decision`](Self::record_engine_decision) when the record itself
    /// is not needed. `audiences: None` leaves `OPT_SEGMENTS` untouched by this decision.
    /// `None`, counted in `skipped_no_identity`, when the user has no contact identity.
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
        let snapshot = SentUser::default().engine_user(audiences, user, contact)?;
        let d = handed(0, Some(snapshot), decision);
        Some(DecisionRecord {
            user: d.user?,
            flag_key: d.flag_key,
            enabled: d.enabled,
            source: d.source,
            rule_key: d.rule_key,
            variation_key: d.variation_key,
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
        self.record_engine_decision(Some(config), user, decision);
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
        let by_attr = IdentitySource::Attribute("email".into());
        assert_eq!(contact_of(&by_attr, &u), Some("a@x.io"));
        assert_eq!(contact_of(&IdentitySource::UserId, &u), Some("u1"));
        let none = UserContext::new("u2").with_attribute("email", 5i64);
        assert_eq!(contact_of(&by_attr, &none), None);
        assert_eq!(contact_of(&by_attr, &UserContext::new("u3")), None);
    }
}
