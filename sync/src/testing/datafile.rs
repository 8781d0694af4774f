//! A small, complete v4 datafile for tests, whose content depends on its revision.

use serde_json::{json, Value};

/// The SDK key the fakes and tests use.
pub const SDK_KEY: &str = "TestSdkKey123";

/// A v4 datafile with revision `revision`:
/// - attribute `plan` (id 20001), audience `pro` (`plan == "pro"`), event `purchase` (id 40001);
/// - flag `checkout`: experiment rule `checkout_test` (audience `pro`, 100% to `treatment`,
///   enabled, `color = "blue-{revision}"`, `limit = 25`, `ratio = 0.75`, `meta = {"tier":"pro"}`),
///   then delivery rule `checkout_rollout` (everyone, variation `on`, enabled, default variables:
///   `color = "grey"`, `limit = 10`, `ratio = 0.5`, `meta = {"tier":"base"}`);
/// - flag `banner`: delivery rule `banner_rollout` (everyone, variation `banner_on`).
///
/// `sendFlagDecisions` is true, so both rule kinds send impressions.
pub fn datafile_json(revision: &str) -> Value {
    json!({
        "version": "4",
        "revision": revision,
        "accountId": "12001",
        "projectId": "13001",
        "environmentKey": "production",
        "sdkKey": SDK_KEY,
        "anonymizeIP": true,
        "botFiltering": false,
        "sendFlagDecisions": true,
        "attributes": [{"id": "20001", "key": "plan"}],
        "audiences": [{
            "id": "30001", "name": "pro",
            "conditions": "[\"and\", [\"or\", [\"or\", {\"type\": \"custom_attribute\", \"name\": \"plan\", \"match\": \"exact\", \"value\": \"pro\"}]]]"
        }],
        "typedAudiences": [],
        "events": [{"id": "40001", "key": "purchase", "experimentIds": ["50001"]}],
        "groups": [],
        "featureFlags": [
            {
                "id": "60001", "key": "checkout", "experimentIds": ["50001"], "rolloutId": "70001",
                "variables": [
                    {"id": "61001", "key": "color", "type": "string", "defaultValue": "grey"},
                    {"id": "61002", "key": "limit", "type": "integer", "defaultValue": "10"},
                    {"id": "61003", "key": "ratio", "type": "double", "defaultValue": "0.5"},
                    {"id": "61004", "key": "meta", "type": "string", "subType": "json", "defaultValue": "{\"tier\":\"base\"}"}
                ]
            },
            {"id": "60002", "key": "banner", "experimentIds": [], "rolloutId": "70002", "variables": []}
        ],
        "experiments": [{
            "id": "50001", "key": "checkout_test", "layerId": "80001", "status": "Running",
            "audienceIds": ["30001"], "audienceConditions": ["or", "30001"], "forcedVariations": {},
            "trafficAllocation": [{"entityId": "90001", "endOfRange": 10000}],
            "variations": [{
                "id": "90001", "key": "treatment", "featureEnabled": true,
                "variables": [
                    {"id": "61001", "value": format!("blue-{revision}")},
                    {"id": "61002", "value": "25"},
                    {"id": "61003", "value": "0.75"},
                    {"id": "61004", "value": "{\"tier\":\"pro\"}"}
                ]
            }]
        }],
        "rollouts": [
            {"id": "70001", "experiments": [{
                "id": "71001", "key": "checkout_rollout", "layerId": "72001", "status": "Running",
                "audienceIds": [], "forcedVariations": {},
                "trafficAllocation": [{"entityId": "73001", "endOfRange": 10000}],
                "variations": [{"id": "73001", "key": "on", "featureEnabled": true, "variables": []}]
            }]},
            {"id": "70002", "experiments": [{
                "id": "71002", "key": "banner_rollout", "layerId": "72002", "status": "Running",
                "audienceIds": [], "forcedVariations": {},
                "trafficAllocation": [{"entityId": "74001", "endOfRange": 10000}],
                "variations": [{"id": "74001", "key": "banner_on", "featureEnabled": true, "variables": []}]
            }]}
        ]
    })
}

/// [`datafile_json`] as text.
pub fn datafile(revision: &str) -> String {
    datafile_json(revision).to_string()
}
