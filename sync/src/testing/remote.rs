//! A fake CMAB prediction + ODP service: a Rust port of the shared oracle's `fake_remote.mjs`,
//! with the same deterministic answers, fault triggers (substrings of the user id) and request
//! log (`GET /_log`, `POST /_reset`), so that tests compare with the JavaScript goldens
//! without node.
//!
//! * `POST /predict/{ruleId}`: variation `fnv1a32(visitorId + "\n" + ruleId) % len(variations)`
//!   of the rule in the datafile (with `vary_per_call`, the per (user, rule) call count is
//!   mixed in). Triggers: `cmab_err500`, `cmab_flaky`, `cmab_badjson`, `cmab_empty`,
//!   `cmab_unknownvar`, `cmab_numeric`, `cmab_302`.
//! * `POST /v3/graphql`: each segment `qualified` iff `fnv1a32(userValue + "\n" + segment)` is
//!   even. Triggers: `odp_err500`, `odp_invalid_id`, `odp_err_other`, `odp_badjson`,
//!   `odp_noedges`. A body that is not JSON gets 400.
//! * `POST /v3/events`: 200.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};

/// FNV-1a, 32 bits, over the UTF-8 bytes.
pub fn fnv1a32(s: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in s.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

#[derive(Debug, Default)]
struct FakeState {
    variations: HashMap<String, Vec<String>>,
    vary_per_call: bool,
    log: Vec<Value>,
    calls: HashMap<String, u64>,
    flaky_seen: HashSet<String>,
}

/// The fake service; clone freely (shared state).
#[derive(Clone, Debug)]
pub struct FakeRemote {
    addr: SocketAddr,
    state: Arc<Mutex<FakeState>>,
}

fn rule_variations(datafile: &Value) -> HashMap<String, Vec<String>> {
    let mut map = HashMap::new();
    let id = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut add = |e: &Value| {
        let vars = e
            .get("variations")
            .and_then(Value::as_array)
            .map(|l| l.iter().map(|v| id(&v["id"])).collect())
            .unwrap_or_default();
        map.insert(id(&e["id"]), vars);
    };
    let list = |v: Option<&Value>| v.and_then(Value::as_array).cloned().unwrap_or_default();
    for e in list(datafile.get("experiments")) {
        add(&e);
    }
    for g in list(datafile.get("groups")) {
        for e in list(g.get("experiments")) {
            add(&e);
        }
    }
    for r in list(datafile.get("rollouts")) {
        for e in list(r.get("experiments")) {
            add(&e);
        }
    }
    map
}

/// `(userKey, userValue, subset)` of the SDK's hand-built GraphQL query, as the JavaScript
/// fake's regular expression reads it.
pub fn parse_segments_query(query: &str) -> Option<(String, String, Vec<String>)> {
    let start = query.find("customer(")? + "customer(".len();
    let rest = &query[start..];
    let key_len = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|n| *n > 0)?;
    let key = &rest[..key_len];
    let rest = rest[key_len..].strip_prefix(" : \"")?;
    let (value, rest) = quoted_tail(rest)?;
    let rest = rest.strip_prefix(") {audiences(subset: [")?;
    let end = rest.rfind("])")?;
    let inner = &rest[..end];
    let mut subset = Vec::new();
    let mut cursor = inner;
    while let Some(open) = cursor.find('"') {
        let (s, after) = quoted_tail(&cursor[open + 1..])?;
        subset.push(s.to_string());
        cursor = after;
    }
    Some((key.to_string(), value.to_string(), subset))
}

/// The text up to the next unescaped `"` and what follows that quote.
fn quoted_tail(s: &str) -> Option<(&str, &str)> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some((&s[..i], &s[i + 1..])),
            _ => i += 1,
        }
    }
    None
}

