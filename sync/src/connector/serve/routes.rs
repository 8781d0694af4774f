//! The HTTP routes: Agent API, webhook, health, metrics.

use std::str::FromStr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use flagbridge_engine::{AttributeValue, DecideOption, DecideOptions, Decision, UserContext};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::agent::{
    self, BatchContext, BatchResponse, BatchResponseItem, DecideContext, ErrorBody, TrackContext,
    TrackResponse,
};
use super::metrics;
use super::state::{ProjectRuntime, Runtime};
use super::webhook;

/// An answer: status and JSON body.
type Answer = (StatusCode, Value);

fn error(status: StatusCode, message: impl Into<String>) -> Answer {
    (
        status,
        serde_json::to_value(ErrorBody {
            error: message.into(),
        })
        .unwrap_or(Value::Null),
    )
}

fn respond((status, body): Answer) -> Response {
    (status, Json(body)).into_response()
}

/// Builds the router.
pub fn router(rt: Arc<Runtime>) -> Router {
    let server = &rt.config.server;
    let api = Router::new()
        .route("/v1/decide", post(decide))
        .route("/v1/track", post(track))
        .route("/v1/config", get(config))
        .route("/v1/datafile", get(datafile))
        .route("/v1/batch", post(batch))
        .route("/v1/send-odp-event", post(send_odp_event))
        .merge(super::extra::routes())
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&rt),
            require_token,
        ));
    Router::new()
        .merge(api)
        .route("/webhooks/optimizely", post(webhook_handler))
        .route("/oauth/token", post(oauth_token))
        .route("/health", get(health))
        .route("/metrics", get(metrics_handler))
        .route("/", get(super::status::page))
        .route("/status.json", get(super::status::json_handler))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&rt),
            count_requests,
        ))
        .layer(DefaultBodyLimit::max(server.max_body_bytes))
        .layer(middleware::from_fn(super::errors::json_errors))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&rt),
            super::cors::cors,
        ))
        .with_state(rt)
}

async fn require_token(State(rt): State<Arc<Runtime>>, req: Request, next: Next) -> Response {
    if let Err((status, message)) = super::oauth::check(&rt, req.headers()) {
        let mut resp = respond(error(status, message));
        resp.headers_mut()
            .insert("www-authenticate", HeaderValue::from_static("Bearer"));
        return resp;
    }
    next.run(req).await
}

async fn count_requests(State(rt): State<Arc<Runtime>>, req: Request, next: Next) -> Response {
    let route = match req.uri().path() {
        p @ ("/v1/decide"
        | "/v1/track"
        | "/v1/config"
        | "/v1/datafile"
        | "/v1/batch"
        | "/v1/activate"
        | "/v1/override"
        | "/v1/lookup"
        | "/v1/save"
        | "/webhooks/optimizely"
        | "/health"
        | "/metrics"
        | "/"
        | "/status.json") => p.to_string(),
        _ => "other".to_string(),
    };
    let resp = next.run(req).await;
    if let Ok(mut m) = rt.http.lock() {
        *m.entry((route, resp.status().as_u16())).or_default() += 1;
    }
    resp
}

/// Finds the project: the `X-Optimizely-SDK-Key` header, or the only project when there is one.
pub(crate) fn project<'a>(
    rt: &'a Runtime,
    sdk_key: Option<&str>,
) -> Result<&'a Arc<ProjectRuntime>, Answer> {
    // Agent also accepts `sdk_key:datafile_token`; the token is configured here, so only the
    // key part picks the project.
    let key = sdk_key.map(|k| k.split(':').next().unwrap_or(k).trim());
    match key.filter(|k| !k.is_empty()) {
        Some(key) => rt.projects.get(key).ok_or_else(|| {
            error(
                StatusCode::FORBIDDEN,
                "unknown SDK key in X-Optimizely-SDK-Key",
            )
        }),
        None if rt.ordered.len() == 1 => Ok(&rt.ordered[0]),
        None => Err(error(
            StatusCode::BAD_REQUEST,
            "missing X-Optimizely-SDK-Key header (this server has several projects)",
        )),
    }
}

