//! Brevo keeps pace with new contacts: 3,000 contacts unknown to Brevo, on the general plan's
//! budget (10 requests/s), reach Brevo within a minute through bulk imports, and no sliding
//! second ever holds more requests than the budget.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use flagbridge_sync::brevo::AudienceSource;
use flagbridge_sync::testing::fake_brevo::FakeBrevo;

fn email(i: usize) -> String {
    format!("new{i}@example.com")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_thousand_unknown_contacts_within_a_minute_at_10_per_second() {
    unknown_contacts_at_10_per_second(3_000, Duration::from_secs(60)).await;
}

/// About a minute on this machine: run with
/// `cargo test -p flagbridge-sync --test brevo -- --ignored --nocapture brevo_bulk::`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow (100,000 contacts); run by hand"]
async fn a_hundred_thousand_unknown_contacts_within_ten_minutes_at_10_per_second() {
    unknown_contacts_at_10_per_second(100_000, Duration::from_secs(600)).await;
}

async fn unknown_contacts_at_10_per_second(n: usize, limit: Duration) {
    let count = n;
    let fake = FakeBrevo::start(10).await;
    let dir = tempfile::tempdir().unwrap();
    // No import_list_id: the first of the lists every contact joins is the import list.
    let sync = builder(&fake, &dir.path().join("s.db"), 10)
        .list_ids([7])
        .queue_capacity(100_000)
        .start()
        .await
        .unwrap();
    let audiences: Arc<dyn AudienceSource> = Arc::new(TestAudiences);
    let sink = sync.sink();
    let started = Instant::now();
    for i in 0..count {
        let mut u = (*user(&email(i), "free", "mobile")).clone();
        u.audiences = Some(Arc::clone(&audiences));
        let u = Arc::new(u);
        assert!(sink.record_decision(rollout(&u, "checkout", i % 2 == 0)));
        if i % 500 == 499 {
            wait_processed(&sync).await;
        }
    }
    tokio::time::timeout(limit * 2, sync.flush())
        .await
        .expect("flushed")
        .unwrap();
    let elapsed = started.elapsed();
    let contacts = fake.with(|s| s.contacts.clone());
    let c = sync.counters();
    let imports = fake.with(|s| s.imports);
    let requests = fake.with(|s| s.requests.len());
    let most = fake.max_in_any_second("contacts");
    println!(
        "{count} unknown contacts: {elapsed:?}, {requests} requests, {imports} imports, at most {most} contact requests in any second, {} answered 429",
        fake.with(|s| s.throttled)
    );
    assert_eq!(contacts.len(), count);
    for i in 0..count {
        let got = &contacts[&email(i)];
        assert_eq!(
            got.attributes["ENABLED_FEATURES"],
            if i % 2 == 0 { "checkout" } else { "" },
            "contact {i}"
        );
        assert_eq!(got.lists, vec![7], "contact {i}");
    }
    assert_eq!(c.contacts_created, count as u64);
    assert!(imports >= 1);
    assert!(elapsed < limit, "took {elapsed:?}");
    assert!(most <= 10, "{most} contact requests within one second");
    assert_eq!(fake.with(|s| s.throttled), 0, "never answered 429");
    sync.close().await.unwrap();
}
