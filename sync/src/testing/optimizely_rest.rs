//! A fake Optimizely REST server (v2 + Flags API) on 127.0.0.1 for tests: bearer auth,
//! page/per_page pagination, Flags API `next_url`, results answering 202/204/200 from a script,
//! and 429s on demand.

// A test double: a poisoned lock or a failed bind panics the test that drives it.
#![allow(clippy::result_large_err, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

/// One scripted results answer.
#[derive(Clone, Debug)]
pub enum ResultsAnswer {
    /// 202.
    Computing,
    /// 204.
    NoData,
    /// 200 with this body.
    Ready(Value),
}

/// What the fake serves and what it saw.
#[derive(Default)]
pub struct RestState {
    /// The bearer token every request must carry.
    pub token: String,
    /// `GET /v2/experiments` items, by project id.
    pub experiments: HashMap<String, Vec<Value>>,
    /// `GET /v2/audiences` items, by project id.
    pub audiences: HashMap<String, Vec<Value>>,
    /// `GET /v2/events` items, by project id.
    pub events: HashMap<String, Vec<Value>>,
    /// Flags API items, by project id.
    pub flags: HashMap<String, Vec<Value>>,
    /// Per experiment id; the last answer repeats.
    pub results: HashMap<String, VecDeque<ResultsAnswer>>,
    /// Answer the next N requests (any route) with 429.
    pub throttle_next: usize,
    /// Answer the next N requests (any route) with 503 (no Retry-After).
    pub fail_next: usize,
    /// Flags API page size the server uses (it ignores larger per_page).
    pub flags_page_size: usize,
    /// Every request path (with query) in order.
    pub log: Vec<String>,
    /// Replaces the Flags API `next_url` (to test foreign links).
    pub flags_next_override: Option<String>,
    /// How the Flags API writes `next_url`.
    pub flags_link_style: LinkStyle,
    /// The fake's own address (for absolute links).
    pub addr: Option<SocketAddr>,
    /// `GET /v2/projects`; when empty, every project id the fake holds data for.
    pub projects: Vec<Value>,
    /// When each request arrived, in order (same length as `log`).
    pub arrivals: Vec<std::time::Instant>,
    /// Answer `/v2/{what}` listings with 403 (not retried) when `what` is in here.
    pub broken_listings: Vec<String>,
}

/// How the fake writes the Flags API `next_url`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LinkStyle {
    /// `/flags/v1/projects/{pid}/flags?...` (path from the host).
    #[default]
    FromHost,
    /// `/projects/{pid}/flags?...` (relative to the API base, as Optimizely documents it).
    FromApiBase,
    /// `http://127.0.0.1:{port}/flags/v1/projects/{pid}/flags?...`.
    Absolute,
}

/// The state, shared with the running server.
pub type Shared = Arc<Mutex<RestState>>;

/// A running fake.
pub struct FakeRest {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// What it serves and what it saw.
    pub state: Shared,
}

impl FakeRest {
    /// Starts the server on 127.0.0.1, expecting `Authorization: Bearer {token}`.
    pub async fn start(token: &str) -> FakeRest {
        let state: Shared = Arc::new(Mutex::new(RestState {
            token: token.to_string(),
            flags_page_size: 2,
            ..Default::default()
        }));
        let app = Router::new()
            .route("/v2/projects", get(projects))
            .route("/v2/experiments", get(experiments))
            .route("/v2/audiences", get(audiences))
            .route("/v2/events", get(events))
            .route("/v2/experiments/{id}/results", get(results))
            .route("/flags/v1/projects/{pid}/flags", get(flags))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        state.lock().unwrap().addr = Some(addr);
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeRest { addr, state }
    }

    /// The v2 REST API base (`http://…/v2/`).
    pub fn rest_base(&self) -> String {
        format!("http://{}/v2/", self.addr)
    }

    /// The Flags API base (`http://…/flags/v1/`).
    pub fn flags_base(&self) -> String {
        format!("http://{}/flags/v1/", self.addr)
    }

    /// Every request path (with query) so far, in order.
    pub fn log(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }
}

fn gate(state: &Shared, headers: &HeaderMap, path: String) -> Result<(), Response> {
    let mut s = state.lock().unwrap();
    s.log.push(path);
    s.arrivals.push(std::time::Instant::now());
    let want = format!("Bearer {}", s.token);
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(want.as_str()) {
        return Err((
            StatusCode::UNAUTHORIZED,
            Json(json!({"code": "UNAUTHORIZED", "message": "Invalid credentials"})),
        )
            .into_response());
    }
    if s.fail_next > 0 {
        s.fail_next -= 1;
        return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"code": "UNAVAILABLE", "message": "try later"})),
        )
            .into_response());
    }
    if s.throttle_next > 0 {
        s.throttle_next -= 1;
        return Err((
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "0")],
            Json(json!({"code": "TOO_MANY_REQUESTS", "message": "slow down"})),
        )
            .into_response());
    }
    Ok(())
}

fn page_of(all: Option<&Vec<Value>>, q: &HashMap<String, String>) -> Result<Vec<Value>, Response> {
    let page: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
    let per_page: usize = q.get("per_page").and_then(|p| p.parse().ok()).unwrap_or(25);
    if per_page > 100 || page == 0 {
        return Err((StatusCode::BAD_REQUEST, "per_page must be <= 100").into_response());
    }
    let all = all.cloned().unwrap_or_default();
    Ok(all
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect())
}

