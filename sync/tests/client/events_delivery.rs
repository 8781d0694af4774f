//! Every decision delivered, tried as users run it: a logx endpoint 100 ms away, bursts of
//! 5xx, and a process killed with SIGKILL mid-flush then restarted on the same store.
//!
//! The child process is this test binary re-run with
//! `--exact events_delivery::killed_child --ignored` and its parameters in an environment
//! variable; the test is `#[ignore]`d, so a normal run does not count it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use flagbridge_engine::{DecideOptions, UserContext};
use flagbridge_sync::testing::{datafile, EventFault, FakeEventEndpoint};
use flagbridge_sync::{Client, EventStorage};

const CHILD_ENV: &str = "FLAGBRIDGE_EVENTS_KILLED_CHILD";

fn user(i: usize) -> UserContext {
    UserContext::new(format!("u{i}"))
        .with_attribute("plan", if i % 2 == 0 { "pro" } else { "basic" })
}

async fn client(endpoint: &FakeEventEndpoint, store: &std::path::Path) -> Client {
    Client::builder()
        .datafile(datafile("7"))
        .event_endpoint(endpoint.url())
        .event_storage(EventStorage::File(store.to_path_buf()))
        .event_retry_backoff(Duration::from_millis(20), Duration::from_millis(200))
        .start()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logx_100_ms_away_gets_all_20000_impressions_of_1000_users() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = FakeEventEndpoint::start().await.unwrap();
    endpoint.set_latency(Duration::from_millis(100));
    let client = client(&endpoint, &dir.path().join("events.sqlite")).await;
    let users: Vec<UserContext> = (0..1_000).map(user).collect();
    let started = Instant::now();
    for round in 0..20 {
        for u in &users {
            client.decide(u, "checkout", DecideOptions::NONE);
        }
        let _ = round;
        tokio::task::yield_now().await;
    }
    tokio::time::timeout(Duration::from_secs(60), client.flush())
        .await
        .expect("flushed within 60 s");
    let elapsed = started.elapsed();
    let stats = client.event_stats();
    println!(
        "20,000 impressions to a logx 100 ms away: {elapsed:?}, {} requests, peak {} in flight, {stats:?}",
        endpoint.requests(),
        endpoint.peak_in_flight()
    );
    assert_eq!(endpoint.distinct_uuids().len(), 20_000);
    assert_eq!(
        (
            stats.sent,
            stats.dropped,
            stats.overflow,
            stats.dead_lettered
        ),
        (20_000, 0, 0, 0)
    );
    assert_eq!(stats.in_store, 0);
    assert_eq!(client.close().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_of_500_and_503_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = FakeEventEndpoint::start().await.unwrap();
    let client = client(&endpoint, &dir.path().join("events.sqlite")).await;
    let mut decided = 0;
    for wave in 0..4usize {
        endpoint.set_fault(Some(EventFault::Burst {
            status: if wave % 2 == 0 { 500 } else { 503 },
            count: if wave % 2 == 0 { 8 } else { 4 },
        }));
        for i in 0..600 {
            client.decide(&user(wave * 600 + i), "checkout", DecideOptions::NONE);
            decided += 1;
        }
        tokio::time::timeout(Duration::from_secs(60), client.flush())
            .await
            .expect("flushed within 60 s");
    }
    let stats = client.event_stats();
    println!(
        "2,400 impressions through 5xx bursts: {} requests, {stats:?}",
        endpoint.requests()
    );
    assert_eq!(endpoint.distinct_uuids().len(), decided);
    assert_eq!(
        (stats.sent, stats.dropped, stats.dead_lettered),
        (2_400, 0, 0)
    );
    assert_eq!(
        stats.retries, 24,
        "8 + 4 + 8 + 4 failed attempts, each retried"
    );
    client.close().await;
}

/// Run by `a_process_killed_mid_flush_loses_at_most_the_commit_window`, not on its own.
#[test]
#[ignore = "the child process of a_process_killed_mid_flush_loses_at_most_the_commit_window"]
fn killed_child() {
    let Ok(params) = std::env::var(CHILD_ENV) else {
        panic!("run by its parent test only");
    };
    let (url, store) = params.split_once('|').unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = Client::builder()
            .datafile(datafile("7"))
            .event_endpoint(url)
            .event_storage(EventStorage::File(store.into()))
            .event_batch_size(200)
            .start()
            .await
            .unwrap();
        let mut decided = 0usize;
        loop {
            for _ in 0..100 {
                client.decide(&user(decided), "checkout", DecideOptions::NONE);
                decided += 1;
            }
            println!("decided {decided}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_killed_mid_flush_loses_at_most_the_commit_window() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("events.sqlite");
    let endpoint = FakeEventEndpoint::start().await.unwrap();
    // Slow enough that requests are in flight when the kill comes.
    endpoint.set_latency(Duration::from_millis(300));
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "events_delivery::killed_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, format!("{}|{}", endpoint.url(), store.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (decided, killed_at) = tokio::task::spawn_blocking(move || {
        let mut last = 0usize;
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if let Some(n) = line.strip_prefix("decided ") {
                last = n.parse().unwrap();
                if last >= 10_000 {
                    child.kill().unwrap();
                    let _ = child.wait();
                    return (last, Instant::now());
                }
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the child ended before deciding 10,000 times (last {last})");
    })
    .await
    .unwrap();
    let _ = killed_at;
    // At most one more round of 100 decides ran between the last line and the kill.
    let decided_at_most = decided + 100;
    let delivered_before = endpoint.distinct_uuids().len();

    endpoint.set_latency(Duration::ZERO);
    let restarted = client(&endpoint, &store).await;
    let left_over = restarted.event_stats().in_store;
    tokio::time::timeout(Duration::from_secs(60), restarted.flush())
        .await
        .expect("the restart delivered the store's events");
    restarted.close().await;

    let delivered = endpoint.distinct_uuids().len();
    let duplicates = endpoint.visitors().len() - delivered;
    let lost = decided_at_most.saturating_sub(delivered);
    println!(
        "kill -9 after {decided}..{decided_at_most} decides: {delivered_before} delivered before the kill, \
         {left_over} found in the store at restart, {delivered} delivered in all, {duplicates} sent twice \
         (in flight at the kill), at most {lost} lost"
    );
    assert!(delivered <= decided_at_most);
    // The child decides 100 per 10 ms, about 10,000/s: the 100 ms commit window holds about
    // 1,000 events, the hand-off rings a few hundred more. Allow twice that on a loaded machine.
    assert!(lost <= 2_500, "lost {lost}");
    assert!(left_over > 0, "the kill left stored events to send");
}
