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
