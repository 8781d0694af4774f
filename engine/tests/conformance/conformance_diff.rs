//! Comparison of flagbridge's output lines with the JavaScript SDK's goldens, for
//! `conformance.rs`: reading goldens (a duplicate key is an error), keys, field-by-field diffs.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

/// Fields of a decision line compared with the golden.
pub const DECISION_FIELDS: [&str; 6] = [
    "enabled",
    "variation_key",
    "rule_key",
    "variables",
    "omitted_from_result",
    "impressions",
];

/// Reads a golden JSON-lines file into a map by `key`; a key present twice is an error
/// (it would otherwise hide one of the two lines).
pub fn golden_map<K: Ord + std::fmt::Debug>(
    path: &Path,
    key: impl Fn(&Value) -> K,
) -> BTreeMap<K, Value> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("golden {} readable: {e}", path.display()));
    let mut map = BTreeMap::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{}:{}: not JSON: {e}", path.display(), n + 1));
        let k = key(&v);
        if let Some(old) = map.insert(k, v) {
            panic!(
                "{}:{}: duplicate golden key {:?} (first line: {old})",
                path.display(),
                n + 1,
                key(&old)
            );
        }
    }
    map
}

/// Identifies an output line: (case, flag key | "track" | "error").
pub fn line_key(v: &Value) -> (u64, String) {
    let case = v["case"].as_u64().expect("every line has a case number");
    let kind = if v.get("error").is_some() {
        "error".to_string()
    } else if v.get("type").and_then(Value::as_str) == Some("track") {
        "track".to_string()
    } else {
        v["flag_key"]
            .as_str()
            .expect("decision lines have flag_key")
            .to_string()
    };
    (case, kind)
}

fn numbers_equal(a: &serde_json::Number, b: &serde_json::Number) -> bool {
    match (a.as_i64(), b.as_i64()) {
        (Some(x), Some(y)) => x == y,
        _ => a.as_f64() == b.as_f64(),
    }
}

/// Records every difference between `expected` and `got` under `path`.
pub fn diff_value(path: &str, expected: &Value, got: &Value, out: &mut Vec<String>) {
    match (expected, got) {
        (Value::Number(a), Value::Number(b)) if numbers_equal(a, b) => {}
        (Value::Object(a), Value::Object(b)) => {
            for (k, va) in a {
                match b.get(k) {
                    Some(vb) => diff_value(&format!("{path}.{k}"), va, vb, out),
                    None => out.push(format!("{path}.{k}: expected {va}, got (absent)")),
                }
            }
            for (k, vb) in b {
                if !a.contains_key(k) {
                    out.push(format!("{path}.{k}: expected (absent), got {vb}"));
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (va, vb)) in a.iter().zip(b).enumerate() {
                diff_value(&format!("{path}[{i}]"), va, vb, out);
            }
        }
        _ if expected == got => {}
        _ => out.push(format!("{path}: expected {expected}, got {got}")),
    }
}

/// Applies the one allowed tolerance to our impression, given the golden one.
fn tolerate_empty_ids(expected: &Value, got: &mut Value) {
    for key in ["campaign_id", "experiment_id"] {
        if expected[key].is_null() && got[key] == "" {
            got[key] = Value::Null;
        }
    }
    if expected["campaign_id"].is_null() {
        if let Some(events) = got.get_mut("events").and_then(Value::as_array_mut) {
            for e in events {
                if e["entity_id"] == "" {
                    if let Some(m) = e.as_object_mut() {
                        m.remove("entity_id");
                    }
                }
            }
        }
    }
}

pub fn compare_line(expected: &Value, got: &Value) -> Vec<String> {
    let mut diffs = Vec::new();
    if expected.get("error").is_some() {
        return diffs; // both are error lines (same key); the message wording is free
    }
    if expected.get("type").and_then(Value::as_str) == Some("track") {
        diff_value(
            "conversions",
            &expected["conversions"],
            &got["conversions"],
            &mut diffs,
        );
        return diffs;
    }
    for field in DECISION_FIELDS {
        let e = expected.get(field).cloned().unwrap_or(Value::Null);
        let mut g = got.get(field).cloned().unwrap_or(Value::Null);
        if field == "impressions" {
            if let (Some(ea), Some(ga)) = (e.as_array(), g.as_array_mut()) {
                for (ei, gi) in ea.iter().zip(ga.iter_mut()) {
                    tolerate_empty_ids(ei, gi);
                }
            }
        }
        diff_value(field, &e, &g, &mut diffs);
    }
    diffs
}
