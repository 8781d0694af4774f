//! The Agent endpoints beyond decide/track/config/datafile: `/v1/activate`, `/v1/override`,
//! `/v1/lookup`, `/v1/save`, `/v1/notifications/event-stream` (routes and their batch
//! dispatch).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::agent;
use super::legacy::{self, ActivateQuery};
use super::profiles;
use super::state::{ProjectRuntime, Runtime};

type Answer = (StatusCode, Value);

fn respond((status, body): Answer) -> Response {
    (status, Json(body)).into_response()
}

/// The routes (behind the same token check as the rest of `/v1`).
pub(crate) fn routes() -> Router<Arc<Runtime>> {
    Router::new()
        .route("/v1/activate", post(activate))
        .route("/v1/override", post(override_))
        .route("/v1/lookup", post(lookup))
        .route("/v1/save", post(save))
        .route(
            "/v1/notifications/event-stream",
            axum::routing::get(super::sse::event_stream),
        )
}

fn query_values(query: Option<&str>, name: &str) -> Vec<String> {
    url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .collect()
}

/// Project + parsed body, or the error answer.
fn prepare<'a, T: DeserializeOwned>(
    rt: &'a Runtime,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(&'a Arc<ProjectRuntime>, T), Answer> {
    let key = headers
        .get(agent::SDK_KEY_HEADER)
        .and_then(|v| v.to_str().ok());
    let p = super::routes::project(rt, key)?;
    let body =
        agent::parse_body(body).map_err(|e| (StatusCode::BAD_REQUEST, json!({ "error": e })))?;
    Ok((p, body))
}

async fn activate(
    State(rt): State<Arc<Runtime>>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    respond(match prepare(&rt, &headers, &body) {
        Ok((p, b)) => {
            let q = ActivateQuery::from_values(|n| query_values(uri.query(), n));
            legacy::activate_op(p, &q, b)
        }
        Err(a) => a,
    })
}

async fn override_(State(rt): State<Arc<Runtime>>, headers: HeaderMap, body: Bytes) -> Response {
    let enabled = rt.config.server.api.enable_overrides;
    respond(match prepare(&rt, &headers, &body) {
        Ok((p, b)) => legacy::override_op(p, enabled, b),
        Err(a) => a,
    })
}

async fn lookup(State(rt): State<Arc<Runtime>>, headers: HeaderMap, body: Bytes) -> Response {
    respond(match prepare(&rt, &headers, &body) {
        Ok((p, b)) => profiles::lookup_op(p, b),
        Err(a) => a,
    })
}

async fn save(State(rt): State<Arc<Runtime>>, headers: HeaderMap, body: Bytes) -> Response {
    respond(match prepare(&rt, &headers, &body) {
        Ok((p, b)) => profiles::save_op(p, b),
        Err(a) => a,
    })
}

fn parsed<T: DeserializeOwned>(body: Value, f: impl FnOnce(T) -> Answer) -> Answer {
    match agent::parse_value::<T>(body) {
        Ok(b) => f(b),
        Err(e) => (StatusCode::BAD_REQUEST, json!({ "error": e })),
    }
}

/// A batched operation other than decide/track/config/datafile. An unsupported one answers
/// 400 without repeating what was sent.
pub(crate) fn batch_op(
    rt: &Runtime,
    p: &ProjectRuntime,
    method: &str,
    path: &str,
    query: Option<&str>,
    parameters: impl Fn(&str) -> Vec<String>,
    body: Value,
) -> Answer {
    if !method.eq_ignore_ascii_case("POST") {
        return unsupported();
    }
    match path {
        "/v1/activate" => parsed(body, |b| {
            let q = ActivateQuery::from_values(|n| {
                let mut v = query_values(query, n);
                v.extend(parameters(n));
                v
            });
            legacy::activate_op(p, &q, b)
        }),
        "/v1/override" => parsed(body, |b| {
            legacy::override_op(p, rt.config.server.api.enable_overrides, b)
        }),
        "/v1/lookup" => parsed(body, |b| profiles::lookup_op(p, b)),
        "/v1/save" => parsed(body, |b| profiles::save_op(p, b)),
        _ => unsupported(),
    }
}

fn unsupported() -> Answer {
    (
        StatusCode::BAD_REQUEST,
        json!({"error": "operation not supported in a batch (supported: POST /v1/decide, POST /v1/track, GET /v1/config, GET /v1/datafile, POST /v1/activate, POST /v1/override, POST /v1/lookup, POST /v1/save)"}),
    )
}
