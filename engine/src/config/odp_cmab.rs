//! Compile steps for CMAB rules and ODP segments, which only some datafiles use.

use rustc_hash::FxHashMap;
use serde_json::Value;

use super::compile::string_of;
use super::key_order::js_key_order;
use super::{Audience, CmabRule, Experiment};
use crate::bucketing::end_of_range;
use crate::user::AttributeKey;

/// A rule's `cmab` object (`trafficAllocation`, `attributeIds`).
pub(super) fn cmab_rule(c: &Value) -> CmabRule {
    let traffic_end = c
        .get("trafficAllocation")
        .and_then(Value::as_f64)
        .map_or(0, end_of_range);
    let attribute_ids = match c.get("attributeIds") {
        Some(Value::Array(ids)) => Some(ids.iter().map(string_of).collect()),
        _ => None,
    };
    CmabRule {
        traffic_end,
        attribute_ids,
        attributes: None,
        keys: Vec::new(),
    }
}

/// Resolves each CMAB rule's attribute ids to keys, in request order.
pub(super) fn resolve_cmab_attributes(
    experiments: &mut [Experiment],
    attributes: &[(String, String)],
) {
    for rule in experiments
        .iter_mut()
        .filter_map(|e| e.cmab_rule.as_deref_mut())
    {
        let Some(ids) = &rule.attribute_ids else {
            continue;
        };
        let mut resolved: Vec<(String, String)> = Vec::with_capacity(ids.len());
        let mut known = true;
        for id in ids {
            match attributes.iter().find(|(i, _)| i == id) {
                Some((_, key)) if !resolved.iter().any(|(i, _)| i == id) => {
                    resolved.push((id.clone(), key.clone()));
                }
                Some(_) => {}
                None => known = false,
            }
        }
        if !known {
            continue;
        }
        let order = js_key_order(resolved.iter().map(|(id, _)| id.as_str()));
        let ordered: Vec<(String, String)> = order
            .iter()
            .filter_map(|id| resolved.iter().find(|(i, _)| i == id).cloned())
            .collect();
        rule.keys = ordered
            .iter()
            .map(|(_, key)| AttributeKey::new(key.as_str()))
            .collect();
        rule.attributes = Some(ordered);
    }
}

/// `segmentsToCheck`: `qualified` values over `audiencesById` (ids in `Object.keys` order, the
/// typed audience winning an id), each audience's tree walked in order, de-duplicated.
/// `id_map` gives the last audience with an id (the typed one when both exist); scanning the
/// list for it instead made this quadratic in the audience count (20% of a 5,000-flag parse).
pub(super) fn odp_segments(
    audiences: &[Audience],
    id_map: &FxHashMap<String, usize>,
) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Array(items) => items.iter().for_each(|x| walk(x, out)),
            Value::Object(o) if o.get("match").and_then(Value::as_str) == Some("qualified") => {
                if let Some(s) = o.get("value").and_then(Value::as_str) {
                    if !out.iter().any(|x| x == s) {
                        out.push(s.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    let ids = js_key_order(audiences.iter().map(|a| a.id.as_str()));
    for id in ids {
        if let Some(a) = id_map.get(id).and_then(|i| audiences.get(*i)) {
            if a.conditions.contains("qualified") {
                if let Ok(tree) = serde_json::from_str::<Value>(&a.conditions) {
                    walk(&tree, &mut out);
                }
            }
        }
    }
    out
}
