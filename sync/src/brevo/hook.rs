//! The engine side: `DecisionSink` for [`BrevoSink`] and audience evaluation for `ProjectConfig`.
//!
//! On the decide path only a few keys are copied: the user snapshot (identity + attributes) is
//! built once per user and reused through a thread-local while the same user keeps deciding
//! (decide-all, or a user deciding several flags), so a decision usually costs an `Arc` clone
//! of the snapshot and of the config, three short inline strings and one queue push.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::SystemTime;

use compact_str::CompactString;
use flagbridge_engine::{
    AttributeValue, Conversion, Decision, DecisionSource, ProjectConfig, UserContext,
};

use super::config::IdentitySource;
use super::handle::BrevoSink;
use super::record::{
    AttrValue, AudienceSource, ConversionRecord, DecisionRecord, RuleSource, UserSnapshot,
};
use crate::sink::DecisionSink;

thread_local! {
    /// The last snapshot made on this thread, with the identity source it was made for.
    static LAST_USER: RefCell<Option<(IdentitySource, Arc<UserSnapshot>)>> =
        const { RefCell::new(None) };
}

fn same_value(a: &AttrValue, b: &AttributeValue) -> bool {
    match (a, b) {
        (AttrValue::String(x), AttributeValue::String(y)) => **x == **y,
        (AttrValue::Bool(x), AttributeValue::Bool(y)) => x == y,
        (AttrValue::Int(x), AttributeValue::Int(y)) => x == y,
        (AttrValue::Float(x), AttributeValue::Float(y)) => x.to_bits() == y.to_bits(),
        (AttrValue::Null, AttributeValue::Null) => true,
        _ => false,
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

fn engine_value(v: &AttrValue) -> AttributeValue {
    match v {
        AttrValue::String(s) => AttributeValue::String(s.to_string()),
        AttrValue::Bool(b) => AttributeValue::Bool(*b),
        AttrValue::Int(i) => AttributeValue::Int(*i),
        AttrValue::Float(f) => AttributeValue::Float(*f),
        AttrValue::Null => AttributeValue::Null,
    }
}

fn matches(
    snapshot: &UserSnapshot,
    config: Option<&Arc<ProjectConfig>>,
    user: &UserContext,
) -> bool {
    // The snapshot holds its config, so the address comparison cannot be fooled by reuse.
    let same_config = match (&snapshot.audiences, config) {
        (Some(a), Some(c)) => std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(c)),
        (None, None) => true,
        _ => false,
    };
    if !same_config || *snapshot.user_id != *user.user_id() {
        return false;
    }
    let mut theirs = user.attributes();
    for (key, value) in snapshot.attributes.iter() {
        match theirs.next() {
            Some((k, v)) if **key == *k && same_value(value, v) => {}
            _ => return false,
        }
    }
    theirs.next().is_none()
}

/// The contact identity of a user, per the configured source.
fn contact_of<'u>(source: &IdentitySource, user: &'u UserContext) -> Option<&'u str> {
    let contact = match source {
        IdentitySource::Attribute(name) => user.attribute(name)?.as_str()?,
        IdentitySource::UserId => user.user_id(),
    };
    (!contact.is_empty()).then_some(contact)
}

/// The user's snapshot, reused while the same thread keeps deciding for an unchanged user;
/// `None` when the user has no contact identity. The contact is a function of the user and
/// the identity source, so a reused snapshot needs no identity lookup.
fn snapshot(
    config: Option<&Arc<ProjectConfig>>,
    user: &UserContext,
    source: &IdentitySource,
) -> Option<Arc<UserSnapshot>> {
    LAST_USER.with(|cell| {
        let mut last = cell.borrow_mut();
        if let Some((last_source, s)) = last.as_ref() {
            if last_source == source && matches(s, config, user) {
                return Some(Arc::clone(s));
            }
        }
        let contact = contact_of(source, user)?;
        let s = Arc::new(UserSnapshot {
            user_id: user.user_id().into(),
            contact: contact.into(),
            attributes: user
                .attributes()
                .map(|(k, v)| (Box::from(k), copy_value(v)))
                .collect(),
            audiences: config.map(|c| Arc::clone(c) as Arc<dyn AudienceSource>),
        });
        *last = Some((source.clone(), Arc::clone(&s)));
        Some(s)
    })
}

