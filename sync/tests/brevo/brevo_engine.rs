//! Decisions made by the engine reach Brevo through the `DecisionSink` hook, with
//! `OPT_SEGMENTS` evaluated from the datafile's audiences in the worker.

use std::sync::Arc;

use crate::common::*;
use flagbridge_engine::{DecideOptions, Decider, ProjectConfig, UserContext};
use flagbridge_sync::testing::fake_brevo::FakeBrevo;
use flagbridge_sync::DecisionSink;
use serde_json::{json, Map, Value};

const DATAFILE: &str = include_str!("../data/brevo_small_datafile.json");

#[tokio::test]
async fn engine_decisions_and_conversions_reach_brevo() {
    let config = Arc::new(ProjectConfig::parse(DATAFILE).unwrap());
    let fake = FakeBrevo::start(1000).await;
    fake.add_contacts(["vip@example.com", "free@other.io"]);
    let dir = tempfile::tempdir().unwrap();
    let sync = builder(&fake, &dir.path().join("s.db"), 1000)
        .start()
        .await
        .unwrap();
    let sink = sync.sink();
    let decider = Decider::new(&config);
    let vip = UserContext::new("u1")
        .with_attribute("email", "vip@example.com")
        .with_attribute("plan", "vip");
    let free = UserContext::new("u2")
        .with_attribute("email", "free@other.io")
        .with_attribute("plan", "free");
    let anonymous = UserContext::new("u3").with_attribute("plan", "vip");
    for user in [&vip, &free, &anonymous] {
        for d in decider.decide_all(user, DecideOptions::NONE) {
            sink.on_decision(&config, user, &d);
        }
    }
    let mut tags = Map::new();
    tags.insert("revenue".into(), json!(1000));
    let conversion = decider.track(&vip, "purchase", Some(&tags)).unwrap();
    sink.on_conversion(&config, &vip, &conversion, Some(&tags));
    sync.flush().await.unwrap();

    let today = today();
    let got = fake.contact("vip@example.com").unwrap().attributes;
    assert_eq!(
        Value::Object(got),
        json!({
            "ENABLED_FEATURES": "banner,checkout",
            "EXPERIMENT_VARIATION": "exp_checkout:treatment",
            "EXPERIMENT_NAME": "exp_checkout",
            "VARIATION_NAME": "treatment",
            "FEATURE_FLAG": "checkout",
            "FEATURE_ENABLED": true,
            "EXPERIMENT_DATE": today,
            "OPT_SEGMENTS": "Example staff,VIP",
            "FEATURE_FLAGS_SYNCED": today,
        })
    );
    let got = fake.contact("free@other.io").unwrap().attributes;
    assert_eq!(
        Value::Object(got),
        json!({
            "ENABLED_FEATURES": "banner",
            "EXPERIMENT_VARIATION": "",
            "OPT_SEGMENTS": "",
            "FEATURE_FLAGS_SYNCED": today,
        })
    );
    let c = sync.counters();
    assert_eq!(
        c.skipped_no_identity, 2,
        "anonymous user's two decisions skipped"
    );
    let events = fake.with(|s| s.events.clone());
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["event_name"], "purchase");
    assert_eq!(events[0]["identifiers"]["email_id"], "vip@example.com");
    assert_eq!(events[0]["event_properties"]["revenue"], 1000);
    sync.close().await.unwrap();
}

#[tokio::test]
async fn client_decisions_reach_brevo_end_to_end() {
    let fake = FakeBrevo::start(1000).await;
    fake.add_contacts(["vip@example.com"]);
    let dir = tempfile::tempdir().unwrap();
    let brevo = builder(&fake, &dir.path().join("s.db"), 1000)
        .start()
        .await
        .unwrap();
    let client = flagbridge_sync::Client::builder()
        .datafile(DATAFILE)
        .events_enabled(false)
        .decision_sink(Arc::new(brevo.sink()))
        .start()
        .await
        .unwrap();
    let mut user = client.create_user_context("u1");
    user.set_attribute("email", "vip@example.com");
    user.set_attribute("plan", "vip");
    for _ in 0..1000 {
        user.decide_all(DecideOptions::NONE);
    }
    assert!(user.track_event("purchase", None));
    brevo.flush().await.unwrap();
    let got = fake.contact("vip@example.com").unwrap();
    assert_eq!(got.attributes["ENABLED_FEATURES"], "banner,checkout");
    assert_eq!(
        got.attributes["EXPERIMENT_VARIATION"],
        "exp_checkout:treatment"
    );
    assert_eq!(got.attributes["OPT_SEGMENTS"], "Example staff,VIP");
    assert_eq!(got.writes, 1, "2000 decisions, one write");
    assert_eq!(fake.with(|s| s.events.len()), 1);
    assert_eq!(brevo.counters().decisions_queued, 2000);
    client.close().await;
    brevo.close().await.unwrap();
}
