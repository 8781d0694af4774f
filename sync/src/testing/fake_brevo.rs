//! An in-process Brevo-like server on 127.0.0.1 for the Brevo sync and connector tests.
//!
//! Keeps contacts and attributes, silently drops attribute values whose type does not match
//! (as Brevo does), fails a whole `/contacts/batch` with 404 naming the indexes of unknown
//! contacts, answers 207 partials for contacts marked to fail, enforces a per-second request
//! limit per endpoint family with 429 and `x-sib-ratelimit-*` headers, accepts events, and can
//! inject 5xx bursts, slow answers, hangs, 400s and 401s. Also holds contact lists (see
//! `lists`: 50-per-page listing, `folderId` required on create), which `PUT /contacts/{id}`
//! adds contacts to, and can answer the next requests with 429 on demand (`throttle_next`).
// A test double: a poisoned lock or a failed bind panics the test that drives it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "fake_brevo_lists.rs"]
mod lists;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use tokio::time::Instant;

use lists::{bad_list_ids, join_lists};

/// The `api-key` [`FakeBrevo::start`] expects.
pub const API_KEY: &str = "xkeysib-test-secret-key";

/// One contact the fake holds.
#[derive(Debug, Clone, Default)]
pub struct Contact {
    /// Its attributes (values of a mismatched type are dropped, as Brevo does).
    pub attributes: Map<String, Value>,
    /// Writes applied to this contact (batch items, upserts, imports).
    pub writes: u32,
    /// Lists the contact was added to (`listIds` of any write), sorted.
    pub lists: Vec<i64>,
}

/// What the fake holds, what it saw, and the faults it injects (see [`FakeBrevo::with`]).
#[derive(Default)]
pub struct Inner {
    /// The `api-key` every request must carry.
    pub api_key: String,
    /// Contact attributes defined: name -> type (`text`, `float`, `boolean`, `date`).
    pub attributes: HashMap<String, String>,
    /// Contacts by email.
    pub contacts: HashMap<String, Contact>,
    /// Events accepted (`/events`, `/events/batch`), in order.
    pub events: Vec<Value>,
    /// Lists created with `POST /contacts/lists` (or `add_list`): id -> name. Members are the
    /// contacts whose `lists` hold the id.
    pub lists: BTreeMap<i64, String>,
    /// (method, path) of every request.
    pub requests: Vec<(String, String)>,
    /// Requests allowed per second per endpoint family (more get 429).
    pub rate_limit: u32,
    windows: HashMap<&'static str, (Instant, u32)>,
    /// 429 answers given (rate limit and `throttle_next`).
    pub throttled: u32,
    /// Arrival time of every request, by endpoint family.
    pub arrivals: Vec<(&'static str, Instant)>,
    /// Answer the next N requests with 429 and `x-sib-ratelimit-reset: 0`.
    pub throttle_next: u32,
    /// Answer the next N requests with 503.
    pub fail_next: u32,
    /// 503 answers given (`fail_next`).
    pub failed: u32,
    /// Delay the answers of the next N requests by `slow_for`.
    pub slow_next: u32,
    /// How long `slow_next` answers are delayed.
    pub slow_for: Duration,
    /// Never answer batch number N (1-based) and later ones: the request hangs.
    pub hang_from_batch: Option<u32>,
    /// `/contacts/batch` requests received.
    pub batches_seen: u32,
    /// Contacts that fail once in a 207 partial answer.
    pub partial_once: HashSet<String>,
    /// Contacts refused with 400 whenever they appear.
    pub refuse: HashSet<String>,
    /// Answer every request with 401.
    pub unauthorized: bool,
    /// Id of the next contact created.
    pub next_id: i64,
    /// `/contacts/import` requests accepted.
    pub imports: u32,
}

/// A running fake Brevo (`/v3/contacts…`, `/v3/events…`); clones share the server.
#[derive(Clone)]
pub struct FakeBrevo {
    /// Its state.
    pub inner: Arc<Mutex<Inner>>,
    /// The address it listens on.
    pub addr: SocketAddr,
}

impl FakeBrevo {
    /// Starts the server with a per-second limit per endpoint family, expecting `API_KEY`.
    pub async fn start(rate_limit: u32) -> FakeBrevo {
        FakeBrevo::start_with_key(rate_limit, API_KEY).await
    }

