//! Impression and conversion events in the logx v1 wire format, built, not sent.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::{Event, Experiment, ProjectConfig, Variation};
use crate::decide::decision::DecisionSource;
use crate::jsnum;
use crate::user::{AttributeValue, UserContext};

/// US event endpoint.
pub const US_ENDPOINT: &str = "https://logx.optimizely.com/v1/events";
/// EU event endpoint (datafile `region: "EU"`).
pub const EU_ENDPOINT: &str = "https://eu.logx.optimizely.com/v1/events";

/// Attribute key of the bot filtering flag added to every visitor when the datafile sets it.
pub(crate) const BOT_FILTERING: &str = "$opt_bot_filtering";
const RESERVED_PREFIX: &str = "$opt_";

/// Who sends the events (`client_name`, `client_version` of the batch).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientInfo {
    /// e.g. "flagbridge" or "node-sdk".
    pub client_name: String,
    /// e.g. "0.1.0".
    pub client_version: String,
}

/// A logx v1 event batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventBatch {
    /// Datafile `accountId`.
    pub account_id: String,
    /// Datafile `projectId`.
    pub project_id: String,
    /// Datafile `revision`.
    pub revision: String,
    /// Client name.
    pub client_name: String,
    /// Client version.
    pub client_version: String,
    /// Datafile `anonymizeIP`.
    pub anonymize_ip: bool,
    /// Always true.
    pub enrich_decisions: bool,
    /// One visitor per event.
    pub visitors: Vec<Visitor>,
    /// Datafile region (not serialized; chooses the endpoint).
    #[serde(skip)]
    pub region: String,
}

/// What must be equal for two batches to be merged by concatenating visitors.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BatchContextKey {
    /// Account id.
    pub account_id: String,
    /// Project id.
    pub project_id: String,
    /// Revision.
    pub revision: String,
    /// Client name.
    pub client_name: String,
    /// Client version.
    pub client_version: String,
    /// anonymize_ip.
    pub anonymize_ip: bool,
    /// Region.
    pub region: String,
}

impl EventBatch {
    /// Batches with equal keys may be merged by concatenating visitors.
    pub fn context_key(&self) -> BatchContextKey {
        BatchContextKey {
            account_id: self.account_id.clone(),
            project_id: self.project_id.clone(),
            revision: self.revision.clone(),
            client_name: self.client_name.clone(),
            client_version: self.client_version.clone(),
            anonymize_ip: self.anonymize_ip,
            region: self.region.clone(),
        }
    }

    /// The endpoint for this batch's region.
    pub fn endpoint(&self) -> &'static str {
        endpoint_for_region(&self.region)
    }
}

/// The logx endpoint of a datafile region ("EU" -> EU, anything else -> US).
pub fn endpoint_for_region(region: &str) -> &'static str {
    if region == "EU" {
        EU_ENDPOINT
    } else {
        US_ENDPOINT
    }
}

/// One user's events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Visitor {
    /// The user id.
    pub visitor_id: String,
    /// Attributes known to the datafile (or `$opt_`), then `$opt_bot_filtering`.
    pub attributes: Vec<VisitorAttribute>,
    /// One snapshot per event.
    pub snapshots: Vec<Snapshot>,
}

/// One visitor attribute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VisitorAttribute {
    /// Datafile attribute id, or the key for `$opt_` attributes.
    pub entity_id: String,
    /// Attribute key.
    pub key: String,
    /// Always "custom".
    #[serde(rename = "type")]
    pub kind: String,
    /// The value, with its JSON type.
    pub value: Value,
}

/// Decisions and events of one visitor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The impression's decision (absent for conversions).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub decisions: Vec<SnapshotDecision>,
    /// The events.
    pub events: Vec<SnapshotEvent>,
}

