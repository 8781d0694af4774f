//! The pipeline against a scripted transport (no HTTP): delivery, retries with the same body,
//! dead letters, the age limit, concurrency, the store across restarts, caps and the spill.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use flagbridge_engine::{ClientInfo, DecideOptions, EventBatch, SnapshotEvent, Visitor};

use super::record::EventRecord;
use super::sender::{EventTransport, HttpReply};
use super::*;
use crate::BoxFuture;
use crate::TransportError;

/// Answers from a script (then 204), after `delay`; records bodies and peak concurrency.
#[derive(Default)]
struct Script {
    replies: Mutex<VecDeque<Result<u16, ()>>>,
    delay: Duration,
    bodies: Mutex<Vec<Bytes>>,
    now: AtomicUsize,
    peak: AtomicUsize,
}

impl Script {
    fn with(replies: &[Result<u16, ()>], delay: Duration) -> Arc<Self> {
        Arc::new(Script {
            replies: Mutex::new(replies.iter().copied().collect()),
            delay,
            ..Script::default()
        })
    }

    fn bodies(&self) -> Vec<serde_json::Value> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .map(|b| serde_json::from_slice(b).unwrap())
            .collect()
    }

    /// Distinct uuids of the accepted bodies (those answered 2xx are the last of each run,
    /// but the script knows only statuses: the test compares all bodies).
    fn uuids(&self) -> Vec<String> {
        let mut out = Vec::new();
        for body in self.bodies() {
            for v in body["visitors"].as_array().unwrap() {
                out.push(
                    v["snapshots"][0]["events"][0]["uuid"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                );
            }
        }
        out
    }
}

impl EventTransport for Script {
    fn post<'a>(
        &'a self,
        _: &'a str,
        body: Bytes,
    ) -> BoxFuture<'a, Result<HttpReply, TransportError>> {
        Box::pin(async move {
            let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            self.now.fetch_sub(1, Ordering::SeqCst);
            self.bodies.lock().unwrap().push(body);
            let reply = self.replies.lock().unwrap().pop_front().unwrap_or(Ok(204));
            match reply {
                Ok(status) => Ok(HttpReply {
                    status,
                    body: String::new(),
                }),
                Err(()) => Err(TransportError::Timeout),
            }
        })
    }
}

fn conversion(n: usize) -> EventRecord {
    EventRecord::Built(Box::new(EventBatch {
        account_id: "1".into(),
        project_id: "2".into(),
        revision: "3".into(),
        client_name: "t".into(),
        client_version: "0".into(),
        anonymize_ip: true,
        enrich_decisions: true,
        visitors: vec![Visitor {
            visitor_id: format!("u{n}"),
            attributes: Vec::new(),
            snapshots: vec![flagbridge_engine::Snapshot {
                decisions: Vec::new(),
                events: vec![SnapshotEvent {
                    entity_id: Some("e".into()),
                    key: "buy".into(),
                    timestamp: 1,
                    uuid: format!("uuid-{n}"),
                    revenue: None,
                    value: None,
                    tags: None,
                }],
            }],
        }],
        region: String::new(),
    }))
}

fn settings(storage: EventStorage) -> EventSettings {
    EventSettings {
        storage,
        commit_interval: Duration::from_millis(10),
        flush_interval: Duration::from_millis(20),
        retry_base: Duration::from_millis(5),
        retry_max: Duration::from_millis(20),
        endpoint_override: Some("http://127.0.0.1:9/v1/events".into()),
        ..EventSettings::default()
    }
}

fn start(settings: EventSettings, transport: Arc<Script>) -> EventProcessor {
    EventProcessor::spawn(PipelineParts {
        settings,
        transport,
        on_sent: Box::new(|_, _| {}),
        client: Arc::new(ClientInfo {
            client_name: "t".into(),
            client_version: "0".into(),
        }),
        default_options: DecideOptions::NONE,
        fleet: None,
    })
    .unwrap()
}

async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("the pipeline answered in time")
}

