//! The lists of `FakeBrevo`: `GET /contacts/lists` (at most 50 a page), `POST /contacts/lists`
//! (`name` and `folderId` required), and list membership: contacts join lists through the
//! `listIds` of their writes (batch items, create, import, `PUT /contacts/{id}`; the `PUT`
//! refuses lists this server does not hold, as Brevo does).

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::{error, gate, FakeBrevo, Inner, Shared};

impl FakeBrevo {
    /// The base URL ending with `/` (`http://…/v3/`), as `BrevoLists::new` takes it.
    pub fn base(&self) -> String {
        format!("{}/", self.url())
    }

    /// Adds a list with this id (as if created in Brevo's UI).
    pub fn add_list(&self, id: i64, name: &str) {
        self.with(|s| s.lists.insert(id, name.to_string()));
    }

    /// (name, members sorted) of every list, by list id.
    pub fn lists(&self) -> Vec<(String, Vec<String>)> {
        self.with(|s| {
            s.lists
                .iter()
                .map(|(id, name)| (name.clone(), members(s, *id)))
                .collect()
        })
    }
}

fn members(s: &Inner, list: i64) -> Vec<String> {
    let mut m: Vec<String> = s
        .contacts
        .iter()
        .filter(|(_, c)| c.lists.contains(&list))
        .map(|(id, _)| id.clone())
        .collect();
    m.sort();
    m
}

/// Adds the contact to the lists of a write's `listIds` (Brevo adds; a member stays one).
pub(super) fn join_lists(s: &mut Inner, id: &str, list_ids: Option<&Value>) {
    let Some(contact) = s.contacts.get_mut(id) else {
        return;
    };
    for l in list_ids.and_then(Value::as_array).into_iter().flatten() {
        if let Some(l) = l.as_i64() {
            if let Err(at) = contact.lists.binary_search(&l) {
                contact.lists.insert(at, l);
            }
        }
    }
}

/// A `listIds` that is present but not an array of positive integers (Brevo answers 400).
pub(super) fn bad_list_ids(body: &Value) -> bool {
    body.get("listIds").is_some_and(|l| {
        !l.as_array()
            .is_some_and(|a| a.iter().all(|x| x.as_i64().is_some_and(|x| x > 0)))
    })
}

/// Whether a write's `listIds` names a list this server does not hold.
pub(super) fn unknown_list(s: &Inner, list_ids: Option<&Value>) -> bool {
    list_ids
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_i64)
        .any(|l| !s.lists.contains_key(&l))
}

pub(super) async fn list_lists(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    if let Some(r) = gate(&state, &headers, "GET", "/contacts/lists", "contacts").await {
        return r;
    }
    let limit: usize = q.get("limit").and_then(|v| v.parse().ok()).unwrap_or(10);
    let offset: usize = q.get("offset").and_then(|v| v.parse().ok()).unwrap_or(0);
    if limit > 50 {
        return error(StatusCode::BAD_REQUEST, "out_of_range", "limit");
    }
    let s = state.lock().unwrap();
    let lists: Vec<Value> = s
        .lists
        .iter()
        .skip(offset)
        .take(limit)
        .map(|(id, name)| {
            let subscribers = members(&s, *id).len();
            json!({"id": id, "name": name, "uniqueSubscribers": subscribers, "folderId": 1})
        })
        .collect();
    Json(json!({"lists": lists, "count": s.lists.len()})).into_response()
}

pub(super) async fn create_list(
    State(state): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Some(r) = gate(&state, &headers, "POST", "/contacts/lists", "contacts").await {
        return r;
    }
    let (Some(name), Some(_folder)) = (body["name"].as_str(), body["folderId"].as_u64()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "missing_parameter",
            "name and folderId are required",
        );
    };
    let mut s = state.lock().unwrap();
    let id = s.lists.keys().next_back().copied().unwrap_or(0) + 1;
    s.lists.insert(id, name.to_string());
    (StatusCode::CREATED, Json(json!({"id": id}))).into_response()
}

/// `POST /contacts/lists/{id}/contacts/add` with `emails` or `extIds` (at most 150): known
/// contacts join the list (`success`), unknown ones are listed in `failure`.
pub(super) async fn add_to_list(
    State(state): State<Shared>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<i64>,
    Json(body): Json<Value>,
) -> Response {
    if let Some(r) = gate(
        &state,
        &headers,
        "POST",
        "/contacts/lists/{id}/contacts/add",
        "contacts",
    )
    .await
    {
        return r;
    }
    let ids: Vec<String> = ["emails", "extIds"]
        .iter()
        .filter_map(|k| body.get(*k).and_then(Value::as_array))
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    if ids.is_empty() || ids.len() > 150 {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            "1 to 150 emails or extIds",
        );
    }
    let mut s = state.lock().unwrap();
    if !s.lists.contains_key(&id) {
        return error(
            StatusCode::NOT_FOUND,
            "document_not_found",
            "List ID does not exist",
        );
    }
    let (mut success, mut failure) = (Vec::new(), Vec::new());
    for contact in ids {
        if s.contacts.contains_key(&contact) {
            join_lists(&mut s, &contact, Some(&json!([id])));
            success.push(contact);
        } else {
            failure.push(contact);
        }
    }
    (
        StatusCode::CREATED,
        Json(json!({"contacts": {"success": success, "failure": failure}})),
    )
        .into_response()
}
