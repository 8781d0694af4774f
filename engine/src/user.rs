//! The user a decision is made for: id, attributes, qualified segments and forced decisions.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Serialize, Serializer};

/// Attribute key whose string value replaces the user id for bucketing.
pub const BUCKETING_ID_ATTRIBUTE: &str = "$opt_bucketing_id";
/// Attribute key the JavaScript SDK reads as a sticky-bucketing map (see [`UserContext::set_experiment_bucket_map`]).
pub const EXPERIMENT_BUCKET_MAP_ATTRIBUTE: &str = "$opt_experiment_bucket_map";

/// One user attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum AttributeValue {
    /// A string.
    String(String),
    /// A boolean (never equal to a number).
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// An explicit null (present but unknown to every matcher except `exists`, which says false).
    Null,
    /// A JSON object or array, as JavaScript's SDK keeps one: `exists` says true, every other
    /// matcher unknown; left out of events; sent as it is in a CMAB request. Only
    /// [`AttributeValue::from_json`] makes one.
    Json(std::sync::Arc<serde_json::Value>),
}

/// 2^53: the largest magnitude the SDKs accept as a number.
pub(crate) const MAX_SAFE_NUMBER: f64 = 9_007_199_254_740_992.0;

impl AttributeValue {
    /// The value as a JavaScript number, when it is one (int or float, never bool).
    pub fn as_number(&self) -> Option<f64> {
        match self {
            AttributeValue::Int(i) => Some(*i as f64),
            AttributeValue::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// The value as a number the SDKs accept: finite and |x| <= 2^53 (integers checked exactly).
    #[inline]
    pub(crate) fn as_safe_number(&self) -> Option<f64> {
        match self {
            AttributeValue::Int(i) => (i.unsigned_abs() <= 1 << 53).then_some(*i as f64),
            AttributeValue::Float(f) => (f.abs() <= MAX_SAFE_NUMBER).then_some(*f),
            _ => None,
        }
    }

    /// The value as a string, when it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            AttributeValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The value as JSON (a float with an integral value becomes an integer, as in JavaScript).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            AttributeValue::String(s) => serde_json::Value::String(s.clone()),
            AttributeValue::Bool(b) => serde_json::Value::Bool(*b),
            AttributeValue::Int(i) => serde_json::Value::from(*i),
            AttributeValue::Float(f) => crate::jsnum::number_to_json(*f),
            AttributeValue::Null => serde_json::Value::Null,
            AttributeValue::Json(v) => (**v).clone(),
        }
    }

    /// Whether the event APIs accept this value: a string, a bool, or a finite number with |x| <= 2^53.
    pub(crate) fn is_event_value(&self) -> bool {
        match self {
            AttributeValue::String(_) | AttributeValue::Bool(_) => true,
            AttributeValue::Int(_) | AttributeValue::Float(_) => self.as_safe_number().is_some(),
            AttributeValue::Null | AttributeValue::Json(_) => false,
        }
    }
}

impl Serialize for AttributeValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            AttributeValue::String(s) => serializer.serialize_str(s),
            AttributeValue::Bool(b) => serializer.serialize_bool(*b),
            AttributeValue::Int(i) => serializer.serialize_i64(*i),
            AttributeValue::Float(f) => serialize_float(*f, serializer),
            AttributeValue::Null => serializer.serialize_unit(),
            AttributeValue::Json(v) => v.serialize(serializer),
        }
    }
}

fn serialize_float<S: Serializer>(f: f64, serializer: S) -> Result<S::Ok, S::Error> {
    if f.fract() == 0.0 && f.abs() <= MAX_SAFE_NUMBER {
        serializer.serialize_i64(f as i64)
    } else {
        serializer.serialize_f64(f)
    }
}

impl From<&str> for AttributeValue {
    fn from(v: &str) -> Self {
        AttributeValue::String(v.to_string())
    }
}
impl From<String> for AttributeValue {
    fn from(v: String) -> Self {
        AttributeValue::String(v)
    }
}
impl From<bool> for AttributeValue {
    fn from(v: bool) -> Self {
        AttributeValue::Bool(v)
    }
}
impl From<i64> for AttributeValue {
    fn from(v: i64) -> Self {
        AttributeValue::Int(v)
    }
}
impl From<i32> for AttributeValue {
    fn from(v: i32) -> Self {
        AttributeValue::Int(i64::from(v))
    }
}
impl From<f64> for AttributeValue {
    fn from(v: f64) -> Self {
        AttributeValue::Float(v)
    }
}

