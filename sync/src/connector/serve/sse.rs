//! `GET /v1/notifications/event-stream`: the project's notifications as server-sent events
//! (opt-in with `server.api.enable_notifications`, as Agent's `api.enableNotifications`; 403
//! otherwise). `?filter=decision|track|logEvent|configUpdate` (repeatable) narrows the kinds;
//! each event is `event: <kind>` with the notification as JSON `data`. A client too slow to
//! keep up loses events (at most [`DEFAULT_SSE_BUFFER`] wait per client); the decide path
//! never waits for it.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::state::{ProjectRuntime, Runtime};
use crate::notify::{ListenerId, Notification, NotificationType};

/// Events buffered per connected client.
pub const DEFAULT_SSE_BUFFER: usize = 1024;

const KINDS: [(&str, NotificationType); 4] = [
    ("decision", NotificationType::Decision),
    ("track", NotificationType::Track),
    ("logEvent", NotificationType::LogEvent),
    ("configUpdate", NotificationType::ConfigUpdate),
];

/// The SSE `event` name and JSON data of a notification.
fn encode(n: &Notification) -> Option<(&'static str, Value)> {
    Some(match n {
        Notification::Decision(d) => ("decision", serde_json::to_value(d).ok()?),
        Notification::Track(t) => ("track", serde_json::to_value(t).ok()?),
        Notification::LogEvent(l) => ("logEvent", serde_json::to_value(l).ok()?),
        Notification::ConfigUpdate(c) => ("configUpdate", serde_json::to_value(c).ok()?),
    })
}

/// The listeners of one client, removed when its stream is dropped (disconnect).
struct Subscription {
    project: Arc<ProjectRuntime>,
    ids: Vec<ListenerId>,
    rx: mpsc::Receiver<Event>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let center = self.project.client.notification_center();
        for id in self.ids.drain(..) {
            center.remove_listener(id);
        }
    }
}

impl futures_core::Stream for Subscription {
    type Item = Result<Event, std::convert::Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|e| e.map(Ok))
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// The handler.
pub(crate) async fn event_stream(
    State(rt): State<Arc<Runtime>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    if !rt.config.server.api.enable_notifications {
        return error(
            StatusCode::FORBIDDEN,
            "notifications not enabled (set server.api.enable_notifications: true)",
        );
    }
    let key = headers
        .get(super::agent::SDK_KEY_HEADER)
        .and_then(|v| v.to_str().ok());
    let project = match super::routes::project(&rt, key) {
        Ok(p) => Arc::clone(p),
        Err((status, body)) => return (status, Json(body)).into_response(),
    };
    let filters: Vec<String> = url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .filter(|(k, _)| k == "filter")
        .map(|(_, v)| v.into_owned())
        .collect();
    let mut kinds = Vec::new();
    for f in &filters {
        match KINDS.iter().find(|(name, _)| name.eq_ignore_ascii_case(f)) {
            Some((_, kind)) => kinds.push(*kind),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "query.filter: unknown kind (decision, track, logEvent, configUpdate)",
                )
            }
        }
    }
    if kinds.is_empty() {
        kinds = KINDS.iter().map(|(_, k)| *k).collect();
    }
    let (tx, rx) = mpsc::channel::<Event>(DEFAULT_SSE_BUFFER);
    let center = project.client.notification_center();
    let ids = kinds
        .into_iter()
        .map(|kind| {
            let tx = tx.clone();
            center.add_listener(kind, move |n| {
                if let Some((name, data)) = encode(n) {
                    let event = Event::default().event(name).data(data.to_string());
                    // Full buffer: this slow client loses the event.
                    let _ = tx.try_send(event);
                }
            })
        })
        .collect();
    let stream = Subscription { project, ids, rx };
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}
