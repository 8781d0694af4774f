//! `Client::activate_experiment` (the legacy experiment API behind `/v1/activate`): the
//! variation, and the experiment's impression at the event endpoint unless tracking is off.

use flagbridge_engine::UserContext;
use flagbridge_sync::testing::{datafile, FakeEventEndpoint};
use flagbridge_sync::{Client, EventStorage};

#[tokio::test(start_paused = true)]
async fn activate_experiment_sends_the_experiment_impression() {
    let endpoint = FakeEventEndpoint::start().await.unwrap();
    let client = Client::builder()
        .datafile(datafile("7"))
        .event_endpoint(endpoint.url())
        .event_storage(EventStorage::Memory)
        .start()
        .await
        .unwrap();
    let pro = UserContext::new("u1").with_attribute("plan", "pro");
    let free = UserContext::new("u2").with_attribute("plan", "free");
    assert_eq!(
        client.activate_experiment(&pro, "checkout_test", false),
        Some(Some("treatment".to_string()))
    );
    assert_eq!(
        client.activate_experiment(&pro, "checkout_test", true),
        Some(Some("treatment".to_string())),
        "getVariation: same answer, no impression"
    );
    assert_eq!(
        client.activate_experiment(&free, "checkout_test", false),
        Some(None)
    );
    assert_eq!(client.activate_experiment(&pro, "nope", false), None);
    client.flush().await;
    let decisions: Vec<serde_json::Value> = endpoint
        .batches()
        .iter()
        .flat_map(|b| b["visitors"].as_array().cloned().unwrap_or_default())
        .flat_map(|v| {
            v["snapshots"][0]["decisions"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(decisions.len(), 1, "{decisions:#?}");
    assert_eq!(decisions[0]["experiment_id"], "50001");
    assert_eq!(decisions[0]["variation_id"], "90001");
    assert_eq!(decisions[0]["metadata"]["rule_key"], "checkout_test");
    assert_eq!(decisions[0]["metadata"]["flag_key"], "");
    // As the SDKs' `activate` sends it (JS: `decisionSource: DECISION_SOURCES.EXPERIMENT`,
    // `enabled` passed as true), not as a flag's experiment rule.
    assert_eq!(decisions[0]["metadata"]["rule_type"], "experiment");
    assert_eq!(decisions[0]["metadata"]["enabled"], true);
    client.close().await;
}
