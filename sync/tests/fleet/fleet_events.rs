//! Optimizely events through the fleet's shared queue (`store:` Redis): each replica stores
//! its events locally, hands its requests over to one Redis stream, and every replica's
//! senders post from it. One real `redis-server`, the in-process logx fake, `Client`s in
//! this process.

use std::time::{Duration, Instant};

use flagbridge_engine::{DecideOptions, UserContext};
use flagbridge_sync::fleet::FleetConfig;
use flagbridge_sync::testing::{datafile, FakeEventEndpoint, RedisServer};
use flagbridge_sync::{Client, EventStorage};

fn user(i: usize) -> UserContext {
    UserContext::new(format!("u{i}"))
        .with_attribute("plan", if i % 2 == 0 { "pro" } else { "basic" })
}

async fn replica(
    redis: &RedisServer,
    endpoint: &FakeEventEndpoint,
    store: &std::path::Path,
    lease: Duration,
) -> Client {
    let fleet = FleetConfig::new(redis.url())
        .key_prefix("events-test:")
        .lease_timeout(lease)
        .connect()
        .await
        .unwrap();
    Client::builder()
        .datafile(datafile("7"))
        .event_endpoint(endpoint.url())
        .event_storage(EventStorage::File(store.to_path_buf()))
        .event_batch_size(50)
        .event_retry_backoff(Duration::from_millis(20), Duration::from_millis(200))
        .fleet(fleet)
        .start()
        .await
        .unwrap()
}

async fn wait_for_uuids(endpoint: &FakeEventEndpoint, n: usize, bound: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let seen = endpoint.distinct_uuids().len();
        if seen >= n {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < bound,
            "{seen} of {n} events reached logx after {bound:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_hand_over_and_every_event_is_posted_once() {
    let redis = RedisServer::start().unwrap();
    let endpoint = FakeEventEndpoint::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut replicas = Vec::new();
    for i in 0..3 {
        let store = dir.path().join(format!("events-{i}.sqlite"));
        replicas.push(replica(&redis, &endpoint, &store, Duration::from_secs(5)).await);
    }
    let users: Vec<UserContext> = (0..1_500).map(user).collect();
    for (i, u) in users.iter().enumerate() {
        replicas[i % 3].decide(u, "checkout", DecideOptions::NONE);
    }
    // flush: every event handed over to Redis.
    for r in &replicas {
        r.flush().await;
    }
    let stats: Vec<_> = replicas.iter().map(Client::event_stats).collect();
    assert_eq!(
        stats.iter().map(|s| s.handed_to_fleet).collect::<Vec<_>>(),
        vec![500, 500, 500]
    );
    assert!(stats.iter().all(|s| s.in_store == 0), "{stats:?}");
    let took = wait_for_uuids(&endpoint, 1_500, Duration::from_secs(30)).await;
    // Posted once each: no visitor twice, every replica's senders counted theirs.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(endpoint.accepted_visitors(), 1_500);
    let sent: Vec<u64> = replicas.iter().map(|r| r.event_stats().sent).collect();
    assert_eq!(sent.iter().sum::<u64>(), 1_500, "{sent:?}");
    eprintln!(
        "1,500 events of three replicas posted through Redis within {took:?} of the last flush; \
         posted per replica {sent:?}, {} requests",
        endpoint.requests()
    );
    for r in replicas {
        assert_eq!(r.close().await, 0);
    }
}

/// A replica that dies with requests claimed (its runtime torn down mid-request: no renewal,
/// no acknowledgement, as after a `kill -9`): another replica posts them after the lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_replica_s_claimed_requests_are_posted_by_another_after_the_lease() {
    let redis = RedisServer::start().unwrap();
    let endpoint = FakeEventEndpoint::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let lease = Duration::from_secs(1);
    // logx hangs while the victim lives: its senders claim and stay in flight.
    endpoint.set_latency(Duration::from_secs(3600));
    let victim_store = dir.path().join("victim.sqlite");
    let (url, logx) = (redis.url(), endpoint.clone());
    let victim = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let fleet = FleetConfig::new(url)
                .key_prefix("events-test:")
                .lease_timeout(lease)
                .connect()
                .await
                .unwrap();
            let client = Client::builder()
                .datafile(datafile("7"))
                .event_endpoint(logx.url())
                .event_storage(EventStorage::File(victim_store))
                .event_batch_size(50)
                .fleet(fleet)
                .start()
                .await
                .unwrap();
            for i in 0..300 {
                client.decide(&user(i), "checkout", DecideOptions::NONE);
            }
            client.flush().await;
            assert_eq!(client.event_stats().handed_to_fleet, 300);
            let deadline = Instant::now() + Duration::from_secs(30);
            while logx.requests() == 0 && logx.peak_in_flight() == 0 {
                assert!(Instant::now() < deadline, "the victim never posted");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            // Let it claim what it can, then die.
            tokio::time::sleep(Duration::from_millis(100)).await;
            // Kept alive (never closed) until the runtime is torn down under it.
            Box::leak(Box::new(client));
        });
        runtime.shutdown_background();
    });
    victim.join().unwrap();
    let died = Instant::now();
    endpoint.set_latency(Duration::ZERO);
    let other = replica(&redis, &endpoint, &dir.path().join("other.sqlite"), lease).await;
    wait_for_uuids(&endpoint, 300, Duration::from_secs(30)).await;
    let took = died.elapsed();
    eprintln!(
        "300 events claimed by a dead replica posted by another {took:?} after it died (lease {lease:?})"
    );
    // Claims are renewed every lease / 3 while in flight: the last renewal came up to that
    // long before the death, so the take-over comes between 2/3 of the lease and the lease
    // after it (plus polling), not at once.
    assert!(
        took >= lease / 2,
        "taken over {took:?} after the death, before the lease ran out"
    );
    assert_eq!(other.event_stats().sent, 300);
    assert_eq!(other.close().await, 0);
}

/// Redis down: decides go on, the events wait in the replica's local store (counted there),
/// and are handed over and posted once Redis is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_redis_is_down_events_wait_in_the_local_store() {
    let mut redis = RedisServer::start_with(true).unwrap();
    let endpoint = FakeEventEndpoint::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let client = replica(
        &redis,
        &endpoint,
        &dir.path().join("events.sqlite"),
        Duration::from_secs(5),
    )
    .await;
    redis.stop();
    let started = Instant::now();
    for i in 0..400 {
        client.decide(&user(i), "checkout", DecideOptions::NONE);
    }
    assert!(started.elapsed() < Duration::from_secs(5), "decides waited");
    // Stored locally; a flush does not return while nothing can be handed over.
    let flushed = tokio::time::timeout(Duration::from_secs(2), client.flush()).await;
    assert!(flushed.is_err(), "flush returned with Redis down");
    let stats = client.event_stats();
    assert_eq!(
        (stats.in_store, stats.handed_to_fleet),
        (400, 0),
        "{stats:?}"
    );
    assert_eq!(endpoint.requests(), 0);
    redis.restart().unwrap();
    tokio::time::timeout(Duration::from_secs(30), client.flush())
        .await
        .expect("handed over once Redis is back");
    assert_eq!(client.event_stats().handed_to_fleet, 400);
    wait_for_uuids(&endpoint, 400, Duration::from_secs(30)).await;
    assert_eq!(client.event_stats().in_store, 0);
    assert_eq!(client.close().await, 0);
}
