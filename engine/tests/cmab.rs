//! CMAB rules in the async API (as the JS SDK 6.6.1 decides them): the engine asks for a
//! prediction after the traffic check and finishes the decision with the answer; the sync API
//! keeps JavaScript's "not supported" fall-through. Datafile:
//! `datafile-fixtures/remote/cmab_odp.json`.

use flagbridge_engine::{
    AsyncKeys, AttributeValue, ClientInfo, CmabAnswer, DecideOption, DecideOptions, Decider,
    ProjectConfig, UserContext,
};

fn config() -> ProjectConfig {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../datafile-fixtures/remote/cmab_odp.json"
    );
    ProjectConfig::from_slice(&std::fs::read(path).expect("fixture")).expect("valid datafile")
}

fn user(id: &str) -> UserContext {
    let mut u = UserContext::new(id);
    u.set_attribute("age", 30);
    u.set_attribute("gender", "f");
    u.set_attribute("tier", 2);
    u.set_attribute("country", "fr");
    u
}

const REASONS: DecideOptions = DecideOptions::NONE.with(DecideOption::IncludeReasons);

/// A user in the 80 % CMAB traffic of `cmab_main`, found by asking the engine.
fn user_in_traffic(config: &ProjectConfig) -> UserContext {
    let decider = Decider::new(config);
    (0..100)
        .map(|i| user(&format!("user-{i}")))
        .find(|u| {
            !decider
                .start_async(u, AsyncKeys::One("f_cmab"), REASONS)
                .pending(u)
                .is_empty()
        })
        .expect("some user is in the CMAB traffic")
}

#[test]
fn sync_api_skips_cmab_rules() {
    let config = config();
    let u = user_in_traffic(&config);
    let d = Decider::new(&config).decide(&u, "f_cmab", REASONS);
    assert!(d
        .reasons()
        .iter()
        .any(|r| r == "CMAB is not supported in sync mode."));
    assert_eq!(d.rule_key(), Some("r1_everyone"));
    assert_eq!(d.cmab_uuid(), None);
}

#[test]
fn request_carries_rule_and_filtered_attributes_in_object_key_order() {
    let config = config();
    let u = user_in_traffic(&config);
    let decider = Decider::new(&config);
    let mut call = decider.start_async(&u, AsyncKeys::One("f_cmab"), REASONS);
    let pending = call.pending(&u);
    assert_eq!(pending.len(), 1);
    let r = &pending[0];
    assert_eq!(
        (r.rule_id, r.rule_key, r.flag_key),
        ("5001", "cmab_main", "f_cmab")
    );
    // attributeIds ["100","101","7"]: integer-like keys come out ascending; country is not named.
    let ids: Vec<&str> = r
        .attributes()
        .expect("known ids")
        .iter()
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(ids, ["7", "100", "101"]);
}

/// A change to a user.
type Edit = dyn Fn(&mut UserContext);

/// The user of [`user`] without its `tier`.
fn without_tier(u: &mut UserContext) {
    let mut n = UserContext::new(u.user_id());
    for (k, v) in u.attributes().filter(|(k, _)| *k != "tier") {
        n.set_attribute(k, v.clone());
    }
    *u = n;
}

/// The cache compares the filtered attributes as JavaScript's `JSON.stringify` writes them
/// (it hashes that text): values written alike match, anything else does not, and
/// attributes outside `cmab.attributeIds` do not count.
#[test]
fn cached_attributes_match_when_their_json_text_would() {
    let config = config();
    let base = user_in_traffic(&config);
    let decider = Decider::new(&config);
    let saved = {
        let mut call = decider.start_async(&base, AsyncKeys::One("f_cmab"), REASONS);
        call.pending(&base)[0].attribute_values()
    };
    let same = |edit: &dyn Fn(&mut UserContext)| {
        let mut u = base.clone();
        edit(&mut u);
        let mut call = decider.start_async(&u, AsyncKeys::One("f_cmab"), REASONS);
        let pending = call.pending(&u);
        pending[0].same_attributes(&saved)
    };
    // base: age 30, gender "f", tier 2 (named by attributeIds), country "fr" (not named).
    let cases: [(&str, &Edit, bool); 10] = [
        ("unchanged", &|_| {}, true),
        (
            "30 as the float 30.0",
            &|u| u.set_attribute("age", 30.0),
            true,
        ),
        (
            "an attribute not named",
            &|u| u.set_attribute("country", "de"),
            true,
        ),
        ("another value", &|u| u.set_attribute("age", 31), false),
        ("30.5", &|u| u.set_attribute("age", 30.5), false),
        (
            "\"30\" as a string",
            &|u| u.set_attribute("age", "30"),
            false,
        ),
        ("another string", &|u| u.set_attribute("gender", "m"), false),
        ("true for 2", &|u| u.set_attribute("tier", true), false),
        ("removed", &without_tier, false),
        (
            "null",
            &|u| u.set_attribute("tier", AttributeValue::Null),
            false,
        ),
    ];
    for (name, edit, want) in cases {
        assert_eq!(same(edit), want, "{name}");
    }
}

