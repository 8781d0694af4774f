//! ODP (JS SDK 6.6.1 `odp/`): the segment manager (GraphQL
//! query to `{host}/v3/graphql`, its cache and options) and the event sender (`{host}/v3/events`).
//! The host and public key come from the datafile's `odp` integration; the host can be
//! overridden (tests, proxies).

use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use flagbridge_engine::ProjectConfig;
use serde_json::{Map, Value};

use super::cache::TtlLru;

/// Segment cache entries (`segmentsCacheSize` default).
pub const DEFAULT_SEGMENTS_CACHE_SIZE: usize = 10_000;
/// Segment cache entry lifetime (`segmentsCacheTimeout` default: 10 minutes).
pub const DEFAULT_SEGMENTS_CACHE_TTL: Duration = Duration::from_secs(600);
/// Timeout of a segments request (`segmentsApiTimeout` default).
pub const DEFAULT_SEGMENTS_TIMEOUT: Duration = Duration::from_secs(10);
/// Timeout of an events request (`eventApiTimeout` default).
pub const DEFAULT_EVENTS_TIMEOUT: Duration = Duration::from_secs(10);
/// Events per request (`eventBatchSize` default on Node).
pub const DEFAULT_EVENT_BATCH_SIZE: usize = 10;
/// Interval at which queued events are sent (`eventFlushInterval` default).
pub const DEFAULT_EVENT_FLUSH_INTERVAL: Duration = Duration::from_millis(1000);
/// Retries of a failed events request (exponential backoff from 200 ms to 1 s).
pub const DEFAULT_EVENT_RETRIES: u32 = 2;
/// `data_source_version` of ODP events: the JavaScript SDK's version, as it sends it.
pub const ODP_DATA_SOURCE_VERSION: &str = "6.6.1";
/// `data_source` of ODP events (`javascript-sdk`, even on Node).
pub const ODP_DATA_SOURCE: &str = "javascript-sdk";

/// `fetchQualifiedSegments` options (JavaScript `OptimizelySegmentOption`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SegmentOption {
    /// Neither read nor fill the cache (`IGNORE_CACHE`).
    IgnoreCache,
    /// Empty the whole cache first (`RESET_CACHE`).
    ResetCache,
}

impl FromStr for SegmentOption {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "IGNORE_CACHE" => Ok(SegmentOption::IgnoreCache),
            "RESET_CACHE" => Ok(SegmentOption::ResetCache),
            other => Err(format!("unknown segment option \"{other}\"")),
        }
    }
}

/// Why segments could not be fetched (the user's segments then become "none").
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OdpError {
    /// The datafile has no `odp` integration.
    #[error("ODP is not integrated")]
    NotIntegrated,
    /// A non-2xx answer or a failed request (`Audience segments fetch failed (network error)`).
    #[error("Audience segments fetch failed (network error)")]
    Network,
    /// The body is not the expected JSON (`decode error`).
    #[error("Audience segments fetch failed (decode error)")]
    Decode,
    /// GraphQL `INVALID_IDENTIFIER_EXCEPTION`.
    #[error("Audience segments fetch failed (invalid identifier)")]
    InvalidIdentifier,
    /// Another GraphQL error (its `classification`).
    #[error("Audience segments fetch failed ({0})")]
    Graphql(String),
}

/// Why an ODP event was dropped.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum OdpEventError {
    /// The datafile has no `odp` integration.
    #[error("ODP is not integrated")]
    NotIntegrated,
    /// No identifiers.
    #[error("ODP events should have at least one key-value pair in identifiers")]
    NoIdentifiers,
    /// A data value is not a string, number, boolean or null.
    #[error("ODP event data is not valid")]
    InvalidData,
    /// The action is empty.
    #[error("ODP event action is invalid (cannot be empty)")]
    EmptyAction,
}

