//! End-to-end Brevo sync against the in-process fake Brevo: attributes, coalescing, unknown
//! contacts, partials, refusals, setup errors (events: `brevo_events.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use crate::common::*;
use flagbridge_sync::brevo::{
    AttributeNames, AudienceSource, BrevoError, ConversionRecord, DecisionRecord,
};
use flagbridge_sync::testing::fake_brevo::{self, FakeBrevo};
use serde_json::{json, Map, Value};

/// The attributes a contact must end with, computed from the decisions independently of the
/// sync: latest decision per flag, sorted lists, latest experiment decision.
fn expected(decisions: &[DecisionRecord], segments: &str, today: &str) -> Map<String, Value> {
    let mut flags: BTreeMap<&str, &DecisionRecord> = BTreeMap::new();
    let mut last_experiment = None;
    for d in decisions {
        flags.insert(&d.flag_key, d);
        if d.source == flagbridge_sync::brevo::RuleSource::Experiment {
            last_experiment = Some(d);
        }
    }
    let enabled: Vec<&str> = flags
        .values()
        .filter(|d| d.enabled)
        .map(|d| &*d.flag_key)
        .collect();
    let mut in_exp: Vec<String> = flags
        .values()
        .filter(|d| d.source == flagbridge_sync::brevo::RuleSource::Experiment)
        .map(|d| {
            format!(
                "{}:{}",
                d.rule_key.as_ref().unwrap(),
                d.variation_key.as_ref().unwrap()
            )
        })
        .collect();
    in_exp.sort();
    let mut m = Map::new();
    m.insert("ENABLED_FEATURES".into(), json!(enabled.join(",")));
    m.insert("EXPERIMENT_VARIATION".into(), json!(in_exp.join(",")));
    if let Some(x) = last_experiment {
        m.insert(
            "EXPERIMENT_NAME".into(),
            json!(x.rule_key.as_deref().unwrap()),
        );
        m.insert(
            "VARIATION_NAME".into(),
            json!(x.variation_key.as_deref().unwrap()),
        );
        m.insert("FEATURE_FLAG".into(), json!(&*x.flag_key));
        m.insert("FEATURE_ENABLED".into(), json!(x.enabled));
        m.insert("EXPERIMENT_DATE".into(), json!(today));
    }
    m.insert("OPT_SEGMENTS".into(), json!(segments));
    m.insert("FEATURE_FLAGS_SYNCED".into(), json!(today));
    m
}

fn email(i: usize) -> String {
    format!("user{i}@example.com")
}