/// `JSON.stringify` writes -0 as `0` and NaN and the infinities as `null`; absent and null
/// differ (an absent key is left out).
#[test]
fn cached_attributes_follow_json_for_odd_numbers() {
    let config = config();
    let decider = Decider::new(&config);
    let base = user_in_traffic(&config);
    let values = |edit: &dyn Fn(&mut UserContext)| {
        let mut u = base.clone();
        edit(&mut u);
        let mut call = decider.start_async(&u, AsyncKeys::One("f_cmab"), REASONS);
        let v = call.pending(&u)[0].attribute_values();
        (u, v)
    };
    let matches = |a: &dyn Fn(&mut UserContext), b: &dyn Fn(&mut UserContext)| {
        let (_, saved) = values(a);
        let (u, _) = values(b);
        let mut call = decider.start_async(&u, AsyncKeys::One("f_cmab"), REASONS);
        let pending = call.pending(&u);
        pending[0].same_attributes(&saved)
    };
    assert!(matches(&|u| u.set_attribute("tier", 0), &|u| u
        .set_attribute("tier", -0.0)));
    assert!(matches(
        &|u| u.set_attribute("tier", AttributeValue::Null),
        &|u| u.set_attribute("tier", f64::NAN)
    ));
    assert!(matches(&|u| u.set_attribute("tier", f64::INFINITY), &|u| u
        .set_attribute("tier", AttributeValue::Null)));
    assert!(!matches(&without_tier, &|u| u
        .set_attribute("tier", AttributeValue::Null)));
    assert!(matches(&|u| u.set_attribute("tier", 1e20), &|u| u
        .set_attribute("tier", 100_000_000_000_000_000_000.0)));
    assert!(!matches(&|u| u.set_attribute("tier", 0.1 + 0.2), &|u| u
        .set_attribute("tier", 0.3)));
    assert!(matches(
        &|u| u.set_attribute("tier", 9_007_199_254_740_992i64),
        &|u| u.set_attribute("tier", 9_007_199_254_740_992.0)
    ));
}

#[test]
fn answer_finishes_the_decision_with_the_uuid_in_the_impression() {
    let config = config();
    let u = user_in_traffic(&config);
    let decider = Decider::new(&config);
    let mut call = decider.start_async(&u, AsyncKeys::One("f_cmab"), REASONS);
    let pending = call.pending(&u);
    call.answer(
        pending[0].slot,
        "5001",
        CmabAnswer::variation("60012", "uuid-1"),
    );
    assert!(call.pending(&u).is_empty());
    let decisions = call.finish(&u);
    let d = &decisions[0];
    assert_eq!(d.variation_key(), Some("cmab_b"));
    assert_eq!(d.rule_key(), Some("cmab_main"));
    assert_eq!(d.cmab_uuid(), Some("uuid-1"));
    // In the traffic, the bucketer's reasons are dropped; success adds the usual line only.
    assert!(!d.reasons().iter().any(|r| r.starts_with("Assigned bucket")));
    assert!(d
        .reasons()
        .iter()
        .any(|r| r.ends_with("is in variation cmab_b of experiment cmab_main.")));
    let info = ClientInfo {
        client_name: "t".into(),
        client_version: "0".into(),
    };
    let batch = d.impression_event(&u, &info, 0, "x").expect("impression");
    let md = &batch.visitors[0].snapshots[0].decisions[0].metadata;
    assert_eq!(md.cmab_uuid.as_deref(), Some("uuid-1"));
}

