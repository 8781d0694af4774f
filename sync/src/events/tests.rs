//! Event pipeline behaviour over an in-memory transport, with tokio's paused clock.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use super::batch::{LogxBatch, Rendered};
use super::sender::{EventTransport, HttpReply, TransportError};
use super::*;
use crate::datafile::source::BoxFuture;

struct TestBatch(Value);

impl LogxBatch for TestBatch {
    fn render(mut self, endpoint_override: Option<&str>) -> serde_json::Result<Option<Rendered>> {
        let endpoint = if self.0["region"] == "EU" {
            EU_ENDPOINT
        } else {
            US_ENDPOINT
        };
        if let Some(map) = self.0.as_object_mut() {
            map.remove("region");
        }
        Rendered::from_value(&self.0, endpoint, endpoint_override).map(Some)
    }
}

fn event(revision: &str, user: &str, n: usize) -> TestBatch {
    TestBatch(json!({
        "account_id": "1", "project_id": "2", "revision": revision, "anonymize_ip": true,
        "visitors": [{"visitor_id": user, "snapshots": [{"events": [{"uuid": format!("{user}-{n}"), "key": "k"}]}]}]
    }))
}

#[derive(Default)]
struct MemState {
    script: VecDeque<Result<u16, TransportError>>,
    posts: Vec<(String, Value)>,
    gate: Option<Arc<tokio::sync::Notify>>,
}

#[derive(Clone, Default)]
struct MemTransport(Arc<Mutex<MemState>>);

impl MemTransport {
    fn script(&self, answers: impl IntoIterator<Item = Result<u16, TransportError>>) {
        self.0.lock().unwrap().script.extend(answers);
    }
    fn posts(&self) -> Vec<(String, Value)> {
        self.0.lock().unwrap().posts.clone()
    }
    fn sizes(&self) -> Vec<usize> {
        self.posts()
            .iter()
            .map(|(_, b)| b["visitors"].as_array().unwrap().len())
            .collect()
    }
}

impl EventTransport for MemTransport {
    fn post<'a>(
        &'a self,
        url: &'a str,
        body: &'a [u8],
    ) -> BoxFuture<'a, Result<HttpReply, TransportError>> {
        Box::pin(async move {
            let gate = self.0.lock().unwrap().gate.clone();
            if let Some(gate) = gate {
                gate.notified().await;
            }
            let mut s = self.0.lock().unwrap();
            s.posts
                .push((url.to_owned(), serde_json::from_slice(body).unwrap()));
            let answer = s.script.pop_front().unwrap_or(Ok(204));
            answer.map(|status| HttpReply {
                status,
                body: format!("answer {status}"),
            })
        })
    }
}

fn spawn(
    transport: &MemTransport,
    tweak: impl FnOnce(&mut EventSettings),
) -> EventProcessor<Plain<TestBatch>> {
    let mut settings = EventSettings::default();
    tweak(&mut settings);
    EventProcessor::spawn(settings, Arc::new(transport.clone()), Box::new(|_, _| {}))
}

#[tokio::test(start_paused = true)]
async fn flushes_at_the_count_and_at_the_interval() {
    let t = MemTransport::default();
    let p = spawn(&t, |_| {});
    for i in 0..1200 {
        p.push(event("7", "u", i));
    }
    // The collector hands them over within its interval; the count trigger then sends.
    tokio::time::sleep(crate::handoff::COLLECT_INTERVAL + Duration::from_millis(10)).await;
    assert_eq!(t.sizes(), vec![500, 500], "count trigger");
    tokio::time::sleep(DEFAULT_EVENT_FLUSH_INTERVAL).await;
    assert_eq!(t.sizes(), vec![500, 500, 200], "interval trigger");
    let stats = p.stats();
    assert_eq!(
        (stats.queued, stats.sent, stats.dropped, stats.batches),
        (1200, 1200, 0, 3)
    );
    assert_eq!(t.posts()[0].0, US_ENDPOINT);
    assert_eq!(t.posts()[0].1["revision"], "7");
    p.close().await;
}