fn decode_path(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

impl FakeState {
    fn cmab_answer(&mut self, rule_id: &str, body: &Value) -> (u16, String) {
        let inst = body.pointer("/instances/0").cloned().unwrap_or(Value::Null);
        let visitor = match inst.get("visitorId") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        };
        let k = format!("{visitor}\n{rule_id}");
        let n = self.calls.get(&k).copied().unwrap_or(0) + 1;
        self.calls.insert(k.clone(), n);
        let vars = self.variations.get(rule_id).cloned().unwrap_or_default();
        let chosen = if vars.is_empty() {
            "0".to_string()
        } else {
            let h = if self.vary_per_call {
                fnv1a32(&format!("{k}\n{n}"))
            } else {
                fnv1a32(&k)
            };
            vars[h as usize % vars.len()].clone()
        };
        let normal = json!({"predictions": [{"variation_id": chosen}]}).to_string();
        let uuid = match inst.get("cmabUUID") {
            Some(Value::String(s)) => s.clone(),
            other => other.map(Value::to_string).unwrap_or_default(),
        };
        if visitor.contains("cmab_err500") {
            return (500, r#"{"error":"fake 500"}"#.into());
        }
        if visitor.contains("cmab_flaky") && self.flaky_seen.insert(uuid) {
            return (500, r#"{"error":"fake flaky 500"}"#.into());
        }
        if visitor.contains("cmab_badjson") {
            return (200, "not json".into());
        }
        if visitor.contains("cmab_empty") {
            return (200, r#"{"predictions":[]}"#.into());
        }
        if visitor.contains("cmab_unknownvar") {
            return (
                200,
                r#"{"predictions":[{"variation_id":"999999999"}]}"#.into(),
            );
        }
        if visitor.contains("cmab_numeric") {
            let number = chosen
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map_or(Value::Null, |n| flagbridge_engine_number(&n));
            return (
                200,
                json!({"predictions": [{"variation_id": number}]}).to_string(),
            );
        }
        if visitor.contains("cmab_302") {
            return (302, normal);
        }
        (200, normal)
    }
}

/// An integral float as an integer, as `JSON.stringify` prints it.
fn flagbridge_engine_number(n: &serde_json::Number) -> Value {
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 => json!(f as i64),
        _ => Value::Number(n.clone()),
    }
}

fn odp_answer(key: &str, value: &str, subset: &[String]) -> (u16, String) {
    if value.contains("odp_err500") {
        return (500, r#"{"error":"fake 500"}"#.into());
    }
    if value.contains("odp_badjson") {
        return (200, "not json".into());
    }
    if value.contains("odp_noedges") {
        return (200, r#"{"data":{"customer":{}}}"#.into());
    }
    if value.contains("odp_invalid_id") || value.contains("odp_err_other") {
        let code = if value.contains("odp_invalid_id") {
            "INVALID_IDENTIFIER_EXCEPTION"
        } else {
            "DATA_FETCHING_ERROR"
        };
        let body = json!({
            "errors": [{
                "message": format!("Exception while fetching data (/customer) : could not resolve _{key} = {value}"),
                "locations": [{"line": 1, "column": 8}],
                "path": ["customer"],
                "extensions": {"code": code, "classification": "DataFetchingException"},
            }],
            "data": {"customer": null},
        });
        return (200, body.to_string());
    }
    let edges: Vec<Value> = subset
        .iter()
        .map(|s| {
            let state = if fnv1a32(&format!("{value}\n{s}")) % 2 == 0 {
                "qualified"
            } else {
                "not_qualified"
            };
            json!({"node": {"name": s, "state": state}})
        })
        .collect();
    (
        200,
        json!({"data": {"customer": {"audiences": {"edges": edges}}}}).to_string(),
    )
}

fn reply(status: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn handle(
    State(state): State<Arc<Mutex<FakeState>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let mut st = state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let path = uri.path().to_string();
    if method == Method::GET && path == "/_log" {
        return reply(200, Value::Array(st.log.clone()).to_string());
    }
    if method == Method::POST && path == "/_reset" {
        st.log.clear();
        st.calls.clear();
        st.flaky_seen.clear();
        return reply(200, "{}".into());
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let body: Option<Value> = if text.is_empty() {
        Some(Value::Null)
    } else {
        serde_json::from_str(&text).ok()
    };
    let header_of = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map_or(Value::Null, |s| Value::String(s.to_string()))
    };
    let mut rec = json!({
        "seq": st.log.len(),
        "method": method.as_str(),
        "path": path,
        "headers": {"content-type": header_of("content-type"), "x-api-key": header_of("x-api-key")},
        "body": body.clone().unwrap_or_else(|| Value::String(text.clone())),
    });
    let (status, out) = if method != Method::POST {
        (405, "{}".to_string())
    } else if let Some(body) = body {
        if let Some(rule) = path.strip_prefix("/predict/") {
            rec["kind"] = json!("cmab");
            st.cmab_answer(&decode_path(rule), &body)
        } else if path == "/v3/graphql" {
            rec["kind"] = json!("odp_segments");
            let query = body.get("query").and_then(Value::as_str).unwrap_or("");
            match parse_segments_query(query) {
                Some((key, value, subset)) => {
                    rec["parsed"] = json!({"userKey": key, "userValue": value, "subset": subset});
                    odp_answer(&key, &value, &subset)
                }
                None => {
                    rec["parsed"] = Value::Null;
                    (400, r#"{"error":"unparsed query"}"#.to_string())
                }
            }
        } else if path == "/v3/events" {
            rec["kind"] = json!("odp_events");
            (
                200,
                r#"{"title":"Accepted","status":202,"timestamp":"2020-01-01T00:00:00.000Z"}"#
                    .to_string(),
            )
        } else {
            (404, "{}".to_string())
        }
    } else {
        (400, r#"{"error":"body is not JSON"}"#.to_string())
    };
    rec["status"] = json!(status);
    rec["response"] = json!(out);
    st.log.push(rec);
    reply(status, out)
}

impl FakeRemote {
    /// Starts the fake on 127.0.0.1 for `datafile` (the rules' variations answer predictions).
    pub async fn start(datafile: &Value, vary_per_call: bool) -> std::io::Result<Self> {
        let state = Arc::new(Mutex::new(FakeState {
            variations: rule_variations(datafile),
            vary_per_call,
            ..FakeState::default()
        }));
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&state));
        let addr = super::serve(app).await?;
        Ok(FakeRemote { addr, state })
    }

    /// The base URL, `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The requests recorded so far (the `GET /_log` array).
    pub fn log(&self) -> Vec<Value> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .log
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_the_reference_vectors() {
        assert_eq!(fnv1a32(""), 0x811c_9dc5);
        assert_eq!(fnv1a32("a"), 0xe40c_292c);
        assert_eq!(fnv1a32("foobar"), 0xbf9c_f968);
    }

    #[test]
    fn segments_query_is_read_like_the_javascript_fake() {
        let q = r#"query {customer(fs_user_id : "odp-user-1") {audiences(subset: ["a","b"]) {edges {node {name state}}}}}"#;
        let (k, v, s) = parse_segments_query(q).expect("parsed");
        assert_eq!((k.as_str(), v.as_str()), ("fs_user_id", "odp-user-1"));
        assert_eq!(s, ["a", "b"]);
        assert!(parse_segments_query("nothing").is_none());
    }
}