/// A JSON object or array cannot be an attribute value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("attribute value must be a string, bool, number or null, got {kind}")]
pub struct UnsupportedAttributeValue {
    /// "object" or "array".
    pub kind: &'static str,
}

impl TryFrom<&serde_json::Value> for AttributeValue {
    type Error = UnsupportedAttributeValue;
    fn try_from(v: &serde_json::Value) -> Result<Self, Self::Error> {
        use serde_json::Value;
        Ok(match v {
            Value::Null => AttributeValue::Null,
            Value::Bool(b) => AttributeValue::Bool(*b),
            Value::String(s) => AttributeValue::String(s.clone()),
            Value::Number(n) => match n.as_i64() {
                Some(i) => AttributeValue::Int(i),
                None => AttributeValue::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::Array(_) => return Err(UnsupportedAttributeValue { kind: "array" }),
            Value::Object(_) => return Err(UnsupportedAttributeValue { kind: "object" }),
        })
    }
}

impl AttributeValue {
    /// The attribute JavaScript's `JSON.parse` would give the SDK for a JSON value: integers
    /// beyond 2^53 become the nearest double (as `JSON.parse` reads them), other numbers are
    /// kept exactly; objects and arrays are [`AttributeValue::Json`] (present for `exists`,
    /// unknown to other conditions, left out of events, sent in CMAB requests).
    pub fn from_json(v: &serde_json::Value) -> Option<Self> {
        match v {
            serde_json::Value::Number(n)
                if n.as_i64().is_some_and(|i| i.unsigned_abs() > 1 << 53) =>
            {
                n.as_f64().map(AttributeValue::Float)
            }
            serde_json::Value::Array(_) | serde_json::Value::Object(_) => {
                Some(AttributeValue::Json(std::sync::Arc::new(v.clone())))
            }
            other => AttributeValue::try_from(other).ok(),
        }
    }
}

/// FNV-1a hash of an attribute key (a `const fn`, so fixed keys hash at compile time).
pub(crate) const fn key_hash(key: &str) -> u64 {
    let bytes = key.as_bytes();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

/// An attribute name with its lookup hash computed once, for code that reads the same
/// attribute of many users ([`UserContext::attribute_by_key`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeKey {
    hash: u64,
    name: String,
}

impl AttributeKey {
    /// The key of the attribute `name`.
    pub fn new(name: impl Into<String>) -> Self {
        let name = name.into();
        AttributeKey {
            hash: key_hash(&name),
            name,
        }
    }

    /// The attribute name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// The key of a forced decision: a flag, and optionally one of its rules.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ForcedKey {
    flag_key: String,
    rule_key: Option<String>,
}

/// A user: id, attributes (insertion order), ODP qualified segments and forced decisions.
#[derive(Debug, Clone, Default)]
pub struct UserContext {
    user_id: String,
    /// `(key hash, key, value)`; the hash makes the linear scan cheap.
    attributes: Vec<(u64, String, AttributeValue)>,
    /// Index of the `$opt_bucketing_id` attribute, when set (read on every decide).
    bucketing_attribute: Option<usize>,
    qualified_segments: Option<Vec<String>>,
    forced: Vec<(ForcedKey, String)>,
    bucket_map: Option<HashMap<String, String>>,
    /// See [`version`](UserContext::version).
    version: u64,
}

/// Source of [`UserContext::version`] numbers (0 is the empty default user's).
static NEXT_VERSION: AtomicU64 = AtomicU64::new(1);

fn next_version() -> u64 {
    NEXT_VERSION.fetch_add(1, Ordering::Relaxed)
}

impl UserContext {
    /// A user with no attributes. The empty string is a valid user id.
    pub fn new(user_id: impl Into<String>) -> Self {
        UserContext {
            user_id: user_id.into(),
            version: next_version(),
            ..UserContext::default()
        }
    }

    /// A number that changes with every change to this user (id, attributes, segments, forced
    /// decisions, bucket map) and is never reused in the process: two users with the same
    /// version have the same content (a clone keeps its original's version until it changes).
    /// Lets a consumer that already copied a user skip copying or comparing it again.
    #[inline]
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Builder form of [`set_attribute`](Self::set_attribute).
    pub fn with_attribute(
        mut self,
        key: impl Into<String>,
        value: impl Into<AttributeValue>,
    ) -> Self {
        self.set_attribute(key, value);
        self
    }

