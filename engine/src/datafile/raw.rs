//! Tolerant serde wire types of the datafile, as the JSON says it.
//!
//! Unknown fields are ignored. Fields whose content may be odd in real datafiles (condition trees,
//! variable values, flags such as `featureEnabled`) are kept as [`serde_json::Value`] and judged by
//! the compiler, so an unexpected shape degrades to "unknown" instead of failing the datafile.

use std::borrow::Cow;
use std::fmt;

use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{Number, Value};

/// Keep a field that is present with `null` as `Some(Value::Null)` (serde would make it `None`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// An experiment or rule kept as its JSON text, borrowed from the datafile: the compiler reads
/// each into an [`Experiment`] when it reaches it (`super::element`), so the wire types of all
/// experiments are never alive at once (they were the larger part of the parse's peak memory).
/// The text was checked to be JSON when the datafile was read.
pub(crate) type Lazy<'a> = &'a serde_json::value::RawValue;

/// Only the `version` field, read first to report an unsupported version before anything else.
#[derive(Deserialize)]
pub(crate) struct VersionOnly {
    #[serde(default)]
    pub version: Option<Value>,
}

/// A JSON value read as the string JavaScript makes of it (`String(value)` for scalars,
/// "[object Object]" for objects and arrays, as the compiler has always taken them), borrowed
/// from the datafile text when it holds no escapes. For variable values and defaults, which are
/// strings in practice: no `Value` is built for them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Text<'a>(pub Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TextVisitor)
    }
}

struct TextVisitor;

fn number<'a>(n: Number) -> Text<'a> {
    Text(Cow::Owned(
        crate::audience::js_key(&Value::Number(n)).unwrap_or_default(),
    ))
}

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'de>, E> {
        Ok(Text(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Text<'de>, E> {
        Ok(Text(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Text<'de>, E> {
        Ok(Text(Cow::Owned(v)))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Text<'de>, E> {
        Ok(Text(Cow::Borrowed(if v { "true" } else { "false" })))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Text<'de>, E> {
        Ok(number(Number::from(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Text<'de>, E> {
        Ok(number(Number::from(v)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Text<'de>, E> {
        Ok(match Number::from_f64(v) {
            Some(n) => number(n),
            None => Text(Cow::Borrowed("null")),
        })
    }
    fn visit_unit<E>(self) -> Result<Text<'de>, E> {
        Ok(Text(Cow::Borrowed("null")))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Text<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Text(Cow::Borrowed("[object Object]")))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Text<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Text(Cow::Borrowed("[object Object]")))
    }
}
/// A whole datafile. Strings the compiler only reads (ids that name other entities, variable
/// values) borrow from the text.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Datafile<'a> {
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
    #[serde(borrow)]
    pub experiments: Vec<Lazy<'a>>,
    #[serde(default)]
    #[serde(borrow)]
    pub groups: Vec<Group<'a>>,
    #[serde(default)]
    #[serde(borrow)]
    pub feature_flags: Vec<FeatureFlag<'a>>,
    #[serde(default)]
    #[serde(borrow)]
    pub rollouts: Vec<Rollout<'a>>,
    #[serde(default)]
    pub integrations: Vec<Integration>,
    /// `null` is taken as empty, as JavaScript's `holdouts || []` does.
    #[serde(default, deserialize_with = "null_as_empty")]
    #[serde(borrow)]
    pub holdouts: Vec<Holdout<'a>>,
    #[serde(default, deserialize_with = "null_as_empty")]
    #[serde(borrow)]
    pub local_holdouts: Vec<Holdout<'a>>,
}

/// A string, or a number taken as its decimal text. JavaScript accepts numeric ids anywhere
/// (its maps are keyed by the id's string form, so `17155031309` and `"17155031309"` name the
/// same entity); every id field of the datafile is read with these helpers.
fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "invalid type: {other}, expected a string"
        ))),
    }
}

/// An id borrowed from the datafile when it is a string, or a number as its decimal text.
fn cow_id<'de, D: Deserializer<'de>>(d: D) -> Result<Cow<'de, str>, D::Error> {
    struct IdVisitor;
    impl<'de> Visitor<'de> for IdVisitor {
        type Value = Cow<'de, str>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(v))
        }
        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v.to_owned()))
        }
        fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v.to_string()))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v.to_string()))
        }
        fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Cow::Owned(
                Number::from_f64(v).map_or_else(|| v.to_string(), |n| n.to_string()),
            ))
        }
    }
    d.deserialize_any(IdVisitor)
}

/// A list of ids (see [`cow_id`]).
fn vec_cow_id<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Cow<'de, str>>, D::Error> {
    #[derive(Deserialize)]
    struct One<'a>(#[serde(borrow, deserialize_with = "cow_id")] Cow<'a, str>);
    Ok(Vec::<One<'de>>::deserialize(d)?
        .into_iter()
        .map(|One(s)| s)
        .collect())
}

