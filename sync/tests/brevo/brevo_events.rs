//! Conversions to Brevo events against the in-process fake Brevo: properties, batch limits,
//! refusals set aside, one event per request when the batch endpoint is off.

use std::time::SystemTime;

use crate::common::*;
use flagbridge_sync::brevo::ConversionRecord;
use flagbridge_sync::testing::fake_brevo::FakeBrevo;
use serde_json::{json, Map, Value};

#[tokio::test]
async fn conversions_become_brevo_events() {
    let fake = FakeBrevo::start(1000).await;
    let dir = tempfile::tempdir().unwrap();
    let sync = builder(&fake, &dir.path().join("s.db"), 1000)
        .event_name("purchase", "order_completed")
        .start()
        .await
        .unwrap();
    let mut tags = Map::new();
    tags.insert("revenue".into(), json!(4200));
    tags.insert("category".into(), json!("shoes"));
    for (i, key) in ["purchase", "add to cart", "purchase"].iter().enumerate() {
        sync.sink().record_conversion(ConversionRecord {
            contact: format!("c{i}@x.io").into(),
            event_key: (*key).into(),
            tags: Some(tags.clone()),
            at: SystemTime::now(),
        });
    }
    sync.flush().await.unwrap();
    let events = fake.with(|s| s.events.clone());
    assert_eq!(events.len(), 3);
    assert_eq!(events[0]["event_name"], "order_completed");
    assert_eq!(events[1]["event_name"], "add_to_cart");
    assert_eq!(events[0]["identifiers"]["email_id"], "c0@x.io");
    assert_eq!(events[0]["event_properties"]["revenue"], 4200);
    assert_eq!(fake.count_requests("POST", "/events/batch"), 1);
    assert_eq!(sync.counters().events_sent, 3);
    sync.close().await.unwrap();
}

#[tokio::test]
async fn many_events_respect_the_batch_limits() {
    let fake = FakeBrevo::start(1000).await;
    let dir = tempfile::tempdir().unwrap();
    let sync = builder(&fake, &dir.path().join("s.db"), 1000)
        .queue_capacity(10_000)
        .start()
        .await
        .unwrap();
    let mut tags = Map::new();
    tags.insert("blob".into(), json!("x".repeat(4000)));
    for i in 0..450 {
        sync.sink().record_conversion(ConversionRecord {
            contact: format!("c{i}@x.io").into(),
            event_key: "view".into(),
            tags: Some(tags.clone()),
            at: SystemTime::now(),
        });
    }
    sync.flush().await.unwrap();
    assert_eq!(fake.with(|s| s.events.len()), 450);
    // 450 events of ~4.1 KB: the 512 KB body limit, not the 200 count, splits them.
    assert!(fake.count_requests("POST", "/events/batch") >= 4);
    sync.close().await.unwrap();
}

#[tokio::test]
async fn a_refused_event_is_set_aside_and_the_others_delivered() {
    let fake = FakeBrevo::start(1000).await;
    let dir = tempfile::tempdir().unwrap();
    let sync = builder(&fake, &dir.path().join("s.db"), 1000)
        .start()
        .await
        .unwrap();
    for i in 0..4 {
        let mut tags = Map::new();
        // Event 2 alone is over Brevo's 512 KB body limit: refused (413) whatever the batch.
        let size = if i == 2 { 600 * 1024 } else { 10 };
        tags.insert("blob".into(), json!("x".repeat(size)));
        sync.sink().record_conversion(ConversionRecord {
            contact: format!("c{i}@x.io").into(),
            event_key: "view".into(),
            tags: Some(tags),
            at: SystemTime::now(),
        });
    }
    sync.flush().await.unwrap();
    let ids: Vec<Value> = fake.with(|s| {
        s.events
            .iter()
            .map(|e| e["identifiers"]["email_id"].clone())
            .collect()
    });
    assert_eq!(
        ids,
        vec![json!("c0@x.io"), json!("c1@x.io"), json!("c3@x.io")]
    );
    let c = sync.counters();
    assert_eq!(
        (c.events_sent, c.events_rejected, c.events_pending),
        (3, 1, 0)
    );
    assert_eq!(sync.set_aside()[0].status, 413);
    sync.close().await.unwrap();
}

#[tokio::test]
async fn events_one_per_request_when_the_batch_endpoint_is_off() {
    let fake = FakeBrevo::start(1000).await;
    let dir = tempfile::tempdir().unwrap();
    let sync = builder(&fake, &dir.path().join("s.db"), 1000)
        .use_events_batch(false)
        .start()
        .await
        .unwrap();
    for i in 0..3 {
        sync.sink().record_conversion(ConversionRecord {
            contact: format!("c{i}@x.io").into(),
            event_key: "signup".into(),
            tags: None,
            at: SystemTime::now(),
        });
    }
    sync.flush().await.unwrap();
    assert_eq!(fake.count_requests("POST", "/events"), 3);
    assert_eq!(fake.count_requests("POST", "/events/batch"), 0);
    assert_eq!(fake.with(|s| s.events.len()), 3);
    assert!(fake.with(|s| s.events[0].get("event_properties").is_none()));
    sync.close().await.unwrap();
}