fn sdk_key(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(agent::SDK_KEY_HEADER)
        .and_then(|v| v.to_str().ok())
}

/// Query values of `name`, one per occurrence and as given, as Agent reads them (`r.Form["keys"]`):
/// `?keys=a&keys=b` is two keys, `?keys=a,b` is the one key `a,b`.
fn query_values(query: Option<&str>, name: &str) -> Vec<String> {
    url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .collect()
}

/// The user of a decide/track body. An empty id is a user id like any other (the JavaScript
/// SDK decides for it); numbers are read exactly and integers beyond 2^53 as `JSON.parse` reads
/// them; array and object values are kept as the SDK keeps them (`exists` true, unknown to
/// other conditions, left out of events, sent in CMAB requests).
pub(crate) fn build_user(user_id: &str, attributes: Option<&Map<String, Value>>) -> UserContext {
    let mut user = UserContext::new(user_id);
    for (key, value) in attributes.into_iter().flatten() {
        if let Some(v) = AttributeValue::from_json(value) {
            user.set_attribute(key.clone(), v);
        }
    }
    user
}

/// The user and options of a decide request.
fn decide_input(body: &DecideContext) -> Result<(UserContext, DecideOptions), Answer> {
    let mut user = build_user(&body.user_id, body.user_attributes.as_ref());
    let mut options = DecideOptions::NONE;
    for (i, name) in body.decide_options.iter().flatten().enumerate() {
        match DecideOption::from_str(name) {
            Ok(o) => options = options.with(o),
            Err(_) => {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "body.decideOptions[{i}]: unknown option `{name}` (known: {})",
                        DecideOption::ALL.map(|o| o.as_str()).join(", ")
                    ),
                ))
            }
        }
    }
    for fd in body.forced_decisions.iter().flatten() {
        user.set_forced_decision(&fd.flag_key, fd.rule_key.as_deref(), &fd.variation_key);
    }
    Ok((user, options))
}

/// `fetchSegments: true`: the user's ODP segments, fetched with `fetchSegmentsOptions`
/// (`IGNORE_CACHE`, `RESET_CACHE`), set on the user (cleared when the fetch fails, as the SDK
/// sets `null`).
async fn fetch_segments(
    p: &ProjectRuntime,
    body: &DecideContext,
    user: &mut UserContext,
) -> Result<(), Answer> {
    if body.fetch_segments != Some(true) {
        return Ok(());
    }
    let mut options = Vec::new();
    for (i, name) in body.fetch_segments_options.iter().flatten().enumerate() {
        match name.parse::<crate::remote::SegmentOption>() {
            Ok(o) => options.push(o),
            Err(_) => {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "body.fetchSegmentsOptions[{i}]: unknown option `{name}` (known: IGNORE_CACHE, RESET_CACHE)"
                    ),
                ))
            }
        }
    }
    match p
        .client
        .fetch_qualified_segments(&body.user_id, &options)
        .await
    {
        Some(segments) => user.set_qualified_segments(segments),
        None => user.clear_qualified_segments(),
    }
    Ok(())
}

