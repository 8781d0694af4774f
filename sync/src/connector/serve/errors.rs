//! Every error answer is JSON: `{"error": "..."}` with `content-type: application/json`, as
//! Agent's `RenderError` writes it, also for the answers axum makes itself (unknown path 404,
//! wrong method 405, body over the limit 413, unreadable body 400).

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use super::agent::ErrorBody;

/// Longest non-JSON error body kept as the message (axum's own are one line).
const MAX_MESSAGE_BYTES: usize = 4096;

fn is_json(resp: &Response) -> bool {
    resp.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// The message for an empty error body.
fn default_message(status: StatusCode) -> String {
    match status {
        StatusCode::NOT_FOUND => "not found: no such endpoint".to_string(),
        StatusCode::METHOD_NOT_ALLOWED => "method not allowed on this endpoint".to_string(),
        StatusCode::PAYLOAD_TOO_LARGE => "request body too large".to_string(),
        s => s
            .canonical_reason()
            .unwrap_or("request failed")
            .to_ascii_lowercase(),
    }
}

/// Middleware: rewrites any 4xx/5xx answer that is not JSON into Agent's error shape.
pub(crate) async fn json_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(&resp) {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_MESSAGE_BYTES)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes).trim().to_string();
    let error = if text.is_empty() {
        default_message(status)
    } else {
        text
    };
    let body = serde_json::to_vec(&ErrorBody { error }).unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(body))
}
