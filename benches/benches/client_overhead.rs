//! Decide through the runtime `Client` (events on: impression built, uuid made, queue push)
//! against the engine alone, on the same config and user. Target: Client <= 1.3x engine.
//!
//! The event transport is a null one (answers 204 at once), so the owner loop runs on another
//! worker thread as in production without network noise. Queue overflow is printed at the end:
//! an overflowing queue would make pushes cheaper than in a healthy run.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use flagbridge_engine::{DecideOptions, Decider, ProjectConfig, UserContext};
use flagbridge_sync::datafile::source::BoxFuture;
use flagbridge_sync::events::sender::{EventTransport, HttpReply, TransportError};
use flagbridge_sync::testing::datafile;
use flagbridge_sync::Client;

struct NullTransport;

impl EventTransport for NullTransport {
    fn post<'a>(
        &'a self,
        _url: &'a str,
        _body: &'a [u8],
    ) -> BoxFuture<'a, Result<HttpReply, TransportError>> {
        Box::pin(async {
            Ok(HttpReply {
                status: 204,
                body: String::new(),
            })
        })
    }
}

fn client_overhead(c: &mut Criterion) {
    let text = datafile("1");
    let config = ProjectConfig::parse(&text).expect("datafile");
    let user = UserContext::new("user-123").with_attribute("plan", "pro");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let start = |events: bool| {
        runtime.block_on(
            Client::builder()
                .datafile(text.clone())
                .events_enabled(events)
                .event_transport(Arc::new(NullTransport))
                .start(),
        )
    };
    let with_events = start(true).expect("client");
    let without_events = start(false).expect("client");

    let mut group = c.benchmark_group("client_overhead");
    group.bench_function("engine_alone", |b| {
        b.iter(|| {
            let decider = Decider::new(&config);
            let d = decider.decide(black_box(&user), black_box("checkout"), DecideOptions::NONE);
            black_box(d.enabled())
        })
    });
    group.bench_function("client_decide_with_events", |b| {
        b.iter(|| {
            with_events.decide_with(
                black_box(&user),
                black_box("checkout"),
                DecideOptions::NONE,
                |d| black_box(d.enabled()),
            )
        })
    });
    group.bench_function("client_decide_owned_events", |b| {
        b.iter(|| {
            black_box(with_events.decide(
                black_box(&user),
                black_box("checkout"),
                DecideOptions::NONE,
            ))
        })
    });
    group.bench_function("client_decide_with_no_events", |b| {
        b.iter(|| {
            without_events.decide_with(
                black_box(&user),
                black_box("checkout"),
                DecideOptions::NONE,
                |d| black_box(d.enabled()),
            )
        })
    });
    group.finish();

    runtime.block_on(with_events.close());
    let stats = with_events.event_stats();
    println!(
        "client_overhead events: queued {} sent {} overflow {} dropped {}",
        stats.queued, stats.sent, stats.overflow, stats.dropped
    );
}

criterion_group!(benches, client_overhead);
criterion_main!(benches);