/// Decides the request's flags and hands the answer to `write` (one object for one key, else
/// an array without the decisions `ENABLED_FLAGS_ONLY` drops). Without CMAB rules the
/// engine's borrowed decisions are written as they are; with them the client's async decide
/// (predictions fetched, as the SDK's `decideAsync`) gives owned decisions.
async fn decide_flags<R>(
    p: &ProjectRuntime,
    keys: &[String],
    body: &DecideContext,
    write: impl FnOnce(DecidedOut<'_>) -> R,
) -> Result<R, Answer> {
    let (mut user, options) = decide_input(body)?;
    fetch_segments(p, body, &mut user).await?;
    let user_out = user_json(body)?;
    if p.client.config().has_cmab_rules() {
        return Ok(if keys.len() == 1 {
            let d = p.client.decide_async(&user, &keys[0], options).await;
            write(DecidedOut::One(DecisionOut::owned(&d, &user_out)))
        } else {
            let all = if keys.is_empty() {
                p.client.decide_all_async(&user, options).await
            } else {
                let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
                p.client.decide_for_keys_async(&user, &refs, options).await
            };
            write(DecidedOut::Many(
                all.iter()
                    .map(|d| DecisionOut::owned(d, &user_out))
                    .collect(),
            ))
        });
    }
    Ok(if keys.len() == 1 {
        p.client.decide_with(&user, &keys[0], options, |d| {
            write(DecidedOut::One(DecisionOut::new(d, &user_out)))
        })
    } else {
        let refs: Option<Vec<&str>> =
            (!keys.is_empty()).then(|| keys.iter().map(String::as_str).collect());
        p.client
            .decide_many_with(&user, refs.as_deref(), options, |all| {
                write(render_many(all, &user_out))
            })
    })
}

/// Agent's `OptimizelyDecision`, serialised from the engine's borrowed decision (the user
/// is serialised once per request and written as is into every decision).
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct DecisionOut<'a> {
    variables: Variables<'a>,
    variation_key: &'a str,
    enabled: bool,
    rule_key: &'a str,
    flag_key: &'a str,
    user_context: &'a RawValue,
    reasons: &'a [String],
}

/// A decision's variables as a JSON object: written from the engine's values, or the
/// client's copy (async decides).
enum Variables<'a> {
    Engine(&'a Decision<'a>),
    Owned(&'a Map<String, Value>),
}

impl serde::Serialize for Variables<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Variables::Engine(d) => serializer.collect_map(d.variables()),
            Variables::Owned(map) => map.serialize(serializer),
        }
    }
}

#[derive(serde::Serialize, Clone, Copy)]
#[serde(rename_all = "camelCase")]
struct UserOut<'a> {
    user_id: &'a str,
    attributes: &'a Map<String, Value>,
}

impl<'a> DecisionOut<'a> {
    fn new(d: &'a Decision<'a>, user: &'a RawValue) -> Self {
        DecisionOut {
            variables: Variables::Engine(d),
            variation_key: d.variation_key().unwrap_or_default(),
            enabled: d.enabled(),
            rule_key: d.rule_key().unwrap_or_default(),
            flag_key: d.flag_key(),
            user_context: user,
            reasons: d.reasons(),
        }
    }
}

impl<'a> DecisionOut<'a> {
    /// From the client's owned decision (the async decide).
    fn owned(d: &'a crate::FlagDecision, user: &'a RawValue) -> Self {
        DecisionOut {
            variables: Variables::Owned(&d.variables),
            variation_key: d.variation_key.as_deref().unwrap_or_default(),
            enabled: d.enabled,
            rule_key: d.rule_key.as_deref().unwrap_or_default(),
            flag_key: &d.flag_key,
            user_context: user,
            reasons: &d.reasons,
        }
    }
}

/// The decisions of a request, borrowed, as the answer serialises them: one object for one
/// key, else an array.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum DecidedOut<'a> {
    One(DecisionOut<'a>),
    Many(Vec<DecisionOut<'a>>),
}

fn render_many<'a>(all: &'a [Decision<'a>], user: &'a RawValue) -> DecidedOut<'a> {
    DecidedOut::Many(
        all.iter()
            .filter(|d| !d.omitted_from_result())
            .map(|d| DecisionOut::new(d, user))
            .collect(),
    )
}