    /// Starts the server with a per-second limit per endpoint family, expecting `api_key`.
    pub async fn start_with_key(rate_limit: u32, api_key: &str) -> FakeBrevo {
        let inner = Arc::new(Mutex::new(Inner {
            api_key: api_key.to_string(),
            rate_limit,
            next_id: 1,
            ..Inner::default()
        }));
        let app = Router::new()
            .route("/v3/contacts/attributes", get(list_attributes))
            .route(
                "/v3/contacts/attributes/{category}/{name}",
                post(create_attribute),
            )
            .route("/v3/contacts/batch", post(batch_update))
            .route("/v3/contacts/import", post(import))
            .route(
                "/v3/contacts/lists",
                get(lists::list_lists).post(lists::create_list),
            )
            .route(
                "/v3/contacts/lists/{id}/contacts/add",
                post(lists::add_to_list),
            )
            .route("/v3/contacts", post(create_contact))
            .route("/v3/contacts/{id}", get(get_contact).put(update_contact))
            .route("/v3/events", post(event))
            .route("/v3/events/batch", post(events_batch))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeBrevo { inner, addr }
    }

    /// The API base URL (`http://…/v3`).
    pub fn url(&self) -> String {
        format!("http://{}/v3", self.addr)
    }

    /// Runs `f` on the state, under its lock.
    pub fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.inner.lock().unwrap())
    }

    /// Adds existing contacts (no attributes).
    pub fn add_contacts<'a>(&self, emails: impl IntoIterator<Item = &'a str>) {
        self.with(|s| {
            for e in emails {
                s.contacts.insert(e.to_string(), Contact::default());
            }
        });
    }

    /// The contact with this email, if held.
    pub fn contact(&self, email: &str) -> Option<Contact> {
        self.with(|s| s.contacts.get(email).cloned())
    }

    /// The most requests of `family` that arrived within any one second.
    pub fn max_in_any_second(&self, family: &str) -> usize {
        let times: Vec<Instant> = self.with(|s| {
            s.arrivals
                .iter()
                .filter(|(f, _)| *f == family)
                .map(|(_, t)| *t)
                .collect()
        });
        let mut most = 0;
        let mut start = 0;
        for end in 0..times.len() {
            while times[end].duration_since(times[start]) >= Duration::from_secs(1) {
                start += 1;
            }
            most = most.max(end - start + 1);
        }
        most
    }

    /// Requests received with this method and path.
    pub fn count_requests(&self, method: &str, path: &str) -> usize {
        self.with(|s| {
            s.requests
                .iter()
                .filter(|(m, p)| m == method && p == path)
                .count()
        })
    }
}

type Shared = Arc<Mutex<Inner>>;

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({"code": code, "message": message}))).into_response()
}

/// Common gate: key, logging, injected failures and the rate limit.
async fn gate(
    state: &Shared,
    headers: &HeaderMap,
    method: &str,
    path: &str,
    family: &'static str,
) -> Option<Response> {
    let (slow, fail, limited) = {
        let mut s = state.lock().unwrap();
        s.requests.push((method.to_string(), path.to_string()));
        let key_ok =
            headers.get("api-key").and_then(|v| v.to_str().ok()) == Some(s.api_key.as_str());
        if !key_ok || s.unauthorized {
            return Some(error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Key not found",
            ));
        }
        if s.throttle_next > 0 {
            s.throttle_next -= 1;
            s.throttled += 1;
            let mut r = error(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                "slow down",
            );
            r.headers_mut()
                .insert("x-sib-ratelimit-reset", HeaderValue::from(0));
            return Some(r);
        }
        let slow = if s.slow_next > 0 {
            s.slow_next -= 1;
            Some(s.slow_for)
        } else {
            None
        };
        let fail = if s.fail_next > 0 {
            s.fail_next -= 1;
            s.failed += 1;
            true
        } else {
            false
        };
        let now = Instant::now();
        s.arrivals.push((family, now));
        let limit = s.rate_limit;
        let window = s.windows.entry(family).or_insert((now, 0));
        if now.duration_since(window.0) >= Duration::from_secs(1) {
            *window = (now, 0);
        }
        let limited = if window.1 >= limit {
            let left = Duration::from_secs(1).saturating_sub(now.duration_since(window.0));
            Some(left)
        } else {
            window.1 += 1;
            None
        };
        if limited.is_some() {
            s.throttled += 1;
        }
        (slow, fail, limited.map(|l| (l, limit)))
    };
    if let Some(left) = limited.map(|(l, limit)| {
        let mut r = error(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            "rate limited",
        );
        let h = r.headers_mut();
        h.insert("x-sib-ratelimit-limit", HeaderValue::from(limit));
        h.insert("x-sib-ratelimit-remaining", HeaderValue::from(0));
        // Seconds left in the window (fractional, so tests stay short).
        let reset = format!("{:.3}", l.as_secs_f64());
        h.insert(
            "x-sib-ratelimit-reset",
            HeaderValue::from_str(&reset).unwrap(),
        );
        r
    }) {
        return Some(left);
    }
    if let Some(d) = slow {
        tokio::time::sleep(d).await;
    }
    if fail {
        return Some(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "internal_error",
            "try later",
        ));
    }
    None
}

