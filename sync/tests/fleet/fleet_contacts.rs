//! The fleet's shared contact outbox: the newest decision wins whichever instance made it.
//!
//! Three `BrevoSync` instances in this process, each with its own store and Redis connection,
//! one real `redis-server`, the in-process Brevo fake.

use std::time::Duration;

use crate::common::*;
use flagbridge_sync::brevo::BrevoSync;
use flagbridge_sync::fleet::FleetConfig;
use flagbridge_sync::testing::fake_brevo::FakeBrevo;
use flagbridge_sync::testing::RedisServer;

async fn instances(fake: &FakeBrevo, redis: &RedisServer, dir: &std::path::Path) -> Vec<BrevoSync> {
    let mut syncs = Vec::new();
    for i in 0..3 {
        let fleet = FleetConfig::new(redis.url())
            .key_prefix("contacts-test:")
            .connect()
            .await
            .unwrap();
        let sync = builder(fake, &dir.join(format!("s{i}.db")), 20)
            .batch_size(100)
            .fleet(fleet)
            .start()
            .await
            .unwrap();
        syncs.push(sync);
    }
    syncs
}

async fn flush_all(syncs: &[BrevoSync]) {
    let (a, b, c) = tokio::join!(syncs[0].flush(), syncs[1].flush(), syncs[2].flush());
    a.unwrap();
    b.unwrap();
    c.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_newest_decision_wins_whichever_instance_made_it() {
    let redis = RedisServer::start().unwrap();
    let fake = FakeBrevo::start(30).await;
    let dir = tempfile::tempdir().unwrap();
    let n = 600;
    let emails: Vec<String> = (0..n).map(|i| format!("c{i}@x.io")).collect();
    // 30 contacts Brevo does not know yet: created on the way.
    fake.add_contacts(emails[30..].iter().map(String::as_str));
    let syncs = instances(&fake, &redis, dir.path()).await;
    // Round 1 on instance i % 3, delivered to Brevo.
    for (i, e) in emails.iter().enumerate() {
        syncs[i % 3]
            .sink()
            .record_decision(rollout(&user(e, "free", "x"), "f", i % 2 == 1));
    }
    for s in &syncs {
        wait_processed(s).await;
    }
    flush_all(&syncs).await;
    // Round 2, later, on instance (i + 1) % 3 with the other answer; round 1's instance
    // decides again an old answer's twin for another flag, so each instance has changes for
    // every contact it knows.
    tokio::time::sleep(Duration::from_millis(5)).await;
    for (i, e) in emails.iter().enumerate() {
        syncs[(i + 1) % 3]
            .sink()
            .record_decision(rollout(&user(e, "free", "x"), "f", i % 2 == 0));
    }
    for s in &syncs {
        wait_processed(s).await;
    }
    // Round 1's instances touch their (older) state again: a newer decision of flag g only.
    tokio::time::sleep(Duration::from_millis(5)).await;
    for (i, e) in emails.iter().enumerate() {
        syncs[i % 3]
            .sink()
            .record_decision(rollout(&user(e, "free", "x"), "g", true));
    }
    for s in &syncs {
        wait_processed(s).await;
    }
    // Flushed in every order: round 1's instances last.
    flush_all(&syncs).await;
    for s in syncs.iter().rev() {
        s.flush().await.unwrap();
    }
    flush_all(&syncs).await;
    let mut wrong = Vec::new();
    for (i, e) in emails.iter().enumerate() {
        let c = fake.contact(e).unwrap();
        let expected = if i % 2 == 0 { "f,g" } else { "g" };
        if c.attributes["ENABLED_FEATURES"] != expected {
            wrong.push((e.clone(), c.attributes["ENABLED_FEATURES"].clone()));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} contacts with an older state: {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
    let written: u64 = syncs.iter().map(|s| s.counters().contacts_written).sum();
    assert!(written >= n as u64, "{written}");
    assert_eq!(fake.with(|s| s.throttled), 0);
    assert!(fake.max_in_any_second("contacts") <= 20);
    for s in syncs {
        s.close().await.unwrap();
    }
}

/// A replica whose Brevo request hangs still publishes what it is handed meanwhile (every
/// flush interval), so the other replicas write those contacts; before, its changes waited
/// until the hanging request returned or timed out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_with_a_hanging_request_keeps_publishing() {
    let redis = RedisServer::start().unwrap();
    let fake = FakeBrevo::start(1000).await;
    let dir = tempfile::tempdir().unwrap();
    let first: Vec<String> = (0..10).map(|i| format!("h{i}@x.io")).collect();
    let later: Vec<String> = (0..50).map(|i| format!("l{i}@x.io")).collect();
    fake.add_contacts(first.iter().chain(&later).map(String::as_str));
    let mut syncs = Vec::new();
    for i in 0..2 {
        let fleet = FleetConfig::new(redis.url())
            .key_prefix("hang-test:")
            .connect()
            .await
            .unwrap();
        let sync = builder(&fake, &dir.path().join(format!("h{i}.db")), 1000)
            .batch_size(100)
            .flush_interval(Duration::from_millis(200))
            .request_timeout(Duration::from_secs(120))
            .fleet(fleet)
            .start()
            .await
            .unwrap();
        syncs.push(sync);
    }
    let (a, b) = (&syncs[0], &syncs[1]);
    // A publishes, claims and writes its first contacts: that request hangs.
    fake.with(|s| s.hang_from_batch = Some(1));
    for e in &first {
        a.sink()
            .record_decision(rollout(&user(e, "free", "x"), "f", true));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while fake.with(|s| s.batches_seen) < 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "A never wrote to Brevo"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    fake.with(|s| s.hang_from_batch = None);
    // Handed to A during its hang; B writes them once A has published them.
    for e in &later {
        a.sink()
            .record_decision(rollout(&user(e, "free", "x"), "f", true));
    }
    let started = std::time::Instant::now();
    let bound = Duration::from_secs(20);
    loop {
        b.flush().await.unwrap();
        let written = later
            .iter()
            .filter(|e| fake.contact(e).is_some_and(|c| c.writes > 0))
            .count();
        if written == later.len() {
            break;
        }
        assert!(
            started.elapsed() < bound,
            "{written} of {} contacts handed to a replica with a hanging request were \
             written by the other after {bound:?}",
            later.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "contacts handed to the hanging replica written by the other after {:?}",
        started.elapsed()
    );
    assert!(fake.with(|s| s.batches_seen) > 1);
    assert!(a.counters().contacts_published >= (first.len() + later.len()) as u64);
}

fn conversion(contact: &str, n: usize) -> flagbridge_sync::brevo::ConversionRecord {
    flagbridge_sync::brevo::ConversionRecord {
        contact: contact.into(),
        event_key: format!("purchase_{n}").into(),
        tags: None,
        at: std::time::SystemTime::now(),
    }
}

/// Brevo conversion events go through the fleet's shared queue: each instance hands over
/// what it committed, and every event reaches Brevo once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversions_are_handed_over_and_sent_once() {
    let redis = RedisServer::start().unwrap();
    let fake = FakeBrevo::start(1000).await;
    let dir = tempfile::tempdir().unwrap();
    let syncs = instances(&fake, &redis, dir.path()).await;
    for (i, s) in syncs.iter().enumerate() {
        for n in 0..40 {
            s.sink()
                .record_conversion(conversion(&format!("e{i}@x.io"), n));
        }
    }
    flush_all(&syncs).await;
    flush_all(&syncs).await;
    let published: Vec<u64> = syncs
        .iter()
        .map(|s| s.counters().events_published)
        .collect();
    assert_eq!(published, vec![40, 40, 40]);
    let sent: u64 = syncs.iter().map(|s| s.counters().events_sent).sum();
    assert_eq!(sent, 120);
    let events = fake.with(|s| s.events.clone());
    let mut names: Vec<String> = events
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["identifiers"]["email_id"].as_str().unwrap_or(""),
                e["event_name"].as_str().unwrap_or("")
            )
        })
        .collect();
    names.sort();
    names.dedup();
    assert_eq!((events.len(), names.len()), (120, 120));
    assert!(syncs.iter().all(|s| s.counters().events_pending == 0));
    for s in syncs {
        s.close().await.unwrap();
    }
}