/// The request's user as its decisions show it, serialised once.
fn user_json(body: &DecideContext) -> Result<Box<RawValue>, Answer> {
    let empty = Map::new();
    serde_json::value::to_raw_value(&UserOut {
        user_id: &body.user_id,
        attributes: body.user_attributes.as_ref().unwrap_or(&empty),
    })
    .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// `POST /v1/decide` on parsed input, as a JSON value (for `/v1/batch`).
pub(crate) async fn decide_op(p: &ProjectRuntime, keys: &[String], body: DecideContext) -> Answer {
    match decide_flags(p, keys, &body, |out| serde_json::to_value(out)).await {
        Ok(Ok(v)) => (StatusCode::OK, v),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(a) => a,
    }
}

/// `POST /v1/decide` on parsed input, written straight to the response bytes.
async fn decide_response(p: &ProjectRuntime, keys: &[String], body: DecideContext) -> Response {
    match decide_flags(p, keys, &body, |out| serde_json::to_vec(&out)).await {
        Err(a) => respond(a),
        Ok(Ok(bytes)) => (
            StatusCode::OK,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            bytes,
        )
            .into_response(),
        Ok(Err(e)) => respond(error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}

/// `POST /v1/track` on parsed input.
pub(crate) fn track_op(p: &ProjectRuntime, event_key: Option<&str>, body: TrackContext) -> Answer {
    let Some(event_key) = event_key.filter(|k| !k.is_empty()) else {
        return error(StatusCode::BAD_REQUEST, "query.eventKey: missing");
    };
    let user = build_user(&body.user_id, body.user_attributes.as_ref());
    let sent = p.client.track(&user, event_key, body.event_tags.as_ref());
    let answer = TrackResponse {
        user_id: body.user_id,
        event_key: event_key.to_string(),
        error: (!sent).then(|| format!("event key `{event_key}` is not in the datafile")),
    };
    (
        StatusCode::OK,
        serde_json::to_value(answer).unwrap_or(Value::Null),
    )
}

fn config_op(p: &ProjectRuntime) -> Answer {
    match serde_json::to_value(p.client.optimizely_config()) {
        Ok(v) => (StatusCode::OK, v),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

fn datafile_op(p: &ProjectRuntime) -> Answer {
    match serde_json::from_str::<Value>(p.client.config().datafile()) {
        Ok(v) => (StatusCode::OK, v),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn decide(
    State(rt): State<Arc<Runtime>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    body: Bytes,
) -> Response {
    let p = match project(&rt, sdk_key(&headers)) {
        Ok(p) => p,
        Err(a) => return respond(a),
    };
    let body: DecideContext = match agent::parse_body(&body) {
        Ok(b) => b,
        Err(e) => return respond(error(StatusCode::BAD_REQUEST, e)),
    };
    decide_response(p, &query_values(uri.query(), "keys"), body).await
}

async fn track(
    State(rt): State<Arc<Runtime>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    body: Bytes,
) -> Response {
    let p = match project(&rt, sdk_key(&headers)) {
        Ok(p) => p,
        Err(a) => return respond(a),
    };
    let body: TrackContext = match agent::parse_body(&body) {
        Ok(b) => b,
        Err(e) => return respond(error(StatusCode::BAD_REQUEST, e)),
    };
    let event_key = query_values(uri.query(), "eventKey").into_iter().next();
    respond(track_op(p, event_key.as_deref(), body))
}

async fn config(State(rt): State<Arc<Runtime>>, headers: HeaderMap) -> Response {
    respond(project(&rt, sdk_key(&headers)).map_or_else(|a| a, |p| config_op(p)))
}

async fn datafile(State(rt): State<Arc<Runtime>>, headers: HeaderMap) -> Response {
    respond(project(&rt, sdk_key(&headers)).map_or_else(|a| a, |p| datafile_op(p)))
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// One batched operation, dispatched like the route it names.
async fn batch_one(rt: &Runtime, outer_key: Option<&str>, op: &agent::BatchOperation) -> Answer {
    let op_key = op.headers.as_ref().and_then(|h| {
        h.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(agent::SDK_KEY_HEADER))
            .and_then(|(_, v)| v.as_str())
    });
    let p = match project(rt, op_key.or(outer_key)) {
        Ok(p) => p,
        Err(a) => return a,
    };
    let (path, query) = match op.url.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (op.url.as_str(), None),
    };
    // Parameters as query values: a string is one value, an array one value per item.
    let param = |name: &str| -> Vec<String> {
        let mut v = query_values(query, name);
        match op.parameters.as_ref().and_then(|m| m.get(name)) {
            Some(Value::String(s)) => v.push(s.clone()),
            Some(Value::Array(items)) => {
                v.extend(items.iter().filter_map(|i| i.as_str().map(str::to_string)))
            }
            _ => {}
        }
        v
    };
    let body = op.body.clone().unwrap_or(Value::Null);
    match (op.method.to_ascii_uppercase().as_str(), path) {
        ("POST", "/v1/decide") => match agent::parse_value::<DecideContext>(body) {
            Ok(b) => decide_op(p, &param("keys"), b).await,
            Err(e) => error(StatusCode::BAD_REQUEST, e),
        },
        ("POST", "/v1/track") => match agent::parse_value::<TrackContext>(body) {
            Ok(b) => track_op(p, param("eventKey").first().map(String::as_str), b),
            Err(e) => error(StatusCode::BAD_REQUEST, e),
        },
        ("GET", "/v1/config") => config_op(p),
        ("GET", "/v1/datafile") => datafile_op(p),
        _ => super::extra::batch_op(rt, p, &op.method, path, query, |n| param(n), body),
    }
}

async fn batch(State(rt): State<Arc<Runtime>>, headers: HeaderMap, body: Bytes) -> Response {
    let ctx: BatchContext = match agent::parse_body(&body) {
        Ok(b) => b,
        Err(e) => return respond(error(StatusCode::BAD_REQUEST, e)),
    };
    let max = rt.config.server.max_batch_operations;
    if ctx.operations.len() > max {
        return respond(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "body.operations: {} operations, at most {max} allowed",
                ctx.operations.len()
            ),
        ));
    }
    let started_at = now_rfc3339();
    let outer_key = sdk_key(&headers);
    let mut error_count = 0;
    let mut response = Vec::with_capacity(ctx.operations.len());
    for (i, op) in ctx.operations.iter().enumerate() {
        let started = now_rfc3339();
        let (status, body) = batch_one(&rt, outer_key, op).await;
        if status != StatusCode::OK {
            error_count += 1;
        }
        let (method, url) = agent::batch_echo(&op.method, &op.url);
        response.push(BatchResponseItem {
            status: status.as_u16(),
            request_id: uuid::Uuid::new_v4().to_string(),
            operation_id: op.operation_id.clone().unwrap_or_else(|| i.to_string()),
            method,
            url,
            body,
            started_at: started,
            ended_at: now_rfc3339(),
        });
    }
    let answer = BatchResponse {
        started_at,
        ended_at: now_rfc3339(),
        error_count,
        response,
    };
    respond((
        StatusCode::OK,
        serde_json::to_value(answer).unwrap_or(Value::Null),
    ))
}

/// `POST /v1/send-odp-event` (Agent): `{action, type?, identifiers, data?}` queued to ODP;
/// answers `{"success": true}`, or 400 when the event is invalid or ODP is not configured.
async fn send_odp_event(
    State(rt): State<Arc<Runtime>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = match project(&rt, sdk_key(&headers)) {
        Ok(p) => p,
        Err(a) => return respond(a),
    };
    let event: agent::OdpEventBody = match agent::parse_body(&body) {
        Ok(b) => b,
        Err(e) => return respond(error(StatusCode::BAD_REQUEST, e)),
    };
    let pairs = |m: Option<Map<String, Value>>| -> Vec<(String, Value)> {
        m.into_iter().flatten().collect()
    };
    match p.client.send_odp_event(
        &event.action,
        event.kind.as_deref(),
        pairs(event.identifiers),
        pairs(event.data),
    ) {
        Ok(()) => respond((StatusCode::OK, serde_json::json!({"success": true}))),
        Err(e) => respond(error(StatusCode::BAD_REQUEST, e.to_string())),
    }
}

async fn webhook_handler(
    State(rt): State<Arc<Runtime>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let signature = headers.get("x-hub-signature").and_then(|v| v.to_str().ok());
    match webhook::handle(&rt, signature, &body) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err((status, message)) => respond(error(status, message)),
    }
}

async fn oauth_token(State(rt): State<Arc<Runtime>>, headers: HeaderMap, body: Bytes) -> Response {
    respond(super::oauth::token_op(&rt, &headers, &body))
}

async fn health(State(rt): State<Arc<Runtime>>) -> Response {
    let projects: Vec<Value> = rt
        .ordered
        .iter()
        .map(|p| {
            serde_json::json!({
                "name": p.settings.name,
                "revision": p.client.revision(),
            })
        })
        .collect();
    let (status, store) = match &rt.fleet {
        None => ("ok", serde_json::json!({"kind": "sqlite"})),
        Some(fleet) => {
            let reachable = fleet.ping().await;
            (
                // Decisions go on without Redis: the instance stays in service, degraded.
                if reachable { "ok" } else { "degraded" },
                serde_json::json!({
                    "kind": "redis",
                    "reachable": reachable,
                    "instance": fleet.instance(),
                    "local_backlog": rt.local_backlog(),
                }),
            )
        }
    };
    respond((
        StatusCode::OK,
        serde_json::json!({"status": status, "projects": projects, "store": store}),
    ))
}

async fn metrics_handler(State(rt): State<Arc<Runtime>>) -> Response {
    (
        [("content-type", "text/plain; version=0.0.4")],
        metrics::render(&rt.snapshot()),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::serve::agent::{OptimizelyDecision, UserContextOut};

    /// The borrowed rendering equals Agent's `OptimizelyDecision` made from the owned
    /// `FlagDecision`s, for every flag of a real datafile (variables of each type, reasons).
    #[test]
    fn borrowed_decision_equals_the_agent_shape() {
        let config = flagbridge_engine::ProjectConfig::parse(&crate::testing::datafile("1"))
            .expect("datafile");
        let mut attributes = Map::new();
        attributes.insert("plan".into(), Value::from("pro"));
        let body: DecideContext = serde_json::from_value(serde_json::json!({
            "userId": "u1", "userAttributes": attributes.clone()
        }))
        .unwrap();
        let user = UserContext::new("u1").with_attribute("plan", "pro");
        let options = DecideOptions::NONE.with(DecideOption::IncludeReasons);
        let decisions = flagbridge_engine::Decider::new(&config).decide_all(&user, options);
        assert!(decisions.iter().any(|d| d.variables().next().is_some()));
        let user_out = user_json(&body).unwrap();
        let borrowed = serde_json::to_value(render_many(&decisions, &user_out)).unwrap();
        let owned: Vec<OptimizelyDecision> = decisions
            .iter()
            .map(crate::FlagDecision::from_engine)
            .map(|d| OptimizelyDecision {
                variables: d.variables,
                variation_key: d.variation_key.unwrap_or_default(),
                enabled: d.enabled,
                rule_key: d.rule_key.unwrap_or_default(),
                flag_key: d.flag_key,
                user_context: UserContextOut {
                    user_id: "u1".into(),
                    attributes: attributes.clone(),
                },
                reasons: d.reasons,
            })
            .collect();
        assert_eq!(borrowed, serde_json::to_value(owned).unwrap());
        // The async decide's owned decisions render the same.
        let copies: Vec<crate::FlagDecision> = decisions
            .iter()
            .map(crate::FlagDecision::from_engine)
            .collect();
        let from_owned = DecidedOut::Many(
            copies
                .iter()
                .map(|d| DecisionOut::owned(d, &user_out))
                .collect(),
        );
        assert_eq!(serde_json::to_value(from_owned).unwrap(), borrowed);
    }
}