/// The decision of an impression.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SnapshotDecision {
    /// Layer id, else experiment id, else null.
    pub campaign_id: Option<String>,
    /// Experiment, rule or holdout id, "" when none.
    pub experiment_id: String,
    /// Variation id when all digits, else null.
    #[serde(deserialize_with = "opt_id")]
    pub variation_id: Option<String>,
    /// The datafile wrote the variation id as a JSON number: it is sent as one, as JavaScript
    /// sends the id as it read it (not part of the wire format; false when deserialized).
    #[serde(skip)]
    pub variation_id_is_number: bool,
    /// Flag decision metadata.
    pub metadata: DecisionMetadata,
}

impl Serialize for SnapshotDecision {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = serializer.serialize_struct("SnapshotDecision", 4)?;
        st.serialize_field("campaign_id", &self.campaign_id)?;
        st.serialize_field("experiment_id", &self.experiment_id)?;
        st.serialize_field(
            "variation_id",
            &self
                .variation_id
                .as_deref()
                .map(|id| IdOut::new(id, self.variation_id_is_number)),
        )?;
        st.serialize_field("metadata", &self.metadata)?;
        st.end()
    }
}

/// An id as JavaScript sends it: a JSON number when the datafile wrote it as one.
#[derive(Debug)]
pub(crate) enum IdOut<'a> {
    /// Sent as a string.
    Text(&'a str),
    /// Sent as a number.
    Number(serde_json::Number),
}

impl<'a> IdOut<'a> {
    pub(crate) fn new(id: &'a str, number: bool) -> Self {
        match number
            .then(|| id.parse::<serde_json::Number>().ok())
            .flatten()
        {
            Some(n) => IdOut::Number(n),
            None => IdOut::Text(id),
        }
    }
}

impl Serialize for IdOut<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            IdOut::Text(s) => serializer.serialize_str(s),
            IdOut::Number(n) => n.serialize(serializer),
        }
    }
}

/// An optional id sent as a string or a number (read back as its decimal text).
pub(crate) fn opt_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(serde::de::Error::custom(format!(
            "invalid type: {other}, expected a string or a number"
        ))),
    }
}

/// Impression metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionMetadata {
    /// Flag key.
    pub flag_key: String,
    /// Rule key, "" when no rule.
    pub rule_key: String,
    /// "feature-test", "rollout" or "holdout".
    pub rule_type: String,
    /// Variation key, "" when none.
    pub variation_key: String,
    /// Whether the flag was enabled.
    pub enabled: bool,
    /// CMAB decisions only: the uuid of the prediction that chose the variation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmab_uuid: Option<String>,
}

/// One event of a snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotEvent {
    /// Campaign id for impressions, event id for conversions.
    pub entity_id: Option<String>,
    /// "campaign_activated" or the event key.
    pub key: String,
    /// Milliseconds since the epoch.
    pub timestamp: u64,
    /// Event uuid.
    pub uuid: String,
    /// Revenue (integer), conversions only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revenue: Option<Value>,
    /// Value, conversions only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// Event tags as given, conversions only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Map<String, Value>>,
}

/// Whether `key` is a JavaScript array index (such keys come first in `Object.keys`).
fn array_index(key: &str) -> Option<u64> {
    if key.is_empty() || key.len() > 10 || (key.len() > 1 && key.starts_with('0')) {
        return None;
    }
    key.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| key.parse::<u64>().ok())
        .flatten()
        .filter(|n| *n < u64::from(u32::MAX))
}

/// The user's attributes that events carry, in the SDK's order: `(entity id, key,
/// value)` for each attribute known to the datafile (or `$opt_`) whose value events accept.
pub(crate) fn ordered_event_attributes<'a>(
    config: &'a ProjectConfig,
    user: &'a UserContext,
) -> impl Iterator<Item = (&'a str, &'a str, &'a AttributeValue)> {
    let mut entries: Vec<_> = user.attributes().collect();
    // Object.keys order: array-index keys first, ascending.
    if entries.iter().any(|(k, _)| array_index(k).is_some()) {
        entries.sort_by_key(|(k, _)| array_index(k).map_or((1, 0), |n| (0, n)));
    }
    entries.into_iter().filter_map(move |(key, value)| {
        if !value.is_event_value() {
            return None;
        }
        let entity_id = match config.attribute_id(key) {
            Some(id) => id,
            None if key.starts_with(RESERVED_PREFIX) => key,
            None => return None,
        };
        Some((entity_id, key, value))
    })
}