#[tokio::test]
async fn delivers_every_event_and_keeps_uuids_on_retry() {
    let script = Script::with(&[Ok(503), Err(()), Ok(500)], Duration::ZERO);
    let p = start(settings(EventStorage::Memory), Arc::clone(&script));
    for n in 0..10 {
        p.push(conversion(n));
    }
    bounded(p.flush()).await;
    let stats = p.stats();
    assert_eq!((stats.queued, stats.sent, stats.retries), (10, 10, 3));
    assert_eq!(
        (stats.dropped, stats.dead_lettered, stats.in_flight),
        (0, 0, 0)
    );
    let bodies = script.bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 4, "one body, sent 4 times");
    assert!(
        bodies.iter().all(|b| b == &bodies[0]),
        "same bytes on every retry"
    );
    let mut uuids = script.uuids();
    uuids.sort();
    uuids.dedup();
    assert_eq!(uuids.len(), 10);
}

#[tokio::test]
async fn a_refused_batch_becomes_dead_letters_and_can_be_resent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.sqlite");
    let script = Script::with(&[Ok(400)], Duration::ZERO);
    let p = start(
        settings(EventStorage::File(path.clone())),
        Arc::clone(&script),
    );
    for n in 0..3 {
        p.push(conversion(n));
    }
    bounded(p.flush()).await;
    let stats = p.stats();
    assert_eq!((stats.sent, stats.dead_lettered, stats.in_store), (0, 3, 0));
    assert_eq!(bounded(p.close()).await, 0);
    drop(p);
    tokio::time::sleep(Duration::from_millis(50)).await;

    let dead = dead_letters(&path).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].events, dead[0].status), (3, 400));
    assert_eq!(resend_dead_letters(&path, None).unwrap(), 3);

    let again = Script::with(&[], Duration::ZERO);
    let p = start(
        settings(EventStorage::File(path.clone())),
        Arc::clone(&again),
    );
    assert_eq!(p.stats().in_store, 3, "restored from the store");
    bounded(p.flush()).await;
    assert_eq!(p.stats().sent, 3);
    assert_eq!(again.uuids().len(), 3);
    bounded(p.close()).await;
}

#[tokio::test]
async fn events_older_than_the_age_limit_become_dead_letters() {
    let script = Script::with(&[Ok(503); 1000], Duration::ZERO);
    let mut s = settings(EventStorage::Memory);
    s.max_age = Duration::from_millis(100);
    let p = start(s, Arc::clone(&script));
    p.push(conversion(1));
    bounded(p.flush()).await;
    let stats = p.stats();
    assert_eq!((stats.sent, stats.dead_lettered), (0, 1));
    assert!(
        stats.retries >= 2,
        "retried until the age limit: {}",
        stats.retries
    );
}

#[tokio::test]
async fn several_requests_are_in_flight_at_once() {
    let script = Script::with(&[], Duration::from_millis(100));
    let mut s = settings(EventStorage::Memory);
    s.batch_size = 10;
    s.concurrency = 4;
    let p = start(s, Arc::clone(&script));
    for n in 0..200 {
        p.push(conversion(n));
    }
    bounded(p.flush()).await;
    assert_eq!(p.stats().sent, 200);
    assert_eq!(script.peak.load(Ordering::SeqCst), 4);
    assert!(script
        .bodies()
        .iter()
        .all(|b| b["visitors"].as_array().unwrap().len() <= 10));
}

#[tokio::test]
async fn close_leaves_what_it_cannot_send_in_the_store_for_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.sqlite");
    let slow = Script::with(&[], Duration::from_secs(5));
    let mut s = settings(EventStorage::File(path.clone()));
    s.shutdown_timeout = Duration::from_millis(200);
    s.batch_size = 5;
    let p = start(s.clone(), Arc::clone(&slow));
    for n in 0..50 {
        p.push(conversion(n));
    }
    let left = bounded(p.close()).await;
    assert_eq!(left, 50, "nothing answered within the shutdown timeout");
    assert_eq!(p.stats().sent, 0);
    drop(p);
    tokio::time::sleep(Duration::from_millis(50)).await;

    let fast = Script::with(&[], Duration::ZERO);
    let p = start(s, Arc::clone(&fast));
    bounded(p.flush()).await;
    assert_eq!(p.stats().sent, 50);
    let mut uuids = fast.uuids();
    uuids.sort();
    uuids.dedup();
    assert_eq!(uuids.len(), 50);
    assert_eq!(bounded(p.close()).await, 0);
}