/// An optional id: a string or a number (as its decimal text); absent or `null` is `None`.
fn opt_string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
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
fn vec_string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
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

/// `audienceIds`: a JSON array, kept as its text (borrowed) until the compiler needs its items,
/// which is only when `audienceConditions` is absent or falsy.
#[derive(Default)]
pub(crate) struct AudienceIds<'a>(Option<&'a serde_json::value::RawValue>);

impl AudienceIds<'_> {
    /// The ids (any JSON values; the text was checked to be an array when read).
    pub(crate) fn to_vec(&self) -> Vec<Value> {
        self.0
            .and_then(|raw| serde_json::from_str(raw.get()).ok())
            .unwrap_or_default()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for AudienceIds<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <&'de serde_json::value::RawValue>::deserialize(d)?;
        if raw.get().starts_with('[') {
            return Ok(AudienceIds(Some(raw)));
        }
        // Not an array: the same error as reading it as a list.
        match serde_json::from_str::<Vec<IgnoredAny>>(raw.get()) {
            Ok(_) => Ok(AudienceIds(Some(raw))),
            Err(e) => {
                let message = e.to_string();
                let message = match message.rfind(" at line ") {
                    Some(i) => &message[..i],
                    None => &message,
                };
                Err(serde::de::Error::custom(message))
            }
        }
    }
}

/// An optional string, borrowed from the datafile text when it holds no escapes.
fn opt_borrowed_str<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    #[derive(Deserialize)]
    struct Borrowed<'a>(#[serde(borrow)] Cow<'a, str>);
    Ok(Option::<Borrowed<'de>>::deserialize(d)?.map(|b| b.0))
}

/// A list, or `null` taken as the empty list.
fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
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
pub(crate) struct TrafficAllocation<'a> {
    #[serde(borrow, deserialize_with = "cow_id")]
    pub entity_id: Cow<'a, str>,
    pub end_of_range: f64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct VariableUsage<'a> {
    #[serde(borrow, deserialize_with = "cow_id")]
    pub id: Cow<'a, str>,
    #[serde(borrow)]
    pub value: Text<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Variation<'a> {
    pub id: Id,
    /// JavaScript loads a variation without `key` (it can then never be forced or reported).
    #[serde(default)]
    pub key: String,
    #[serde(default, deserialize_with = "present")]
    pub feature_enabled: Option<Value>,
    #[serde(default)]
    #[serde(borrow)]
    pub variables: Vec<VariableUsage<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Experiment<'a> {
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    pub key: String,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    pub layer_id: Option<String>,
    #[serde(default, borrow, deserialize_with = "opt_borrowed_str")]
    pub status: Option<Cow<'a, str>>,
    #[serde(default)]
    #[serde(borrow)]
    pub variations: Vec<Variation<'a>>,
    #[serde(default)]
    #[serde(borrow)]
    pub traffic_allocation: Vec<TrafficAllocation<'a>>,
    #[serde(default, borrow)]
    pub audience_ids: AudienceIds<'a>,
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
pub(crate) struct Group<'a> {
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    #[serde(default)]
    pub policy: String,
    #[serde(default)]
    #[serde(borrow)]
    pub traffic_allocation: Vec<TrafficAllocation<'a>>,
    #[serde(default)]
    #[serde(borrow)]
    pub experiments: Vec<Lazy<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Variable<'a> {
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    pub key: String,
    #[serde(borrow, rename = "type")]
    pub kind: Cow<'a, str>,
    #[serde(default)]
    pub sub_type: Option<String>,
    #[serde(borrow)]
    pub default_value: Text<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FeatureFlag<'a> {
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    pub key: String,
    #[serde(default, borrow, deserialize_with = "vec_cow_id")]
    pub experiment_ids: Vec<Cow<'a, str>>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    pub rollout_id: Option<String>,
    #[serde(default)]
    #[serde(borrow)]
    pub variables: Vec<Variable<'a>>,
}

#[derive(Deserialize)]
pub(crate) struct Rollout<'a> {
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    #[serde(default)]
    #[serde(borrow)]
    pub experiments: Vec<Lazy<'a>>,
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
pub(crate) struct Holdout<'a> {
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    pub key: String,
    #[serde(default, borrow, deserialize_with = "opt_borrowed_str")]
    pub status: Option<Cow<'a, str>>,
    #[serde(default)]
    #[serde(borrow)]
    pub variations: Vec<Variation<'a>>,
    #[serde(default)]
    #[serde(borrow)]
    pub traffic_allocation: Vec<TrafficAllocation<'a>>,
    #[serde(default, borrow)]
    pub audience_ids: AudienceIds<'a>,
    #[serde(default)]
    pub audience_conditions: Option<Value>,
    #[serde(default)]
    pub included_rules: Option<Value>,
    #[serde(default)]
    pub exclude_targeted_deliveries: Option<Value>,
}