/// Visitor attributes as the SDK builds them.
pub(crate) fn visitor_attributes(
    config: &ProjectConfig,
    user: &UserContext,
) -> Vec<VisitorAttribute> {
    let mut out: Vec<VisitorAttribute> = ordered_event_attributes(config, user)
        .map(|(entity_id, key, value)| VisitorAttribute {
            entity_id: entity_id.to_string(),
            key: key.to_string(),
            kind: "custom".to_string(),
            value: value.to_json(),
        })
        .collect();
    if let Some(bot) = config.bot_filtering {
        out.push(VisitorAttribute {
            entity_id: BOT_FILTERING.to_string(),
            key: BOT_FILTERING.to_string(),
            kind: "custom".to_string(),
            value: Value::Bool(bot),
        });
    }
    out
}

/// A batch around visitors, with the config's context.
pub(crate) fn batch(
    config: &ProjectConfig,
    client: &ClientInfo,
    visitors: Vec<Visitor>,
) -> EventBatch {
    EventBatch {
        account_id: config.account_id.clone(),
        project_id: config.project_id.clone(),
        revision: config.revision.clone(),
        client_name: client.client_name.clone(),
        client_version: client.client_version.clone(),
        anonymize_ip: config.anonymize_ip,
        enrich_decisions: true,
        visitors,
        region: config.region.clone(),
    }
}

fn numeric_id(id: &str) -> Option<String> {
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())).then(|| id.to_string())
}

/// The visitor of one impression (with the JavaScript id normalisation).
#[allow(clippy::too_many_arguments)]
pub(crate) fn impression_visitor(
    config: &ProjectConfig,
    user: &UserContext,
    flag_key: &str,
    rule: Option<&Experiment>,
    source: DecisionSource,
    variation: Option<&Variation>,
    enabled: bool,
    timestamp_ms: u64,
    uuid: String,
    cmab_uuid: Option<&str>,
) -> Visitor {
    let experiment_id = rule.map(|e| e.id.clone()).unwrap_or_default();
    let layer_id = match (rule, source) {
        (Some(_), DecisionSource::Holdout) | (None, _) => "",
        (Some(e), _) => config.layer_id(&e.id).unwrap_or(""),
    };
    let campaign_id = if !layer_id.is_empty() {
        Some(layer_id.to_string())
    } else if !experiment_id.is_empty() {
        Some(experiment_id.clone())
    } else {
        None
    };
    let decision = SnapshotDecision {
        campaign_id: campaign_id.clone(),
        experiment_id,
        variation_id: variation.and_then(|v| numeric_id(&v.id)),
        variation_id_is_number: variation.is_some_and(|v| v.id_is_number),
        metadata: DecisionMetadata {
            flag_key: flag_key.to_string(),
            rule_key: rule.map(|e| e.key.clone()).unwrap_or_default(),
            rule_type: source.as_str().to_string(),
            variation_key: variation.map(|v| v.key.clone()).unwrap_or_default(),
            enabled,
            cmab_uuid: cmab_uuid.map(str::to_string),
        },
    };
    Visitor {
        visitor_id: user.user_id().to_string(),
        attributes: visitor_attributes(config, user),
        snapshots: vec![Snapshot {
            decisions: vec![decision],
            events: vec![SnapshotEvent {
                entity_id: campaign_id,
                key: "campaign_activated".to_string(),
                timestamp: timestamp_ms,
                uuid,
                revenue: None,
                value: None,
                tags: None,
            }],
        }],
    }
}

