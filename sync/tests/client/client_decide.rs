//! Deciding through the Client: default options, user profile service, legacy forced
//! variations, user contexts, decide_for_keys.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use flagbridge_engine::{
    DecideOption, DecideOptions, UserContext, UserProfile, UserProfileService,
};
use flagbridge_sync::testing::datafile;
use flagbridge_sync::Client;

async fn start(builder: flagbridge_sync::ClientBuilder) -> Client {
    builder
        .datafile(datafile("7"))
        .events_enabled(false)
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn default_decide_options_are_merged_into_every_call() {
    let plain = start(Client::builder()).await;
    let user = UserContext::new("u1");
    assert!(plain
        .decide(&user, "checkout", DecideOptions::NONE)
        .reasons
        .is_empty());
    let with_reasons = start(
        Client::builder()
            .default_decide_options(DecideOptions::NONE.with(DecideOption::IncludeReasons)),
    )
    .await;
    assert!(!with_reasons
        .decide(&user, "checkout", DecideOptions::NONE)
        .reasons
        .is_empty());
    let d = with_reasons.decide(
        &user,
        "checkout",
        DecideOptions::NONE.with(DecideOption::ExcludeVariables),
    );
    assert!(d.variables.is_empty() && !d.reasons.is_empty());
}

#[derive(Default)]
struct MemoryProfiles {
    profiles: Mutex<HashMap<String, UserProfile>>,
    lookups: Mutex<u32>,
}

impl UserProfileService for MemoryProfiles {
    fn lookup(&self, user_id: &str) -> Option<UserProfile> {
        *self.lookups.lock().unwrap() += 1;
        self.profiles.lock().unwrap().get(user_id).cloned()
    }
    fn save(&self, profile: &UserProfile) {
        self.profiles
            .lock()
            .unwrap()
            .insert(profile.user_id.clone(), profile.clone());
    }
}

#[tokio::test]
async fn user_profile_service_is_looked_up_and_saved() {
    let ups = Arc::new(MemoryProfiles::default());
    let client = start(Client::builder().user_profile_service(ups.clone())).await;
    let user = client.create_user_context("u1");
    let mut pro = user.clone();
    pro.set_attribute("plan", "pro");
    assert_eq!(
        pro.decide("checkout", DecideOptions::NONE)
            .variation_key
            .as_deref(),
        Some("treatment")
    );
    let saved = ups.profiles.lock().unwrap().get("u1").cloned().unwrap();
    assert_eq!(
        saved.experiment_bucket_map.get("50001").map(String::as_str),
        Some("90001")
    );
    // Sticky: without the audience attribute the profile still gives the experiment variation.
    assert_eq!(
        user.decide("checkout", DecideOptions::NONE)
            .variation_key
            .as_deref(),
        Some("treatment")
    );
    let ignore = DecideOptions::NONE.with(DecideOption::IgnoreUserProfileService);
    assert_eq!(
        user.decide("checkout", ignore).variation_key.as_deref(),
        Some("on")
    );
    assert!(*ups.lookups.lock().unwrap() >= 2);
}

#[tokio::test]
async fn legacy_forced_variations_apply_and_clear() {
    let client = start(Client::builder()).await;
    let user = UserContext::new("u2"); // not in the audience: the rollout decides
    assert_eq!(
        client
            .decide(&user, "checkout", DecideOptions::NONE)
            .variation_key
            .as_deref(),
        Some("on")
    );
    assert!(!client.set_forced_variation("u2", "checkout_test", Some("nope")));
    assert!(!client.set_forced_variation("u2", "no_experiment", Some("treatment")));
    assert!(client.set_forced_variation("u2", "checkout_test", Some("treatment")));
    assert_eq!(
        client.forced_variation("u2", "checkout_test").as_deref(),
        Some("treatment")
    );
    assert_eq!(
        client
            .decide(&user, "checkout", DecideOptions::NONE)
            .variation_key
            .as_deref(),
        Some("treatment")
    );
    assert_eq!(
        client
            .decide(&UserContext::new("u3"), "checkout", DecideOptions::NONE)
            .variation_key
            .as_deref(),
        Some("on")
    );
    assert!(client.set_forced_variation("u2", "checkout_test", None));
    assert_eq!(client.forced_variation("u2", "checkout_test"), None);
    assert_eq!(
        client
            .decide(&user, "checkout", DecideOptions::NONE)
            .variation_key
            .as_deref(),
        Some("on")
    );
}

#[tokio::test]
async fn user_context_forced_decisions_and_decide_for_keys() {
    let client = start(Client::builder()).await;
    let mut user = client.create_user_context("u4");
    user.set_forced_decision("banner", None, "banner_on");
    let decisions = user.decide_for_keys(&["banner", "checkout", "missing"], DecideOptions::NONE);
    let keys: Vec<(&str, bool)> = decisions
        .iter()
        .map(|d| (d.flag_key.as_str(), d.enabled))
        .collect();
    assert_eq!(
        keys,
        vec![("banner", true), ("checkout", true), ("missing", false)]
    );
    assert_eq!(
        decisions[0].rule_key, None,
        "a flag-level forced decision has no rule"
    );
    let enabled_only = DecideOptions::NONE.with(DecideOption::EnabledFlagsOnly);
    // As in the JS SDK, an unknown key's error decision is kept even with ENABLED_FLAGS_ONLY.
    let kept: Vec<String> = user
        .decide_for_keys(&["banner", "missing"], enabled_only)
        .into_iter()
        .map(|d| d.flag_key)
        .collect();
    assert_eq!(kept, vec!["banner".to_owned(), "missing".to_owned()]);
    assert!(user.remove_forced_decision("banner", None));
    assert_eq!(
        user.decide("banner", DecideOptions::NONE)
            .rule_key
            .as_deref(),
        Some("banner_rollout")
    );
    assert_eq!(client.optimizely_config().revision, "7");
}
