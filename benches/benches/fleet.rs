//! Fleet store: the Brevo sync with its contact outbox in Redis against the SQLite-only sync,
//! in the same run.
//!
//! - `fleet_contacts/{sqlite,redis}`: contacts delivered per second: `CONTACTS` new contacts
//!   recorded, then one flush until every one is written, against an instant in-process
//!   transport (200 for every call; no HTTP, so the store and the outbox are what is
//!   measured). With Redis the flush publishes to the shared outbox, claims and acknowledges.
//! - `fleet_enqueue/{sqlite,redis}`: one decision handed to the sink (the decide path's share):
//!   the same code whichever store is configured (Redis is never on the decide path).
//! - `fleet_events/{sqlite,redis}`: Optimizely events delivered per second: `EVENTS` decides
//!   (one impression each, distinct users) on a `Client`, until every event was posted to an
//!   instant in-process transport (204; no HTTP). `sqlite`: stored, posted, deleted. `redis`:
//!   stored, handed over to the shared stream, deleted locally, claimed by the same client's
//!   senders, posted, acknowledged.
//!
//! Needs `redis-server` on the PATH (a private one on a free loopback port is started).

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use compact_str::CompactString;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use flagbridge_benches::pipelines::{wait_processed, NullTransport};
use flagbridge_engine::{DecideOptions, UserContext};
use flagbridge_sync::brevo::{
    AttrValue, BrevoRequest, BrevoResponse, BrevoSync, BrevoTransport, DecisionRecord, RateBudget,
    RuleSource, UserSnapshot,
};
use flagbridge_sync::fleet::FleetConfig;
use flagbridge_sync::testing::RedisServer;
use flagbridge_sync::{BoxFuture, Client, EventStorage, TransportError};

/// Contacts per measured flush.
const CONTACTS: u64 = 2_000;
/// Events per measured round.
const EVENTS: u64 = 20_000;

fn event_client(
    runtime: &tokio::runtime::Runtime,
    dir: &std::path::Path,
    redis: Option<&RedisServer>,
) -> Client {
    runtime.block_on(async {
        let mut builder = Client::builder()
            .datafile(flagbridge_sync::testing::datafile("7"))
            .event_storage(EventStorage::File(dir.join("events.sqlite")))
            .event_transport(Arc::new(NullTransport));
        if let Some(redis) = redis {
            let fleet = FleetConfig::new(redis.url())
                .key_prefix("bench-events:")
                .connect()
                .await
                .expect("redis");
            builder = builder.fleet(fleet);
        }
        builder.start().await.expect("client")
    })
}

/// Answers every request at once: the attribute list is empty, everything else is 200.
struct Instant200;

impl BrevoTransport for Instant200 {
    fn send(&self, request: BrevoRequest) -> BoxFuture<'_, Result<BrevoResponse, TransportError>> {
        Box::pin(async move {
            let body = if request.path == "/contacts/attributes" {
                br#"{"attributes":[]}"#.to_vec()
            } else {
                Vec::new()
            };
            Ok(BrevoResponse {
                status: 200,
                body,
                rate_limit_reset: None,
            })
        })
    }
}

fn record(n: u64) -> DecisionRecord {
    let email = format!("c{n}@bench.io");
    DecisionRecord {
        user: Arc::new(UserSnapshot {
            user_id: email.as_str().into(),
            contact: email.as_str().into(),
            attributes: vec![("email".into(), AttrValue::String(email.as_str().into()))].into(),
            audiences: None,
        }),
        flag_key: CompactString::from("checkout"),
        enabled: true,
        source: RuleSource::Rollout,
        rule_key: Some("rollout".into()),
        variation_key: Some("on".into()),
    }
}

fn sync(
    runtime: &tokio::runtime::Runtime,
    dir: &std::path::Path,
    redis: Option<&RedisServer>,
) -> BrevoSync {
    runtime.block_on(async {
        let budget = RateBudget {
            per_second: 1_000_000,
            per_hour: u32::MAX,
        };
        let mut builder = BrevoSync::builder()
            .transport(Box::new(Instant200))
            .store_path(Some(dir.join("brevo.sqlite")))
            .flush_interval(Duration::from_secs(3600))
            .queue_capacity(16_384)
            .batch_size(500)
            .contacts_budget(budget)
            .events_budget(budget);
        if let Some(redis) = redis {
            let fleet = FleetConfig::new(redis.url())
                .key_prefix("bench:")
                .connect()
                .await
                .expect("fleet");
            builder = builder.fleet(fleet);
        }
        builder.start().await.expect("Brevo sync")
    })
}

fn fleet(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let redis = RedisServer::start_with(true).expect("redis-server on the PATH");
    let dirs = [
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    ];
    let syncs = [
        ("sqlite", sync(&runtime, dirs[0].path(), None)),
        ("redis", sync(&runtime, dirs[1].path(), Some(&redis))),
    ];
    let next = AtomicU64::new(0);

    let mut group = c.benchmark_group("fleet_contacts");
    group.throughput(Throughput::Elements(CONTACTS));
    group.sample_size(10);
    for (name, sync) in &syncs {
        group.bench_function(*name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let sink = sync.sink();
                    let before = sync.counters().contacts_written;
                    let start = Instant::now();
                    for _ in 0..CONTACTS {
                        sink.record_decision(record(next.fetch_add(1, Ordering::Relaxed)));
                    }
                    runtime.block_on(sync.flush()).expect("flush");
                    total += start.elapsed();
                    assert_eq!(sync.counters().contacts_written - before, CONTACTS);
                }
                total
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("fleet_enqueue");
    for (name, sync) in &syncs {
        let sink = sync.sink();
        let r = record(u64::MAX);
        group.bench_function(*name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut done = 0;
                while done < iters {
                    let n = (iters - done).min(2_048);
                    wait_processed(sync);
                    let start = Instant::now();
                    for _ in 0..n {
                        sink.record_decision(black_box(r.clone()));
                    }
                    total += start.elapsed();
                    done += n;
                }
                total
            })
        });
    }
    group.finish();
    for (_, sync) in syncs {
        runtime.block_on(sync.close()).expect("close");
    }

    let dirs = [
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    ];
    let clients = [
        ("sqlite", event_client(&runtime, dirs[0].path(), None)),
        (
            "redis",
            event_client(&runtime, dirs[1].path(), Some(&redis)),
        ),
    ];
    let users: Vec<UserContext> = (0..EVENTS)
        .map(|i| UserContext::new(format!("u{i}")).with_attribute("plan", "pro"))
        .collect();
    let mut group = c.benchmark_group("fleet_events");
    group.throughput(Throughput::Elements(EVENTS));
    group.sample_size(10);
    for (name, client) in &clients {
        group.bench_function(*name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let before = client.event_stats().sent;
                    let start = Instant::now();
                    for u in &users {
                        client.decide(u, "checkout", DecideOptions::NONE);
                    }
                    runtime.block_on(async {
                        client.flush().await;
                        while client.event_stats().sent - before < EVENTS {
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                    });
                    total += start.elapsed();
                    assert_eq!(client.event_stats().sent - before, EVENTS);
                }
                total
            })
        });
    }
    group.finish();
    for (_, client) in clients {
        assert_eq!(runtime.block_on(client.close()), 0);
    }
}

criterion_group!(benches, fleet);
criterion_main!(benches);
