//! `2.6196087559259906` (17 significant digits) is read exactly from a cases file and from an
//! HTTP body, as JavaScript's `JSON.parse` reads it: an `exact` condition on the double one
//! ULP away (`2.61960875592599`) does not match, and events and answers carry every digit.

use flagbridge_engine::ProjectConfig;
use flagbridge_sync::connector::cli::cases::run_cases;
use flagbridge_sync::connector::config::Config;
use flagbridge_sync::connector::serve::{self, RuntimeOptions};
use serde_json::Value;

const EXACT: &str = "2.6196087559259906";
const ONE_ULP_OFF: &str = "2.61960875592599";

/// A rollout flag `exact_score` behind `score exact 2.61960875592599`, with a double variable
/// defaulting to `2.6196087559259906`.
fn datafile() -> String {
    format!(
        r#"{{"version": "4", "accountId": "1", "projectId": "2", "revision": "3", "sendFlagDecisions": true,
        "sdkKey": "exact", "attributes": [{{"id": "100", "key": "score"}}], "audiences": [],
        "typedAudiences": [{{"id": "a1", "name": "score", "conditions": ["and", {{"name": "score",
            "type": "custom_attribute", "match": "exact", "value": {ONE_ULP_OFF}}}]}}],
        "events": [], "experiments": [], "groups": [],
        "featureFlags": [{{"id": "f1", "key": "exact_score", "experimentIds": [], "rolloutId": "r1",
            "variables": [{{"id": "v1", "key": "d", "type": "double", "defaultValue": "{EXACT}"}}]}}],
        "rollouts": [{{"id": "r1", "experiments": [{{"id": "rule1", "key": "targeted", "layerId": "l1",
            "status": "Running", "audienceIds": ["a1"],
            "variations": [{{"id": "11", "key": "on", "featureEnabled": true}}],
            "trafficAllocation": [{{"entityId": "11", "endOfRange": 10000}}]}}]}}]}}"#
    )
}

#[test]
fn cases_file_reads_seventeen_digits_exactly() {
    let config = ProjectConfig::parse(&datafile()).unwrap();
    let cases = format!(
        "{{\"user_id\": \"u\", \"attributes\": {{\"score\": {EXACT}}}, \"flags\": [\"exact_score\"]}}\n\
         {{\"user_id\": \"u\", \"attributes\": {{\"score\": {ONE_ULP_OFF}}}, \"flags\": [\"exact_score\"]}}\n"
    );
    let out = run_cases(&config, &cases);
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(out[0]["enabled"], false, "one ULP apart: no match");
    assert_eq!(out[1]["enabled"], true);
    assert_eq!(out[0]["variables"]["d"].to_string(), EXACT);
    // The impression (sendFlagDecisions) carries the attribute with every digit.
    let text = out[0].to_string();
    assert!(text.contains(&format!("\"value\":{EXACT}")), "{text}");
}

#[tokio::test]
async fn http_body_reads_seventeen_digits_exactly() {
    let text: &'static str = Box::leak(datafile().into_boxed_str());
    let mut config = Config::embedded_default(text, "exact").unwrap();
    let dir = std::env::temp_dir().join(format!("fb-exact-{}", std::process::id()));
    config.state_dir = dir.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = serve::start(config, listener, RuntimeOptions::default())
        .await
        .unwrap();
    let base = format!("http://{}", handle.local_addr());
    let http = reqwest::Client::new();
    for (score, want) in [(EXACT, false), (ONE_ULP_OFF, true)] {
        let body = format!(r#"{{"userId": "u", "userAttributes": {{"score": {score}}}}}"#);
        let answer = http
            .post(format!("{base}/v1/decide?keys=exact_score"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let d: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(d["enabled"], want, "score {score}: {answer}");
        assert!(answer.contains(&format!("\"score\":{score}")), "{answer}");
        assert!(answer.contains(&format!("\"d\":{EXACT}")), "{answer}");
    }
    handle.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