/// A second uuid derived from `uuid` (same shape), for a decision that implies two impressions.
pub(crate) fn derived_uuid(uuid: &str) -> String {
    let hash = crate::bucketing::murmur3_32(uuid.as_bytes(), 0x5eed);
    let prefix = format!("{hash:08x}");
    // `get` is `None` unless byte 8 is a char boundary.
    match uuid.get(8..) {
        Some(rest) => format!("{prefix}{rest}"),
        None => format!("{prefix}-{uuid}"),
    }
}

/// `revenue` as JavaScript parses it: strings through `parseInt`, other values truncated.
pub(crate) fn revenue_of(tags: &Map<String, Value>) -> Option<Value> {
    let raw = tags.get("revenue").filter(|v| !v.is_null())?;
    let parsed = match raw {
        Value::String(s) => jsnum::parse_int(s)?,
        other => jsnum::to_number(other).trunc(),
    };
    parsed.is_finite().then(|| jsnum::number_to_json(parsed))
}

/// `value` as JavaScript parses it: strings through `parseFloat`, other values as given if finite.
pub(crate) fn value_of(tags: &Map<String, Value>) -> Option<Value> {
    let raw = tags.get("value").filter(|v| !v.is_null())?;
    match raw {
        Value::String(s) => {
            let f = jsnum::parse_float(s)?;
            f.is_finite().then(|| jsnum::number_to_json(f))
        }
        other => jsnum::to_number(other).is_finite().then(|| other.clone()),
    }
}

/// A conversion (`track`): the event, parsed revenue and value, and the tags as given (minus
/// null-valued tags, which JavaScript drops).
#[derive(Debug, Clone)]
pub struct Conversion<'a> {
    config: &'a ProjectConfig,
    event: &'a Event,
    revenue: Option<Value>,
    value: Option<Value>,
    tags: Option<Map<String, Value>>,
}

impl<'a> Conversion<'a> {
    pub(crate) fn new(
        config: &'a ProjectConfig,
        event: &'a Event,
        tags: Option<&Map<String, Value>>,
    ) -> Self {
        Conversion {
            config,
            event,
            revenue: tags.and_then(revenue_of),
            value: tags.and_then(value_of),
            // JavaScript's `track` drops tags whose value is null before anything else.
            tags: tags.map(|t| {
                t.iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            }),
        }
    }

