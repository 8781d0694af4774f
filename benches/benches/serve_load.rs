//! `flagbridge serve` as users load it: `POST /v1/decide` without keys (decide_all) on the
//! shared `go_100_entities.json` datafile, users with 20 attributes, 32 requests at a time from
//! this process, against a loopback logx 50 ms away; Brevo in dry run (the default). Reports
//! requests/s (criterion's throughput) and, after the run, the impressions delivered per second
//! and how many were dropped (must be 0). Target (issue 14): >= 4,000 requests/s on 2 cores.
//!
//! Skipped, with a message, when `../shared/datafiles` is absent.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use flagbridge_benches::fixtures::repo_root;
use flagbridge_sync::connector::config::Config;
use flagbridge_sync::connector::serve::{self, RuntimeOptions};
use flagbridge_sync::testing::FakeEventEndpoint;
use serde_json::{json, Value};

const CONCURRENCY: usize = 32;
const USERS: usize = 1_000;

fn body(i: usize) -> Vec<u8> {
    let mut attributes = serde_json::Map::new();
    for a in 0..20 {
        attributes.insert(format!("attr_{a:02}"), json!(format!("v{}", (i + a) % 7)));
    }
    attributes.insert("email".into(), json!(format!("user{i}@example.com")));
    serde_json::to_vec(
        &json!({"userId": format!("user-{i}"), "userAttributes": Value::Object(attributes)}),
    )
    .unwrap_or_default()
}

fn serve_load(c: &mut Criterion) {
    let datafile = repo_root().join("../shared/datafiles/go_100_entities.json");
    if !datafile.exists() {
        eprintln!("serve_load: skipped, {} is absent", datafile.display());
        return;
    }
    let sdk_key =
        serde_json::from_str::<Value>(&std::fs::read_to_string(&datafile).unwrap_or_default())
            .ok()
            .and_then(|d| d["sdkKey"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "bench".into());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let (events, handle) = runtime.block_on(async {
        let events = FakeEventEndpoint::start().await.expect("logx");
        events.set_latency(Duration::from_millis(50));
        // Count, don't keep: the fake's parsing stays small beside the server measured.
        events.set_discard_batches(true);
        let yaml = format!(
            r#"
state_dir: {state}
server:
  max_body_bytes: 1048576
connectors:
  optimizely:
    sdk_key: {sdk_key}
    datafile_file: {datafile}
    urls:
      events: {events}
"#,
            state = dir.path().display(),
            datafile = datafile.display(),
            events = events.url(),
        );
        let config = Config::from_yaml(&yaml, &|_| None).expect("config");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("listener");
        let handle = serve::start(config, listener, RuntimeOptions::default())
            .await
            .expect("serve");
        (events, handle)
    });
    let url = format!("http://{}/v1/decide", handle.local_addr());
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .expect("http client");
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new((0..USERS).map(body).collect());

    let mut group = c.benchmark_group("serve");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    let started = Instant::now();
    let mut requests = 0u64;
    group.bench_function("decide_all_go_100_entities", |b| {
        b.iter_custom(|iters| {
            requests += iters;
            runtime.block_on(async {
                let began = Instant::now();
                let mut tasks = tokio::task::JoinSet::new();
                for t in 0..CONCURRENCY as u64 {
                    let (http, url, bodies, key) = (
                        http.clone(),
                        url.clone(),
                        Arc::clone(&bodies),
                        sdk_key.clone(),
                    );
                    tasks.spawn(async move {
                        let mut i = t;
                        while i < iters {
                            let resp = http
                                .post(&url)
                                .header("X-Optimizely-SDK-Key", &key)
                                .header("Content-Type", "application/json")
                                .body(bodies[i as usize % USERS].clone())
                                .send()
                                .await
                                .expect("request");
                            assert_eq!(resp.status(), 200);
                            let _ = resp.bytes().await;
                            i += CONCURRENCY as u64;
                        }
                    });
                }
                while tasks.join_next().await.is_some() {}
                began.elapsed()
            })
        })
    });
    group.finish();
    let runtime_ref = handle.runtime();
    let deadline = Instant::now() + Duration::from_secs(120);
    let stats = loop {
        let snapshot = runtime_ref.snapshot();
        let e = snapshot.events;
        if (e.in_store == 0 && e.in_flight == 0 && e.sent >= e.queued) || Instant::now() > deadline
        {
            break e;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "serve_load: {requests} requests, {} impressions queued, {} delivered ({:.0}/s over the whole run incl. draining), {} dropped, {} in store, {} logx requests, {} visitors received by logx",
        stats.queued,
        stats.sent,
        stats.sent as f64 / elapsed,
        stats.dropped,
        stats.in_store,
        events.requests(),
        events.accepted_visitors()
    );
    assert_eq!(stats.dropped, 0, "no impression dropped");
    assert!(
        events.accepted_visitors() >= stats.queued,
        "every impression reached logx"
    );
    runtime.block_on(async {
        let _ = handle.shutdown().await;
    });
}

criterion_group!(benches, serve_load);
criterion_main!(benches);
