//! Durability: a sync process killed with SIGKILL in the middle of a flush, then restarted on
//! the same store, delivers every committed change and resends nothing Brevo acknowledged.
//!
//! The child process is this test binary re-run with `--exact child_process` and the
//! parameters in an environment variable; run normally, `child_process` does nothing.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use common::fake_brevo::FakeBrevo;
use common::*;
use flagbridge_sync::brevo::ConversionRecord;
use serde_json::Value;

const CHILD_ENV: &str = "FLAGBRIDGE_BREVO_RESTART_CHILD";
const CONTACTS: usize = 1_000;
const EVENTS: usize = 50;
const BATCH: usize = 100;

fn email(i: usize) -> String {
    format!("r{i}@example.com")
}

/// Feeds the decisions and conversions of contact `i`; the same in the child and the check.
fn flags(i: usize) -> (bool, &'static str) {
    (i % 3 == 0, ["a", "b"][i % 2])
}

#[test]
fn child_process() {
    let Ok(params) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (url, store) = params.split_once('|').unwrap();
    // One thread: the worker runs only when this task awaits, so every record below is queued
    // before the worker drains anything, and the flush commits all of them before its first
    // send. (On a multi-thread runtime the worker could drain part of the records, send on
    // size and be hanging on the third batch before the rest was queued: on a loaded machine
    // the kill then lost records the test expects, a timing assumption.)
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let fake_url = url.to_string();
        let sync = flagbridge_sync::brevo::BrevoSync::builder()
            .api_key(flagbridge_sync::brevo::ApiKey::new(
                common::fake_brevo::API_KEY,
            ))
            .base_url(fake_url)
            .store_path(Some(store.into()))
            .batch_size(BATCH)
            .queue_capacity(100_000)
            .flush_interval(Duration::from_secs(3600))
            .start()
            .await
            .unwrap();
        let sink = sync.sink();
        for i in 0..CONTACTS {
            let u = user(&email(i), "free", "x");
            let (enabled, variation) = flags(i);
            sink.record_decision(rollout(&u, "checkout", enabled));
            sink.record_decision(experiment(&u, "search", "exp", variation, true));
        }
        for i in 0..EVENTS {
            sink.record_conversion(ConversionRecord {
                contact: email(i).into(),
                event_key: "purchase".into(),
                tags: None,
                at: SystemTime::now(),
            });
        }
        println!("child: queued");
        // Drains and commits everything, then sends on size and hangs: the fake Brevo never
        // answers the third batch. The parent kills us.
        let _ = sync.flush().await;
        println!("child: flush returned");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_flush_loses_nothing_and_resends_nothing_acknowledged() {
    let fake = FakeBrevo::start(1000).await;
    let all: Vec<String> = (0..CONTACTS).map(email).collect();
    fake.add_contacts(all.iter().map(String::as_str));
    fake.with(|s| s.hang_from_batch = Some(3));
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("sync.db");

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, format!("{}|{}", fake.url(), store.display()))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Wait on the condition itself (the third batch reached Brevo), with a bound generous
    // enough for a loaded 2-core machine starting a process; the bound only guards a hang.
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    while fake.with(|s| s.batches_seen) < 3 {
        assert!(child.try_wait().unwrap().is_none(), "child exited early");
        assert!(
            std::time::Instant::now() < deadline,
            "child never reached the third batch"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // SIGKILL while the third batch is in flight.
    child.kill().unwrap();
    child.wait().unwrap();

    // What Brevo holds at the kill: exactly two batches went through, each contact once and in
    // its final state (everything was queued before the first send).
    let before = fake.with(|s| s.contacts.clone());
    let written_before = before.values().filter(|c| c.writes > 0).count();
    assert_eq!(
        written_before,
        2 * BATCH,
        "batches acknowledged before the kill"
    );
    assert!(before.values().all(|c| c.writes <= 1));
    assert_eq!(fake.with(|s| s.events.len()), 0);

    // Restart on the same store; Brevo answers normally now.
    fake.with(|s| s.hang_from_batch = None);
    let sync = builder(&fake, &store, 1000)
        .batch_size(BATCH)
        .start()
        .await
        .unwrap();
    sync.flush().await.unwrap();

    let today = today();
    let mut final_before_kill = 0;
    for (i, e) in all.iter().enumerate() {
        let c = fake.contact(e).unwrap();
        let (enabled, variation) = flags(i);
        let a = &c.attributes;
        assert_eq!(
            a["ENABLED_FEATURES"],
            if enabled { "checkout,search" } else { "search" },
            "{e}"
        );
        assert_eq!(
            a["EXPERIMENT_VARIATION"],
            Value::String(format!("exp:{variation}"))
        );
        assert_eq!(a["VARIATION_NAME"], variation);
        assert_eq!(a["EXPERIMENT_DATE"], Value::String(today.clone()));
        let was = &before[e];
        if was.writes > 0 && was.attributes == c.attributes {
            // Acknowledged in its final state before the kill: not sent again.
            final_before_kill += 1;
            assert_eq!(c.writes, was.writes, "{e}: acknowledged state resent");
        } else {
            // Written by the restarted sync, exactly once.
            assert_eq!(c.writes, was.writes + 1, "{e}");
        }
    }
    assert!(final_before_kill > 0);
    let events = fake.with(|s| s.events.clone());
    assert_eq!(events.len(), EVENTS, "every committed event delivered once");
    let mut ids: Vec<&str> = events
        .iter()
        .map(|e| e["identifiers"]["email_id"].as_str().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), EVENTS);
    assert_eq!(
        sync.counters().contacts_written,
        (CONTACTS - final_before_kill) as u64
    );

    // A third start sends nothing at all.
    sync.close().await.unwrap();
    let requests = fake.with(|s| s.requests.len());
    let sync = builder(&fake, &store, 1000).start().await.unwrap();
    sync.flush().await.unwrap();
    sync.close().await.unwrap();
    // Only the attribute listing of the third start.
    assert_eq!(fake.with(|s| s.requests.len()), requests + 1);
}
