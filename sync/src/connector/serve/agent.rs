//! Request and response shapes of the Optimizely Agent API (agent-openapi.yaml), so existing
//! Agent clients work unchanged. Unknown request fields are ignored, as Agent does.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Header that picks the project.
pub const SDK_KEY_HEADER: &str = "x-optimizely-sdk-key";

/// `POST /v1/decide` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DecideContext {
    /// User id (required).
    pub user_id: String,
    /// Attributes: string, number, boolean or null values.
    #[serde(default)]
    pub user_attributes: Option<Map<String, Value>>,
    /// SDK option names (`DISABLE_DECISION_EVENT`, ...).
    #[serde(default)]
    pub decide_options: Option<Vec<String>>,
    /// Forced decisions.
    #[serde(default)]
    pub forced_decisions: Option<Vec<ForcedDecision>>,
    /// Fetch the user's ODP segments before deciding (needs `connectors.optimizely.odp`).
    #[serde(default)]
    pub fetch_segments: Option<bool>,
    /// `IGNORE_CACHE`, `RESET_CACHE` for the segment fetch.
    #[serde(default)]
    pub fetch_segments_options: Option<Vec<String>>,
}

/// The body of `POST /v1/send-odp-event`.
#[derive(Debug, Clone, Deserialize)]
pub struct OdpEventBody {
    /// Action (required, not empty).
    pub action: String,
    /// Event type (`fullstack` when absent or empty).
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// Identifiers (at least one).
    #[serde(default)]
    pub identifiers: Option<Map<String, Value>>,
    /// Data: string, number, boolean or null values.
    #[serde(default)]
    pub data: Option<Map<String, Value>>,
}

/// A forced decision.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ForcedDecision {
    /// Flag key.
    pub flag_key: String,
    /// Rule key (None = flag-level).
    #[serde(default)]
    pub rule_key: Option<String>,
    /// Variation to force.
    pub variation_key: String,
}

/// `POST /v1/track` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackContext {
    /// User id (required).
    pub user_id: String,
    /// Attributes.
    #[serde(default)]
    pub user_attributes: Option<Map<String, Value>>,
    /// Event tags (`revenue`, `value`, ...).
    #[serde(default)]
    pub event_tags: Option<Map<String, Value>>,
}

/// The user echoed back in each decision.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UserContextOut {
    /// User id.
    pub user_id: String,
    /// Attributes as given.
    pub attributes: Map<String, Value>,
}

/// One decision (Agent's `OptimizelyDecision`): absent variation and rule are `""`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OptimizelyDecision {
    /// Variables by key.
    pub variables: Map<String, Value>,
    /// Variation key or `""`.
    pub variation_key: String,
    /// Flag on/off.
    pub enabled: bool,
    /// Rule key or `""`.
    pub rule_key: String,
    /// Flag key.
    pub flag_key: String,
    /// The user.
    pub user_context: UserContextOut,
    /// Reasons (with `INCLUDE_REASONS`).
    pub reasons: Vec<String>,
}

/// `POST /v1/track` answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TrackResponse {
    /// User id.
    pub user_id: String,
    /// Event key.
    pub event_key: String,
    /// Set when the event was not sent (unknown event key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Agent's error body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorBody {
    /// Message.
    pub error: String,
}

/// `POST /v1/batch` body.
#[derive(Debug, Clone, Deserialize)]
pub struct BatchContext {
    /// The operations.
    pub operations: Vec<BatchOperation>,
}

/// One batched request.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchOperation {
    /// GET or POST.
    pub method: String,
    /// Path such as `/v1/decide` (a query string is allowed).
    pub url: String,
    /// Caller's id for the operation.
    #[serde(default, rename = "operationID")]
    pub operation_id: Option<String>,
    /// JSON body.
    #[serde(default)]
    pub body: Option<Value>,
    /// Query parameters (`{"keys": ["a","b"]}` or `{"eventKey": "buy"}`).
    #[serde(default)]
    pub parameters: Option<Map<String, Value>>,
    /// Headers (`X-Optimizely-SDK-Key`).
    #[serde(default)]
    pub headers: Option<Map<String, Value>>,
}

/// `POST /v1/batch` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchResponse {
    /// RFC 3339 start.
    pub started_at: String,
    /// RFC 3339 end.
    pub ended_at: String,
    /// Operations that did not answer 200.
    pub error_count: u32,
    /// One item per operation, in order.
    pub response: Vec<BatchResponseItem>,
}