/// Why an [`OdpManagerBuilder`] could not build.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OdpBuildError {
    /// The HTTP client could not be built.
    #[error("cannot build the ODP HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// One ODP event as sent: `{type, action, identifiers, data}`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OdpEvent {
    /// Event type (`fullstack` when empty).
    #[serde(rename = "type")]
    pub kind: String,
    /// Action.
    pub action: String,
    /// Identifiers, `fs_user_id` aliases renamed and moved last.
    pub identifiers: Map<String, Value>,
    /// Data, after the SDK's common fields.
    pub data: Map<String, Value>,
}

/// Settings of an [`OdpManager`].
#[derive(Debug, Clone)]
pub struct OdpManagerBuilder {
    host: Option<String>,
    cache_size: usize,
    cache_ttl: Duration,
    segments_timeout: Duration,
    events_timeout: Duration,
    batch_size: usize,
    retries: u32,
}

impl Default for OdpManagerBuilder {
    fn default() -> Self {
        OdpManagerBuilder {
            host: None,
            cache_size: DEFAULT_SEGMENTS_CACHE_SIZE,
            cache_ttl: DEFAULT_SEGMENTS_CACHE_TTL,
            segments_timeout: DEFAULT_SEGMENTS_TIMEOUT,
            events_timeout: DEFAULT_EVENTS_TIMEOUT,
            batch_size: DEFAULT_EVENT_BATCH_SIZE,
            retries: DEFAULT_EVENT_RETRIES,
        }
    }
}

impl OdpManagerBuilder {
    /// Every default.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends segment queries and events to this host instead of the datafile's (tests,
    /// proxies). Default: the datafile's `integrations[key=odp].host`.
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into().trim_end_matches('/').to_string());
        self
    }

    /// Segment cache entries. Default: [`DEFAULT_SEGMENTS_CACHE_SIZE`].
    pub fn segments_cache_size(mut self, size: usize) -> Self {
        self.cache_size = size;
        self
    }

    /// Segment cache entry lifetime. Default: [`DEFAULT_SEGMENTS_CACHE_TTL`].
    pub fn segments_cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self
    }

    /// Timeout of a segments request. Default: [`DEFAULT_SEGMENTS_TIMEOUT`].
    pub fn segments_timeout(mut self, timeout: Duration) -> Self {
        self.segments_timeout = timeout;
        self
    }

    /// Timeout of an events request. Default: [`DEFAULT_EVENTS_TIMEOUT`].
    pub fn events_timeout(mut self, timeout: Duration) -> Self {
        self.events_timeout = timeout;
        self
    }

    /// Events per request (at least 1). Default: [`DEFAULT_EVENT_BATCH_SIZE`].
    pub fn event_batch_size(mut self, size: usize) -> Self {
        self.batch_size = size.max(1);
        self
    }

    /// Retries of a failed events request. Default: [`DEFAULT_EVENT_RETRIES`].
    pub fn event_retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// The manager.
    pub fn build(self) -> Result<OdpManager, OdpBuildError> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(OdpManager {
            http,
            cache: TtlLru::new(self.cache_size, self.cache_ttl),
            config_seen: Mutex::new(None),
            queue: Mutex::new(Vec::new()),
            settings: self,
        })
    }
}

/// ODP segments and events (see the module doc). Share it (`Arc`).
#[derive(Debug)]
pub struct OdpManager {
    http: reqwest::Client,
    cache: TtlLru<String, Vec<String>>,
    /// The ODP settings last used `(host, key, segments)`: the cache is reset when they change.
    config_seen: Mutex<Option<(String, String, Vec<String>)>>,
    queue: Mutex<Vec<(String, String, OdpEvent)>>,
    settings: OdpManagerBuilder,
}

/// `vuid` for ids starting `vuid_` and longer than 5 characters, else `fs_user_id`.
pub fn user_key(user_id: &str) -> &'static str {
    if user_id.starts_with("vuid_") && user_id.chars().count() > 5 {
        "vuid"
    } else {
        "fs_user_id"
    }
}

