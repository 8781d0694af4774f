//! One Brevo budget for a fleet: several instances sharing one Redis never exceed it together.
//!
//! Each "instance" is a `BrevoSync` with its own store and its own Redis connection, all in
//! this process, against the in-process Brevo fake; a real `redis-server` on a free port.

use std::time::Duration;

use crate::common::*;
use flagbridge_sync::fleet::{Fleet, FleetConfig};
use flagbridge_sync::testing::fake_brevo::FakeBrevo;
use flagbridge_sync::testing::RedisServer;

async fn fleet(redis: &RedisServer) -> Fleet {
    FleetConfig::new(redis.url())
        .key_prefix("budget-test:")
        .connect()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_never_exceed_the_shared_budget_in_any_second() {
    let redis = RedisServer::start().unwrap();
    // Brevo allows 10/s; the fleet's budget is 8/s. Each instance alone would send 8/s, so
    // without the shared budget the three together would send about 24/s (and get 429s).
    let fake = FakeBrevo::start(10).await;
    let dir = tempfile::tempdir().unwrap();
    let per_instance = 120;
    let emails: Vec<Vec<String>> = (0..3)
        .map(|i| {
            (0..per_instance)
                .map(|n| format!("i{i}-u{n}@x.io"))
                .collect()
        })
        .collect();
    fake.add_contacts(emails.iter().flatten().map(String::as_str));
    let mut syncs = Vec::new();
    for i in 0..3 {
        let sync = builder(&fake, &dir.path().join(format!("s{i}.db")), 8)
            .batch_size(10)
            .fleet(fleet(&redis).await)
            .start()
            .await
            .unwrap();
        syncs.push(sync);
    }
    for (sync, emails) in syncs.iter().zip(&emails) {
        for e in emails {
            sync.sink()
                .record_decision(rollout(&user(e, "free", "x"), "f", true));
        }
    }
    // The three flush at once (each worker runs on its own task).
    let (a, b, c) = tokio::join!(syncs[0].flush(), syncs[1].flush(), syncs[2].flush());
    a.unwrap();
    b.unwrap();
    c.unwrap();
    for e in emails.iter().flatten() {
        let c = fake.contact(e).unwrap();
        assert_eq!(c.attributes["ENABLED_FEATURES"], "f", "{e}");
    }
    let requests = fake.with(|s| s.requests.len());
    // 3 x attribute setup + 36 batches: several seconds of the shared budget.
    assert!(requests >= 36, "{requests}");
    let most = fake.max_in_any_second("contacts");
    assert!(most <= 8, "{most} requests within one second (budget 8)");
    assert_eq!(fake.with(|s| s.throttled), 0);
    // Each instance published its own contacts and wrote its share of the fleet's.
    let written: u64 = syncs.iter().map(|s| s.counters().contacts_written).sum();
    assert_eq!(written, 3 * per_instance as u64);
    for sync in &syncs {
        assert_eq!(sync.counters().contacts_published, per_instance as u64);
        assert_eq!(sync.counters().rate_limited, 0);
    }
    for sync in syncs {
        tokio::time::timeout(Duration::from_secs(30), sync.close())
            .await
            .unwrap()
            .unwrap();
    }
}