    /// The event key.
    pub fn event_key(&self) -> &'a str {
        &self.event.key
    }

    /// The event id.
    pub fn event_id(&self) -> &'a str {
        &self.event.id
    }

    /// Revenue parsed from the tags, as JavaScript does (`parseInt` / truncation; `true` is 1).
    pub fn revenue(&self) -> Option<&Value> {
        self.revenue.as_ref()
    }

    /// Value parsed from the tags, as JavaScript does (`parseFloat` for strings; others as given).
    pub fn value(&self) -> Option<&Value> {
        self.value.as_ref()
    }

    /// The tags as given.
    pub fn tags(&self) -> Option<&Map<String, Value>> {
        self.tags.as_ref()
    }

    /// The conversion as a logx v1 batch with one visitor.
    pub fn to_event_batch(
        &self,
        user: &UserContext,
        client: &ClientInfo,
        timestamp_ms: u64,
        uuid: &str,
    ) -> EventBatch {
        let visitor = Visitor {
            visitor_id: user.user_id().to_string(),
            attributes: visitor_attributes(self.config, user),
            snapshots: vec![Snapshot {
                decisions: Vec::new(),
                events: vec![SnapshotEvent {
                    entity_id: Some(self.event.id.clone()),
                    key: self.event.key.clone(),
                    timestamp: timestamp_ms,
                    uuid: uuid.to_string(),
                    revenue: self.revenue.clone(),
                    value: self.value.clone(),
                    tags: self.tags.clone(),
                }],
            }],
        };
        batch(self.config, client, vec![visitor])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tags(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn revenue_like_javascript() {
        let r = |v: Value| revenue_of(&tags(json!({ "revenue": v })));
        assert_eq!(r(json!(42)), Some(json!(42)));
        assert_eq!(r(json!(10.7)), Some(json!(10)));
        assert_eq!(r(json!(-10.7)), Some(json!(-10)));
        assert_eq!(r(json!("42")), Some(json!(42)));
        assert_eq!(r(json!("42.9abc")), Some(json!(42)));
        assert_eq!(r(json!("abc")), None);
        assert_eq!(r(json!(true)), Some(json!(1)));
        assert_eq!(r(json!(false)), Some(json!(0)));
        assert_eq!(r(json!(null)), None);
        assert_eq!(r(json!({})), None);
        assert_eq!(revenue_of(&tags(json!({}))), None);
    }

    /// The conversion's accessors give what was tracked: the datafile event's id, revenue and
    /// value parsed from the tags, and the tags as given.
    #[test]
    fn conversion_accessors() {
        let config = ProjectConfig::parse(
            r#"{"version":"4","accountId":"1","projectId":"2","revision":"3",
                "events":[{"id":"4001","key":"buy","experimentIds":[]}]}"#,
        )
        .unwrap();
        let user = UserContext::new("u1");
        let given = tags(json!({"revenue": "42", "value": "3.5", "k": "v"}));
        let c = crate::Decider::new(&config)
            .track(&user, "buy", Some(&given))
            .unwrap();
        assert_eq!(c.event_key(), "buy");
        assert_eq!(c.event_id(), "4001");
        assert_eq!(c.revenue(), Some(&json!(42)));
        assert_eq!(c.value(), Some(&json!(3.5)));
        assert_eq!(c.tags(), Some(&given));
        let bare = crate::Decider::new(&config)
            .track(&user, "buy", None)
            .unwrap();
        assert_eq!(
            (bare.revenue(), bare.value(), bare.tags()),
            (None, None, None)
        );
    }

    /// An impression's variation id reads back from text or from a number (as the number's
    /// decimal text); null or absent is none; anything else is an error.
    #[test]
    fn variation_id_reads_text_or_number() {
        let read = |id: Value| {
            serde_json::from_value::<SnapshotDecision>(json!({
                "campaign_id": null, "experiment_id": "e", "variation_id": id,
                "metadata": {"flag_key": "f", "rule_key": "", "rule_type": "rollout",
                             "variation_key": "", "enabled": false}
            }))
            .map(|d| d.variation_id)
        };
        assert_eq!(read(json!("77")).unwrap(), Some("77".to_string()));
        assert_eq!(read(json!(77)).unwrap(), Some("77".to_string()));
        assert_eq!(read(json!(null)).unwrap(), None);
        assert!(read(json!(true)).is_err());
    }

    #[test]
    fn value_like_javascript() {
        let v = |v: Value| value_of(&tags(json!({ "value": v })));
        assert_eq!(v(json!(1.5)), Some(json!(1.5)));
        assert_eq!(v(json!("2.5x")), Some(json!(2.5)));
        assert_eq!(v(json!("x")), None);
        assert_eq!(v(json!(false)), Some(json!(false)));
        assert_eq!(v(json!({})), None);
        assert_eq!(v(json!(null)), None);
    }

    #[test]
    fn array_index_boundaries() {
        assert_eq!(array_index("4294967294"), Some(4_294_967_294));
        assert_eq!(array_index("4294967295"), None);
        assert_eq!(array_index("1000000000"), Some(1_000_000_000));
        assert_eq!(array_index("10000000000"), None);
        assert_eq!(array_index("0"), Some(0));
        assert_eq!(array_index("01"), None);
        assert_eq!(array_index(""), None);
        assert_eq!(array_index("1e3"), None);
    }

    #[test]
    fn derived_uuid_keeps_shape() {
        let u = "123e4567-e89b-42d3-a456-426614174000";
        let d = derived_uuid(u);
        assert_eq!(d.len(), u.len());
        assert_ne!(d, u);
        assert_eq!(&d[8..], &u[8..]);
    }
}
