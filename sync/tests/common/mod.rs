//! Shared helpers of the Brevo sync integration tests.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use compact_str::CompactString;
use flagbridge_sync::brevo::{
    ApiKey, AttrValue, AudienceSource, BrevoSyncBuilder, DecisionRecord, RateBudget, RuleSource,
    UserSnapshot,
};

use flagbridge_sync::testing::fake_brevo::{FakeBrevo, API_KEY};

/// Today's date (UTC) as `YYYY-MM-DD`, from the system's `date`.
pub fn today() -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "+%F"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A builder pointed at the fake server, with a temporary store and fast retries.
pub fn builder(fake: &FakeBrevo, store: &std::path::Path, per_second: u32) -> BrevoSyncBuilder {
    BrevoSyncBuilder::new()
        .api_key(ApiKey::new(API_KEY))
        .base_url(fake.url())
        .store_path(Some(store.to_path_buf()))
        .contacts_budget(RateBudget {
            per_second,
            per_hour: 1_000_000,
        })
        .events_budget(RateBudget {
            per_second,
            per_hour: 1_000_000,
        })
        .backoff(Duration::from_millis(5), Duration::from_millis(50))
        .request_timeout(Duration::from_secs(5))
        // Tests flush explicitly.
        .flush_interval(Duration::from_secs(3600))
}

/// Waits until the worker has folded in every decision queued so far. A thread's ring holds
/// at most 8,192 records: a test that pushes more than that from one thread in one go waits
/// here between chunks, so no record overflows whatever the machine's load.
pub async fn wait_processed(sync: &flagbridge_sync::brevo::BrevoSync) {
    loop {
        let c = sync.counters();
        if c.decisions_processed >= c.decisions_queued {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Audiences: "VIP" for plan=vip, "Mobile" for device=mobile.
pub struct TestAudiences;

impl AudienceSource for TestAudiences {
    fn matching_audiences(&self, user: &UserSnapshot) -> Vec<String> {
        let mut out = Vec::new();
        for (k, v) in user.attributes.iter() {
            match (&**k, v) {
                ("plan", AttrValue::String(s)) if &**s == "vip" => out.push("VIP".to_string()),
                ("device", AttrValue::String(s)) if &**s == "mobile" => {
                    out.push("Mobile".to_string())
                }
                _ => {}
            }
        }
        out
    }
}

pub fn user(email: &str, plan: &str, device: &str) -> Arc<UserSnapshot> {
    Arc::new(UserSnapshot {
        user_id: email.into(),
        contact: email.into(),
        attributes: vec![
            ("email".into(), AttrValue::String(email.into())),
            ("plan".into(), AttrValue::String(plan.into())),
            ("device".into(), AttrValue::String(device.into())),
        ]
        .into(),
        audiences: None,
    })
}

pub fn rollout(user: &Arc<UserSnapshot>, flag: &str, enabled: bool) -> DecisionRecord {
    DecisionRecord {
        user: Arc::clone(user),
        flag_key: CompactString::from(flag),
        enabled,
        source: RuleSource::Rollout,
        rule_key: Some("default-rollout".into()),
        variation_key: Some(if enabled { "on" } else { "off" }.into()),
    }
}

pub fn experiment(
    user: &Arc<UserSnapshot>,
    flag: &str,
    rule: &str,
    variation: &str,
    enabled: bool,
) -> DecisionRecord {
    DecisionRecord {
        user: Arc::clone(user),
        flag_key: CompactString::from(flag),
        enabled,
        source: RuleSource::Experiment,
        rule_key: Some(rule.into()),
        variation_key: Some(variation.into()),
    }
}
