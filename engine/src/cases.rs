//! The case runner (feature `cases`): runs one JSONL case line (decide or track) through the engine and renders the output lines
//! in the format of `datafile-fixtures/README.md` (the format the JavaScript SDK goldens use).
//!
//! Pure: no I/O, no clock. Timestamps and uuids are left out of the output, so the events are
//! built with timestamp 0 and an empty uuid.

use std::collections::HashMap;

use crate::{
    AttributeValue, ClientInfo, DecideOption, DecideOptions, Decider, Decision, ProjectConfig,
    UserContext, EXPERIMENT_BUCKET_MAP_ATTRIBUTE,
};
use serde_json::{json, Map, Value};

/// Client name put in the (discarded) event envelope.
pub const CLIENT_NAME: &str = "flagbridge";

/// The client info used for events built by the case runner.
pub fn client_info() -> ClientInfo {
    ClientInfo {
        client_name: CLIENT_NAME.to_string(),
        client_version: env!("CARGO_PKG_VERSION").to_string(),
    }
}

/// One validated case.
#[derive(Debug)]
enum Case {
    Decide {
        user_id: String,
        attributes: Map<String, Value>,
        flags: Option<Vec<String>>,
        options: Vec<String>,
        forced: Vec<(String, Option<String>, String)>,
        segments: Option<Vec<String>>,
    },
    Track {
        user_id: String,
        attributes: Map<String, Value>,
        event_key: String,
        tags: Option<Map<String, Value>>,
    },
}

/// Runs case number `case` (counted over non-empty lines from 0) and returns its output lines.
///
/// A malformed line gives one `{"case": N, "error": "..."}` value.
pub fn run_case_line(config: &ProjectConfig, case: usize, line: &str) -> Vec<Value> {
    run_case_with_notifications(config, case, line).lines
}

/// The output of one case.
#[derive(Debug, Default)]
pub struct CaseOutput {
    /// The output lines (decisions, track, error).
    pub lines: Vec<Value>,
    /// One `DECISION` notification per decided flag (none for unknown flags), as
    /// `{"case", "type": "flag", "user_id", "flagKey", "enabled", "variationKey", "ruleKey",
    /// "decisionEventDispatched", "experimentId", "variationId"}` (variables and reasons are in
    /// the decision lines).
    pub notifications: Vec<Value>,
}

/// Like [`run_case_line`], also returning the decision notifications.
pub fn run_case_with_notifications(config: &ProjectConfig, case: usize, line: &str) -> CaseOutput {
    let parsed = match serde_json::from_str::<Value>(line) {
        Ok(v) => v,
        Err(e) => {
            return CaseOutput {
                lines: vec![json!({"case": case, "error": format!("invalid JSON: {e}")})],
                notifications: Vec::new(),
            }
        }
    };
    match parse_case(parsed) {
        Ok(c) => run_case(config, case, c),
        Err(message) => CaseOutput {
            lines: vec![json!({"case": case, "error": message})],
            notifications: Vec::new(),
        },
    }
}

/// Runs every non-empty line of `text`, numbering cases from 0.
pub fn run_cases(config: &ProjectConfig, text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .flat_map(|(n, line)| run_case_line(config, n, line))
        .collect()
}

/// A JSON array of strings; `None` when it is not one.
pub fn string_list(v: &Value) -> Option<Vec<String>> {
    v.as_array()?
        .iter()
        .map(|x| x.as_str().map(str::to_string))
        .collect()
}

/// Absent and null both count as "not given".
fn given<'v>(obj: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn parse_case(v: Value) -> Result<Case, String> {
    let Value::Object(obj) = v else {
        return Err("case is not a JSON object".into());
    };
    // `user_id`/`attributes` (the fixtures' names) or `userId`/`userAttributes` (Agent's and
    // backfill's names).
    let user_id = given(&obj, "user_id")
        .or_else(|| given(&obj, "userId"))
        .and_then(Value::as_str)
        .ok_or("user_id must be a string")?
        .to_string();
    let attributes = match given(&obj, "attributes").or_else(|| given(&obj, "userAttributes")) {
        None => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err("attributes must be an object".into()),
    };
    match obj.get("type") {
        Some(Value::String(t)) if t == "track" => {
            let event_key = obj
                .get("event_key")
                .and_then(Value::as_str)
                .ok_or("event_key must be a string")?
                .to_string();
            let tags = match given(&obj, "tags") {
                None => None,
                Some(Value::Object(m)) => Some(m.clone()),
                Some(_) => return Err("tags must be an object".into()),
            };
            return Ok(Case::Track {
                user_id,
                attributes,
                event_key,
                tags,
            });
        }
        None => {}
        Some(_) => return Err("unknown case type".into()),
    }
    let flags = match given(&obj, "flags") {
        None => None,
        Some(v) => Some(string_list(v).ok_or("flags must be null or a list of strings")?),
    };
    let options = match given(&obj, "options") {
        None => Vec::new(),
        Some(v) => string_list(v).ok_or("options must be a list of strings")?,
    };
    let segments = match given(&obj, "segments") {
        None => None,
        Some(v) => Some(string_list(v).ok_or("segments must be a list of strings")?),
    };
    let mut forced = Vec::new();
    if let Some(v) = given(&obj, "forced") {
        let list = v.as_array().ok_or("forced must be a list")?;
        for f in list {
            let bad =
                "forced entries need flag (string), rule (string or null), variation (string)";
            let flag = f.get("flag").and_then(Value::as_str).ok_or(bad)?;
            let variation = f.get("variation").and_then(Value::as_str).ok_or(bad)?;
            let rule = match f.get("rule") {
                None | Some(Value::Null) => None,
                Some(Value::String(r)) => Some(r.clone()),
                Some(_) => return Err(bad.into()),
            };
            forced.push((flag.to_string(), rule, variation.to_string()));
        }
    }
    Ok(Case::Decide {
        user_id,
        attributes,
        flags,
        options,
        forced,
        segments,
    })
}

