//! A fake logx event endpoint: `POST /v1/events` answers 204, 400 above 3.5 MB (with a body),
//! and 500 bursts on demand. Records every accepted batch.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::Value;

/// The payload limit of the real endpoint.
const MAX_BYTES: usize = 3_500_000;

/// A fault the endpoint can be told to produce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventFault {
    /// Answer the next `n` requests with this status.
    Burst {
        /// The status.
        status: u16,
        /// How many requests.
        count: u32,
    },
    /// Answer every request with this status until cleared.
    Always(u16),
}

#[derive(Debug, Default)]
struct EndpointState {
    accepted: Vec<Value>,
    /// Keep accepted batches (`false`: only count them, as a load test wants).
    discard: bool,
    accepted_visitors: u64,
    requests: u64,
    rejected: u64,
    fault: Option<EventFault>,
    latency: std::time::Duration,
    in_flight: u64,
    peak_in_flight: u64,
}

/// The fake event endpoint; clone freely (shared state).
#[derive(Clone, Debug)]
pub struct FakeEventEndpoint {
    addr: SocketAddr,
    state: Arc<Mutex<EndpointState>>,
}

impl FakeEventEndpoint {
    /// Starts the endpoint on 127.0.0.1.
    pub async fn start() -> std::io::Result<Self> {
        let state = Arc::new(Mutex::new(EndpointState::default()));
        let app = Router::new()
            .route("/v1/events", post(receive))
            .layer(DefaultBodyLimit::max(4 * MAX_BYTES))
            .with_state(Arc::clone(&state));
        let addr = super::serve(app).await?;
        Ok(FakeEventEndpoint { addr, state })
    }

    /// The endpoint URL, `http://127.0.0.1:port/v1/events`.
    pub fn url(&self) -> String {
        format!("http://{}/v1/events", self.addr)
    }

    /// Sets (Some) or ends (None) a fault.
    pub fn set_fault(&self, fault: Option<EventFault>) {
        self.lock().fault = fault;
    }

    /// Answers every request this much later (a far-away endpoint).
    pub fn set_latency(&self, latency: std::time::Duration) {
        self.lock().latency = latency;
    }

    /// Only counts accepted batches instead of keeping them (default: keeps them). A load
    /// test sets this so that the fake's own parsing and memory stay small beside the system
    /// under test; [`batches`](Self::batches) is then empty.
    pub fn set_discard_batches(&self, discard: bool) {
        self.lock().discard = discard;
    }

    /// Visitors in the batches accepted so far (counted whether batches are kept or not).
    pub fn accepted_visitors(&self) -> u64 {
        self.lock().accepted_visitors
    }

    /// The most requests that were being answered at once.
    pub fn peak_in_flight(&self) -> u64 {
        self.lock().peak_in_flight
    }

    /// Every accepted batch, in arrival order.
    pub fn batches(&self) -> Vec<Value> {
        self.lock().accepted.clone()
    }

    /// Every visitor of every accepted batch.
    pub fn visitors(&self) -> Vec<Value> {
        self.batches()
            .iter()
            .filter_map(|b| b.get("visitors").and_then(Value::as_array).cloned())
            .flatten()
            .collect()
    }

    /// Distinct event uuids accepted (replays of the same uuid count once, as the real
    /// endpoint de-duplicates them).
    pub fn distinct_uuids(&self) -> std::collections::BTreeSet<String> {
        let mut uuids = std::collections::BTreeSet::new();
        for visitor in self.visitors() {
            for snapshot in visitor
                .get("snapshots")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                for event in snapshot
                    .get("events")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(uuid) = event.get("uuid").and_then(Value::as_str) {
                        uuids.insert(uuid.to_owned());
                    }
                }
            }
        }
        uuids
    }

    /// Requests received (accepted or not).
    pub fn requests(&self) -> u64 {
        self.lock().requests
    }

    /// Requests answered with 400 because of their size or shape.
    pub fn rejected(&self) -> u64 {
        self.lock().rejected
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, EndpointState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

async fn receive(State(state): State<Arc<Mutex<EndpointState>>>, body: Bytes) -> Response {
    let latency = {
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        s.in_flight += 1;
        s.peak_in_flight = s.peak_in_flight.max(s.in_flight);
        s.latency
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let response = answer(&state, body);
    state.lock().unwrap_or_else(|e| e.into_inner()).in_flight -= 1;
    response
}

fn answer(state: &Mutex<EndpointState>, body: Bytes) -> Response {
    let close = [(header::CONNECTION, "close")];
    let discard = {
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        s.requests += 1;
        let fault_status = match &mut s.fault {
            Some(EventFault::Always(status)) => Some(*status),
            Some(EventFault::Burst { status, count }) if *count > 0 => {
                *count -= 1;
                Some(*status)
            }
            _ => None,
        };
        if let Some(status) = fault_status {
            let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return (code, close, "fault").into_response();
        }
        if body.len() > MAX_BYTES {
            s.rejected += 1;
            return (
                StatusCode::BAD_REQUEST,
                close,
                "Request payload is too large",
            )
                .into_response();
        }
        s.discard
    };
    // Parsed outside the lock; a discarding endpoint checks the shape without keeping it.
    let parsed = if discard {
        serde_json::from_slice::<Shape>(&body).map(|b| (b.visitors.len() as u64, None))
    } else {
        serde_json::from_slice::<Value>(&body).map(|batch| {
            let n = batch
                .get("visitors")
                .and_then(Value::as_array)
                .map(|v| v.len() as u64);
            (n.unwrap_or(u64::MAX), Some(batch))
        })
    };
    let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
    match parsed {
        Ok((visitors, batch)) if visitors != u64::MAX => {
            s.accepted_visitors += visitors;
            s.accepted.extend(batch);
            (StatusCode::NO_CONTENT, close).into_response()
        }
        _ => {
            s.rejected += 1;
            (StatusCode::BAD_REQUEST, close, "invalid event batch").into_response()
        }
    }
}

/// The shape a discarding endpoint checks: an object with a `visitors` array.
#[derive(serde::Deserialize)]
struct Shape {
    visitors: Vec<serde::de::IgnoredAny>,
}