#[tokio::test(start_paused = true)]
async fn flushes_at_the_size_and_never_exceeds_it() {
    let t = MemTransport::default();
    let p = spawn(&t, |s| s.dispatch.batch_bytes = 10_000);
    let pad = "x".repeat(900);
    for i in 0..50 {
        p.push(TestBatch(
            json!({"revision": "1", "visitors": [{"visitor_id": i, "pad": pad}]}),
        ));
    }
    p.flush().await;
    let posts = t.posts();
    assert!(posts.len() >= 5, "{} posts", posts.len());
    for (_, body) in &posts {
        assert!(serde_json::to_vec(body).unwrap().len() <= 10_000);
    }
    assert_eq!(t.sizes().iter().sum::<usize>(), 50);
    p.close().await;
}

#[tokio::test(start_paused = true)]
async fn one_batch_per_context_and_eu_endpoint() {
    let t = MemTransport::default();
    let p = spawn(&t, |_| {});
    p.push(event("1", "a", 0));
    p.push(event("1", "b", 0));
    p.push(event("2", "c", 0));
    let mut eu = event("2", "d", 0);
    eu.0["region"] = json!("EU");
    p.push(eu);
    p.flush().await;
    let posts = t.posts();
    let summary: Vec<(String, Value, usize)> = posts
        .iter()
        .map(|(u, b)| {
            (
                u.clone(),
                b["revision"].clone(),
                b["visitors"].as_array().unwrap().len(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (US_ENDPOINT.to_owned(), json!("1"), 2),
            (US_ENDPOINT.to_owned(), json!("2"), 1),
            (EU_ENDPOINT.to_owned(), json!("2"), 1),
        ]
    );
    p.close().await;
}

#[tokio::test(start_paused = true)]
async fn retries_5xx_429_and_transport_errors_with_the_same_body() {
    let t = MemTransport::default();
    t.script([Ok(500), Ok(429), Err(TransportError::Timeout)]);
    let p = spawn(&t, |_| {});
    p.push(event("1", "a", 0));
    p.flush().await;
    let posts = t.posts();
    assert_eq!(posts.len(), 4);
    assert!(
        posts.iter().all(|(_, b)| *b == posts[0].1),
        "same body, same uuids"
    );
    let stats = p.stats();
    assert_eq!((stats.sent, stats.dropped, stats.retries), (1, 0, 3));
    p.close().await;
}

#[tokio::test(start_paused = true)]
async fn drops_on_400_and_after_the_retry_budget() {
    let t = MemTransport::default();
    t.script([Ok(400)]);
    let p = spawn(&t, |_| {});
    p.push(event("1", "a", 0));
    p.flush().await;
    assert_eq!(t.posts().len(), 1, "400 is not retried");
    t.script([Ok(503), Ok(503), Ok(503), Ok(503)]);
    p.push(event("1", "b", 0));
    p.push(event("1", "c", 0));
    p.flush().await;
    assert_eq!(t.posts().len(), 5);
    let stats = p.stats();
    assert_eq!((stats.sent, stats.dropped, stats.retries), (0, 3, 3));
    p.close().await;
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_counts_overflow_and_never_blocks() {
    let t = MemTransport::default();
    let gate = Arc::new(tokio::sync::Notify::new());
    t.0.lock().unwrap().gate = Some(Arc::clone(&gate));
    let p = spawn(&t, |s| {
        s.capacity = 10;
        s.dispatch.batch_size = 1;
    });
    p.push(event("1", "first", 0));
    // The collector hands it over within its interval; the loop is then stuck sending it.
    tokio::time::sleep(crate::handoff::COLLECT_INTERVAL * 2).await;
    for i in 0..100 {
        p.push(event("1", "u", i));
    }
    let stats = p.stats();
    assert_eq!((stats.queued, stats.overflow), (11, 90));
    gate.notify_one();
    for _ in 0..20 {
        gate.notify_one();
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    p.flush().await;
    assert_eq!(p.stats().sent, 11);
    p.close().await;
}

#[tokio::test(start_paused = true)]
async fn close_delivers_everything_queued_and_refuses_later_events() {
    let t = MemTransport::default();
    t.script([Ok(500)]);
    let p = spawn(&t, |s| {
        s.dispatch.flush_interval = Duration::from_secs(3600)
    });
    for i in 0..1234 {
        p.push(event("1", "u", i));
    }
    p.close().await;
    let uuids: std::collections::BTreeSet<String> = t
        .posts()
        .iter()
        .filter(|(_, b)| !b.is_null())
        .flat_map(|(_, b)| b["visitors"].as_array().unwrap().clone())
        .map(|v| {
            v["snapshots"][0]["events"][0]["uuid"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(uuids.len(), 1234, "nothing lost at shutdown");
    p.push(event("1", "late", 0));
    let stats = p.stats();
    assert_eq!((stats.sent, stats.dropped), (1234, 1));
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Every event is delivered exactly once and in order; each body respects the count and
        /// byte limits (a single larger event goes alone) and holds one context only.
        #[test]
        fn batches_deliver_each_event_once_within_limits(
            events in prop::collection::vec((0u8..3, 0usize..3000), 1..150),
            batch_size in 1usize..40,
            batch_bytes in 1024usize..12_000,
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .start_paused(true)
                .build()
                .unwrap();
            let posts = runtime.block_on(async {
                let t = MemTransport::default();
                let p = spawn(&t, |s| {
                    s.dispatch.batch_size = batch_size;
                    s.dispatch.batch_bytes = batch_bytes;
                });
                for (i, (revision, pad)) in events.iter().enumerate() {
                    p.push(TestBatch(json!({
                        "revision": revision.to_string(),
                        "visitors": [{"visitor_id": i, "pad": "x".repeat(*pad)}]
                    })));
                }
                p.close().await;
                t.posts()
            });
            let mut delivered = Vec::new();
            for (_, body) in &posts {
                let visitors = body["visitors"].as_array().unwrap();
                let size = serde_json::to_vec(body).unwrap().len();
                prop_assert!(visitors.len() <= batch_size);
                prop_assert!(size <= batch_bytes || visitors.len() == 1, "{size} bytes, {} visitors", visitors.len());
                for v in visitors {
                    let i = v["visitor_id"].as_u64().unwrap() as usize;
                    prop_assert_eq!(body["revision"].as_str().unwrap(), events[i].0.to_string());
                    delivered.push(i);
                }
            }
            prop_assert_eq!(delivered, (0..events.len()).collect::<Vec<_>>());
        }
    }
}

#[tokio::test(start_paused = true)]
async fn flush_and_close_take_events_waiting_in_other_threads_rings() {
    let t = MemTransport::default();
    let p = spawn(&t, |s| {
        s.dispatch.flush_interval = Duration::from_secs(3600)
    });
    // Less than half a ring per thread: the collector is not woken, and with the paused
    // clock it never runs, so every event is still in its thread's ring.
    let push_from_threads = |tag: &str| {
        std::thread::scope(|scope| {
            for thread in 0..3 {
                let p = &p;
                scope.spawn(move || {
                    for n in 0..32 {
                        p.push(event("1", &format!("{tag}{thread}"), n));
                    }
                });
            }
        });
    };
    let per_round = 3 * 32;
    push_from_threads("f");
    assert_eq!(p.stats().queued, per_round as u64);
    p.flush().await;
    assert_eq!(p.stats().sent, per_round as u64);
    push_from_threads("c");
    p.close().await;
    let visitors: usize = t.sizes().iter().sum();
    assert_eq!(visitors, 2 * per_round, "nothing left in a ring at close");
    push_from_threads("late");
    let stats = p.stats();
    assert_eq!(
        (stats.sent, stats.dropped),
        (2 * per_round as u64, per_round as u64)
    );
}
