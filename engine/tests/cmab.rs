//! CMAB rules in the async API (as the JS SDK 6.6.1 decides them): the engine asks for a
//! prediction after the traffic check and finishes the decision with the answer; the sync API
//! keeps JavaScript's "not supported" fall-through. Datafile:
//! `datafile-fixtures/remote/cmab_odp.json`.

use flagbridge_engine::{
    AsyncKeys, ClientInfo, CmabAnswer, DecideOption, DecideOptions, Decider, ProjectConfig,
    UserContext,
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
    assert_eq!(r.attributes_json(), r#"{"100":"f","101":30,"7":2}"#);
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