#[test]
fn failure_gives_an_error_decision_with_reasons_and_no_impression() {
    let config = config();
    let u = user_in_traffic(&config);
    let decider = Decider::new(&config);
    // Without INCLUDE_REASONS: the error decision still carries its reasons.
    let mut call = decider.start_async(&u, AsyncKeys::One("f_cmab"), DecideOptions::NONE);
    let slot = call.pending(&u)[0].slot;
    call.answer(slot, "5001", CmabAnswer::Failed);
    let d = call.finish(&u).remove(0);
    assert!(d.is_error());
    assert!(!d.enabled());
    assert_eq!(d.rule_key(), None);
    assert_eq!(d.variables().count(), 0);
    assert_eq!(
        d.reasons().last().map(String::as_str),
        Some("Failed to fetch CMAB data for experiment cmab_main.")
    );
    assert!(!d.has_impression());
}

#[test]
fn unknown_variation_goes_to_the_next_rule() {
    let config = config();
    let u = user_in_traffic(&config);
    let decider = Decider::new(&config);
    let mut call = decider.start_async(&u, AsyncKeys::One("f_cmab"), REASONS);
    let slot = call.pending(&u)[0].slot;
    call.answer(slot, "5001", CmabAnswer::variation("999999999", "uuid-2"));
    let d = call.finish(&u).remove(0);
    assert!(!d.is_error());
    assert_eq!(d.rule_key(), Some("r1_everyone"));
    assert_eq!(d.cmab_uuid(), None);
}

#[test]
fn unknown_attribute_id_asks_without_attributes_and_disabled_traffic_never_asks() {
    let config = config();
    let u = user("anyone");
    let decider = Decider::new(&config);
    let mut call = decider.start_async(&u, AsyncKeys::One("f_bad_attr"), REASONS);
    let pending = call.pending(&u);
    assert_eq!(pending.len(), 1);
    assert!(!pending[0].attributes_known());
    assert!(pending[0].attributes().is_none());
    // cmab without trafficAllocation: nobody is in, no request, the rollout decides.
    let mut call = decider.start_async(&u, AsyncKeys::One("f_no_traffic"), REASONS);
    assert!(call.pending(&u).is_empty());
    assert_eq!(call.finish(&u)[0].rule_key(), Some("r2_everyone"));
}

#[test]
fn decide_all_puts_failed_predictions_first_and_keeps_them_under_enabled_flags_only() {
    let config = config();
    let u = user_in_traffic(&config);
    let decider = Decider::new(&config);
    let options = DecideOptions::NONE.with(DecideOption::EnabledFlagsOnly);
    let mut call = decider.start_async(&u, AsyncKeys::All, options);
    loop {
        let pending = call.pending(&u);
        if pending.is_empty() {
            break;
        }
        for r in pending {
            call.answer(r.slot, r.rule_id, CmabAnswer::Failed);
        }
    }
    let decisions = call.finish(&u);
    let first = &decisions[0];
    assert!(first.is_error());
    assert!(!first.omitted_from_result());
    assert!(decisions
        .iter()
        .any(|d| d.flag_key() == "f_bad_attr" && d.is_error()));
}

#[test]
fn segments_to_check_follow_audiences_by_id_order() {
    let config = config();
    assert_eq!(
        config.odp_segments_to_check(),
        ["seg-c", "seg-a", "seg-b", "seg-d"]
    );
}

