//! Tolerant serde wire types of the datafile, as the JSON says it.
//!
//! Unknown fields are ignored. Fields whose content may be odd in real datafiles (condition trees,
//! variable values, flags such as `featureEnabled`) are kept as [`serde_json::Value`] and judged by
//! the compiler, so an unexpected shape degrades to "unknown" instead of failing the datafile.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// Keep a field that is present with `null` as `Some(Value::Null)` (serde would make it `None`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// Only the `version` field, read first to report an unsupported version before anything else.
#[derive(Deserialize)]
pub(crate) struct VersionOnly {
    #[serde(default)]
    pub version: Option<Value>,
}

/// A whole datafile.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Datafile {
    pub version: Value,
    #[serde(deserialize_with = "string_or_number")]
    pub account_id: String,
    #[serde(deserialize_with = "string_or_number")]
    pub project_id: String,
    /// JavaScript loads a datafile without `revision` (its events then carry none).
    #[serde(default)]
    pub revision: String,
    #[serde(default, rename = "anonymizeIP")]
    pub anonymize_ip: Option<Value>,
    #[serde(default)]
    pub bot_filtering: Option<Value>,
    #[serde(default)]
    pub send_flag_decisions: Option<Value>,
    #[serde(default)]
    pub sdk_key: Option<String>,
    #[serde(default)]
    pub environment_key: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub attributes: Vec<Attribute>,
    #[serde(default)]
    pub audiences: Vec<Audience>,
    #[serde(default)]
    pub typed_audiences: Vec<Audience>,
    #[serde(default)]
    pub events: Vec<Event>,
    #[serde(default)]
    pub experiments: Vec<Experiment>,
    #[serde(default)]
    pub groups: Vec<Group>,
    #[serde(default)]
    pub feature_flags: Vec<FeatureFlag>,
    #[serde(default)]
    pub rollouts: Vec<Rollout>,
    #[serde(default)]
    pub integrations: Vec<Integration>,
    /// `null` is taken as empty, as JavaScript's `holdouts || []` does.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub holdouts: Vec<Holdout>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub local_holdouts: Vec<Holdout>,
}

/// A string, or a number taken as its decimal text. JavaScript accepts numeric ids anywhere
/// (its maps are keyed by the id's string form, so `17155031309` and `"17155031309"` name the
/// same entity); every id field of the datafile is read with these helpers.
fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "invalid type: {other}, expected a string"
        ))),
    }
}

/// An optional id: a string or a number (as its decimal text); absent or `null` is `None`.
fn opt_string_or_number<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<String>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(serde::de::Error::custom(format!(
            "invalid type: {other}, expected a string"
        ))),
    }
}

/// A list of ids, each a string or a number (as its decimal text).
fn vec_string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    struct Id(#[serde(deserialize_with = "string_or_number")] String);
    Ok(Vec::<Id>::deserialize(d)?
        .into_iter()
        .map(|Id(s)| s)
        .collect())
}

/// An id that remembers whether the datafile wrote it as a JSON number (JavaScript then sends
/// it as a number in events and notifications).
pub(crate) struct Id {
    pub text: String,
    pub number: bool,
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(text) => Ok(Id {
                text,
                number: false,
            }),
            Value::Number(n) => Ok(Id {
                text: n.to_string(),
                number: true,
            }),
            other => Err(serde::de::Error::custom(format!(
                "invalid type: {other}, expected a string"
            ))),
        }
    }
}

/// A list, or `null` taken as the empty list.
fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

#[derive(Deserialize)]
pub(crate) struct Attribute {
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    pub key: String,
}

#[derive(Deserialize)]
pub(crate) struct Audience {
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    #[serde(default)]
    pub name: String,
    /// A JSON string for legacy audiences, a JSON array/object for typed audiences.
    pub conditions: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Event {
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    pub key: String,
    #[serde(default, deserialize_with = "vec_string_or_number")]
    pub experiment_ids: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TrafficAllocation {
    #[serde(deserialize_with = "string_or_number")]
    pub entity_id: String,
    pub end_of_range: f64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct VariableUsage {
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    pub value: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Variation {
    pub id: Id,
    /// JavaScript loads a variation without `key` (it can then never be forced or reported).
    #[serde(default)]
    pub key: String,
    #[serde(default, deserialize_with = "present")]
    pub feature_enabled: Option<Value>,
    #[serde(default)]
    pub variables: Vec<VariableUsage>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Experiment {
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    pub key: String,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    pub layer_id: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub variations: Vec<Variation>,
    #[serde(default)]
    pub traffic_allocation: Vec<TrafficAllocation>,
    #[serde(default)]
    pub audience_ids: Vec<Value>,
    #[serde(default)]
    pub audience_conditions: Option<Value>,
    #[serde(default)]
    pub forced_variations: Option<Value>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub cmab: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Group {
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    #[serde(default)]
    pub policy: String,
    #[serde(default)]
    pub traffic_allocation: Vec<TrafficAllocation>,
    #[serde(default)]
    pub experiments: Vec<Experiment>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Variable {
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    pub key: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub sub_type: Option<String>,
    pub default_value: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FeatureFlag {
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    pub key: String,
    #[serde(default, deserialize_with = "vec_string_or_number")]
    pub experiment_ids: Vec<String>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    pub rollout_id: Option<String>,
    #[serde(default)]
    pub variables: Vec<Variable>,
}

#[derive(Deserialize)]
pub(crate) struct Rollout {
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    #[serde(default)]
    pub experiments: Vec<Experiment>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Integration {
    pub key: String,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub public_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Holdout {
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    pub key: String,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub variations: Vec<Variation>,
    #[serde(default)]
    pub traffic_allocation: Vec<TrafficAllocation>,
    #[serde(default)]
    pub audience_ids: Vec<Value>,
    #[serde(default)]
    pub audience_conditions: Option<Value>,
    #[serde(default)]
    pub included_rules: Option<Value>,
    #[serde(default)]
    pub exclude_targeted_deliveries: Option<Value>,
}
