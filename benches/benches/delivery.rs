//! Deciding as users load the system: 1,000 distinct users, each a `ClientUserContext`, one
//! flag each in turn, against the engine alone on the same config and users (same run).
//!
//! - `decide_1000_users/engine`: `Decider::decide` only.
//! - `decide_1000_users/client_events`: `ClientUserContext::decide` with events on: the
//!   durable pipeline (SQLite store in a temp dir, 4 requests in flight) to an endpoint that
//!   answers 204 at once. Timed per chunk of 1,000 decides; the pipeline runs on one tokio
//!   worker (the other core) and is flushed, untimed, between chunks.
//! - `decide_1000_users/client_events_brevo`: the same plus the Brevo sync (dry run) as sink.
//! - `delivery/per_event`: end to end, 20,000 decides handed over and flushed (rendered,
//!   stored, sent, deleted), timed together: the pipeline's cost per event.
//! - `delivery/sender_per_event`: the sender path alone. Untimed: 20,000 events decided,
//!   rendered and stored by a client whose endpoint never answers, closed with them left in
//!   the store. Timed: a client started (untimed) on that store sends them all (segments
//!   read back from SQLite, merged into request bodies, posted to an instant endpoint,
//!   deleted).
//!
//! Targets (issue 14): client_events <= 2x engine, with Brevo <= 3x.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use flagbridge_benches::pipelines::{
    dry_run_brevo_sync, wait_processed, HangingTransport, NullTransport,
};
use flagbridge_engine::{DecideOptions, Decider, ProjectConfig, UserContext};
use flagbridge_sync::testing::datafile;
use flagbridge_sync::{Client, ClientUserContext, EventStorage};

const USERS: usize = 1_000;
const CHUNK: u64 = 1_000;

fn delivery(c: &mut Criterion) {
    let text = datafile("1");
    let config = ProjectConfig::parse(&text).expect("datafile");
    let users: Vec<UserContext> = (0..USERS)
        .map(flagbridge_benches::users::numbered)
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let start = |store: &str, brevo: Option<&flagbridge_sync::brevo::BrevoSync>| {
        let mut builder = Client::builder()
            .datafile(text.clone())
            .event_transport(Arc::new(NullTransport))
            .event_storage(EventStorage::File(dir.path().join(store)));
        if let Some(brevo) = brevo {
            builder = builder.decision_sink(Arc::new(brevo.sink()));
        }
        runtime.block_on(builder.start()).expect("client")
    };

    let mut group = c.benchmark_group("decide_1000_users");
    group.bench_function("engine", |b| {
        let decider = Decider::new(&config);
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % USERS;
            black_box(
                decider
                    .decide(&users[i], "checkout", DecideOptions::NONE)
                    .enabled(),
            )
        })
    });
    let timed = |b: &mut criterion::Bencher<'_>, client: &Client, bound: &[ClientUserContext]| {
        let mut i = 0;
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(CHUNK);
                let started = Instant::now();
                for _ in 0..n {
                    i = (i + 1) % USERS;
                    black_box(
                        bound[i].decide_with("checkout", DecideOptions::NONE, |d| d.enabled()),
                    );
                }
                total += started.elapsed();
                left -= n;
                runtime.block_on(client.flush());
            }
            total
        })
    };
    {
        let client = start("events.sqlite", None);
        let bound: Vec<ClientUserContext> = users
            .iter()
            .map(|u| client.user_context(u.clone()))
            .collect();
        group.bench_function("client_events", |b| timed(b, &client, &bound));
        runtime.block_on(client.close());
        let stats = client.event_stats();
        assert_eq!((stats.dropped, stats.overflow), (0, 0), "{stats:?}");
    }
    {
        let brevo = dry_run_brevo_sync(&runtime, dir.path(), 1 << 16);
        let client = start("events-brevo.sqlite", Some(&brevo));
        let bound: Vec<ClientUserContext> = users
            .iter()
            .map(|u| client.user_context(u.clone()))
            .collect();
        group.bench_function("client_events_brevo", |b| {
            timed(b, &client, &bound);
            wait_processed(&brevo);
        });
        runtime.block_on(client.close());
        let _ = runtime.block_on(brevo.close());
    }
    group.finish();

    let mut group = c.benchmark_group("delivery");
    group.sample_size(10);
    for (name, storage) in [
        ("per_event", Some("events-e2e.sqlite")),
        ("per_event_memory", None),
    ] {
        let client = match storage {
            Some(store) => start(store, None),
            None => runtime
                .block_on(
                    Client::builder()
                        .datafile(text.clone())
                        .event_transport(Arc::new(NullTransport))
                        .event_storage(EventStorage::Memory)
                        .start(),
                )
                .expect("client"),
        };
        let bound: Vec<ClientUserContext> = users
            .iter()
            .map(|u| client.user_context(u.clone()))
            .collect();
        const EVENTS: u64 = 20_000;
        group.bench_function(name, |b| {
            let mut i = 0;
            b.iter_custom(|iters| {
                let started = Instant::now();
                for _ in 0..iters {
                    for _ in 0..EVENTS {
                        i = (i + 1) % USERS;
                        bound[i].decide_with("checkout", DecideOptions::NONE, |d| d.enabled());
                    }
                    runtime.block_on(client.flush());
                }
                started.elapsed() / EVENTS as u32
            })
        });
        runtime.block_on(client.close());
        let stats = client.event_stats();
        assert_eq!(stats.sent, stats.queued, "{stats:?}");
    }

    const BACKLOG: u64 = 20_000;
    let store = dir.path().join("events-backlog.sqlite");
    let client_on = |transport: Arc<dyn flagbridge_sync::events::EventTransport>| {
        runtime
            .block_on(
                Client::builder()
                    .datafile(text.clone())
                    .event_transport(transport)
                    .event_storage(EventStorage::File(store.clone()))
                    .event_shutdown_timeout(Duration::from_millis(10))
                    .start(),
            )
            .expect("client")
    };
    group.bench_function("sender_per_event", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let filling = client_on(Arc::new(HangingTransport));
                for i in 0..BACKLOG as usize {
                    filling.decide(&users[i % USERS], "checkout", DecideOptions::NONE);
                }
                let left = runtime.block_on(filling.close());
                assert_eq!(left, BACKLOG, "events left in the store");
                // Started untimed: a client's start (reqwest and TLS roots, ~30 ms here) is
                // not per event.
                let sending = client_on(Arc::new(NullTransport));
                let started = Instant::now();
                runtime.block_on(sending.flush());
                total += started.elapsed();
                let stats = sending.event_stats();
                assert_eq!((stats.sent, stats.in_store), (BACKLOG, 0), "{stats:?}");
                runtime.block_on(sending.close());
            }
            total / BACKLOG as u32
        })
    });
    group.finish();
}

criterion_group!(benches, delivery);
criterion_main!(benches);