/// The GraphQL body exactly as JavaScript concatenates it (no escaping).
pub fn graphql_body(user_key: &str, user_value: &str, segments: &[String]) -> String {
    let subset: Vec<String> = segments.iter().map(|s| format!("\\\"{s}\\\"")).collect();
    format!(
        "{{\"query\" : \"query {{customer({user_key} : \\\"{user_value}\\\") {{audiences(subset: [{}]) {{edges {{node {{name state}}}}}}}}}}\"}}",
        subset.join(",")
    )
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl OdpManager {
    /// A builder with every default.
    pub fn builder() -> OdpManagerBuilder {
        OdpManagerBuilder::new()
    }

    /// `(host, public key)` to use with `config`; `None` when ODP is not integrated.
    fn endpoint(&self, config: &ProjectConfig) -> Option<(String, String)> {
        let (host, key) = config.odp_integration()?;
        let host = match (&self.settings.host, host.is_empty()) {
            // An empty datafile host stays empty, as the oracle leaves it.
            (Some(over), false) => over.clone(),
            _ => host.to_string(),
        };
        Some((host, key.to_string()))
    }

    /// Resets the cache when the ODP settings of the config changed (JavaScript `updateConfig`).
    fn note_config(&self, host: &str, key: &str, segments: &[String]) {
        let mut seen = lock(&self.config_seen);
        let same = seen
            .as_ref()
            .is_some_and(|(h, k, s)| h == host && k == key && s.as_slice() == segments);
        if !same {
            *seen = Some((host.to_string(), key.to_string(), segments.to_vec()));
            self.cache.reset();
        }
    }

    /// The user's qualified segments (JavaScript `fetchQualifiedSegments`): `[]` without a
    /// request when no audience names a segment; else from the cache or the GraphQL API.
    pub async fn fetch_qualified_segments(
        &self,
        config: &ProjectConfig,
        user_id: &str,
        options: &[SegmentOption],
    ) -> Result<Vec<String>, OdpError> {
        let (host, key) = self.endpoint(config).ok_or(OdpError::NotIntegrated)?;
        let segments = config.odp_segments_to_check();
        self.note_config(&host, &key, segments);
        if segments.is_empty() {
            return Ok(Vec::new());
        }
        let user_key = user_key(user_id);
        let cache_key = format!("{user_key}-$-{user_id}");
        let ignore = options.contains(&SegmentOption::IgnoreCache);
        if options.contains(&SegmentOption::ResetCache) {
            self.cache.reset();
        }
        if !ignore {
            if let Some(found) = self.cache.lookup(&cache_key) {
                return Ok(found);
            }
        }
        let found = self.query(&host, &key, user_key, user_id, segments).await;
        if let (Ok(list), false) = (&found, ignore) {
            self.cache.save(cache_key, list.clone());
        }
        found
    }

    async fn query(
        &self,
        host: &str,
        api_key: &str,
        user_key: &str,
        user_id: &str,
        segments: &[String],
    ) -> Result<Vec<String>, OdpError> {
        let body = graphql_body(user_key, user_id, segments);
        let response = self
            .http
            .post(format!("{host}/v3/graphql"))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("x-api-key", api_key)
            .body(body)
            .timeout(self.settings.segments_timeout)
            .send()
            .await
            .map_err(|_| OdpError::Network)?;
        if !response.status().is_success() {
            return Err(OdpError::Network);
        }
        let bytes = response.bytes().await.map_err(|_| OdpError::Network)?;
        parse_segments(&bytes)
    }

    /// Queues an ODP event (JavaScript `sendOdpEvent`): validated, common data added,
    /// `fs-user-id` aliases renamed. Sent by [`flush`](Self::flush) (or when a batch is full,
    /// by the caller's next flush).
    pub fn send_event(
        &self,
        config: &ProjectConfig,
        action: &str,
        kind: Option<&str>,
        identifiers: Vec<(String, Value)>,
        data: Vec<(String, Value)>,
    ) -> Result<(), OdpEventError> {
        let (host, key) = self.endpoint(config).ok_or(OdpEventError::NotIntegrated)?;
        let event = make_event(action, kind, identifiers, data)?;
        lock(&self.queue).push((host, key, event));
        Ok(())
    }

    /// Events waiting to be sent.
    pub fn queued(&self) -> usize {
        lock(&self.queue).len()
    }

    /// Whether enough events wait for a full batch.
    pub fn batch_full(&self) -> bool {
        self.queued() >= self.settings.batch_size
    }

    /// Sends every queued event, in batches of the batch size per host; returns the number
    /// of events whose request succeeded.
    pub async fn flush(&self) -> usize {
        let queued = std::mem::take(&mut *lock(&self.queue));
        let mut sent = 0;
        let mut rest = queued.as_slice();
        while let Some((host, key, _)) = rest.first() {
            let run = rest
                .iter()
                .take(self.settings.batch_size)
                .take_while(|(h, k, _)| h == host && k == key)
                .count();
            let events: Vec<&OdpEvent> = rest[..run].iter().map(|(_, _, e)| e).collect();
            if self.post_events(host, key, &events).await {
                sent += run;
            }
            rest = &rest[run..];
        }
        sent
    }

    async fn post_events(&self, host: &str, api_key: &str, events: &[&OdpEvent]) -> bool {
        let Ok(body) = serde_json::to_string(events) else {
            return false;
        };
        let mut backoff = Duration::from_millis(200);
        for attempt in 0..=self.settings.retries {
            if attempt > 0 {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
            let sent = self
                .http
                .post(format!("{host}/v3/events"))
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header("x-api-key", api_key)
                .body(body.clone())
                .timeout(self.settings.events_timeout)
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => return true,
                Ok(r) if r.status().is_client_error() => return false,
                Ok(_) | Err(_) => {
                    tracing::debug!(host, attempt, "ODP events request failed");
                }
            }
        }
        false
    }
}

/// The event as JavaScript builds it (see [`OdpManager::send_event`]).
pub fn make_event(
    action: &str,
    kind: Option<&str>,
    identifiers: Vec<(String, Value)>,
    data: Vec<(String, Value)>,
) -> Result<OdpEvent, OdpEventError> {
    if identifiers.is_empty() {
        return Err(OdpEventError::NoIdentifiers);
    }
    let valid = |v: &Value| {
        matches!(
            v,
            Value::Null | Value::String(_) | Value::Number(_) | Value::Bool(_)
        )
    };
    if !data.iter().all(|(_, v)| valid(v)) {
        return Err(OdpEventError::InvalidData);
    }
    if action.is_empty() {
        return Err(OdpEventError::EmptyAction);
    }
    let mut ids = Map::new();
    let mut fs_user_id = None;
    for (k, v) in identifiers {
        let lower = k.to_lowercase();
        if lower == "fs-user-id" || lower == "fs_user_id" {
            ids.remove("fs_user_id");
            fs_user_id = Some(v);
        } else {
            ids.insert(k, v);
        }
    }
    if let Some(v) = fs_user_id {
        ids.insert("fs_user_id".to_string(), v);
    }
    let mut all = Map::new();
    all.insert(
        "idempotence_id".into(),
        Value::String(uuid::Uuid::new_v4().to_string()),
    );
    all.insert("data_source_type".into(), "sdk".into());
    all.insert("data_source".into(), ODP_DATA_SOURCE.into());
    all.insert("data_source_version".into(), ODP_DATA_SOURCE_VERSION.into());
    for (k, v) in data {
        all.insert(k, v);
    }
    Ok(OdpEvent {
        kind: match kind {
            Some(k) if !k.is_empty() => k.to_string(),
            _ => "fullstack".to_string(),
        },
        action: action.to_string(),
        identifiers: ids,
        data: all,
    })
}

/// The qualified segment names of a GraphQL answer, in answer order.
fn parse_segments(bytes: &[u8]) -> Result<Vec<String>, OdpError> {
    let body: Value = serde_json::from_slice(bytes).map_err(|_| OdpError::Decode)?;
    let obj = body.as_object().ok_or(OdpError::Decode)?;
    if !obj.contains_key("data") {
        return Err(OdpError::Decode);
    }
    if let Some(errors) = obj.get("errors").and_then(Value::as_array) {
        if let Some(first) = errors.first() {
            let ext = first.get("extensions");
            let code = ext.and_then(|e| e.get("code")).and_then(Value::as_str);
            if code == Some("INVALID_IDENTIFIER_EXCEPTION") {
                return Err(OdpError::InvalidIdentifier);
            }
            let class = ext
                .and_then(|e| e.get("classification"))
                .and_then(Value::as_str)
                .unwrap_or("undefined");
            return Err(OdpError::Graphql(class.to_string()));
        }
    }
    let edges = body
        .pointer("/data/customer/audiences/edges")
        .and_then(Value::as_array)
        .ok_or(OdpError::Decode)?;
    let mut out = Vec::new();
    for edge in edges {
        let node = edge.get("node").ok_or(OdpError::Decode)?;
        let name = node.get("name").and_then(Value::as_str);
        let state = node.get("state").and_then(Value::as_str);
        match (name, state) {
            (Some(name), Some("qualified")) => out.push(name.to_string()),
            (Some(_), Some(_)) => {}
            _ => return Err(OdpError::Decode),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn graphql_body_matches_the_sdk_text() {
        let body = graphql_body(
            "fs_user_id",
            "odp-user-1",
            &["odp-segment-1".into(), "odp-segment-2".into()],
        );
        assert_eq!(
            body,
            r#"{"query" : "query {customer(fs_user_id : \"odp-user-1\") {audiences(subset: [\"odp-segment-1\",\"odp-segment-2\"]) {edges {node {name state}}}}}"}"#
        );
    }

    #[test]
    fn user_key_is_vuid_only_for_long_vuid_ids() {
        assert_eq!(user_key("vuid_abc"), "vuid");
        assert_eq!(user_key("vuid_"), "fs_user_id");
        assert_eq!(user_key("user"), "fs_user_id");
    }

    #[test]
    fn answers_and_their_failures() {
        let ok = br#"{"data":{"customer":{"audiences":{"edges":[{"node":{"name":"a","state":"qualified"}},{"node":{"name":"b","state":"not_qualified"}}]}}}}"#;
        assert_eq!(parse_segments(ok).ok(), Some(vec!["a".to_string()]));
        assert!(matches!(parse_segments(b"not json"), Err(OdpError::Decode)));
        assert!(matches!(
            parse_segments(br#"{"data":{"customer":{}}}"#),
            Err(OdpError::Decode)
        ));
        let invalid = br#"{"errors":[{"extensions":{"code":"INVALID_IDENTIFIER_EXCEPTION","classification":"DataFetchingException"}}],"data":{"customer":null}}"#;
        assert!(matches!(
            parse_segments(invalid),
            Err(OdpError::InvalidIdentifier)
        ));
        let other = br#"{"errors":[{"extensions":{"code":"X","classification":"DataFetchingException"}}],"data":{"customer":null}}"#;
        assert!(
            matches!(parse_segments(other), Err(OdpError::Graphql(c)) if c == "DataFetchingException")
        );
    }

    #[test]
    fn events_are_validated_and_aliases_renamed_last() {
        let e = make_event(
            "purchase",
            None,
            vec![
                ("FS-USER-ID".into(), json!("u1")),
                ("email".into(), json!("a@b")),
            ],
            vec![("k".into(), json!(1))],
        )
        .expect("valid");
        assert_eq!(e.kind, "fullstack");
        let keys: Vec<&String> = e.identifiers.keys().collect();
        assert_eq!(keys, ["email", "fs_user_id"]);
        let data: Vec<&String> = e.data.keys().collect();
        assert_eq!(
            data,
            [
                "idempotence_id",
                "data_source_type",
                "data_source",
                "data_source_version",
                "k"
            ]
        );
        assert_eq!(
            make_event("a", None, vec![], vec![]),
            Err(OdpEventError::NoIdentifiers)
        );
        assert_eq!(
            make_event(
                "a",
                None,
                vec![("x".into(), json!(1))],
                vec![("n".into(), json!({}))]
            ),
            Err(OdpEventError::InvalidData)
        );
        assert_eq!(
            make_event("", None, vec![("x".into(), json!(1))], vec![]),
            Err(OdpEventError::EmptyAction)
        );
    }
}