/// An object attribute (as `AttributeValue::from_json` keeps one) is sent as it is, and the
/// cache compares it as `JSON.stringify` with the replacer list writes it: only keys that are
/// attribute ids count, at every depth (`../shared/spec/remote-decisions.md`).
#[test]
fn object_attributes_are_sent_whole_and_compared_through_the_replacer_list() {
    let config = config();
    let decider = Decider::new(&config);
    let base = user_in_traffic(&config);
    let with_tier = |tier: serde_json::Value| {
        let mut u = base.clone();
        u.set_attribute(
            "tier",
            AttributeValue::from_json(&tier).expect("an object is an attribute value"),
        );
        u
    };
    let first = with_tier(serde_json::json!({"7": 1, "x": 2}));
    let mut call = decider.start_async(&first, AsyncKeys::One("f_cmab"), REASONS);
    let pending = call.pending(&first);
    let sent: Vec<(String, serde_json::Value)> = pending[0]
        .attributes()
        .expect("known ids")
        .into_iter()
        .map(|(id, v)| (id.to_string(), v))
        .collect();
    assert!(sent.contains(&("7".to_string(), serde_json::json!({"7": 1, "x": 2}))));
    let saved = pending[0].attribute_values();
    let same = |u: &UserContext| {
        let mut call = decider.start_async(u, AsyncKeys::One("f_cmab"), REASONS);
        let pending = call.pending(u);
        pending[0].same_attributes(&saved)
    };
    assert!(same(&first));
    // "x" is no attribute id: the replacer list drops it, so the text is the same.
    assert!(same(&with_tier(serde_json::json!({"7": 1, "x": 3}))));
    assert!(same(&with_tier(serde_json::json!({"x": 9, "7": 1}))));
    assert!(!same(&with_tier(serde_json::json!({"7": 2, "x": 2}))));
    assert!(!same(&with_tier(serde_json::json!([1]))));
    assert!(!same(&base));
}

/// Events leave object and array attributes out, as the SDK's `isAttributeValid` does.
#[test]
fn object_attributes_are_left_out_of_events() {
    let config = config();
    let mut u = user("u1");
    u.set_attribute(
        "tier",
        AttributeValue::from_json(&serde_json::json!({"a": 1})).expect("object"),
    );
    let mut out = Vec::new();
    flagbridge_engine::write_visitor_attributes(&config, &u, &mut out);
    let attributes: serde_json::Value = serde_json::from_slice(&out).expect("json");
    let keys: Vec<&str> = attributes
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|a| a["key"].as_str())
        .collect();
    assert!(keys.contains(&"age"), "{keys:?}");
    assert!(!keys.contains(&"tier"), "{keys:?}");
}

/// The predicted id is looked up datafile-wide, as JavaScript's `variationIdMap` does (the
/// last entity with that id wins; rollout rules come after experiments), then by key in the
/// rule or the flag: a rule whose id is reused later does not answer from its own list, and
/// another flag's variation is no variation (the next rule).
#[test]
fn predicted_ids_resolve_as_the_datafile_wide_map_does() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../datafile-fixtures/remote/cmab_odp.json"
    );
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path).expect("fixture")).expect("json");
    json["rollouts"][0]["experiments"][0]["variations"]
        .as_array_mut()
        .expect("variations")
        .push(serde_json::json!({
            "id": "60012", "key": "reused_60012", "featureEnabled": true, "variables": []
        }));
    let answer = |config: &ProjectConfig, id: &str| {
        let u = user_in_traffic(config);
        let decider = Decider::new(config);
        let mut call = decider.start_async(&u, AsyncKeys::One("f_cmab"), REASONS);
        let slot = call.pending(&u)[0].slot;
        call.answer(slot, "5001", CmabAnswer::variation(id, "uuid-3"));
        let d = call.finish(&u).remove(0);
        (
            d.variation_key().map(str::to_string),
            d.rule_key().map(str::to_string),
        )
    };
    let reused = ProjectConfig::parse(&json.to_string()).expect("valid");
    let main = Some("cmab_main".to_string());
    assert_eq!(
        answer(&reused, "60012"),
        (Some("reused_60012".into()), main.clone())
    );
    assert_eq!(
        answer(&reused, "60013"),
        (Some("cmab_off".into()), main.clone())
    );
    let config = config();
    assert_eq!(
        answer(&config, "60012"),
        (Some("cmab_b".into()), main.clone())
    );
    let rollout = (Some("r1_on".into()), Some("r1_everyone".into()));
    assert_eq!(
        answer(&config, "60102"),
        rollout,
        "plain_exp's, not f_cmab's"
    );
    assert_eq!(answer(&reused, "60102"), rollout);
    assert_ne!(answer(&reused, "60011"), rollout);
}
