//! Numbers with 16-17 significant digits are read exactly (as `JSON.parse` reads them) in
//! datafiles and attribute values: `2.6196087559259906` is not `2.61960875592599`.

use flagbridge_engine::{
    AttributeValue, ClientInfo, DecideOptions, Decider, ProjectConfig, UserContext,
};
use serde_json::Value;

const EXACT: &str = "2.6196087559259906";
const ONE_ULP_OFF: &str = "2.61960875592599";

/// One rollout flag per audience: `exact` on `value` (a number written in the datafile text),
/// and a double variable whose default is `value`.
fn datafile(value: &str) -> String {
    format!(
        r#"{{"version": "4", "accountId": "1", "projectId": "2", "revision": "3", "sendFlagDecisions": true,
        "attributes": [{{"id": "100", "key": "score"}}], "audiences": [],
        "typedAudiences": [{{"id": "a1", "name": "score", "conditions": ["and", {{"name": "score",
            "type": "custom_attribute", "match": "exact", "value": {value}}}]}}],
        "events": [], "experiments": [], "groups": [],
        "featureFlags": [{{"id": "f1", "key": "flag", "experimentIds": [], "rolloutId": "r1",
            "variables": [{{"id": "v1", "key": "d", "type": "double", "defaultValue": "{value}"}}]}}],
        "rollouts": [{{"id": "r1", "experiments": [{{"id": "rule1", "key": "targeted", "layerId": "l1",
            "status": "Running", "audienceIds": ["a1"],
            "variations": [{{"id": "11", "key": "on", "featureEnabled": true}}],
            "trafficAllocation": [{{"entityId": "11", "endOfRange": 10000}}]}}]}}]}}"#
    )
}

fn user(score_json: &str) -> UserContext {
    let v: Value = serde_json::from_str(score_json).unwrap();
    let a = AttributeValue::from_json(&v).unwrap();
    UserContext::new("u").with_attribute("score", a)
}

#[test]
fn exact_condition_on_seventeen_digits() {
    let exact = ProjectConfig::parse(&datafile(EXACT)).unwrap();
    let off = ProjectConfig::parse(&datafile(ONE_ULP_OFF)).unwrap();
    // Same number: match. One ULP apart (JS: no match either way).
    for (config, score, want) in [
        (&exact, EXACT, true),
        (&off, ONE_ULP_OFF, true),
        (&off, EXACT, false),
        (&exact, ONE_ULP_OFF, false),
    ] {
        let d = Decider::new(config).decide(&user(score), "flag", DecideOptions::NONE);
        assert_eq!(d.enabled(), want, "condition vs user {score}");
    }
    // The double variable and the event attribute carry every digit.
    let u = user(EXACT);
    let d = Decider::new(&exact).decide(&u, "flag", DecideOptions::NONE);
    let vars: Vec<_> = d.variables().collect();
    assert_eq!(vars[0].1.to_string(), EXACT);
    let client = ClientInfo {
        client_name: "t".into(),
        client_version: "0".into(),
    };
    let batch = d.impression_event(&u, &client, 0, "id").unwrap();
    let payload = serde_json::to_string(&batch).unwrap();
    assert!(payload.contains(&format!("\"value\":{EXACT}")), "{payload}");
}

#[test]
fn integers_beyond_two_to_the_53_read_as_json_parse_does() {
    let v: Value = serde_json::from_str("9007199254740993").unwrap();
    assert_eq!(
        AttributeValue::from_json(&v),
        Some(AttributeValue::Float(9007199254740992.0))
    );
    let v: Value = serde_json::from_str("9007199254740992").unwrap();
    assert_eq!(
        AttributeValue::from_json(&v),
        Some(AttributeValue::Int(9007199254740992))
    );
    // Objects and arrays are kept whole (JavaScript keeps them: `exists` sees them and a CMAB
    // request sends them), never read as a number or a string.
    let arr = serde_json::json!([1]);
    assert_eq!(
        AttributeValue::from_json(&arr),
        Some(AttributeValue::Json(std::sync::Arc::new(arr.clone())))
    );
    let obj = serde_json::json!({"a": 1});
    assert_eq!(
        AttributeValue::from_json(&obj),
        Some(AttributeValue::Json(std::sync::Arc::new(obj.clone())))
    );
}

/// A variation id written as a JSON number is the same id as its decimal string (traffic
/// allocation names it as a string), and impressions and notifications send it back as the
/// number, as the JavaScript SDK does (js-sdk `mutexFeatureTestsConfig`).
#[test]
fn numeric_variation_ids_are_accepted_and_sent_back_as_numbers() {
    let df = r#"{"version": "4", "accountId": "1", "projectId": "2", "revision": "3",
        "attributes": [], "audiences": [], "events": [], "groups": [], "rollouts": [],
        "experiments": [{"id": "e1", "key": "exp", "layerId": "l1", "status": "Running",
            "audienceIds": [], "forcedVariations": {},
            "variations": [{"id": 17155031309, "key": "v", "featureEnabled": true}],
            "trafficAllocation": [{"entityId": "17155031309", "endOfRange": 10000}]}],
        "featureFlags": [{"id": 7, "key": "flag", "experimentIds": ["e1"], "rolloutId": "",
            "variables": []}]}"#;
    let config = ProjectConfig::parse(df).unwrap();
    let u = UserContext::new("u");
    let d = Decider::new(&config).decide(&u, "flag", DecideOptions::NONE);
    assert_eq!(d.variation_key(), Some("v"));
    assert_eq!(d.variation_id(), Some("17155031309"));
    let client = ClientInfo {
        client_name: "t".into(),
        client_version: "0".into(),
    };
    let batch = serde_json::to_value(d.impression_event(&u, &client, 0, "id").unwrap()).unwrap();
    assert_eq!(
        batch["visitors"][0]["snapshots"][0]["decisions"][0]["variation_id"],
        serde_json::json!(17155031309u64)
    );
    let n = serde_json::to_value(d.notification(&u)).unwrap();
    assert_eq!(n["variationId"], serde_json::json!(17155031309u64));
    // A string id stays a string.
    let config =
        ProjectConfig::parse(&df.replace("\"id\": 17155031309", "\"id\": \"17155031309\""))
            .unwrap();
    let d = Decider::new(&config).decide(&u, "flag", DecideOptions::NONE);
    let n = serde_json::to_value(d.notification(&u)).unwrap();
    assert_eq!(n["variationId"], "17155031309");
}