/// Builds the user. Numbers are read as JavaScript's `JSON.parse` reads them (exactly; an
/// integer beyond 2^53 becomes the nearest double). Object and array values are
/// [`AttributeValue::Json`] (`exists` true, unknown to other conditions, left out of events).
pub fn user_context(user_id: &str, attributes: &Map<String, Value>) -> UserContext {
    let mut user = UserContext::new(user_id);
    for (key, value) in attributes {
        if let Some(v) = AttributeValue::from_json(value) {
            user.set_attribute(key.as_str(), v);
        }
    }
    if let Some(Value::Object(map)) = attributes.get(EXPERIMENT_BUCKET_MAP_ATTRIBUTE) {
        user.set_experiment_bucket_map(experiment_bucket_map(map));
    }
    user
}

/// The `$opt_experiment_bucket_map` attribute (`{experimentId: {"variation_id": id}}`), which
/// the JavaScript SDK merges over the user profile. Entries without a string or number
/// `variation_id` name no variation, as in JavaScript.
fn experiment_bucket_map(map: &Map<String, Value>) -> HashMap<String, String> {
    map.iter()
        .filter_map(|(experiment_id, entry)| {
            let variation_id = match entry.get("variation_id")? {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return None,
            };
            Some((experiment_id.clone(), variation_id))
        })
        .collect()
}

/// Unknown option strings are ignored, as the JavaScript SDK does.
pub fn decide_options(options: &[String]) -> DecideOptions {
    options
        .iter()
        .filter_map(|o| o.parse::<DecideOption>().ok())
        .fold(DecideOptions::NONE, DecideOptions::with)
}

fn run_case(config: &ProjectConfig, case: usize, c: Case) -> CaseOutput {
    let decider = Decider::new(config);
    let client = client_info();
    match c {
        Case::Track {
            user_id,
            attributes,
            event_key,
            tags,
        } => {
            let user = user_context(&user_id, &attributes);
            let conversions: Vec<Value> = decider
                .track(&user, &event_key, tags.as_ref())
                .map(|conv| {
                    let batch = conv.to_event_batch(&user, &client, 0, "");
                    flatten(&serde_json::to_value(batch).unwrap_or(Value::Null)).1
                })
                .unwrap_or_default();
            CaseOutput {
                lines: vec![json!({
                    "case": case, "type": "track", "user_id": user_id, "event_key": event_key,
                    "conversions": conversions,
                })],
                notifications: Vec::new(),
            }
        }
        Case::Decide {
            user_id,
            attributes,
            flags,
            options,
            forced,
            segments,
        } => {
            let mut user = user_context(&user_id, &attributes);
            if let Some(segments) = segments {
                user.set_qualified_segments(segments);
            }
            for (flag, rule, variation) in &forced {
                user.set_forced_decision(flag, rule.as_deref(), variation);
            }
            let options = decide_options(&options);
            let decisions: Vec<Decision<'_>> = match &flags {
                None => decider.decide_all(&user, options),
                Some(keys) if keys.len() == 1 => vec![decider.decide(&user, &keys[0], options)],
                Some(keys) => {
                    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                    decider.decide_for_keys(&user, &keys, options)
                }
            };
            CaseOutput {
                lines: decisions
                    .iter()
                    .filter_map(|d| decision_line(case, &user, &client, d))
                    .collect(),
                notifications: decisions
                    .iter()
                    .filter(|d| !d.is_error())
                    .map(|d| notification_line(case, &user, d))
                    .collect(),
            }
        }
    }
}