async fn list_attributes(State(state): State<Shared>, headers: HeaderMap) -> Response {
    if let Some(r) = gate(&state, &headers, "GET", "/contacts/attributes", "contacts").await {
        return r;
    }
    let s = state.lock().unwrap();
    let list: Vec<Value> = s
        .attributes
        .iter()
        .map(|(n, t)| json!({"name": n, "category": "normal", "type": t}))
        .collect();
    Json(json!({ "attributes": list })).into_response()
}

async fn create_attribute(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((category, name)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    if let Some(r) = gate(&state, &headers, "POST", "/contacts/attributes", "contacts").await {
        return r;
    }
    let mut s = state.lock().unwrap();
    if category != "normal" {
        return error(StatusCode::BAD_REQUEST, "invalid_parameter", "category");
    }
    if s.attributes.contains_key(&name) {
        return error(
            StatusCode::BAD_REQUEST,
            "duplicate_parameter",
            "Attribute name already exists",
        );
    }
    let Some(kind) = body.get("type").and_then(Value::as_str) else {
        return error(StatusCode::BAD_REQUEST, "missing_parameter", "type");
    };
    s.attributes.insert(name, kind.to_string());
    StatusCode::CREATED.into_response()
}

fn type_matches(kind: Option<&String>, value: &Value) -> bool {
    match (kind.map(String::as_str), value) {
        (Some("text"), Value::String(_)) => true,
        (Some("boolean"), Value::Bool(_)) => true,
        (Some("float"), Value::Number(_)) => true,
        (Some("date"), Value::String(s)) => {
            let b = s.as_bytes();
            b.len() >= 10
                && b[4] == b'-'
                && b[7] == b'-'
                && b[..4]
                    .iter()
                    .chain(&b[5..7])
                    .chain(&b[8..10])
                    .all(u8::is_ascii_digit)
        }
        _ => false,
    }
}

/// Applies attributes, silently dropping unknown names and mismatched types.
fn apply(s: &mut Inner, id: &str, attributes: Option<&Value>) {
    let kinds = s.attributes.clone();
    let contact = s.contacts.entry(id.to_string()).or_default();
    contact.writes += 1;
    if let Some(Value::Object(attrs)) = attributes {
        for (k, v) in attrs {
            if type_matches(kinds.get(k), v) {
                contact.attributes.insert(k.clone(), v.clone());
            }
        }
    }
}

fn valid_email(e: &str) -> bool {
    e.contains('@')
}

async fn batch_update(
    State(state): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Some(r) = gate(&state, &headers, "POST", "/contacts/batch", "contacts").await {
        return r;
    }
    let hang = {
        let mut s = state.lock().unwrap();
        s.batches_seen += 1;
        s.hang_from_batch.is_some_and(|n| s.batches_seen >= n)
    };
    if hang {
        std::future::pending::<()>().await;
    }
    let mut s = state.lock().unwrap();
    let Some(items) = body.get("contacts").and_then(Value::as_array) else {
        return error(StatusCode::BAD_REQUEST, "missing_parameter", "contacts");
    };
    let mut unknown = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let email = item.get("email").and_then(Value::as_str).unwrap_or("");
        if !valid_email(email) || s.refuse.contains(email) || bad_list_ids(item) {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_parameter",
                &format!("Invalid email {email}"),
            );
        }
        if !s.contacts.contains_key(email) {
            unknown.push(i.to_string());
        }
    }
    if !unknown.is_empty() {
        let msg = format!("No contact found for indexes {}", unknown.join(","));
        return error(StatusCode::NOT_FOUND, "document_not_found", &msg);
    }
    let mut failures = Vec::new();
    let mut successes = Vec::new();
    for item in items {
        let email = item
            .get("email")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if s.partial_once.remove(&email) {
            failures.push(email);
            continue;
        }
        apply(&mut s, &email, item.get("attributes"));
        join_lists(&mut s, &email, item.get("listIds"));
        successes.push(email);
    }
    if failures.is_empty() {
        StatusCode::NO_CONTENT.into_response()
    } else {
        (
            StatusCode::MULTI_STATUS,
            Json(json!({"successIds": successes, "failureIds": failures})),
        )
            .into_response()
    }
}