impl BrevoSink {
    /// The queue record of one engine decision, built as cheaply as the `DecisionSink` impl
    /// does it (the user snapshot is reused while the same user keeps deciding on this
    /// thread). `audiences: None` leaves `OPT_SEGMENTS` untouched by this decision. `None`,
    /// counted in `skipped_no_identity`, when the user has no contact identity. For sinks that
    /// wrap this one (filtering by source, counting) and then call
    /// [`record_decision`](Self::record_decision).
    pub fn decision_record(
        &self,
        audiences: Option<&Arc<ProjectConfig>>,
        user: &UserContext,
        decision: &Decision<'_>,
    ) -> Option<DecisionRecord> {
        let Some(user) = snapshot(audiences, user, &self.shared.identity_source) else {
            self.count_skipped();
            return None;
        };
        let source = match decision.source() {
            DecisionSource::FeatureTest => RuleSource::Experiment,
            DecisionSource::Rollout => RuleSource::Rollout,
            DecisionSource::Holdout => RuleSource::Holdout,
        };
        // Only experiment decisions need their rule and variation (EXPERIMENT_* attributes).
        let experiment = source == RuleSource::Experiment;
        let key = |k: Option<&str>| k.filter(|_| experiment).map(CompactString::new);
        Some(DecisionRecord {
            user,
            flag_key: CompactString::new(decision.flag_key()),
            enabled: decision.enabled(),
            source,
            rule_key: key(decision.rule_key()),
            variation_key: key(decision.variation_key()),
        })
    }

    /// The queue record of one conversion; `None` (counted) without a contact identity.
    pub fn conversion_record(
        &self,
        user: &UserContext,
        conversion: &Conversion<'_>,
        tags: Option<&serde_json::Map<String, serde_json::Value>>,
    ) -> Option<ConversionRecord> {
        let Some(contact) = contact_of(&self.shared.identity_source, user) else {
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
        if let Some(record) = self.decision_record(Some(config), user, decision) {
            self.record_decision(record);
        }
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

    const DATAFILE: &str = include_str!("../../tests/data/brevo_small_datafile.json");

    #[test]
    fn snapshot_is_reused_only_for_the_same_user() {
        let u = UserContext::new("u1")
            .with_attribute("email", "a@x.io")
            .with_attribute("age", 30i64);
        let config = Arc::new(ProjectConfig::parse(DATAFILE).unwrap());
        let email = IdentitySource::Attribute("email".into());
        let a = snapshot(Some(&config), &u, &email).unwrap();
        let b = snapshot(Some(&config), &u, &email).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let changed = u.clone().with_attribute("age", 31i64);
        let c = snapshot(Some(&config), &changed, &email).unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(c.attributes[1].1, AttrValue::Int(31));
        let more = changed.clone().with_attribute("plan", "vip");
        assert_eq!(
            snapshot(Some(&config), &more, &email)
                .unwrap()
                .attributes
                .len(),
            3
        );
        let other = UserContext::new("u2").with_attribute("email", "a@x.io");
        assert_eq!(
            &*snapshot(Some(&config), &other, &email).unwrap().user_id,
            "u2"
        );
        let other_config = Arc::new(ProjectConfig::parse(DATAFILE).unwrap());
        let x = snapshot(Some(&config), &u, &email).unwrap();
        assert!(!Arc::ptr_eq(
            &x,
            &snapshot(Some(&other_config), &u, &email).unwrap()
        ));
        let without = snapshot(None, &u, &email).unwrap();
        assert!(without.audiences.is_none());
        assert!(Arc::ptr_eq(&without, &snapshot(None, &u, &email).unwrap()));
        // Another identity source: another snapshot, with its own contact.
        let by_id = snapshot(None, &u, &IdentitySource::UserId).unwrap();
        assert!(!Arc::ptr_eq(&without, &by_id));
        assert_eq!(&*by_id.contact, "u1");
        assert_eq!(&*snapshot(None, &u, &email).unwrap().contact, "a@x.io");
        // No identity: none, and the cached snapshot is not handed out for it.
        let no_email = UserContext::new("u1").with_attribute("age", 30i64);
        assert!(snapshot(None, &no_email, &email).is_none());
    }

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