#[tokio::test]
async fn past_the_store_cap_events_are_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let script = Script::with(&[Ok(503); 100_000], Duration::ZERO);
    let mut s = settings(EventStorage::File(dir.path().join("e.sqlite")));
    s.max_store_bytes = 2_000;
    s.batch_size = 1;
    s.retry_base = Duration::from_secs(10);
    s.retry_max = Duration::from_secs(10);
    s.shutdown_timeout = Duration::from_millis(10);
    let p = start(s, script);
    for n in 0..100 {
        p.push(conversion(n));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stats = p.stats();
    assert_eq!(stats.queued, 100);
    assert!(stats.dropped > 0 && stats.in_store > 0, "{stats:?}");
    assert_eq!(stats.dropped + stats.in_store, 100, "{stats:?}");
    bounded(p.close()).await;
}

#[test]
fn a_full_ring_spills_instead_of_dropping() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let script = Script::with(&[], Duration::ZERO);
        let mut s = settings(EventStorage::Memory);
        s.ring_capacity = 4;
        let p = start(s, Arc::clone(&script));
        // The current-thread runtime cannot collect while this loop runs: the ring fills.
        for n in 0..100 {
            p.push(conversion(n));
        }
        assert!(p.stats().spilled >= 90, "{:?}", p.stats());
        bounded(p.flush()).await;
        let stats = p.stats();
        assert_eq!((stats.sent, stats.overflow, stats.dropped), (100, 0, 0));
    });
}

/// A stored body that no longer decompresses costs only its own segment: it is moved to the
/// dead letters (with the reason) and every other stored event is sent, once.
#[tokio::test]
async fn a_damaged_stored_segment_is_set_aside_and_the_rest_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.sqlite");
    let mut s = settings(EventStorage::File(path.clone()));
    s.shutdown_timeout = Duration::from_millis(200);
    s.batch_size = 5;
    let p = start(s.clone(), Script::with(&[], Duration::from_secs(5)));
    for n in 0..50 {
        p.push(conversion(n));
    }
    assert_eq!(bounded(p.close()).await, 50);
    drop(p);
    tokio::time::sleep(Duration::from_millis(50)).await;

    let damaged: i64 = {
        let conn = rusqlite::Connection::open(&path).unwrap();
        let (id, count): (i64, i64) = conn
            .query_row(
                "SELECT id, count FROM event_segments WHERE raw_bytes IS NOT NULL ORDER BY id LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("a compressed segment");
        conn.execute(
            "UPDATE event_segments SET body = substr(body, 1, length(body) / 2) WHERE id = ?1",
            [id],
        )
        .unwrap();
        count
    };
    assert!(damaged > 0);

    // Requests of up to 50 events now: the damaged segment shares one with the others.
    s.batch_size = 50;
    let fast = Script::with(&[], Duration::ZERO);
    let p = start(s, Arc::clone(&fast));
    bounded(p.flush()).await;
    let mut uuids = fast.uuids();
    uuids.sort();
    uuids.dedup();
    assert_eq!(
        uuids.len() as i64,
        50 - damaged,
        "every undamaged event, once"
    );
    assert_eq!(fast.uuids().len() as i64, 50 - damaged);
    assert!(p.stats().store_errors >= 1);
    assert_eq!(bounded(p.close()).await, 0);
    drop(p);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let dead = dead_letters(&path).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(i64::from(dead[0].events), damaged);
    assert!(
        dead[0].reason.contains("cannot be decompressed"),
        "{}",
        dead[0].reason
    );
}
