//! The request log of the loopback fake (`GET {url}/_log`, see `fake_remote.mjs`) turned into
//! the `requests` of a `#remote` line exactly as `decide_remote.mjs` does: CMAB uuids replaced
//! by `uuid:<ruleId>:<userId>:<n>` (the n-th distinct prediction request for that user and
//! rule in the run), attempts counted per uuid, ODP idempotence ids masked, the requests of a
//! case sorted independently of timing.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

/// Uuid references of one run.
#[derive(Debug, Default)]
pub struct UuidRefs {
    refs: HashMap<String, String>,
    per_pair: HashMap<String, u64>,
    attempts: HashMap<String, u64>,
}

/// `decodeURIComponent`, leniently: invalid escapes stay as they are, bad UTF-8 is replaced.
fn decode_uri_component(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

fn js_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "null".to_string(),
        other => other.to_string(),
    }
}

impl UuidRefs {
    /// Numbers the new uuids of `requests` (in log order) and sets each CMAB request's
    /// `attempt`.
    pub fn note(&mut self, requests: &mut [Value]) {
        for r in requests.iter_mut() {
            if r.get("kind").and_then(Value::as_str) != Some("cmab") {
                continue;
            }
            let inst = r
                .pointer("/body/instances/0")
                .cloned()
                .unwrap_or(Value::Null);
            let uuid = inst.get("cmabUUID").map(js_string).unwrap_or_default();
            let path = r.get("path").and_then(Value::as_str).unwrap_or("");
            let rule = path.strip_prefix("/predict/").unwrap_or(path);
            if !self.refs.contains_key(&uuid) {
                let visitor = inst.get("visitorId").map(js_string).unwrap_or_default();
                let pair = format!("{}:{visitor}", decode_uri_component(rule));
                let n = self.per_pair.entry(pair.clone()).or_insert(0);
                *n += 1;
                self.refs.insert(uuid.clone(), format!("uuid:{pair}:{n}"));
            }
            let attempts = self.attempts.entry(uuid).or_insert(0);
            *attempts += 1;
            if let Value::Object(m) = r {
                m.insert("attempt".into(), json!(*attempts));
            }
        }
    }

    /// The reference of a uuid (`unmatched:<uuid>` when the fake never saw it).
    pub fn reference(&self, uuid: &str) -> String {
        self.refs
            .get(uuid)
            .cloned()
            .unwrap_or_else(|| format!("unmatched:{uuid}"))
    }

    /// Impressions with `metadata.cmab_uuid` replaced by its reference.
    pub fn impressions(&self, impressions: &mut [Value]) {
        for im in impressions {
            if let Some(Value::String(u)) = im.pointer_mut("/metadata/cmab_uuid") {
                *u = self.reference(u);
            }
        }
    }

    fn normalize(&self, r: &Value) -> Value {
        let get = |k: &str| r.get(k).cloned().unwrap_or(Value::Null);
        let header = |k: &str| r.pointer(&format!("/headers/{k}")).cloned();
        let mut out = Map::new();
        out.insert("kind".into(), get("kind"));
        out.insert("method".into(), get("method"));
        out.insert("path".into(), get("path"));
        out.insert("status".into(), get("status"));
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                out.insert(k.into(), v);
            }
        };
        match r.get("kind").and_then(Value::as_str) {
            Some("cmab") => {
                put("attempt", r.get("attempt").cloned());
                put("content_type", header("content-type"));
                let mut body = get("body");
                if let Some(Value::Array(instances)) = body.get_mut("instances") {
                    for x in instances {
                        if let Some(u) = x.get_mut("cmabUUID") {
                            *u = Value::String(self.reference(&js_string(u)));
                        }
                    }
                } else if let Value::Object(m) = &mut body {
                    m.insert("instances".into(), json!([]));
                }
                put("body", Some(body));
                put("response", r.get("response").cloned());
            }
            Some("odp_segments") => {
                put("api_key", header("x-api-key"));
                put("content_type", header("content-type"));
                let query = r
                    .pointer("/body/query")
                    .filter(|q| !q.is_null())
                    .cloned()
                    .or_else(|| r.get("body").cloned());
                put("query", query);
                put("parsed", r.get("parsed").cloned());
                put("response", r.get("response").cloned());
            }
            Some("odp_events") => {
                put("api_key", header("x-api-key"));
                put("content_type", header("content-type"));
                let events: Vec<Value> = r
                    .get("body")
                    .and_then(Value::as_array)
                    .map(|list| {
                        list.iter()
                            .map(|e| {
                                let mut e = e.clone();
                                if let Some(Value::Object(d)) = e.get_mut("data") {
                                    if d.contains_key("idempotence_id") {
                                        d.insert("idempotence_id".into(), json!("<uuid>"));
                                    }
                                }
                                e
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                put("events", Some(Value::Array(events)));
            }
            _ => put("body", r.get("body").cloned()),
        }
        Value::Object(out)
    }

    /// The requests of one case, normalised and sorted as the oracle sorts them.
    pub fn requests(&self, requests: &[Value]) -> Vec<Value> {
        let mut out: Vec<(String, Value)> = requests
            .iter()
            .map(|r| {
                let x = self.normalize(r);
                let or =
                    |v: Option<&Value>, d: Value| v.filter(|v| !v.is_null()).cloned().unwrap_or(d);
                let key = Value::Array(vec![
                    x.get("kind").cloned().unwrap_or(Value::Null),
                    x.get("path").cloned().unwrap_or(Value::Null),
                    or(x.pointer("/body/instances/0/cmabUUID"), json!("")),
                    or(x.get("attempt"), json!(0)),
                    or(x.get("query"), json!("")),
                    or(x.get("events"), json!("")),
                ]);
                (key.to_string(), x)
            })
            .collect();
        out.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
        out.into_iter().map(|(_, v)| v).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_numbered_per_rule_and_user_and_attempts_counted() {
        let mut refs = UuidRefs::default();
        let req = |u: &str| {
            json!({"kind": "cmab", "method": "POST", "path": "/predict/r1", "status": 200,
                   "headers": {"content-type": "application/json"},
                   "body": {"instances": [{"visitorId": "u", "cmabUUID": u}]}, "response": "{}"})
        };
        let mut log = vec![req("a"), req("a"), req("b")];
        refs.note(&mut log);
        assert_eq!(refs.reference("a"), "uuid:r1:u:1");
        assert_eq!(refs.reference("b"), "uuid:r1:u:2");
        assert_eq!(refs.reference("z"), "unmatched:z");
        let out = refs.requests(&log);
        assert_eq!(out[0]["attempt"], 1);
        assert_eq!(out[1]["attempt"], 2);
        assert_eq!(out[2]["body"]["instances"][0]["cmabUUID"], "uuid:r1:u:2");
        assert_eq!(decode_uri_component("a%20b"), "a b");
    }
}
