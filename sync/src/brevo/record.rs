//! What the decide path hands to the Brevo worker: small, owned, cheap to build.

use std::sync::Arc;
use std::time::SystemTime;

use compact_str::CompactString;
use flagbridge_engine::{AttributeValue, ProjectConfig, UserContext};

/// A user attribute value, as copied from the user context.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    /// A string (inline up to 24 bytes: no allocation for usual values).
    String(CompactString),
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// JSON null.
    Null,
    /// A JSON object or array (present for `exists` audience conditions only).
    Json(Arc<serde_json::Value>),
}

/// The user as the worker needs it: contact identity, attributes and the config the user's
/// decisions came from (both for `OPT_SEGMENTS`).
///
/// Shared by every decision of one user in a row (decide-all makes one snapshot), so a
/// decision carries one `Arc`, not one per field.
#[derive(Clone)]
pub struct UserSnapshot {
    /// The Optimizely user id.
    pub user_id: CompactString,
    /// The Brevo contact identity (email or ext_id value).
    pub contact: CompactString,
    /// The user's attributes in insertion order. Strings up to 24 bytes are inline, so a
    /// usual snapshot costs two allocations (the `Arc` and this list).
    pub attributes: Box<[(CompactString, AttrValue)]>,
    /// The config the decisions were made from; `None` leaves the contact's segments as they are.
    pub audiences: Option<Arc<dyn AudienceSource>>,
}

impl std::fmt::Debug for UserSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserSnapshot")
            .field("user_id", &self.user_id)
            .field("contact", &self.contact)
            .field("attributes", &self.attributes)
            .field("audiences", &self.audiences.is_some())
            .finish()
    }
}

/// Evaluates the datafile audiences a user matches (in the worker, never on the decide path).
///
/// Implemented for the engine's `ProjectConfig`; tests use their own.
pub trait AudienceSource: Send + Sync {
    /// Names of the audiences whose conditions the user's attributes match.
    fn matching_audiences(&self, user: &UserSnapshot) -> Vec<String>;
}

/// Where a decision came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleSource {
    /// An experiment rule (`feature-test`).
    Experiment,
    /// A delivery rule (`rollout`), or no rule.
    Rollout,
    /// A holdout.
    Holdout,
}

/// One flag decision.
#[derive(Clone)]
pub struct DecisionRecord {
    /// The user.
    pub user: Arc<UserSnapshot>,
    /// Flag key.
    pub flag_key: CompactString,
    /// Whether the flag is enabled for the user.
    pub enabled: bool,
    /// Source of the decision.
    pub source: RuleSource,
    /// Rule key, when a rule matched.
    pub rule_key: Option<CompactString>,
    /// Variation key, when a variation was chosen.
    pub variation_key: Option<CompactString>,
}

impl std::fmt::Debug for DecisionRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecisionRecord")
            .field("contact", &self.user.contact)
            .field("flag_key", &self.flag_key)
            .field("enabled", &self.enabled)
            .field("source", &self.source)
            .field("rule_key", &self.rule_key)
            .field("variation_key", &self.variation_key)
            .finish_non_exhaustive()
    }
}

/// One conversion (`track`).
#[derive(Debug, Clone)]
pub struct ConversionRecord {
    /// The Brevo contact identity.
    pub contact: Box<str>,
    /// Optimizely event key.
    pub event_key: CompactString,
    /// Event tags, sent as `event_properties`.
    pub tags: Option<serde_json::Map<String, serde_json::Value>>,
    /// When it happened.
    pub at: SystemTime,
}

fn engine_value(v: &AttrValue) -> AttributeValue {
    match v {
        AttrValue::String(s) => AttributeValue::String(s.to_string()),
        AttrValue::Bool(b) => AttributeValue::Bool(*b),
        AttrValue::Int(i) => AttributeValue::Int(*i),
        AttrValue::Float(f) => AttributeValue::Float(*f),
        AttrValue::Null => AttributeValue::Null,
        AttrValue::Json(v) => AttributeValue::Json(Arc::clone(v)),
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
