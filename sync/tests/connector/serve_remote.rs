//! `flagbridge serve` end to end with the remote decision inputs, against the in-process fake
//! (`testing::FakeRemote` on 127.0.0.1): `/v1/decide` decides CMAB rules through the prediction
//! service, `fetchSegments` asks ODP, `/v1/send-odp-event` reaches `{host}/v3/events`.

use flagbridge_sync::connector::config::Config;
use flagbridge_sync::connector::serve::{self, RuntimeOptions};
use flagbridge_sync::testing::FakeRemote;
use serde_json::{json, Value};

fn datafile_text() -> &'static str {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../datafile-fixtures/remote/cmab_odp.json"
    );
    Box::leak(
        std::fs::read_to_string(path)
            .expect("fixture")
            .into_boxed_str(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decide_fetch_segments_and_odp_events_through_the_fake() {
    let text = datafile_text();
    let fake = FakeRemote::start(&serde_json::from_str(text).expect("json"), false)
        .await
        .expect("fake");
    let mut config = Config::embedded_default(text, "key").expect("config");
    let dir = std::env::temp_dir().join(format!("fb-serve-remote-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    config.state_dir = dir.clone();
    config.cmab.prediction_endpoint = format!("{}/predict/%s", fake.url());
    config.odp.enabled = true;
    config.odp.host = Some(fake.url());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let handle = serve::start(config, listener, RuntimeOptions::default())
        .await
        .expect("serve");
    let base = format!("http://{}", handle.local_addr());
    let http = reqwest::Client::new();
    let post = |path: &str, body: Value| http.post(format!("{base}{path}")).json(&body).send();

    // A CMAB rule decided by the prediction service (u5 fails the first rule's audience).
    let user = json!({"userId": "u5", "userAttributes": {"age": 17},
                      "decideOptions": ["INCLUDE_REASONS"]});
    let r = post("/v1/decide?keys=f_two_cmab", user.clone())
        .await
        .expect("decide");
    assert_eq!(r.status(), 200);
    let d: Value = r.json().await.expect("json");
    assert_eq!(d["ruleKey"], "cmab_second", "{d}");
    let predictions: Vec<Value> = fake
        .log()
        .into_iter()
        .filter(|r| r["kind"] == "cmab")
        .collect();
    assert_eq!(predictions.len(), 1);
    assert_eq!(predictions[0]["path"], "/predict/5003");
    // Again: served from the cache.
    let again: Value = post("/v1/decide?keys=f_two_cmab", user)
        .await
        .expect("decide")
        .json()
        .await
        .expect("json");
    assert_eq!(again["variationKey"], d["variationKey"]);
    assert_eq!(fake.log().iter().filter(|r| r["kind"] == "cmab").count(), 1);

    // fetchSegments: the segments decide f_odp's targeted delivery rule.
    let mut qualified = None;
    for i in 0..20 {
        let id = format!("odp-user-{i}");
        let body = json!({"userId": id, "fetchSegments": true});
        let d: Value = post("/v1/decide?keys=f_odp", body)
            .await
            .expect("decide")
            .json()
            .await
            .expect("json");
        let asked = fake
            .log()
            .into_iter()
            .rev()
            .find(|r| r["kind"] == "odp_segments" && r["parsed"]["userValue"] == json!(id))
            .expect("a segments query per user");
        let response: Value =
            serde_json::from_str(asked["response"].as_str().expect("text")).expect("json");
        let has = |s: &str| {
            response["data"]["customer"]["audiences"]["edges"]
                .as_array()
                .expect("edges")
                .iter()
                .any(|e| e["node"]["name"] == s && e["node"]["state"] == "qualified")
        };
        // Audience "segments ab": seg-b, or (seg-a and a custom_attribute `qualified`, never true).
        if d["ruleKey"] == "r3_seg" {
            assert!(has("seg-b"), "{d}");
            qualified = Some(id);
        } else {
            assert!(!has("seg-b"), "{d}");
        }
    }
    assert!(qualified.is_some(), "some user qualified for seg-b");

    // /v1/send-odp-event: queued, sent at the latest at shutdown.
    let r = post(
        "/v1/send-odp-event",
        json!({"action": "purchase", "identifiers": {"fs-user-id": "u5"}, "data": {"price": 10}}),
    )
    .await
    .expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.expect("json"),
        json!({"success": true})
    );
    let r = post(
        "/v1/send-odp-event",
        json!({"action": "x", "identifiers": {}}),
    )
    .await
    .expect("send");
    assert_eq!(r.status(), 400);
    handle.shutdown().await.expect("shutdown");
    let events: Vec<Value> = fake
        .log()
        .into_iter()
        .filter(|r| r["kind"] == "odp_events")
        .collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["body"][0]["action"], "purchase");
    assert_eq!(
        events[0]["body"][0]["identifiers"],
        json!({"fs_user_id": "u5"})
    );
    assert_eq!(events[0]["headers"]["x-api-key"], "fb-test-key");
    let _ = std::fs::remove_dir_all(&dir);
}