    /// Set an attribute; an existing key keeps its position and gets the new value.
    pub fn set_attribute(&mut self, key: impl Into<String>, value: impl Into<AttributeValue>) {
        self.version = next_version();
        let key = key.into();
        let value = value.into();
        let hash = key_hash(&key);
        match self
            .attributes
            .iter_mut()
            .find(|(h, k, _)| *h == hash && *k == key)
        {
            Some(slot) => slot.2 = value,
            None => {
                if key == BUCKETING_ID_ATTRIBUTE {
                    self.bucketing_attribute = Some(self.attributes.len());
                }
                self.attributes.push((hash, key, value));
            }
        }
    }

    /// The user id.
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// Attributes in insertion order.
    pub fn attributes(&self) -> impl Iterator<Item = (&str, &AttributeValue)> {
        self.attributes.iter().map(|(_, k, v)| (k.as_str(), v))
    }

    /// One attribute by key (`None` when absent; `Some(Null)` when set to null).
    #[inline]
    pub fn attribute(&self, key: &str) -> Option<&AttributeValue> {
        self.attribute_hashed(key_hash(key), key)
    }

    /// [`attribute`](Self::attribute) by a key made once ([`AttributeKey::new`]): no hashing
    /// of the name on each call.
    #[inline]
    pub fn attribute_by_key(&self, key: &AttributeKey) -> Option<&AttributeValue> {
        self.attribute_hashed(key.hash, &key.name)
    }

    /// [`attribute`](Self::attribute) with the key's [`key_hash`] computed ahead.
    #[inline]
    pub(crate) fn attribute_hashed(&self, hash: u64, key: &str) -> Option<&AttributeValue> {
        self.attributes
            .iter()
            .find(|(h, k, _)| *h == hash && k == key)
            .map(|(_, _, v)| v)
    }

    /// Set the ODP segments the user qualifies for (matched by `qualified` conditions).
    pub fn set_qualified_segments(&mut self, segments: Vec<String>) {
        self.version = next_version();
        self.qualified_segments = Some(segments);
    }

    /// Forget the qualified segments (JavaScript's `qualifiedSegments = null`, as after a failed
    /// fetch): `qualified` conditions are then false.
    pub fn clear_qualified_segments(&mut self) {
        self.version = next_version();
        self.qualified_segments = None;
    }

    /// The qualified segments, `None` when never set.
    pub fn qualified_segments(&self) -> Option<&[String]> {
        self.qualified_segments.as_deref()
    }

    /// Whether the user qualifies for `segment` (false when no segments were set).
    pub fn is_qualified_for(&self, segment: &str) -> bool {
        self.qualified_segments
            .as_ref()
            .is_some_and(|s| s.iter().any(|x| x == segment))
    }

    /// Force `variation_key` for a flag (`rule_key` `None`) or for one rule of the flag.
    pub fn set_forced_decision(
        &mut self,
        flag_key: &str,
        rule_key: Option<&str>,
        variation_key: &str,
    ) {
        self.version = next_version();
        let key = ForcedKey {
            flag_key: flag_key.to_string(),
            rule_key: rule_key.map(str::to_string),
        };
        match self.forced.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = variation_key.to_string(),
            None => self.forced.push((key, variation_key.to_string())),
        }
    }

