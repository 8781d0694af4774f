//! A fake of Brevo's list endpoints and contact update (`api-key` auth, 50-per-page listing,
//! `folderId` required on create, 404 for unknown contacts, 429 on demand).

#![allow(dead_code, clippy::result_large_err)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde_json::{json, Value};

#[derive(Default)]
pub struct BrevoState {
    pub api_key: String,
    /// id -> (name, members by ext_id)
    pub lists: BTreeMap<u64, (String, BTreeSet<String>)>,
    /// Contacts that exist (by ext_id or email).
    pub contacts: BTreeSet<String>,
    pub throttle_next: usize,
    pub calls: usize,
}

pub type Shared = Arc<Mutex<BrevoState>>;

pub struct FakeBrevoLists {
    pub addr: SocketAddr,
    pub state: Shared,
}

impl FakeBrevoLists {
    pub async fn start(api_key: &str) -> FakeBrevoLists {
        let state: Shared = Arc::new(Mutex::new(BrevoState {
            api_key: api_key.into(),
            ..Default::default()
        }));
        let app = Router::new()
            .route("/v3/contacts/lists", get(list_lists).post(create_list))
            .route("/v3/contacts/{id}", put(update_contact))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeBrevoLists { addr, state }
    }

    pub fn base(&self) -> String {
        format!("http://{}/v3/", self.addr)
    }

    /// (name, members) of every list.
    pub fn lists(&self) -> Vec<(String, Vec<String>)> {
        self.state
            .lock()
            .unwrap()
            .lists
            .values()
            .map(|(n, m)| (n.clone(), m.iter().cloned().collect()))
            .collect()
    }
}

fn gate(state: &Shared, headers: &HeaderMap) -> Result<(), Response> {
    let mut s = state.lock().unwrap();
    s.calls += 1;
    if headers.get("api-key").and_then(|v| v.to_str().ok()) != Some(s.api_key.as_str()) {
        return Err((
            StatusCode::UNAUTHORIZED,
            Json(json!({"code": "unauthorized", "message": "Key not found"})),
        )
            .into_response());
    }
    if s.throttle_next > 0 {
        s.throttle_next -= 1;
        return Err((
            StatusCode::TOO_MANY_REQUESTS,
            [("x-sib-ratelimit-reset", "0")],
            Json(json!({"code": "too_many_requests", "message": "slow down"})),
        )
            .into_response());
    }
    Ok(())
}

async fn list_lists(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    if let Err(r) = gate(&state, &headers) {
        return r;
    }
    let limit: usize = q.get("limit").and_then(|v| v.parse().ok()).unwrap_or(10);
    let offset: usize = q.get("offset").and_then(|v| v.parse().ok()).unwrap_or(0);
    if limit > 50 {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"code": "out_of_range"})),
        )
            .into_response();
    }
    let s = state.lock().unwrap();
    let lists: Vec<Value> = s
        .lists
        .iter()
        .skip(offset)
        .take(limit)
        .map(|(id, (name, m))| json!({"id": id, "name": name, "uniqueSubscribers": m.len(), "folderId": 1}))
        .collect();
    Json(json!({"lists": lists, "count": s.lists.len()})).into_response()
}

async fn create_list(
    State(state): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Err(r) = gate(&state, &headers) {
        return r;
    }
    let (Some(name), Some(_folder)) = (body["name"].as_str(), body["folderId"].as_u64()) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"code": "missing_parameter", "message": "name and folderId are required"})),
        )
            .into_response();
    };
    let mut s = state.lock().unwrap();
    let id = s.lists.keys().last().copied().unwrap_or(0) + 1;
    s.lists.insert(id, (name.to_string(), BTreeSet::new()));
    (StatusCode::CREATED, Json(json!({"id": id}))).into_response()
}

async fn update_contact(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
    Json(body): Json<Value>,
) -> Response {
    if let Err(r) = gate(&state, &headers) {
        return r;
    }
    if !matches!(
        q.get("identifierType").map(String::as_str),
        Some("ext_id" | "email_id")
    ) {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"code": "invalid_parameter"})),
        )
            .into_response();
    }
    let mut s = state.lock().unwrap();
    if !s.contacts.contains(&id) {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"code": "document_not_found", "message": "Contact does not exist"})),
        )
            .into_response();
    }
    for list in body["listIds"].as_array().cloned().unwrap_or_default() {
        let Some(list) = list.as_u64() else { continue };
        match s.lists.get_mut(&list) {
            Some((_, members)) => {
                members.insert(id.clone());
            }
            None => {
                return (
                    StatusCode::BAD_REQUEST,
                    Json(json!({"code": "invalid_parameter", "message": "List not found"})),
                )
                    .into_response()
            }
        }
    }
    StatusCode::NO_CONTENT.into_response()
}