/// The output line of one decision (the goldens' format).
pub fn decision_line(
    case: usize,
    user: &UserContext,
    client: &ClientInfo,
    d: &Decision<'_>,
) -> Option<Value> {
    let impressions = d
        .impression_event(user, client, 0, "")
        .map(|batch| flatten(&serde_json::to_value(batch).unwrap_or(Value::Null)).0)
        .unwrap_or_default();
    if d.omitted_from_result() {
        if impressions.is_empty() {
            return None;
        }
        return Some(json!({
            "case": case, "user_id": user.user_id(), "flag_key": d.flag_key(),
            "omitted_from_result": true, "impressions": impressions,
        }));
    }
    let variables: Map<String, Value> = d
        .variables()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    Some(json!({
        "case": case,
        "user_id": user.user_id(),
        "flag_key": d.flag_key(),
        "enabled": d.enabled(),
        "variation_key": d.variation_key(),
        "rule_key": d.rule_key(),
        "variables": variables,
        "reasons": d.reasons(),
        "impressions": impressions,
    }))
}

fn notification_line(case: usize, user: &UserContext, d: &Decision<'_>) -> Value {
    let n = d.notification(user);
    // `variationId` as the notification serialises it (a number when the datafile has one).
    let variation_id = serde_json::to_value(&n)
        .ok()
        .and_then(|mut v| v.get_mut("variationId").map(Value::take))
        .unwrap_or(Value::Null);
    json!({
        "case": case,
        "type": "flag",
        "user_id": n.user_id,
        "flagKey": n.flag_key,
        "enabled": n.enabled,
        "variationKey": n.variation_key,
        "ruleKey": n.rule_key,
        "decisionEventDispatched": n.decision_event_dispatched,
        "experimentId": n.experiment_id,
        "variationId": variation_id,
    })
}

fn drop_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn field(v: &Value, key: &str) -> Value {
    v.get(key).cloned().unwrap_or(Value::Null)
}

fn visitor_part(batch: &Value, visitor: &Value, out: &mut Map<String, Value>) {
    let mut attributes: Vec<Value> = visitor
        .get("attributes")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(drop_nulls).collect())
        .unwrap_or_default();
    attributes.sort_by(|a, b| {
        let ka = a.get("key").and_then(Value::as_str).unwrap_or("");
        let kb = b.get("key").and_then(Value::as_str).unwrap_or("");
        ka.cmp(kb)
    });
    out.insert("visitor_id".into(), field(visitor, "visitor_id"));
    out.insert("attributes".into(), Value::Array(attributes));
    let mut b = Map::new();
    for k in [
        "account_id",
        "project_id",
        "revision",
        "anonymize_ip",
        "enrich_decisions",
    ] {
        b.insert(k.into(), field(batch, k));
    }
    out.insert("batch".into(), Value::Object(b));
}

/// Splits a logx v1 batch into (impressions, conversions) in the golden format.
pub fn flatten(batch: &Value) -> (Vec<Value>, Vec<Value>) {
    let mut impressions = Vec::new();
    let mut conversions = Vec::new();
    let empty = Vec::new();
    let visitors = batch
        .get("visitors")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    for visitor in visitors {
        let snapshots = visitor
            .get("snapshots")
            .and_then(Value::as_array)
            .unwrap_or(&empty);
        for snap in snapshots {
            let events: Vec<Value> = snap
                .get("events")
                .and_then(Value::as_array)
                .unwrap_or(&empty)
                .iter()
                .map(|e| {
                    let mut e = drop_nulls(e);
                    if let Value::Object(m) = &mut e {
                        m.remove("timestamp");
                        m.remove("uuid");
                    }
                    e
                })
                .collect();
            let decisions = snap
                .get("decisions")
                .and_then(Value::as_array)
                .unwrap_or(&empty);
            if decisions.is_empty() {
                let mut out = Map::new();
                out.insert("events".into(), Value::Array(events.clone()));
                visitor_part(batch, visitor, &mut out);
                conversions.push(Value::Object(out));
                continue;
            }
            for d in decisions {
                let md = d.get("metadata").cloned().unwrap_or(Value::Null);
                let mut metadata = Map::new();
                for k in [
                    "flag_key",
                    "rule_key",
                    "rule_type",
                    "variation_key",
                    "enabled",
                ] {
                    metadata.insert(k.into(), field(&md, k));
                }
                if let Some(uuid) = md.get("cmab_uuid") {
                    metadata.insert("cmab_uuid".into(), uuid.clone());
                }
                let mut out = Map::new();
                out.insert("campaign_id".into(), field(d, "campaign_id"));
                out.insert("experiment_id".into(), field(d, "experiment_id"));
                out.insert("variation_id".into(), field(d, "variation_id"));
                out.insert("metadata".into(), Value::Object(metadata));
                out.insert("events".into(), Value::Array(events.clone()));
                visitor_part(batch, visitor, &mut out);
                impressions.push(Value::Object(out));
            }
        }
    }
    (impressions, conversions)
}
