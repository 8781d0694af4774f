//! A fake datafile CDN: `GET /datafiles/{sdk_key}.json` and `GET /datafiles/auth/{sdk_key}.json`
//! with `Last-Modified`/`ETag` and `304`, plus faults.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// A fault the CDN can be told to produce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CdnFault {
    /// Answer with this status and no datafile.
    Status(u16),
    /// Accept the request and never answer.
    Hang,
    /// Send the first half of the datafile, with status 200 and fresh validators.
    Truncated,
}

#[derive(Debug, Default)]
struct CdnState {
    datafiles: std::collections::HashMap<String, (String, u64)>,
    version: u64,
    fault: Option<CdnFault>,
    token: Option<String>,
    send_etag: bool,
    requests: u64,
    not_modified: u64,
    last_request_headers: Option<HeaderMap>,
}

/// The fake CDN; clone freely (shared state).
#[derive(Clone, Debug)]
pub struct FakeCdn {
    addr: SocketAddr,
    state: Arc<Mutex<CdnState>>,
}

impl FakeCdn {
    /// Starts a CDN on 127.0.0.1 with no datafile (404 until one is set).
    pub async fn start() -> std::io::Result<Self> {
        let state = Arc::new(Mutex::new(CdnState {
            send_etag: true,
            ..CdnState::default()
        }));
        let app = Router::new()
            .route("/datafiles/{file}", get(public))
            .route("/datafiles/auth/{file}", get(authenticated))
            .with_state(Arc::clone(&state));
        let addr = super::serve(app).await?;
        Ok(FakeCdn { addr, state })
    }

    /// `http://127.0.0.1:port`, to pass as the base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Serves `datafile` for `sdk_key` from now on, with new validators.
    pub fn set_datafile(&self, sdk_key: &str, datafile: impl Into<String>) {
        let mut state = self.lock();
        state.version += 1;
        let version = state.version;
        state
            .datafiles
            .insert(sdk_key.to_owned(), (datafile.into(), version));
    }

    /// Sets (Some) or ends (None) a fault.
    pub fn set_fault(&self, fault: Option<CdnFault>) {
        self.lock().fault = fault;
    }

    /// Requires `Authorization: Bearer {token}` on the authenticated route.
    pub fn require_token(&self, token: &str) {
        self.lock().token = Some(token.to_owned());
    }

    /// Whether responses carry an `ETag` (default true; Optimizely's is unconfirmed).
    pub fn send_etag(&self, on: bool) {
        self.lock().send_etag = on;
    }

    /// Requests received.
    pub fn requests(&self) -> u64 {
        self.lock().requests
    }

    /// `304` answers given.
    pub fn not_modified_count(&self) -> u64 {
        self.lock().not_modified
    }

    /// Headers of the last request.
    pub fn last_request_headers(&self) -> Option<HeaderMap> {
        self.lock().last_request_headers.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CdnState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn last_modified(version: u64) -> String {
    // A valid HTTP date that changes with each datafile version.
    format!(
        "Sun, 01 Nov 2026 {:02}:{:02}:{:02} GMT",
        (version / 3600) % 24,
        (version / 60) % 60,
        version % 60
    )
}

async fn public(
    State(state): State<Arc<Mutex<CdnState>>>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    answer(&state, &file, &headers, false).await
}

async fn authenticated(
    State(state): State<Arc<Mutex<CdnState>>>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    answer(&state, &file, &headers, true).await
}

async fn answer(state: &Mutex<CdnState>, file: &str, headers: &HeaderMap, auth: bool) -> Response {
    let close = [(header::CONNECTION, "close")];
    let reply = {
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        s.requests += 1;
        s.last_request_headers = Some(headers.clone());
        if auth {
            let expected = s.token.as_ref().map(|t| format!("Bearer {t}"));
            let given = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            if expected.is_none() || given != expected.as_deref() {
                return (StatusCode::FORBIDDEN, close, "forbidden").into_response();
            }
        }
        match s.fault.clone() {
            Some(CdnFault::Status(code)) => {
                let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                return (code, close, "fault").into_response();
            }
            Some(CdnFault::Hang) => None,
            fault => {
                let key = file.strip_suffix(".json").unwrap_or(file);
                let Some((body, version)) = s.datafiles.get(key).cloned() else {
                    return (StatusCode::NOT_FOUND, close, "no such datafile").into_response();
                };
                let lm = last_modified(version);
                let etag = format!("\"v{version}\"");
                let ims = headers
                    .get(header::IF_MODIFIED_SINCE)
                    .and_then(|v| v.to_str().ok());
                let inm = headers
                    .get(header::IF_NONE_MATCH)
                    .and_then(|v| v.to_str().ok());
                let fresh = ims == Some(lm.as_str()) || (s.send_etag && inm == Some(etag.as_str()));
                if fresh && fault.is_none() {
                    s.not_modified += 1;
                    return (StatusCode::NOT_MODIFIED, close).into_response();
                }
                let body = if fault == Some(CdnFault::Truncated) {
                    body[..body.len() / 2].to_owned()
                } else {
                    body
                };
                let mut response =
                    (StatusCode::OK, close, [(header::LAST_MODIFIED, lm)], body).into_response();
                if s.send_etag {
                    if let Ok(value) = etag.parse() {
                        response.headers_mut().insert(header::ETAG, value);
                    }
                }
                Some(response)
            }
        }
    };
    match reply {
        Some(response) => response,
        None => std::future::pending().await,
    }
}
