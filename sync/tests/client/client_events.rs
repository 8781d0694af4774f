//! Impressions and conversions through the Client to an in-process fake event endpoint:
//! payloads, batching, retries on 500 bursts, nothing lost at close, notifications and sinks.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use flagbridge_engine::{
    Conversion, DecideOption, DecideOptions, Decision, ProjectConfig, UserContext,
};
use flagbridge_sync::events::{EventTransport, ReqwestEventTransport};
use flagbridge_sync::testing::{datafile, EventFault, FakeEventEndpoint};
use flagbridge_sync::{
    Client, ClientBuilder, DecisionSink, EventStorage, Notification, NotificationType,
};
use serde_json::{json, Value};

fn builder(endpoint: &FakeEventEndpoint) -> ClientBuilder {
    Client::builder()
        .datafile(datafile("7"))
        .event_endpoint(endpoint.url())
        .event_storage(EventStorage::Memory)
}

fn pro(id: &str) -> UserContext {
    UserContext::new(id).with_attribute("plan", "pro")
}

#[tokio::test(start_paused = true)]
async fn impressions_and_conversions_reach_the_endpoint_as_logx_batches() {
    let endpoint = FakeEventEndpoint::start().await.unwrap();
    let client = builder(&endpoint).start().await.unwrap();
    let d = client.decide(&pro("u1"), "checkout", DecideOptions::NONE);
    assert!(d.enabled);
    let plain = UserContext::new("u2");
    assert_eq!(
        client
            .decide(&plain, "checkout", DecideOptions::NONE)
            .rule_key
            .as_deref(),
        Some("checkout_rollout")
    );
    client.decide(
        &plain,
        "banner",
        DecideOptions::NONE.with(DecideOption::DisableDecisionEvent),
    );
    let tags = json!({"revenue": 4200, "value": 1.5}).as_object().cloned();
    assert!(client.track(&pro("u1"), "purchase", tags.as_ref()));
    assert!(!client.track(&pro("u1"), "no_such_event", None));
    client.flush().await;

    let batches = endpoint.batches();
    assert_eq!(batches.len(), 1, "one context, one batch: {batches:#?}");
    let batch = &batches[0];
    assert_eq!(batch["account_id"], "12001");
    assert_eq!(batch["project_id"], "13001");
    assert_eq!(batch["revision"], "7");
    assert_eq!(batch["anonymize_ip"], true);
    assert_eq!(batch["client_name"], "flagbridge");
    let visitors = batch["visitors"].as_array().unwrap();
    assert_eq!(
        visitors.len(),
        3,
        "two impressions (one disabled by option) and one conversion"
    );
    let first = &visitors[0];
    assert_eq!(first["visitor_id"], "u1");
    let decision = &first["snapshots"][0]["decisions"][0];
    assert_eq!(decision["campaign_id"], "80001");
    assert_eq!(decision["experiment_id"], "50001");
    assert_eq!(decision["variation_id"], "90001");
    assert_eq!(decision["metadata"]["flag_key"], "checkout");
    assert_eq!(decision["metadata"]["rule_type"], "feature-test");
    let event = &first["snapshots"][0]["events"][0];
    assert_eq!(event["key"], "campaign_activated");
    assert!(event["timestamp"].as_u64().unwrap() > 1_600_000_000_000);
    assert_eq!(event["uuid"].as_str().unwrap().len(), 36);
    assert_eq!(
        visitors[1]["snapshots"][0]["decisions"][0]["metadata"]["rule_type"],
        "rollout"
    );
    let conversion = &visitors[2]["snapshots"][0]["events"][0];
    assert_eq!(conversion["key"], "purchase");
    assert_eq!(conversion["entity_id"], "40001");
    assert_eq!(conversion["revenue"], 4200);
    assert_eq!(endpoint.distinct_uuids().len(), 3);

    let stats = client.event_stats();
    assert_eq!(
        (stats.queued, stats.sent, stats.dropped, stats.overflow),
        (3, 3, 0, 0)
    );
    client.close().await;
}