/// Conversion events claimed by an instance that stopped answering are sent by another one
/// once the lease ran out (the dead claimer is played by a raw Redis reader).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversions_claimed_by_a_dead_instance_are_sent_after_the_lease() {
    let redis = RedisServer::start().unwrap();
    let fake = FakeBrevo::start(1000).await;
    let dir = tempfile::tempdir().unwrap();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let stream = "lease-test:brevo:events";
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stream)
        .arg("flagbridge")
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut conn)
        .await
        .unwrap();
    for n in 0..10 {
        let item = serde_json::json!({
            "event_name": format!("dead_{n}"),
            "identifiers": {"email_id": "d@x.io"},
            "event_date": "2026-12-03T10:00:00.000Z",
        })
        .to_string();
        let _: String = redis::cmd("XADD")
            .arg(stream)
            .arg("*")
            .arg("b")
            .arg(item)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    // The dead instance claims all ten and never acknowledges them.
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("flagbridge")
        .arg("dead")
        .arg("COUNT")
        .arg(10)
        .arg("STREAMS")
        .arg(stream)
        .arg(">")
        .query_async(&mut conn)
        .await
        .unwrap();
    let claimed_at = std::time::Instant::now();
    let fleet = FleetConfig::new(redis.url())
        .key_prefix("lease-test:")
        .lease_timeout(Duration::from_secs(1))
        .connect()
        .await
        .unwrap();
    let sync = builder(&fake, &dir.path().join("alive.db"), 1000)
        .fleet(fleet)
        .start()
        .await
        .unwrap();
    // Within the lease nothing is taken.
    sync.flush().await.unwrap();
    if claimed_at.elapsed() < Duration::from_millis(900) {
        assert_eq!(fake.with(|s| s.events.len()), 0);
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    sync.flush().await.unwrap();
    assert_eq!(fake.with(|s| s.events.len()), 10);
    assert_eq!(sync.counters().events_sent, 10);
    let left: u64 = redis::cmd("XLEN")
        .arg(stream)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(left, 0);
    sync.close().await.unwrap();
}
