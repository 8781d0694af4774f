//! The status page of `serve`: `GET /` is a plain HTML page for a person, whose script polls
//! `GET /status.json` every [`REFRESH_SECS`] seconds and says in words, per project, the
//! datafile revision and its age, decisions and conversions; for Brevo the backlog, the 429s,
//! the contacts set aside and the users without the identity attribute; and the last REST sync
//! with its winners' lists (read from `<state_dir>/last-sync.json`, written by `flagbridge
//! sync` or `serve --with-sync`). Like `/health` and `/metrics`, both need no token: they hold
//! counts and names, no secrets.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::state::Runtime;
use crate::connector::scheduled::job::LAST_SYNC_FILE;

/// Seconds between two refreshes of the page.
pub const REFRESH_SECS: u64 = 2;

/// The page (HTML, CSS and script in one file, no external resources).
pub const PAGE: &str = include_str!("status.html");

/// `GET /`.
pub async fn page() -> Response {
    (
        [
            ("content-type", "text/html; charset=utf-8"),
            ("cache-control", "no-store"),
        ],
        PAGE,
    )
        .into_response()
}

/// `GET /status.json`.
pub async fn json_handler(State(rt): State<Arc<Runtime>>) -> Response {
    ([("cache-control", "no-store")], axum::Json(status(&rt))).into_response()
}

/// What the page shows, as JSON.
pub fn status(rt: &Runtime) -> Value {
    let snap = rt.snapshot();
    let projects: Vec<Value> = snap
        .projects
        .iter()
        .map(|p| {
            json!({
                "name": p.name,
                "revision": p.datafile_revision,
                "age_secs": p.datafile_age_secs,
                "decisions": p.decisions,
                "conversions": p.conversions,
            })
        })
        .collect();
    let b = &snap.brevo;
    let last_sync = std::fs::read(rt.config.state_dir.join(LAST_SYNC_FILE))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok());
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "now_ms": now_ms(),
        "refresh_secs": REFRESH_SECS,
        "projects": projects,
        "events": {
            "queued": snap.events.queued,
            "sent": snap.events.sent,
            "dropped": snap.events.dropped,
            "disabled": rt.config.events.disabled,
        },
        "brevo": {
            "dry_run": rt.brevo.as_ref().map(|b| b.is_dry_run()).unwrap_or(true),
            "pending": b.pending,
            "writes": b.writes,
            "too_many_requests": b.too_many_requests,
            "set_aside": b.set_aside,
            "skipped_no_identity": b.skipped_no_identity,
            "identity_attribute": rt.config.brevo.identity_attribute,
        },
        "last_sync": last_sync,
    })
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