/// One batched answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchResponseItem {
    /// HTTP status the operation would have had.
    pub status: u16,
    /// Generated id.
    #[serde(rename = "requestID")]
    pub request_id: String,
    /// Caller's operation id.
    #[serde(rename = "operationID")]
    pub operation_id: String,
    /// Method.
    pub method: String,
    /// URL.
    pub url: String,
    /// Body.
    pub body: Value,
    /// RFC 3339 start.
    pub started_at: String,
    /// RFC 3339 end.
    pub ended_at: String,
}

/// The operations a batch can hold (method, path).
pub const BATCH_OPERATIONS: [(&str, &str); 8] = [
    ("POST", "/v1/decide"),
    ("POST", "/v1/track"),
    ("GET", "/v1/config"),
    ("GET", "/v1/datafile"),
    ("POST", "/v1/activate"),
    ("POST", "/v1/override"),
    ("POST", "/v1/lookup"),
    ("POST", "/v1/save"),
];

/// The method and url of a batched operation as echoed back: only a supported operation is
/// repeated; for anything else both are `""` (what the caller sent is not reflected).
pub fn batch_echo(method: &str, url: &str) -> (String, String) {
    let path = url.split_once('?').map_or(url, |(p, _)| p);
    let known = BATCH_OPERATIONS
        .iter()
        .any(|(m, p)| m.eq_ignore_ascii_case(method) && *p == path);
    if known {
        (method.to_ascii_uppercase(), url.to_string())
    } else {
        (String::new(), String::new())
    }
}

/// Parses a JSON body, naming the failing field: `body.userAttributes.age: invalid type ...`.
pub fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err("body: empty; a JSON object is required".into());
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de)
        .map_err(|e| format!("{}: {}", body_path(e.path()), e.inner()))
}

/// Parses a JSON value (a batched body), naming the failing field.
pub fn parse_value<T: DeserializeOwned>(value: Value) -> Result<T, String> {
    serde_path_to_error::deserialize(value)
        .map_err(|e| format!("{}: {}", body_path(e.path()), e.inner()))
}

fn body_path(path: &serde_path_to_error::Path) -> String {
    let path = path.to_string();
    if path == "." || path.starts_with('?') {
        "body".to_string()
    } else {
        format!("body.{}", path.trim_end_matches(".?"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decide_body_errors_name_the_field() {
        let cases: &[(&str, &str)] = &[
            ("", "body: empty"),
            ("{}", "body: missing field `userId`"),
            (
                r#"{"userId": 5}"#,
                "body.userId: invalid type: integer `5`, expected a string",
            ),
            (
                r#"{"userId": "u", "userAttributes": []}"#,
                "body.userAttributes: invalid type: sequence",
            ),
            (
                r#"{"userId": "u", "decideOptions": "X"}"#,
                "body.decideOptions: invalid type",
            ),
            (
                r#"{"userId": "u", "forcedDecisions": [{"flagKey": "f"}]}"#,
                "body.forcedDecisions[0]: missing field `variationKey`",
            ),
            (r#"{"userId": "u""#, "body: EOF while parsing"),
        ];
        for (body, want) in cases {
            let err = parse_body::<DecideContext>(body.as_bytes()).unwrap_err();
            assert!(err.starts_with(want), "{body}: {err}");
        }
        let ok: DecideContext =
            parse_body(br#"{"userId":"u","extra":1,"userAttributes":{"age":3}}"#).unwrap();
        assert_eq!(ok.user_id, "u");
    }

    #[test]
    fn decision_serializes_like_agent() {
        let d = OptimizelyDecision {
            variables: Map::new(),
            variation_key: String::new(),
            enabled: false,
            rule_key: String::new(),
            flag_key: "f".into(),
            user_context: UserContextOut {
                user_id: "u".into(),
                attributes: Map::new(),
            },
            reasons: vec![],
        };
        assert_eq!(
            serde_json::to_value(&d).unwrap(),
            serde_json::json!({"variables": {}, "variationKey": "", "enabled": false, "ruleKey": "",
                "flagKey": "f", "userContext": {"userId": "u", "attributes": {}}, "reasons": []})
        );
    }
}