async fn create_contact(
    State(state): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Some(r) = gate(&state, &headers, "POST", "/contacts", "contacts").await {
        return r;
    }
    let mut s = state.lock().unwrap();
    let id = body
        .get("email")
        .or_else(|| body.get("ext_id"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if id.is_empty()
        || s.refuse.contains(&id)
        || (body.get("email").is_some() && !valid_email(&id))
        || bad_list_ids(&body)
    {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            "Invalid identifier",
        );
    }
    let exists = s.contacts.contains_key(&id);
    let update = body.get("updateEnabled").and_then(Value::as_bool) == Some(true);
    if exists && !update {
        return error(
            StatusCode::BAD_REQUEST,
            "duplicate_parameter",
            "Contact already exist",
        );
    }
    apply(&mut s, &id, body.get("attributes"));
    join_lists(&mut s, &id, body.get("listIds"));
    if exists {
        StatusCode::NO_CONTENT.into_response()
    } else {
        s.next_id += 1;
        (StatusCode::CREATED, Json(json!({"id": s.next_id}))).into_response()
    }
}

async fn update_contact(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    Json(body): Json<Value>,
) -> Response {
    if let Some(r) = gate(&state, &headers, "PUT", "/contacts/{id}", "contacts").await {
        return r;
    }
    if !matches!(
        q.get("identifierType").map(String::as_str),
        Some("ext_id" | "email_id")
    ) {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            "identifierType",
        );
    }
    let mut s = state.lock().unwrap();
    if !s.contacts.contains_key(&id) {
        return error(
            StatusCode::NOT_FOUND,
            "document_not_found",
            "Contact does not exist",
        );
    }
    if bad_list_ids(&body) {
        return error(StatusCode::BAD_REQUEST, "invalid_parameter", "listIds");
    }
    if lists::unknown_list(&s, body.get("listIds")) {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            "List not found",
        );
    }
    apply(&mut s, &id, body.get("attributes"));
    join_lists(&mut s, &id, body.get("listIds"));
    StatusCode::NO_CONTENT.into_response()
}

async fn get_contact(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(r) = gate(&state, &headers, "GET", "/contacts/{id}", "contacts").await {
        return r;
    }
    let s = state.lock().unwrap();
    match s.contacts.get(&id) {
        Some(c) => Json(json!({"email": id, "attributes": c.attributes})).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "document_not_found",
            "Contact does not exist",
        ),
    }
}

async fn import(
    State(state): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Some(r) = gate(&state, &headers, "POST", "/contacts/import", "contacts").await {
        return r;
    }
    let mut s = state.lock().unwrap();
    if body
        .get("listIds")
        .and_then(Value::as_array)
        .is_none_or(|l| l.is_empty())
    {
        return error(StatusCode::BAD_REQUEST, "missing_parameter", "listIds");
    }
    let rows = body
        .get("jsonBody")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for row in &rows {
        let email = row
            .get("email")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        apply(&mut s, &email, row.get("attributes"));
        join_lists(&mut s, &email, body.get("listIds"));
    }
    s.imports += 1;
    (StatusCode::ACCEPTED, Json(json!({"processId": s.imports}))).into_response()
}

fn valid_event(e: &Value) -> bool {
    let name_ok = e
        .get("event_name")
        .and_then(Value::as_str)
        .is_some_and(|n| {
            !n.is_empty()
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    name_ok
        && e.get("identifiers")
            .and_then(Value::as_object)
            .is_some_and(|i| !i.is_empty())
}

async fn event(
    State(state): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Some(r) = gate(&state, &headers, "POST", "/events", "events").await {
        return r;
    }
    if !valid_event(&body) {
        return error(StatusCode::BAD_REQUEST, "invalid_parameter", "event");
    }
    state.lock().unwrap().events.push(body);
    StatusCode::NO_CONTENT.into_response()
}

async fn events_batch(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(r) = gate(&state, &headers, "POST", "/events/batch", "events").await {
        return r;
    }
    if body.len() > 512 * 1024 {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_parameter",
            "body over 512 KB",
        );
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "bad_request", "json");
    };
    let events = body
        .get("events")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if events.is_empty() || events.len() > 200 || !events.iter().all(valid_event) {
        return error(StatusCode::BAD_REQUEST, "invalid_parameter", "events");
    }
    let mut s = state.lock().unwrap();
    let n = events.len();
    s.events.extend(events);
    (
        StatusCode::ACCEPTED,
        Json(json!({"message": "Batch accepted", "count": n})),
    )
        .into_response()
}
