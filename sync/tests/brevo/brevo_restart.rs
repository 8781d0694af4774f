//! Durability: a sync process killed with SIGKILL in the middle of a flush, then restarted on
//! the same store, delivers every committed change and resends nothing Brevo acknowledged.
//!
//! The child process is this test binary re-run with
//! `--ignored --exact brevo_restart::child_process` and the parameters in an environment
//! variable. `child_process` is `#[ignore]`d, so a normal run lists it as ignored rather than
//! counting it as a passing test; run by hand without the environment variable it fails.
//!
//! Also: at every send, the state being sent is already committed (a restart never finds an
//! acknowledgement of a state the store does not hold).

use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use crate::common::*;
use flagbridge_sync::brevo::ConversionRecord;
use flagbridge_sync::testing::fake_brevo::{self, FakeBrevo};
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
#[ignore = "the child process of killed_mid_flush_loses_nothing_and_resends_nothing_acknowledged, which runs it"]
fn child_process() {
    let params = std::env::var(CHILD_ENV).unwrap_or_else(|_| {
        panic!("child_process is run by its parent test, with {CHILD_ENV} set")
    });
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
            .api_key(flagbridge_sync::brevo::ApiKey::new(fake_brevo::API_KEY))
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
            "--ignored",
            "--exact",
            "brevo_restart::child_process",
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

/// An in-memory Brevo that, at every `/contacts/batch`, reads the store (as a restart would
/// find it) and records each contact whose committed state is not the one being sent. On its
/// first batch it also hands the sync new decisions, as the decide path does mid-flush.
struct CommittedBeforeSend {
    store: std::path::PathBuf,
    sink: std::sync::Mutex<Option<flagbridge_sync::brevo::BrevoSink>>,
    batches: std::sync::atomic::AtomicUsize,
    /// (contact, ENABLED_FEATURES sent, ENABLED_FEATURES committed or None without a row)
    uncommitted: std::sync::Mutex<Vec<(String, String, Option<String>)>>,
}

impl CommittedBeforeSend {
    /// `ENABLED_FEATURES` of the committed state of `contact` (None: no row).
    fn committed_features(&self, contact: &str) -> Option<String> {
        let conn = rusqlite::Connection::open_with_flags(
            &self.store,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        let state: Option<String> = conn
            .query_row(
                "SELECT state FROM contacts WHERE contact = ?1",
                [contact],
                |r| r.get(0),
            )
            .ok();
        let state: Value = serde_json::from_str(&state?).unwrap();
        let mut on: Vec<&str> = state["f"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["e"] == true)
            .map(|f| f["k"].as_str().unwrap())
            .collect();
        on.sort();
        Some(on.join(","))
    }
}

impl flagbridge_sync::brevo::BrevoTransport for CommittedBeforeSend {
    fn send(
        &self,
        request: flagbridge_sync::brevo::BrevoRequest,
    ) -> flagbridge_sync::BoxFuture<
        '_,
        Result<flagbridge_sync::brevo::BrevoResponse, flagbridge_sync::TransportError>,
    > {
        Box::pin(async move {
            let mut body = Vec::new();
            if request.path == "/contacts/attributes" {
                let names = flagbridge_sync::brevo::AttributeNames::default();
                let list: Vec<_> = names
                    .with_types()
                    .iter()
                    .map(|(n, t)| serde_json::json!({"name": n, "type": t.as_str()}))
                    .collect();
                body = serde_json::json!({ "attributes": list })
                    .to_string()
                    .into_bytes();
            } else if request.path == "/contacts/batch" {
                let sent: Value = serde_json::from_slice(request.body.as_deref().unwrap()).unwrap();
                for c in sent["contacts"].as_array().unwrap() {
                    let contact = c["email"].as_str().unwrap();
                    let features = c["attributes"]["ENABLED_FEATURES"].as_str().unwrap();
                    let committed = self.committed_features(contact);
                    if committed.as_deref() != Some(features) {
                        self.uncommitted.lock().unwrap().push((
                            contact.to_string(),
                            features.to_string(),
                            committed,
                        ));
                    }
                }
                let n = self
                    .batches
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if n == 0 {
                    let sink = self.sink.lock().unwrap().clone().unwrap();
                    // A known contact changes, a new one appears, while this batch is out.
                    sink.record_decision(rollout(&user("a@x.io", "free", "x"), "g", true));
                    sink.record_decision(rollout(&user("b@x.io", "free", "x"), "f", true));
                }
            }
            Ok(flagbridge_sync::brevo::BrevoResponse {
                status: if body.is_empty() { 204 } else { 200 },
                body,
                rate_limit_reset: None,
            })
        })
    }
}

#[tokio::test]
async fn state_is_committed_before_every_send_even_between_commit_intervals() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s.db");
    let brevo = std::sync::Arc::new(CommittedBeforeSend {
        store: store.clone(),
        sink: std::sync::Mutex::new(None),
        batches: Default::default(),
        uncommitted: Default::default(),
    });
    struct Shared(std::sync::Arc<CommittedBeforeSend>);
    impl flagbridge_sync::brevo::BrevoTransport for Shared {
        fn send(
            &self,
            request: flagbridge_sync::brevo::BrevoRequest,
        ) -> flagbridge_sync::BoxFuture<
            '_,
            Result<flagbridge_sync::brevo::BrevoResponse, flagbridge_sync::TransportError>,
        > {
            self.0.send(request)
        }
    }
    let sync = flagbridge_sync::brevo::BrevoSync::builder()
        .transport(Box::new(Shared(brevo.clone())))
        .store_path(Some(store))
        .batch_size(1)
        // The interval never elapses during the test: only the per-send commit can save the
        // records that arrive mid-flush.
        .commit_interval(Duration::from_secs(3600))
        .flush_interval(Duration::from_secs(3600))
        .start()
        .await
        .unwrap();
    *brevo.sink.lock().unwrap() = Some(sync.sink());
    sync.sink()
        .record_decision(rollout(&user("a@x.io", "free", "x"), "f", true));
    sync.flush().await.unwrap();
    // a (f), then a (f,g) and b (f) from the records handed over during the first batch.
    assert_eq!(
        brevo.batches.load(std::sync::atomic::Ordering::SeqCst),
        3,
        "{:?}",
        sync.counters()
    );
    assert_eq!(sync.counters().contacts_written, 3);
    assert_eq!(
        *brevo.uncommitted.lock().unwrap(),
        Vec::<(String, String, Option<String>)>::new(),
        "sent (and acknowledged) without being committed first"
    );
    sync.close().await.unwrap();
}

/// Decisions and conversions handed over while a Brevo request hangs reach the store within
/// the commit interval (so a `kill -9` during the hang loses at most that window), instead of
/// waiting in memory until the request returns or times out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_handed_over_while_a_request_hangs_are_committed() {
    let fake = FakeBrevo::start(1000).await;
    fake.with(|s| s.hang_from_batch = Some(1));
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("sync.db");
    let sync = builder(&fake, &store, 1000)
        .batch_size(10)
        .commit_interval(Duration::from_millis(100))
        .flush_interval(Duration::from_secs(3600))
        .request_timeout(Duration::from_secs(60))
        .start()
        .await
        .unwrap();
    let sink = sync.sink();
    // Ten changed contacts: a flush on size, whose request hangs.
    for i in 0..10 {
        sink.record_decision(rollout(&user(&email(i), "free", "x"), "checkout", true));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while fake.with(|s| s.batches_seen) < 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "no batch reached Brevo"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Handed over during the hang.
    for i in 100..150 {
        sink.record_decision(rollout(&user(&email(i), "free", "x"), "checkout", true));
    }
    for i in 0..5 {
        sink.record_conversion(ConversionRecord {
            contact: email(i).into(),
            event_key: "purchase".into(),
            tags: None,
            at: SystemTime::now(),
        });
    }
    // What a kill -9 would find: read the store as a restart would (WAL, another connection).
    let read = || {
        let conn = rusqlite::Connection::open(&store).unwrap();
        let contacts: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM contacts WHERE contact LIKE 'r1__@example.com'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let events: i64 = conn
            .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
            .unwrap();
        (contacts, events)
    };
    let started = std::time::Instant::now();
    // Well under the 60 s request timeout: before this, nothing was committed until the
    // request returned.
    let bound = Duration::from_secs(10);
    loop {
        let (contacts, events) = read();
        if contacts == 50 && events == 5 {
            break;
        }
        assert!(
            started.elapsed() < bound,
            "after {bound:?} of a hanging request the store holds {contacts} of 50 contacts \
             and {events} of 5 conversions handed over during it"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "records handed over during a hanging request were in the store after {:?}",
        started.elapsed()
    );
    assert_eq!(
        fake.with(|s| s.batches_seen),
        1,
        "the request is still hanging"
    );
}