/// Decisions of contact `i` in round `round` (round 1 changes some of round 0's).
fn decisions_for(
    i: usize,
    round: usize,
    audiences: &Arc<dyn AudienceSource>,
) -> Vec<DecisionRecord> {
    let plan = if i % 7 == 0 { "vip" } else { "free" };
    let device = if i % 2 == 0 { "mobile" } else { "desktop" };
    let mut u = (*user(&email(i), plan, device)).clone();
    u.audiences = Some(Arc::clone(audiences));
    let u = Arc::new(u);
    let flip = round == 1 && i % 10 == 0;
    let mut out = vec![
        rollout(&u, "checkout", (i % 2 == 0) ^ flip),
        experiment(
            &u,
            "search",
            "exp_search",
            ["a", "b", "c"][(i + round) % 3],
            true,
        ),
        rollout(&u, "banner", i % 5 == 0),
        rollout(&u, "beta", false),
    ];
    if i % 4 < 2 {
        let on = i % 4 == 0;
        out.push(experiment(
            &u,
            "dark_mode",
            "dm_test",
            if on { "on" } else { "off" },
            on,
        ));
    } else {
        out.push(rollout(&u, "dark_mode", i % 8 == 2));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_contacts_end_with_exact_attributes() {
    const N: usize = 10_000;
    let fake = FakeBrevo::start(100).await;
    // Half the contacts exist in Brevo, half must be created (import list for the many).
    let existing: Vec<String> = (0..N).filter(|i| i % 2 == 0).map(email).collect();
    fake.add_contacts(existing.iter().map(String::as_str));
    let dir = tempfile::tempdir().unwrap();
    let sync = builder(&fake, &dir.path().join("s.db"), 100)
        .import_list_id(7)
        .queue_capacity(200_000)
        .start()
        .await
        .unwrap();
    // Attributes were created with the right types.
    let kinds = fake.with(|s| s.attributes.clone());
    assert_eq!(kinds.len(), 9);
    assert_eq!(kinds["FEATURE_ENABLED"], "boolean");
    assert_eq!(kinds["EXPERIMENT_DATE"], "date");
    assert_eq!(kinds["FEATURE_FLAGS_SYNCED"], "date");
    assert_eq!(kinds["ENABLED_FEATURES"], "text");

    let audiences: Arc<dyn AudienceSource> = Arc::new(TestAudiences);
    let sink = sync.sink();
    let mut all: Vec<Vec<DecisionRecord>> = vec![Vec::new(); N];
    for round in 0..2 {
        for (i, list) in all.iter_mut().enumerate() {
            for d in decisions_for(i, round, &audiences) {
                list.push(d.clone());
                assert!(sink.record_decision(d));
            }
            if i % 500 == 499 {
                wait_processed(&sync).await;
            }
        }
    }
    sync.flush().await.unwrap();

    let today = today();
    let contacts = fake.with(|s| s.contacts.clone());
    assert_eq!(contacts.len(), N, "no extra contacts");
    let mut total_writes = 0;
    for (i, decisions) in all.iter().enumerate() {
        let mut segs = Vec::new();
        if i % 2 == 0 {
            segs.push("Mobile");
        }
        if i % 7 == 0 {
            segs.push("VIP");
        }
        let want = expected(decisions, &segs.join(","), &today);
        let got = &contacts[&email(i)];
        assert_eq!(
            Value::Object(got.attributes.clone()),
            Value::Object(want),
            "contact {i}"
        );
        // Once, or twice when a flush on size caught the contact between the two rounds.
        assert!(
            (1..=2).contains(&got.writes),
            "contact {i} written {} times",
            got.writes
        );
        total_writes += u64::from(got.writes);
    }
    let c = sync.counters();
    assert_eq!(c.decisions_processed, 2 * 5 * N as u64);
    assert_eq!(c.contacts_written, total_writes);
    assert_eq!(c.contacts_created, (N / 2) as u64);
    // 100,000 decisions, at most two writes per contact.
    assert!(total_writes <= 2 * N as u64);
    assert_eq!(c.queue_overflow, 0);
    assert!(fake.with(|s| s.imports) >= 1);

    // The same decisions again: nothing new to write. Replaying a contact's decisions walks
    // its latest experiment from `dark_mode` to `search` and back (i % 4 < 2), so a flush that
    // drained the ring between the two would rightly write the state in between, and the one
    // after. Each chunk is flushed here instead, with this thread between contacts: 250
    // contacts change per chunk, below the batch size (500), so no flush on size runs while
    // this thread is halfway through a contact.
    let requests = fake.with(|s| s.requests.len());
    for (i, list) in all.iter().enumerate() {
        for d in list.iter().skip(5) {
            assert!(sink.record_decision(d.clone()));
        }
        if i % 500 == 499 {
            sync.flush().await.unwrap();
            assert_eq!(fake.with(|s| s.requests.len()), requests, "contact {i}");
        }
    }
    sync.flush().await.unwrap();
    assert_eq!(fake.with(|s| s.requests.len()), requests);
    assert_eq!(sync.counters().contacts_written, total_writes);
    sync.close().await.unwrap();
}

#[tokio::test]
async fn unknown_contacts_are_upserted_one_by_one_without_import_list() {
    let fake = FakeBrevo::start(1000).await;
    fake.add_contacts(["a@x.io", "c@x.io"]);
    let dir = tempfile::tempdir().unwrap();
    let sync = builder(&fake, &dir.path().join("s.db"), 1000)
        .start()
        .await
        .unwrap();
    for e in ["a@x.io", "b@x.io", "c@x.io", "d@x.io"] {
        sync.sink()
            .record_decision(rollout(&user(e, "free", "desktop"), "f", true));
    }
    sync.flush().await.unwrap();
    for e in ["a@x.io", "b@x.io", "c@x.io", "d@x.io"] {
        assert_eq!(
            fake.contact(e).unwrap().attributes["ENABLED_FEATURES"],
            "f",
            "{e}"
        );
    }
    assert_eq!(fake.count_requests("POST", "/contacts"), 2);
    assert_eq!(sync.counters().contacts_created, 2);
    sync.close().await.unwrap();
}

#[tokio::test]
async fn partial_answer_retries_what_failed() {
    let fake = FakeBrevo::start(1000).await;
    fake.add_contacts(["a@x.io", "b@x.io", "c@x.io"]);
    fake.with(|s| s.partial_once.insert("b@x.io".into()));
    let dir = tempfile::tempdir().unwrap();
    let sync = builder(&fake, &dir.path().join("s.db"), 1000)
        .start()
        .await
        .unwrap();
    for e in ["a@x.io", "b@x.io", "c@x.io"] {
        sync.sink()
            .record_decision(rollout(&user(e, "free", "desktop"), "f", true));
    }
    sync.flush().await.unwrap();
    for e in ["a@x.io", "b@x.io", "c@x.io"] {
        let c = fake.contact(e).unwrap();
        assert_eq!(c.attributes["ENABLED_FEATURES"], "f", "{e}");
        assert_eq!(c.writes, 1, "{e}");
    }
    assert_eq!(fake.count_requests("POST", "/contacts/batch"), 2);
    sync.close().await.unwrap();
}

#[tokio::test]
async fn refused_contact_is_set_aside_and_the_rest_delivered() {
    let fake = FakeBrevo::start(1000).await;
    let good: Vec<String> = (0..20).map(|i| format!("u{i}@x.io")).collect();
    fake.add_contacts(good.iter().map(String::as_str));
    fake.add_contacts(["bad@x.io"]);
    fake.with(|s| s.refuse.insert("bad@x.io".into()));
    let dir = tempfile::tempdir().unwrap();
    let sync = builder(&fake, &dir.path().join("s.db"), 1000)
        .start()
        .await
        .unwrap();
    for e in good.iter().map(String::as_str).chain(["bad@x.io"]) {
        sync.sink()
            .record_decision(rollout(&user(e, "free", "desktop"), "f", true));
    }
    sync.flush().await.unwrap();
    for e in &good {
        assert_eq!(fake.contact(e).unwrap().attributes["ENABLED_FEATURES"], "f");
    }
    assert!(fake.contact("bad@x.io").unwrap().attributes.is_empty());
    let c = sync.counters();
    assert_eq!(c.contacts_rejected, 1);
    assert_eq!(c.contacts_written, 20);
    let aside = sync.set_aside();
    assert_eq!(aside.len(), 1);
    assert_eq!(aside[0].what, "bad@x.io");
    assert_eq!(
        (aside[0].status, aside[0].code.as_str()),
        (400, "invalid_parameter")
    );
    // Not retried forever: the same state is not sent again.
    let before = fake.with(|s| s.requests.len());
    sync.sink()
        .record_decision(rollout(&user("bad@x.io", "free", "desktop"), "f", true));
    sync.flush().await.unwrap();
    assert_eq!(fake.with(|s| s.requests.len()), before);
    sync.close().await.unwrap();
}

#[tokio::test]
async fn users_without_identity_are_skipped_and_counted() {
    let fake = FakeBrevo::start(1000).await;
    let dir = tempfile::tempdir().unwrap();
    let sync = builder(&fake, &dir.path().join("s.db"), 1000)
        .start()
        .await
        .unwrap();
    let sink = sync.sink();
    sink.count_skipped();
    assert_eq!(sync.counters().skipped_no_identity, 1);
    sync.close().await.unwrap();
    // After close the sink drops and counts.
    assert!(!sink.record_decision(rollout(&user("a@x.io", "free", "x"), "f", true)));
}

#[tokio::test]
async fn existing_attribute_with_wrong_type_is_a_clear_error() {
    let fake = FakeBrevo::start(1000).await;
    fake.with(|s| s.attributes.insert("FEATURE_ENABLED".into(), "text".into()));
    let dir = tempfile::tempdir().unwrap();
    let err = builder(&fake, &dir.path().join("s.db"), 1000)
        .start()
        .await
        .unwrap_err();
    assert!(
        matches!(err, BrevoError::AttributeTypeMismatch { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("FEATURE_ENABLED"));
}

#[tokio::test]
async fn invalid_attribute_names_are_refused_before_any_request() {
    let fake = FakeBrevo::start(1000).await;
    let dir = tempfile::tempdir().unwrap();
    let mut names = AttributeNames::default();
    names.opt_segments = "opt-segments".into();
    let err = builder(&fake, &dir.path().join("s.db"), 1000)
        .attribute_names(names)
        .start()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("opt-segments"), "{err}");
    assert_eq!(fake.with(|s| s.requests.len()), 0);
}

#[tokio::test]
async fn wrong_key_stops_with_a_clear_error_that_hides_the_key() {
    let fake = FakeBrevo::start(1000).await;
    let dir = tempfile::tempdir().unwrap();
    let err = builder(&fake, &dir.path().join("s.db"), 1000)
        .api_key(flagbridge_sync::brevo::ApiKey::new("xkeysib-wrong-secret"))
        .start()
        .await
        .unwrap_err();
    assert!(matches!(err, BrevoError::Unauthorized { .. }), "{err}");
    assert!(!format!("{err} {err:?}").contains("secret"));
}

#[tokio::test]
async fn unauthorized_mid_run_stops_the_sync() {
    let fake = FakeBrevo::start(1000).await;
    fake.add_contacts(["a@x.io"]);
    let dir = tempfile::tempdir().unwrap();
    let sync = builder(&fake, &dir.path().join("s.db"), 1000)
        .start()
        .await
        .unwrap();
    fake.with(|s| s.unauthorized = true);
    sync.sink()
        .record_decision(rollout(&user("a@x.io", "free", "x"), "f", true));
    let err = sync.flush().await.unwrap_err();
    assert!(matches!(err, BrevoError::Unauthorized { .. }), "{err}");
    assert_eq!(sync.counters().fatal, 1);
    assert!(!sync
        .sink()
        .record_decision(rollout(&user("a@x.io", "free", "x"), "g", true)));
    assert!(!format!("{sync:?}").contains(fake_brevo::API_KEY));
    assert!(sync.close().await.is_err());
}

#[tokio::test]
async fn dry_run_writes_each_request_as_a_json_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dry.jsonl");
    let sync = flagbridge_sync::brevo::BrevoSync::builder()
        .store_path(Some(dir.path().join("s.db")))
        .dry_run_path(&file)
        .start()
        .await
        .unwrap();
    assert!(sync.is_dry_run());
    sync.sink()
        .record_decision(rollout(&user("a@x.io", "free", "x"), "f", true));
    sync.flush().await.unwrap();
    sync.close().await.unwrap();
    let lines: Vec<Value> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // 9 attribute creations, then one batch.
    assert_eq!(lines.len(), 10);
    assert_eq!(
        lines[0]["path"],
        "/contacts/attributes/normal/ENABLED_FEATURES"
    );
    let last = &lines[9];
    assert_eq!(last["path"], "/contacts/batch");
    assert_eq!(last["body"]["contacts"][0]["email"], "a@x.io");
    assert_eq!(
        last["body"]["contacts"][0]["attributes"]["ENABLED_FEATURES"],
        "f"
    );
}

#[tokio::test]
async fn ext_id_identity_updates_one_by_one_and_upserts_unknown_contacts() {
    let fake = FakeBrevo::start(1000).await;
    fake.add_contacts(["ext-1"]);
    let dir = tempfile::tempdir().unwrap();
    let sync = builder(&fake, &dir.path().join("s.db"), 1000)
        .identity(flagbridge_sync::brevo::ContactIdentity::ExtId)
        .identity_source(flagbridge_sync::brevo::IdentitySource::UserId)
        .start()
        .await
        .unwrap();
    for id in ["ext-1", "ext-2"] {
        sync.sink()
            .record_decision(rollout(&user(id, "free", "x"), "f", true));
    }
    sync.sink().record_conversion(ConversionRecord {
        contact: "ext-2".into(),
        event_key: "buy".into(),
        tags: None,
        at: SystemTime::now(),
    });
    sync.flush().await.unwrap();
    for id in ["ext-1", "ext-2"] {
        assert_eq!(
            fake.contact(id).unwrap().attributes["ENABLED_FEATURES"],
            "f",
            "{id}"
        );
    }
    assert_eq!(fake.count_requests("PUT", "/contacts/{id}"), 2);
    assert_eq!(fake.count_requests("POST", "/contacts"), 1);
    assert_eq!(fake.count_requests("POST", "/contacts/batch"), 0);
    assert_eq!(
        fake.with(|s| s.events[0]["identifiers"]["ext_id"].clone()),
        "ext-2"
    );
    sync.close().await.unwrap();
}

/// `list_ids`: every contact written joins the lists, whichever request wrote it (batch item,
/// create, `PUT` by ext_id, import).
#[tokio::test]
async fn synced_contacts_join_the_configured_lists() {
    let lists = vec![3, 8];
    // Email identity: known contacts by batch, unknown ones created one by one.
    let fake = FakeBrevo::start(1000).await;
    fake.add_contacts(["a@x.io"]);
    let dir = tempfile::tempdir().unwrap();
    let sync = builder(&fake, &dir.path().join("s.db"), 1000)
        .list_ids([3, 8])
        .start()
        .await
        .unwrap();
    for e in ["a@x.io", "b@x.io"] {
        sync.sink()
            .record_decision(rollout(&user(e, "free", "desktop"), "f", true));
    }
    sync.flush().await.unwrap();
    for e in ["a@x.io", "b@x.io"] {
        assert_eq!(fake.contact(e).unwrap().lists, lists, "{e}");
    }
    assert_eq!(fake.count_requests("POST", "/contacts"), 1);
    sync.close().await.unwrap();

    // Many unknown contacts: one import into the import list and the configured lists.
    let fake = FakeBrevo::start(1000).await;
    let dir = tempfile::tempdir().unwrap();
    let sync = builder(&fake, &dir.path().join("s.db"), 1000)
        .list_ids([3, 8])
        .import_list_id(5)
        .import_threshold(2)
        .start()
        .await
        .unwrap();
    for e in ["c@x.io", "d@x.io"] {
        sync.sink()
            .record_decision(rollout(&user(e, "free", "desktop"), "f", true));
    }
    sync.flush().await.unwrap();
    assert_eq!(fake.with(|s| s.imports), 1);
    for e in ["c@x.io", "d@x.io"] {
        assert_eq!(fake.contact(e).unwrap().lists, [3, 5, 8], "{e}");
    }
    sync.close().await.unwrap();

    // ext_id identity: PUT for a known contact, create for an unknown one.
    let fake = FakeBrevo::start(1000).await;
    fake.add_contacts(["ext-1"]);
    // `PUT /contacts/{id}` refuses lists the server does not hold.
    fake.add_list(3, "three");
    fake.add_list(8, "eight");
    let dir = tempfile::tempdir().unwrap();
    let sync = builder(&fake, &dir.path().join("s.db"), 1000)
        .identity(flagbridge_sync::brevo::ContactIdentity::ExtId)
        .identity_source(flagbridge_sync::brevo::IdentitySource::UserId)
        .list_ids([3, 8])
        .start()
        .await
        .unwrap();
    for id in ["ext-1", "ext-2"] {
        sync.sink()
            .record_decision(rollout(&user(id, "free", "x"), "f", true));
    }
    sync.flush().await.unwrap();
    for id in ["ext-1", "ext-2"] {
        assert_eq!(fake.contact(id).unwrap().lists, lists, "{id}");
    }
    sync.close().await.unwrap();

    // A list id that is not positive is refused before any request.
    let fake = FakeBrevo::start(1000).await;
    let dir = tempfile::tempdir().unwrap();
    let err = builder(&fake, &dir.path().join("s.db"), 1000)
        .list_ids([0])
        .start()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            BrevoError::InvalidSetting {
                setting: "list_ids",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(fake.with(|s| s.requests.len()), 0);
}

/// Two threads decide for the same contact and flag in a known order: thread A decides, tells
/// thread B, then B decides with another outcome (and another user attribute). B's decision is
/// the latest: it must win every time (flag, latest experiment and segments), whatever ring
/// each record went through and in whatever order the worker receives them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_decision_from_another_thread_wins_every_time() {
    const N: usize = 2_000;
    let fake = FakeBrevo::start(1000).await;
    let all: Vec<String> = (0..N).map(|i| format!("order{i}@x.io")).collect();
    fake.add_contacts(all.iter().map(String::as_str));
    fake.add_contacts(["b-first@x.io"]);
    let dir = tempfile::tempdir().unwrap();
    let sync = builder(&fake, &dir.path().join("s.db"), 1000)
        .start()
        .await
        .unwrap();
    let audiences: Arc<dyn AudienceSource> = Arc::new(TestAudiences);
    let with_plan = |email: &str, plan: &str| {
        let mut u = (*user(email, plan, "desktop")).clone();
        u.audiences = Some(Arc::clone(&audiences));
        Arc::new(u)
    };
    let (to_b, b_inbox) = std::sync::mpsc::channel::<usize>();
    let (b_ready, wait_b) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|scope| {
        let sink = sync.sink();
        let all = &all;
        let with_plan = &with_plan;
        scope.spawn(move || {
            // B's ring is made first: when both threads' records wait, B's are taken first.
            assert!(sink.record_decision(rollout(&user("b-first@x.io", "free", "x"), "g", true)));
            b_ready.send(()).unwrap();
            for i in b_inbox {
                let u = with_plan(&all[i], "vip");
                assert!(sink.record_decision(experiment(&u, "f", "exp", "b", true)));
            }
        });
        wait_b.recv().unwrap();
        let sink = sync.sink();
        for (i, email) in all.iter().enumerate() {
            let u = with_plan(email, "free");
            assert!(sink.record_decision(experiment(&u, "f", "exp", "a", false)));
            to_b.send(i).unwrap();
        }
        drop(to_b);
    });
    sync.flush().await.unwrap();
    for email in &all {
        let got = fake.contact(email).unwrap().attributes;
        assert_eq!(got["ENABLED_FEATURES"], "f", "{email}: {got:?}");
        assert_eq!(got["EXPERIMENT_VARIATION"], "exp:b", "{email}: {got:?}");
        assert_eq!(got["VARIATION_NAME"], "b", "{email}: {got:?}");
        assert_eq!(got["FEATURE_ENABLED"], true, "{email}: {got:?}");
        assert_eq!(got["OPT_SEGMENTS"], "VIP", "{email}: {got:?}");
    }
    let c = sync.counters();
    assert_eq!(c.decisions_processed, 2 * N as u64 + 1);
    assert_eq!(c.queue_overflow, 0);
    sync.close().await.unwrap();
}
