//! Opt-in CORS (`server.api.cors`): preflight answers and `Access-Control-Allow-Origin` on
//! answers to allowed origins. Without the section no CORS header is ever sent.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::state::Runtime;
use crate::connector::config::agent_api::CorsSection;

/// Methods the API answers.
const ALLOWED_METHODS: &str = "GET, POST, OPTIONS";

/// The `Access-Control-Allow-Origin` value for `origin`, when allowed.
fn allow_origin(cors: &CorsSection, origin: &str) -> Option<HeaderValue> {
    if cors.allowed_origins.iter().any(|o| o == "*") {
        return Some(HeaderValue::from_static("*"));
    }
    cors.allowed_origins
        .iter()
        .any(|o| o.eq_ignore_ascii_case(origin))
        .then(|| HeaderValue::from_str(origin).ok())
        .flatten()
}

/// Middleware (outermost, before auth: a preflight carries no credentials).
pub(crate) async fn cors(State(rt): State<Arc<Runtime>>, req: Request, next: Next) -> Response {
    let Some(cors) = rt.config.server.api.cors.as_ref() else {
        return next.run(req).await;
    };
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let Some(origin) = origin else {
        return next.run(req).await;
    };
    let allowed = allow_origin(cors, &origin);
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut resp = if preflight {
        match &allowed {
            Some(_) => StatusCode::NO_CONTENT.into_response(),
            None => {
                return (
                    StatusCode::FORBIDDEN,
                    [(header::CONTENT_TYPE, "application/json")],
                    r#"{"error":"origin not allowed by server.api.cors"}"#,
                )
                    .into_response()
            }
        }
    } else {
        next.run(req).await
    };
    let headers = resp.headers_mut();
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(value) = allowed {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        if preflight {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static(ALLOWED_METHODS),
            );
            if let Ok(v) = HeaderValue::from_str(&cors.allowed_headers.join(", ")) {
                headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
            }
            headers.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from(cors.max_age_secs),
            );
        }
    }
    resp
}