fn listing(
    state: &Shared,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
    what: &str,
    pick: fn(&RestState) -> &HashMap<String, Vec<Value>>,
) -> Response {
    let query: Vec<String> = {
        let mut v: Vec<String> = q.iter().map(|(k, v)| format!("{k}={v}")).collect();
        v.sort();
        v
    };
    if let Err(r) = gate(state, headers, format!("/v2/{what}?{}", query.join("&"))) {
        return r;
    }
    let Some(pid) = q.get("project_id") else {
        return (StatusCode::BAD_REQUEST, "project_id is required").into_response();
    };
    let s = state.lock().unwrap();
    if s.broken_listings.iter().any(|b| b == what) {
        return (StatusCode::FORBIDDEN, "listing is broken").into_response();
    }
    match page_of(pick(&s).get(pid), q) {
        Ok(items) => Json(items).into_response(),
        Err(r) => r,
    }
}

async fn projects(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = gate(&state, &headers, "/v2/projects".to_string()) {
        return r;
    }
    let s = state.lock().unwrap();
    let all: Vec<Value> = if s.projects.is_empty() {
        let mut ids: Vec<&String> = s
            .experiments
            .keys()
            .chain(s.audiences.keys())
            .chain(s.events.keys())
            .chain(s.flags.keys())
            .collect();
        ids.sort();
        ids.dedup();
        ids.into_iter()
            .map(|id| json!({"id": id.parse::<u64>().unwrap_or(0), "name": format!("project {id}"), "status": "active"}))
            .collect()
    } else {
        s.projects.clone()
    };
    match page_of(Some(&all), &q) {
        Ok(items) => Json(items).into_response(),
        Err(r) => r,
    }
}

async fn experiments(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    listing(&state, &headers, &q, "experiments", |s| &s.experiments)
}

async fn audiences(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    listing(&state, &headers, &q, "audiences", |s| &s.audiences)
}

async fn events(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    listing(&state, &headers, &q, "events", |s| &s.events)
}

async fn results(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = gate(&state, &headers, format!("/v2/experiments/{id}/results")) {
        return r;
    }
    let mut s = state.lock().unwrap();
    let Some(script) = s.results.get_mut(&id) else {
        return (StatusCode::NOT_FOUND, Json(json!({"code": "NOT_FOUND"}))).into_response();
    };
    let answer = if script.len() > 1 {
        script.pop_front().unwrap()
    } else {
        script.front().cloned().unwrap_or(ResultsAnswer::NoData)
    };
    match answer {
        ResultsAnswer::Computing => StatusCode::ACCEPTED.into_response(),
        ResultsAnswer::NoData => StatusCode::NO_CONTENT.into_response(),
        ResultsAnswer::Ready(body) => Json(body).into_response(),
    }
}

async fn flags(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(pid): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let token = q.get("page_token").cloned().unwrap_or_default();
    if let Err(r) = gate(
        &state,
        &headers,
        format!("/flags/v1/projects/{pid}/flags?page_token={token}"),
    ) {
        return r;
    }
    let s = state.lock().unwrap();
    let all = s.flags.get(&pid).cloned().unwrap_or_default();
    let start: usize = token.parse().unwrap_or(0);
    let size = s.flags_page_size.max(1);
    let items: Vec<Value> = all.iter().skip(start).take(size).cloned().collect();
    let next = start + size;
    let next_url: Vec<String> = if let Some(url) = &s.flags_next_override {
        vec![url.clone()]
    } else if next < all.len() {
        let rel = format!("/projects/{pid}/flags?page_token={next}&per_page={size}");
        vec![match s.flags_link_style {
            LinkStyle::FromHost => format!("/flags/v1{rel}"),
            LinkStyle::FromApiBase => rel,
            LinkStyle::Absolute => format!(
                "http://{}/flags/v1{rel}",
                s.addr.map(|a| a.to_string()).unwrap_or_default()
            ),
        }]
    } else {
        vec![]
    };
    Json(json!({
        "items": items,
        "count": items.len(),
        "total_count": all.len(),
        "next_url": next_url,
    }))
    .into_response()
}

/// An experiment as v2 returns it.
pub fn experiment(id: u64, key: &str, status: &str, variations: &[(u64, &str)]) -> Value {
    json!({
        "id": id,
        "project_id": 1,
        "key": key,
        "name": key,
        "status": status,
        "type": "a/b",
        "variations": variations.iter().map(|(vid, vkey)| json!({
            "variation_id": vid, "key": vkey, "name": vkey, "weight": 5000
        })).collect::<Vec<_>>(),
    })
}

/// A results body where `winner` (if any) is significantly better than baseline `base`.
pub fn results_body(exp_id: u64, base: u64, others: &[(u64, &str, bool)]) -> Value {
    let mut map = serde_json::Map::new();
    map.insert(
        base.to_string(),
        json!({"variation_id": base.to_string(), "is_baseline": true, "level": "variation"}),
    );
    for (vid, status, significant) in others {
        map.insert(
            vid.to_string(),
            json!({
                "variation_id": vid.to_string(),
                "is_baseline": false,
                "lift": {"value": 0.12, "significance": 0.99, "is_significant": significant,
                         "lift_status": status, "is_most_conclusive": true}
            }),
        );
    }
    json!({
        "experiment_id": exp_id,
        "confidence_threshold": 0.9,
        "is_stale": false,
        "metrics": [{"name": "purchase", "aggregator": "unique", "scope": "visitor",
                     "winning_direction": "increasing", "results": map}],
    })
}