    /// The forced variation key for a flag or rule, if set.
    #[inline]
    pub fn forced_decision(&self, flag_key: &str, rule_key: Option<&str>) -> Option<&str> {
        if self.forced.is_empty() {
            return None;
        }
        self.forced
            .iter()
            .find(|(k, _)| k.flag_key == flag_key && k.rule_key.as_deref() == rule_key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether any forced decision is set.
    #[inline]
    pub fn has_forced_decisions(&self) -> bool {
        !self.forced.is_empty()
    }

    /// Remove one forced decision; true when it existed.
    pub fn remove_forced_decision(&mut self, flag_key: &str, rule_key: Option<&str>) -> bool {
        self.version = next_version();
        let before = self.forced.len();
        self.forced
            .retain(|(k, _)| !(k.flag_key == flag_key && k.rule_key.as_deref() == rule_key));
        before != self.forced.len()
    }

    /// Remove every forced decision.
    pub fn remove_all_forced_decisions(&mut self) {
        self.version = next_version();
        self.forced.clear();
    }

    /// Sticky-bucketing entries `experiment id -> variation id` carried by the user itself.
    ///
    /// The JavaScript SDK reads them from the object attribute `$opt_experiment_bucket_map` and
    /// merges them over the user profile service's map; attribute values here cannot be objects,
    /// so they are set through this method instead.
    pub fn set_experiment_bucket_map(&mut self, map: HashMap<String, String>) {
        self.version = next_version();
        self.bucket_map = Some(map);
    }

    /// The map set by [`set_experiment_bucket_map`](Self::set_experiment_bucket_map).
    pub fn experiment_bucket_map(&self) -> Option<&HashMap<String, String>> {
        self.bucket_map.as_ref()
    }

    /// The id used for bucketing: `$opt_bucketing_id` when it is a string, else the user id.
    #[inline]
    pub fn bucketing_id(&self) -> &str {
        match self.bucketing_attribute.map(|i| &self.attributes[i].2) {
            Some(AttributeValue::String(s)) => s,
            _ => &self.user_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_changes_with_every_change_and_clones_keep_it() {
        let mut u = UserContext::new("u");
        let other = UserContext::new("u");
        assert_ne!(
            u.version(),
            other.version(),
            "two users never share a version"
        );
        let mut seen = vec![u.version()];
        let mut check = |u: &UserContext| {
            assert!(!seen.contains(&u.version()), "version reused");
            seen.push(u.version());
        };
        u.set_attribute("a", 1i64);
        check(&u);
        let copy = u.clone();
        assert_eq!(copy.version(), u.version());
        u.set_attribute("a", 1i64);
        check(&u);
        u.set_qualified_segments(vec!["s".into()]);
        check(&u);
        u.set_forced_decision("f", None, "v");
        check(&u);
        u.remove_forced_decision("f", None);
        check(&u);
        u.remove_all_forced_decisions();
        check(&u);
        u.set_experiment_bucket_map(HashMap::new());
        check(&u);
        assert_ne!(copy.version(), u.version());
    }

    #[test]
    fn attributes_keep_order_and_replace() {
        let mut u = UserContext::new("u")
            .with_attribute("a", 1i64)
            .with_attribute("b", "x");
        u.set_attribute("a", true);
        let keys: Vec<_> = u.attributes().map(|(k, _)| k).collect();
        assert_eq!(keys, ["a", "b"]);
        assert_eq!(u.attribute("a"), Some(&AttributeValue::Bool(true)));
        assert_eq!(u.attribute("zz"), None);
        for name in ["a", "b", "zz", ""] {
            let key = AttributeKey::new(name);
            assert_eq!(key.name(), name);
            assert_eq!(u.attribute_by_key(&key), u.attribute(name), "{name}");
        }
    }

    #[test]
    fn forced_decisions() {
        let mut u = UserContext::new("u");
        u.set_forced_decision("f", None, "v1");
        u.set_forced_decision("f", Some("r"), "v2");
        u.set_forced_decision("f", Some("r"), "v3");
        assert_eq!(u.forced_decision("f", None), Some("v1"));
        assert_eq!(u.forced_decision("f", Some("r")), Some("v3"));
        assert!(u.remove_forced_decision("f", None));
        assert!(!u.remove_forced_decision("f", None));
        assert_eq!(u.forced_decision("f", None), None);
        u.remove_all_forced_decisions();
        assert_eq!(u.forced_decision("f", Some("r")), None);
    }

    #[test]
    fn bucketing_id_only_from_strings() {
        let u = UserContext::new("u").with_attribute(BUCKETING_ID_ATTRIBUTE, 5i64);
        assert_eq!(u.bucketing_id(), "u");
        let u = UserContext::new("u").with_attribute(BUCKETING_ID_ATTRIBUTE, "");
        assert_eq!(u.bucketing_id(), "");
        let mut u = UserContext::new("u")
            .with_attribute("a", 1i64)
            .with_attribute(BUCKETING_ID_ATTRIBUTE, "b1");
        assert_eq!(u.bucketing_id(), "b1");
        u.set_attribute(BUCKETING_ID_ATTRIBUTE, "b2");
        u.set_attribute("c", true);
        assert_eq!(u.bucketing_id(), "b2");
        u.set_attribute(BUCKETING_ID_ATTRIBUTE, AttributeValue::Null);
        assert_eq!(u.bucketing_id(), "u");
    }

    #[test]
    fn serializes_as_json_types() {
        let v = serde_json::to_string(&[
            AttributeValue::Int(10),
            AttributeValue::Float(10.5),
            AttributeValue::Float(3.0),
            AttributeValue::Null,
            AttributeValue::from("s"),
        ])
        .unwrap();
        assert_eq!(v, r#"[10,10.5,3,null,"s"]"#);
        let from: AttributeValue = (&serde_json::json!(2.5)).try_into().unwrap();
        assert_eq!(from, AttributeValue::Float(2.5));
        assert!(AttributeValue::try_from(&serde_json::json!({})).is_err());
    }
}