#[tokio::test(start_paused = true)]
async fn batches_flush_at_the_count_and_at_the_interval() {
    let endpoint = FakeEventEndpoint::start().await.unwrap();
    let client = builder(&endpoint)
        .event_batch_size(50)
        .start()
        .await
        .unwrap();
    for i in 0..120 {
        client.decide(&pro(&format!("u{i}")), "checkout", DecideOptions::NONE);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sizes = |e: &FakeEventEndpoint| -> Vec<usize> {
        e.batches()
            .iter()
            .map(|b| b["visitors"].as_array().unwrap().len())
            .collect()
    };
    assert_eq!(sizes(&endpoint), vec![50, 50]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(sizes(&endpoint), vec![50, 50, 20]);
    client.close().await;
}

#[tokio::test(start_paused = true)]
async fn a_500_burst_is_retried_with_the_same_uuids_and_close_loses_nothing() {
    let endpoint = FakeEventEndpoint::start().await.unwrap();
    endpoint.set_fault(Some(EventFault::Burst {
        status: 500,
        count: 3,
    }));
    let client = builder(&endpoint)
        .event_batch_size(100)
        .event_flush_interval(Duration::from_secs(3600))
        .start()
        .await
        .unwrap();
    for i in 0..1000 {
        client.decide(&pro(&format!("u{i}")), "checkout", DecideOptions::NONE);
    }
    client.close().await;
    assert_eq!(
        endpoint.distinct_uuids().len(),
        1000,
        "every event delivered"
    );
    assert_eq!(
        endpoint.visitors().len(),
        1000,
        "no duplicate deliveries after 500s"
    );
    let stats = client.event_stats();
    assert_eq!((stats.sent, stats.dropped, stats.retries), (1000, 0, 3));
    assert!(endpoint.requests() >= 13);

    // After close, decisions still work; their events are counted as dropped.
    assert!(
        client
            .decide(&pro("late"), "checkout", DecideOptions::NONE)
            .enabled
    );
    assert_eq!(client.event_stats().dropped, 1);
}

/// Real time: the age limit is measured on the wall clock.
#[tokio::test]
async fn persistent_503_retries_until_the_age_limit_then_dead_letters() {
    let endpoint = FakeEventEndpoint::start().await.unwrap();
    endpoint.set_fault(Some(EventFault::Always(503)));
    let client = builder(&endpoint)
        .event_retry_backoff(Duration::from_millis(10), Duration::from_millis(40))
        .event_max_age(Duration::from_millis(400))
        .start()
        .await
        .unwrap();
    client.decide(&pro("u1"), "checkout", DecideOptions::NONE);
    tokio::time::timeout(Duration::from_secs(20), client.flush())
        .await
        .unwrap();
    let stats = client.event_stats();
    assert_eq!((stats.sent, stats.dead_lettered, stats.dropped), (0, 1, 0));
    assert!(
        stats.retries >= 3,
        "no attempt cap before the age limit: {stats:?}"
    );
    assert_eq!(endpoint.requests(), stats.retries + 1);
    // The fault ends: later events flow again.
    endpoint.set_fault(None);
    client.decide(&pro("u2"), "checkout", DecideOptions::NONE);
    client.flush().await;
    assert_eq!(client.event_stats().sent, 1);
    client.close().await;
}

#[tokio::test(start_paused = true)]
async fn bodies_stay_under_the_size_limit_and_the_endpoint_rejects_larger_ones() {
    let endpoint = FakeEventEndpoint::start().await.unwrap();
    let client = builder(&endpoint)
        .event_batch_bytes(3_500_000)
        .event_batch_size(100_000)
        .start()
        .await
        .unwrap();
    let big = "x".repeat(100_000);
    for i in 0..80 {
        let user = pro(&format!("u{i}")).with_attribute("$opt_note", big.as_str());
        client.decide(&user, "checkout", DecideOptions::NONE);
    }
    client.flush().await;
    assert_eq!(endpoint.rejected(), 0);
    assert!(
        endpoint.batches().len() >= 3,
        "8 MB of events need several bodies"
    );
    assert_eq!(endpoint.distinct_uuids().len(), 80);
    for batch in endpoint.batches() {
        assert!(serde_json::to_vec(&batch).unwrap().len() <= 3_500_000);
    }
    // What the client never sends: a 3.6 MB body gets 400 with a reason.
    let transport =
        ReqwestEventTransport::new(Duration::from_secs(5), Duration::from_secs(10)).unwrap();
    let huge = format!(r#"{{"visitors":[],"pad":"{}"}}"#, "y".repeat(3_600_000));
    let reply = transport
        .post(&endpoint.url(), bytes::Bytes::from(huge))
        .await
        .unwrap();
    assert_eq!(reply.status, 400);
    assert!(reply.body.contains("too large"), "{}", reply.body);
    client.close().await;
}

#[tokio::test(start_paused = true)]
async fn a_full_ring_spills_without_blocking_decide_or_losing_events() {
    let endpoint = FakeEventEndpoint::start().await.unwrap();
    let client = builder(&endpoint)
        .event_queue_capacity(10)
        .start()
        .await
        .unwrap();
    // No await between decides: nothing drains the thread's ring of 10 records (one per
    // decide call), so 40 go to the overflow list.
    for i in 0..50 {
        client.decide(&pro(&format!("u{i}")), "checkout", DecideOptions::NONE);
    }
    assert_eq!(client.event_stats().spilled, 40);
    client.close().await;
    let stats = client.event_stats();
    assert_eq!((stats.queued, stats.sent, stats.overflow), (50, 50, 0));
    assert_eq!(endpoint.distinct_uuids().len(), 50);
}

#[derive(Default)]
struct RecordingSink {
    seen: Mutex<Vec<String>>,
}

impl DecisionSink for RecordingSink {
    fn on_decision(
        &self,
        config: &Arc<ProjectConfig>,
        user: &UserContext,
        decision: &Decision<'_>,
    ) {
        self.seen.lock().unwrap().push(format!(
            "decision {} {} {} {:?} rev {}",
            user.user_id(),
            decision.flag_key(),
            decision.enabled(),
            decision.variation_key(),
            config.revision()
        ));
    }

    fn on_conversion(
        &self,
        _config: &Arc<ProjectConfig>,
        user: &UserContext,
        conversion: &Conversion<'_>,
        tags: Option<&serde_json::Map<String, Value>>,
    ) {
        self.seen.lock().unwrap().push(format!(
            "conversion {} {} {}",
            user.user_id(),
            conversion.event_key(),
            tags.map_or(0, |t| t.len())
        ));
    }
}

#[tokio::test(start_paused = true)]
async fn sinks_and_listeners_see_every_decision_and_conversion() {
    let endpoint = FakeEventEndpoint::start().await.unwrap();
    let sink = Arc::new(RecordingSink::default());
    let client = builder(&endpoint)
        .decision_sink(sink.clone())
        .start()
        .await
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(NotificationType, Value)>();
    let center = client.notification_center();
    center.add_listener(NotificationType::Decision, |_| panic!("a buggy listener"));
    for kind in [
        NotificationType::Decision,
        NotificationType::Track,
        NotificationType::LogEvent,
    ] {
        let tx = tx.clone();
        center.add_listener(kind, move |n| {
            let payload = match n {
                Notification::Decision(d) => serde_json::to_value(d).unwrap(),
                Notification::Track(t) => serde_json::to_value(t).unwrap(),
                Notification::LogEvent(l) => serde_json::to_value(l).unwrap(),
                _ => Value::Null,
            };
            let _ = tx.send((n.notification_type(), payload));
        });
    }
    let user = pro("u1");
    let all = client.decide_all(&user, DecideOptions::NONE);
    assert_eq!(all.len(), 2);
    let tags = json!({"revenue": 10}).as_object().cloned();
    client.track(&user, "purchase", tags.as_ref());
    client.flush().await;

    assert_eq!(
        *sink.seen.lock().unwrap(),
        vec![
            "decision u1 checkout true Some(\"treatment\") rev 7".to_owned(),
            "decision u1 banner true Some(\"banner_on\") rev 7".to_owned(),
            "conversion u1 purchase 1".to_owned(),
        ]
    );
    let mut got = Vec::new();
    while got.len() < 4 {
        got.push(rx.recv().await.unwrap());
    }
    let kinds: Vec<NotificationType> = got.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        kinds,
        vec![
            NotificationType::Decision,
            NotificationType::Decision,
            NotificationType::Track,
            NotificationType::LogEvent
        ]
    );
    let decision = got[0].1.to_string();
    assert!(
        decision.contains("checkout") && decision.contains("treatment"),
        "{decision}"
    );
    assert_eq!(got[2].1["event_key"], "purchase");
    assert_eq!(got[2].1["log_event"]["visitors"][0]["visitor_id"], "u1");
    assert_eq!(got[3].1["url"], endpoint.url().as_str());
    assert_eq!(got[3].1["params"]["visitors"].as_array().unwrap().len(), 3);
    client.close().await;
}

/// A user profile service that stores nothing: decisions are as without one, but the Client
/// then builds impressions on the decide path instead of deferring them.
struct NoProfiles;

impl flagbridge_engine::UserProfileService for NoProfiles {
    fn lookup(&self, _user_id: &str) -> Option<flagbridge_engine::UserProfile> {
        None
    }
    fn save(&self, _profile: &flagbridge_engine::UserProfile) {}
}

fn strip_ids(mut visitors: Vec<Value>) -> Vec<Value> {
    for visitor in &mut visitors {
        for snapshot in visitor["snapshots"].as_array_mut().unwrap() {
            for event in snapshot["events"].as_array_mut().unwrap() {
                let object = event.as_object_mut().unwrap();
                assert_eq!(object.remove("uuid").unwrap().as_str().unwrap().len(), 36);
                assert!(object.remove("timestamp").unwrap().as_u64().unwrap() > 0);
            }
        }
    }
    visitors
}

#[tokio::test(start_paused = true)]
async fn deferred_impressions_equal_impressions_built_on_the_decide_path() {
    async fn run(with_ups: bool) -> Vec<Value> {
        let endpoint = FakeEventEndpoint::start().await.unwrap();
        let mut b = builder(&endpoint);
        if with_ups {
            b = b.user_profile_service(Arc::new(NoProfiles));
        }
        let client = b.start().await.unwrap();
        let mut forced_user = UserContext::new("f1");
        forced_user.set_forced_decision("checkout", Some("checkout_rollout"), "on");
        let users = [
            pro("u1"),
            UserContext::new("u2"),
            forced_user,
            UserContext::new("legacy"),
        ];
        assert!(client.set_forced_variation("legacy", "checkout_test", Some("treatment")));
        for user in &users {
            client.decide_all(user, DecideOptions::NONE);
        }
        // A bound user context (shared with the queue) changed before the events are rendered:
        // the queued impression is still the one decided.
        let mut bound = client.create_user_context("bound");
        bound.set_attribute("plan", "pro");
        assert_eq!(
            bound
                .decide("checkout", DecideOptions::NONE)
                .variation_key
                .as_deref(),
            Some("treatment")
        );
        bound.set_attribute("plan", "basic");
        // Cleared before the events are rendered: the queued snapshot still applies.
        assert!(client.set_forced_variation("legacy", "checkout_test", None));
        client.close().await;
        strip_ids(endpoint.visitors())
    }
    let immediate = run(true).await;
    let deferred = run(false).await;
    assert_eq!(immediate.len(), 9);
    assert_eq!(
        deferred[8]["snapshots"][0]["decisions"][0]["metadata"]["variation_key"],
        "treatment"
    );
    assert_eq!(deferred, immediate);
    let legacy = &deferred[6]["snapshots"][0]["decisions"][0];
    assert_eq!(legacy["metadata"]["variation_key"], "treatment", "{legacy}");
}

/// Each decide call's record carries its config and user; every way they can change between
/// two decides of one thread must still render the impression decided.
#[tokio::test(start_paused = true)]
async fn impressions_follow_user_changes_and_config_swaps_on_one_thread() {
    async fn run(with_ups: bool) -> (Vec<String>, Vec<Value>) {
        const SDK_KEY: &str = "swap-key";
        let cdn = flagbridge_sync::testing::FakeCdn::start().await.unwrap();
        cdn.set_datafile(SDK_KEY, datafile("7"));
        let endpoint = FakeEventEndpoint::start().await.unwrap();
        let mut b = Client::builder()
            .sdk_key(SDK_KEY)
            .datafile_base_url(cdn.base_url())
            .event_endpoint(endpoint.url())
            .event_storage(EventStorage::Memory)
            .event_queue_capacity(64);
        if with_ups {
            b = b.user_profile_service(Arc::new(NoProfiles));
        }
        let client = b.start().await.unwrap();
        let variation = |d: flagbridge_sync::FlagDecision| d.variation_key;

        // A bound user deciding again and again, then changed in place.
        let mut bound = client.create_user_context("bound");
        bound.set_attribute("plan", "pro");
        let decide = |b: &flagbridge_sync::ClientUserContext| {
            variation(b.decide("checkout", DecideOptions::NONE))
        };
        assert_eq!(decide(&bound).as_deref(), Some("treatment"));
        assert_eq!(decide(&bound).as_deref(), Some("treatment"));
        bound.set_attribute("plan", "basic");
        let basic = decide(&bound);
        // A clone keeps the version, then diverges.
        let mut twin = bound.clone();
        decide(&twin);
        twin.set_attribute("plan", "pro");
        decide(&twin);
        decide(&bound);
        // Borrowed users: the same one twice, changed, then another with the same content.
        let mut user = pro("borrowed");
        client.decide(&user, "checkout", DecideOptions::NONE);
        client.decide(&user, "checkout", DecideOptions::NONE);
        user.set_attribute("plan", "basic");
        client.decide(&user, "checkout", DecideOptions::NONE);
        client.decide(&pro("borrowed"), "checkout", DecideOptions::NONE);
        client.flush().await;
        // The config changes between two decides of the same user.
        cdn.set_datafile(SDK_KEY, datafile("8"));
        client.refresh_now().await.unwrap();
        decide(&bound);
        client.decide(&pro("borrowed"), "checkout", DecideOptions::NONE);
        // More than the ring holds at once: the rest spills into the overflow list.
        for i in 0..200 {
            client.decide(&pro(&format!("burst{i}")), "checkout", DecideOptions::NONE);
        }
        assert!(
            client.event_stats().spilled > 0,
            "the burst overflows the ring"
        );
        client.flush().await;
        decide(&bound);
        client.decide(&pro("after"), "checkout", DecideOptions::NONE);
        client.close().await;
        assert_ne!(basic.as_deref(), Some("treatment"));
        let stats = client.event_stats();
        assert_eq!(stats.overflow, 0);
        assert_eq!(stats.queued, stats.sent);
        // The burst's spill differs between the two ways (an impression built on the decide
        // path is one record per decision): compare the rest.
        let mut revisions = Vec::new();
        let mut visitors = Vec::new();
        for batch in endpoint.batches() {
            for visitor in batch["visitors"].as_array().unwrap() {
                if !visitor["visitor_id"].as_str().unwrap().starts_with("burst") {
                    revisions.push(batch["revision"].as_str().unwrap().to_owned());
                    visitors.push(visitor.clone());
                }
            }
        }
        (revisions, strip_ids(visitors))
    }
    let (immediate_revisions, immediate) = run(true).await;
    let (revisions, deferred) = run(false).await;
    assert_eq!(revisions, immediate_revisions);
    assert_eq!(deferred, immediate);
    assert_eq!(
        revisions.iter().filter(|r| *r == "7").count(),
        10,
        "{revisions:?}"
    );
    assert_eq!(&revisions[10..], ["8", "8", "8", "8"], "{revisions:?}");
    let plans: Vec<&Value> = deferred[..4].iter().map(|v| &v["attributes"]).collect();
    assert_ne!(plans[1], plans[2], "the change in place shows: {plans:?}");
}

/// A sink that decides again from inside `on_decision` (once per outer decision).
#[derive(Default)]
struct DecidingSink {
    client: std::sync::OnceLock<Client>,
}

impl DecisionSink for DecidingSink {
    fn on_decision(&self, _: &Arc<ProjectConfig>, user: &UserContext, decision: &Decision<'_>) {
        if user.user_id().starts_with("inner") {
            return;
        }
        if let Some(client) = self.client.get() {
            let inner = pro(&format!("inner-{}", user.user_id()));
            client.decide(&inner, decision.flag_key(), DecideOptions::NONE);
        }
    }

    fn on_conversion(
        &self,
        _: &Arc<ProjectConfig>,
        _: &UserContext,
        _: &Conversion<'_>,
        _: Option<&serde_json::Map<String, Value>>,
    ) {
    }
}

/// A decide inside a decide (from a sink) finds this thread's state in use: it reads the
/// config afresh and pushes through the hand-off's own ring; both impressions arrive.
#[tokio::test(start_paused = true)]
async fn a_sink_that_decides_inside_a_decide_gets_its_impressions_sent() {
    let endpoint = FakeEventEndpoint::start().await.unwrap();
    let sink = Arc::new(DecidingSink::default());
    let client = builder(&endpoint)
        .decision_sink(sink.clone())
        .start()
        .await
        .unwrap();
    assert!(sink.client.set(client.clone()).is_ok());
    for i in 0..3 {
        client.decide(&pro(&format!("outer-{i}")), "checkout", DecideOptions::NONE);
    }
    client.decide_all(&pro("outer-all"), DecideOptions::NONE);
    client.close().await;
    let ids: Vec<String> = endpoint
        .visitors()
        .iter()
        .map(|v| v["visitor_id"].as_str().unwrap().to_owned())
        .collect();
    for i in 0..3 {
        assert!(ids.contains(&format!("outer-{i}")), "{ids:?}");
        assert!(ids.contains(&format!("inner-outer-{i}")), "{ids:?}");
    }
    assert!(ids.contains(&"inner-outer-all".to_owned()), "{ids:?}");
    let stats = client.event_stats();
    assert_eq!(
        (stats.queued, stats.sent, stats.overflow),
        (ids.len() as u64, ids.len() as u64, 0)
    );
}
