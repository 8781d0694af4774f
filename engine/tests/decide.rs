//! Decide behaviour: the JS SDK's test vectors and quirks, options, sticky bucketing, events.

use std::collections::HashMap;
use std::sync::Mutex;

use flagbridge_engine::{
    ClientInfo, DatafileError, DecideOption, DecideOptions, Decider, DecisionSource,
    ForcedVariations, ParseOptions, ProjectConfig, UserContext, UserProfile, UserProfileService,
    EU_ENDPOINT, US_ENDPOINT,
};
use serde_json::{json, Value};

/// python-sdk `tests/base.py` `config_dict` (test_experiment 111127 and group 19228), with flags
/// added so that `decide` reaches each experiment.
fn python_config() -> ProjectConfig {
    let df = json!({
        "version": "4", "accountId": "12001", "projectId": "111001", "revision": "42",
        "attributes": [{"key": "test_attribute", "id": "111094"}],
        "audiences": [],
        "events": [{"key": "test_event", "experimentIds": ["111127"], "id": "111095"}],
        "experiments": [{
            "key": "test_experiment", "status": "Running", "forcedVariations": {"user_1": "control", "user_2": "control"},
            "layerId": "111182", "audienceIds": [], "id": "111127",
            "trafficAllocation": [{"entityId": "111128", "endOfRange": 4000}, {"entityId": "", "endOfRange": 5000}, {"entityId": "111129", "endOfRange": 9000}],
            "variations": [{"key": "control", "id": "111128", "featureEnabled": true}, {"key": "variation", "id": "111129", "featureEnabled": true}]
        }],
        "groups": [{
            "id": "19228", "policy": "random",
            "trafficAllocation": [{"entityId": "32222", "endOfRange": 3000}, {"entityId": "32223", "endOfRange": 7500}],
            "experiments": [
                {"id": "32222", "key": "group_exp_1", "status": "Running", "audienceIds": [], "layerId": "111183", "forcedVariations": {},
                 "variations": [{"key": "group_exp_1_control", "id": "28901", "featureEnabled": true}, {"key": "group_exp_1_variation", "id": "28902", "featureEnabled": true}],
                 "trafficAllocation": [{"entityId": "28901", "endOfRange": 3000}, {"entityId": "28902", "endOfRange": 9000}]},
                {"id": "32223", "key": "group_exp_2", "status": "Running", "audienceIds": [], "layerId": "111184", "forcedVariations": {},
                 "variations": [{"key": "group_exp_2_control", "id": "28905", "featureEnabled": true}, {"key": "group_exp_2_variation", "id": "28906", "featureEnabled": true}],
                 "trafficAllocation": [{"entityId": "28905", "endOfRange": 8000}, {"entityId": "28906", "endOfRange": 10000}]}
            ]
        }],
        "featureFlags": [
            {"id": "1", "key": "f_test", "experimentIds": ["111127"], "rolloutId": "", "variables": []},
            {"id": "2", "key": "f_group_1", "experimentIds": ["32222"], "rolloutId": "", "variables": []},
            {"id": "3", "key": "f_group_2", "experimentIds": ["32223"], "rolloutId": "", "variables": []}
        ],
        "rollouts": []
    });
    ProjectConfig::parse(&df.to_string()).unwrap()
}

#[test]
fn python_config_dict_expected_variations() {
    let config = python_config();
    let decider = Decider::new(&config);
    let table = [
        ("test_user", None),
        ("user_a", Some("111129")),
        ("user_b", Some("111128")),
        ("user_c", None),
        ("user_d", Some("111129")),
        ("user_e", Some("111128")),
        ("alice", Some("111129")),
        ("bob", None),
        ("charlie", Some("111129")),
        ("123456789", Some("111129")),
    ];
    for (user, expected) in table {
        let d = decider.decide(&UserContext::new(user), "f_test", DecideOptions::NONE);
        assert_eq!(d.variation_id(), expected, "{user}");
        let source = if expected.is_some() {
            DecisionSource::FeatureTest
        } else {
            DecisionSource::Rollout
        };
        assert_eq!(d.source(), source, "{user}");
    }
    let groups = [
        ("test_user", "f_group_2", Some("28905")),
        ("user_a", "f_group_2", Some("28905")),
        ("user_b", "f_group_1", Some("28901")),
        ("alice", "f_group_2", Some("28905")),
        ("test_user", "f_group_1", None),
        ("user_b", "f_group_2", None),
    ];
    for (user, flag, expected) in groups {
        let d = decider.decide(&UserContext::new(user), flag, DecideOptions::NONE);
        assert_eq!(d.variation_id(), expected, "{user} {flag}");
    }
    // Whitelisting by user id wins over traffic.
    let d = decider.decide(&UserContext::new("user_1"), "f_test", DecideOptions::NONE);
    assert_eq!(d.variation_key(), Some("control"));
    // The bucketing id replaces the user id for hashing.
    let u = UserContext::new("bob").with_attribute("$opt_bucketing_id", "user_a");
    assert_eq!(
        decider
            .decide(&u, "f_test", DecideOptions::NONE)
            .variation_id(),
        Some("111129")
    );
}

/// The legacy experiment API decides one experiment as the flag flow decides that rule: the
/// same variations (groups and whitelisting included), an impression only with a variation.
#[test]
fn decide_experiment_matches_the_rule_of_the_flag_flow() {
    let config = python_config();
    let decider = Decider::new(&config);
    let cases = [
        ("test_experiment", "f_test"),
        ("group_exp_1", "f_group_1"),
        ("group_exp_2", "f_group_2"),
    ];
    let client = ClientInfo {
        client_name: "t".into(),
        client_version: "0".into(),
    };
    let mut with_variation = 0;
    for user in [
        "test_user",
        "user_a",
        "user_b",
        "user_c",
        "alice",
        "bob",
        "user_1",
        "123456789",
    ] {
        let u = UserContext::new(user);
        for (experiment, flag) in cases {
            let e = decider
                .decide_experiment(&u, experiment, DecideOptions::NONE)
                .unwrap();
            let f = decider.decide(&u, flag, DecideOptions::NONE);
            // Each flag has only this experiment (no rollout): same variation.
            assert_eq!(e.variation_id(), f.variation_id(), "{user} {experiment}");
            assert_eq!(e.flag_key(), "");
            assert_eq!(e.has_impression(), e.variation_id().is_some());
            if let Some(batch) = e.impression_event(&u, &client, 0, "id") {
                with_variation += 1;
                let v = serde_json::to_value(&batch).unwrap();
                let d = &v["visitors"][0]["snapshots"][0]["decisions"][0];
                assert_eq!(d["experiment_id"], json!(config_experiment_id(experiment)));
                assert_eq!(d["metadata"]["rule_key"], experiment);
                assert_eq!(d["variation_id"], json!(e.variation_id()));
            }
            let quiet = decider
                .decide_experiment(&u, experiment, DecideOption::DisableDecisionEvent.into())
                .unwrap();
            assert!(!quiet.has_impression());
        }
    }
    assert!(with_variation >= 5, "{with_variation}");
    assert!(decider
        .decide_experiment(&UserContext::new("u"), "nope", DecideOptions::NONE)
        .is_none());
    // Whitelisting: user_1 is forced into control.
    let d = decider
        .decide_experiment(
            &UserContext::new("user_1"),
            "test_experiment",
            DecideOptions::NONE,
        )
        .unwrap();
    assert_eq!(d.variation_key(), Some("control"));
}

fn config_experiment_id(key: &str) -> &'static str {
    match key {
        "test_experiment" => "111127",
        "group_exp_1" => "32222",
        _ => "32223",
    }
}

#[test]
fn reasons_only_with_include_reasons_and_errors_always() {
    let config = python_config();
    let decider = Decider::new(&config);
    let user = UserContext::new("user_a");
    assert!(decider
        .decide(&user, "f_test", DecideOptions::NONE)
        .reasons()
        .is_empty());
    let d = decider.decide(&user, "f_test", DecideOption::IncludeReasons.into());
    assert!(d
        .reasons()
        .iter()
        .any(|r| r == "User user_a is in variation variation of experiment test_experiment."));
    let unknown = decider.decide(&user, "nope", DecideOptions::NONE);
    assert!(unknown.is_error());
    assert_eq!(unknown.reasons(), ["No flag was found for key \"nope\"."]);
    assert!(!unknown.has_impression());
    assert_eq!(unknown.variation_key(), None);
}

#[derive(Default)]
struct MemoryUps {
    profiles: Mutex<HashMap<String, UserProfile>>,
    lookups: Mutex<usize>,
    saves: Mutex<usize>,
}

impl UserProfileService for MemoryUps {
    fn lookup(&self, user_id: &str) -> Option<UserProfile> {
        *self.lookups.lock().unwrap() += 1;
        self.profiles.lock().unwrap().get(user_id).cloned()
    }
    fn save(&self, profile: &UserProfile) {
        *self.saves.lock().unwrap() += 1;
        self.profiles
            .lock()
            .unwrap()
            .insert(profile.user_id.clone(), profile.clone());
    }
}

#[test]
fn user_profile_is_looked_up_once_and_saved_once_when_changed() {
    let config = python_config();
    let ups = MemoryUps::default();
    let decider = Decider::new(&config).user_profile_service(&ups);
    let user = UserContext::new("user_a");
    let all = decider.decide_all(&user, DecideOptions::NONE);
    assert_eq!(all.len(), 3);
    assert_eq!(
        (*ups.lookups.lock().unwrap(), *ups.saves.lock().unwrap()),
        (1, 1)
    );
    let saved = ups.profiles.lock().unwrap().get("user_a").cloned().unwrap();
    assert_eq!(
        saved
            .experiment_bucket_map
            .get("111127")
            .map(String::as_str),
        Some("111129")
    );

    // Sticky: the stored variation wins over traffic, and nothing new is saved.
    ups.profiles
        .lock()
        .unwrap()
        .get_mut("user_a")
        .unwrap()
        .experiment_bucket_map
        .insert("111127".into(), "111128".into());
    let d = decider.decide(&user, "f_test", DecideOption::IncludeReasons.into());
    assert_eq!(d.variation_id(), Some("111128"));
    assert!(d.reasons()[0].starts_with("Returning previously activated variation \"control\""));
    assert_eq!(
        (*ups.lookups.lock().unwrap(), *ups.saves.lock().unwrap()),
        (2, 1)
    );

    // IGNORE_USER_PROFILE_SERVICE: no lookup, no save, traffic decides.
    let d = decider.decide(
        &user,
        "f_test",
        DecideOption::IgnoreUserProfileService.into(),
    );
    assert_eq!(d.variation_id(), Some("111129"));
    assert_eq!(
        (*ups.lookups.lock().unwrap(), *ups.saves.lock().unwrap()),
        (2, 1)
    );
}

#[test]
fn experiment_bucket_map_of_the_user_overrides_the_profile() {
    let config = python_config();
    let mut user = UserContext::new("user_a");
    user.set_experiment_bucket_map(HashMap::from([(
        "111127".to_string(),
        "111128".to_string(),
    )]));
    let d = Decider::new(&config).decide(&user, "f_test", DecideOptions::NONE);
    assert_eq!(d.variation_id(), Some("111128"));
}

#[test]
fn legacy_forced_variations_apply_to_experiment_rules() {
    let config = python_config();
    let forced = ForcedVariations::new();
    assert!(forced.set_checked(&config, "user_a", "test_experiment", Some("control")));
    assert!(!forced.set_checked(&config, "user_a", "test_experiment", Some("nope")));
    assert!(!forced.set_checked(&config, "user_a", "nope", Some("control")));
    let decider = Decider::new(&config).forced_variations(&forced);
    let user = UserContext::new("user_a");
    assert_eq!(
        decider
            .decide(&user, "f_test", DecideOptions::NONE)
            .variation_key(),
        Some("control")
    );
    assert!(forced.set("user_a", "test_experiment", None));
    assert_eq!(
        decider
            .decide(&user, "f_test", DecideOptions::NONE)
            .variation_key(),
        Some("variation")
    );
}

fn rollout_config(
    send_flag_decisions: bool,
    bot_filtering: Option<bool>,
    region: &str,
) -> ProjectConfig {
    let mut df = json!({
        "version": "4", "accountId": "1", "projectId": "2", "revision": "3", "region": region,
        "sendFlagDecisions": send_flag_decisions,
        "attributes": [{"id": "100", "key": "plan"}],
        "featureFlags": [
            {"id": "f1", "key": "on_flag", "experimentIds": [], "rolloutId": "r1",
             "variables": [{"id": "v1", "key": "color", "type": "string", "defaultValue": "red"}]},
            {"id": "f2", "key": "off_flag", "experimentIds": [], "rolloutId": "r2", "variables": []}
        ],
        "rollouts": [
            {"id": "r1", "experiments": [{"id": "rule1", "key": "everyone", "layerId": "l1", "status": "Running", "audienceIds": [],
              "variations": [{"id": "11", "key": "on", "featureEnabled": true, "variables": [{"id": "v1", "value": "blue"}]}],
              "trafficAllocation": [{"entityId": "11", "endOfRange": 10000}]}]},
            {"id": "r2", "experiments": [{"id": "rule2", "key": "nobody", "layerId": "l2", "status": "Running", "audienceIds": [],
              "variations": [{"id": "12", "key": "off", "featureEnabled": false}],
              "trafficAllocation": [{"entityId": "12", "endOfRange": 10000}]}]}
        ]
    });
    if let Some(b) = bot_filtering {
        df["botFiltering"] = json!(b);
    }
    ProjectConfig::parse(&df.to_string()).unwrap()
}

#[test]
fn options_shape_the_decisions() {
    let config = rollout_config(true, None, "US");
    let decider = Decider::new(&config);
    let user = UserContext::new("u");
    let d = decider.decide(&user, "on_flag", DecideOptions::NONE);
    assert_eq!(
        d.variables().collect::<Vec<_>>(),
        [("color", &json!("blue"))]
    );
    let d = decider.decide(&user, "on_flag", DecideOption::ExcludeVariables.into());
    assert_eq!(d.variables().count(), 0);
    let d = decider.decide(&user, "off_flag", DecideOptions::NONE);
    assert!(!d.enabled());
    // ENABLED_FLAGS_ONLY: ignored by decide, marks the disabled ones elsewhere.
    let d = decider.decide(&user, "off_flag", DecideOption::EnabledFlagsOnly.into());
    assert!(!d.omitted_from_result());
    let all = decider.decide_all(&user, DecideOption::EnabledFlagsOnly.into());
    let omitted: Vec<_> = all
        .iter()
        .map(|d| (d.flag_key(), d.omitted_from_result()))
        .collect();
    assert_eq!(omitted, [("on_flag", false), ("off_flag", true)]);
    assert!(
        all[1].has_impression(),
        "the omitted decision still sends its impression"
    );
    // DISABLE_DECISION_EVENT, directly or through the decider's default options.
    assert!(!decider
        .decide(&user, "on_flag", DecideOption::DisableDecisionEvent.into())
        .has_impression());
    let quiet = Decider::new(&config).default_options(DecideOption::DisableDecisionEvent.into());
    assert!(!quiet
        .decide(&user, "on_flag", DecideOptions::NONE)
        .has_impression());
    // Rollout decisions send impressions only with sendFlagDecisions.
    let config = rollout_config(false, None, "US");
    assert!(!Decider::new(&config)
        .decide(&user, "on_flag", DecideOptions::NONE)
        .has_impression());
}

#[test]
fn impression_payload() {
    let client = ClientInfo {
        client_name: "flagbridge".into(),
        client_version: "0.1.0".into(),
    };
    let user = UserContext::new("u1")
        .with_attribute("plan", "pro")
        .with_attribute("unknown", "dropped")
        .with_attribute("$opt_user_agent", "bot")
        .with_attribute("nothing", flagbridge_engine::AttributeValue::Null);
    let config = rollout_config(true, Some(false), "EU");
    let d = Decider::new(&config).decide(&user, "on_flag", DecideOptions::NONE);
    let batch = d
        .impression_event(&user, &client, 1_700_000_000_000, "uuid-1")
        .unwrap();
    assert_eq!(batch.endpoint(), EU_ENDPOINT);
    let v = serde_json::to_value(&batch).unwrap();
    assert_eq!(
        v,
        json!({
            "account_id": "1", "project_id": "2", "revision": "3", "client_name": "flagbridge",
            "client_version": "0.1.0", "anonymize_ip": false, "enrich_decisions": true,
            "visitors": [{
                "visitor_id": "u1",
                "attributes": [
                    {"entity_id": "100", "key": "plan", "type": "custom", "value": "pro"},
                    {"entity_id": "$opt_user_agent", "key": "$opt_user_agent", "type": "custom", "value": "bot"},
                    {"entity_id": "$opt_bot_filtering", "key": "$opt_bot_filtering", "type": "custom", "value": false}
                ],
                "snapshots": [{
                    "decisions": [{"campaign_id": "l1", "experiment_id": "rule1", "variation_id": "11",
                                   "metadata": {"flag_key": "on_flag", "rule_key": "everyone", "rule_type": "rollout",
                                                "variation_key": "on", "enabled": true}}],
                    "events": [{"entity_id": "l1", "key": "campaign_activated", "timestamp": 1_700_000_000_000u64, "uuid": "uuid-1"}]
                }]
            }]
        })
    );
    // botFiltering absent: no attribute; region other than EU: US endpoint.
    let config = rollout_config(true, None, "");
    let d = Decider::new(&config).decide(&user, "on_flag", DecideOptions::NONE);
    let batch = d.impression_event(&user, &client, 0, "uuid-2").unwrap();
    assert_eq!(batch.endpoint(), US_ENDPOINT);
    assert!(batch.visitors[0]
        .attributes
        .iter()
        .all(|a| a.key != "$opt_bot_filtering"));
    assert_eq!(batch.context_key(), batch.clone().context_key());

    let n = serde_json::to_value(d.notification(&user)).unwrap();
    assert_eq!(n["flagKey"], "on_flag");
    assert_eq!(n["variables"], json!({"color": "blue"}));
    assert_eq!(n["decisionEventDispatched"], true);
    assert_eq!(n["experimentId"], "rule1");
    assert_eq!(n["variationId"], "11");
    assert_eq!(n["userId"], "u1");
    assert_eq!(n["source"], "rollout");
    assert_eq!(n["attributes"]["plan"], "pro");
}

#[test]
fn conversion_payload() {
    let config = python_config();
    let decider = Decider::new(&config);
    let user = UserContext::new("u").with_attribute("test_attribute", 5i64);
    assert!(decider.track(&user, "nope", None).is_none());
    let tags = json!({"revenue": "4200", "value": 1.5, "category": "shoes"});
    let c = decider
        .track(&user, "test_event", tags.as_object())
        .unwrap();
    assert_eq!(c.event_key(), "test_event");
    let batch = c.to_event_batch(
        &user,
        &ClientInfo {
            client_name: "x".into(),
            client_version: "1".into(),
        },
        7,
        "id",
    );
    let event = serde_json::to_value(&batch.visitors[0].snapshots[0]).unwrap();
    assert_eq!(
        event,
        json!({"events": [{"entity_id": "111095", "key": "test_event", "timestamp": 7, "uuid": "id",
                            "revenue": 4200, "value": 1.5, "tags": tags}]})
    );
}

/// Two rules of one flag share the variation key "v" (ids "20" then "10").
fn shared_key_config() -> ProjectConfig {
    let exp = |id: &str, key: &str, var_id: &str, enabled: bool| {
        json!({"id": id, "key": key, "layerId": "l", "status": "Running", "audienceIds": [],
               "variations": [{"id": var_id, "key": "v", "featureEnabled": enabled}],
               "trafficAllocation": []})
    };
    let df = json!({
        "version": "4", "accountId": "1", "projectId": "2", "revision": "3",
        "experiments": [exp("e1", "first", "20", true), exp("e2", "second", "10", false)],
        "featureFlags": [{"id": "f", "key": "flag", "experimentIds": ["e1", "e2"], "rolloutId": "", "variables": []}]
    });
    ProjectConfig::parse(&df.to_string()).unwrap()
}

#[test]
fn flag_level_forced_decision_picks_the_lowest_numeric_variation_id() {
    let config = shared_key_config();
    let mut user = UserContext::new("u");
    user.set_forced_decision("flag", None, "v");
    let d = Decider::new(&config).decide(&user, "flag", DecideOptions::NONE);
    assert_eq!(d.variation_id(), Some("10"));
    assert_eq!(d.rule_key(), None);
    assert_eq!(d.source(), DecisionSource::FeatureTest);
    assert!(d.has_impression());
}

#[test]
fn rule_level_forced_decision_uses_the_rules_own_variation() {
    let config = shared_key_config();
    let mut user = UserContext::new("u");
    user.set_forced_decision("flag", Some("first"), "v");
    let d = Decider::new(&config).decide(&user, "flag", DecideOption::IncludeReasons.into());
    assert_eq!(
        (d.variation_id(), d.rule_key()),
        (Some("20"), Some("first"))
    );
    assert_eq!(
        d.reasons(),
        ["Variation (v) is mapped to flag (flag), rule (first) and user (u) in the forced decision map."]
    );
    user.set_forced_decision("flag", Some("first"), "missing");
    let d = Decider::new(&config).decide(&user, "flag", DecideOption::IncludeReasons.into());
    assert_eq!(
        d.reasons()[0],
        "Invalid variation is mapped to flag (flag), rule (first) and user (u) in the forced decision map."
    );
}

#[test]
fn datafile_errors_and_tolerance() {
    let base = |flags: Value, extra: Value| {
        let mut df = json!({"version": "4", "accountId": "1", "projectId": "2", "revision": "3", "featureFlags": flags});
        for (k, v) in extra.as_object().unwrap() {
            df[k] = v.clone();
        }
        df.to_string()
    };
    // An experiment id that names nothing rejects the datafile (JavaScript).
    let bad = base(
        json!([{"id": "f", "key": "k", "experimentIds": ["missing"], "rolloutId": ""}]),
        json!({}),
    );
    match ProjectConfig::parse(&bad) {
        Err(DatafileError::Invalid { path, .. }) => {
            assert_eq!(path, "featureFlags[0].experimentIds[0]")
        }
        other => panic!("unexpected {other:?}"),
    }
    // A rollout id that names nothing means no rollout.
    let ok = base(
        json!([{"id": "f", "key": "k", "experimentIds": [], "rolloutId": "missing"}]),
        json!({}),
    );
    let config = ProjectConfig::parse(&ok).unwrap();
    let d = Decider::new(&config).decide(
        &UserContext::new("u"),
        "k",
        DecideOption::IncludeReasons.into(),
    );
    assert_eq!(d.variation_key(), None);
    assert!(d
        .reasons()
        .iter()
        .any(|r| r == "Invalid rollout ID missing attached to feature k"));
    // Legacy audience conditions that are not JSON reject the datafile, as JSON.parse does.
    let bad = base(
        json!([]),
        json!({"audiences": [{"id": "a", "name": "n", "conditions": "[oops"}]}),
    );
    assert!(matches!(
        ProjectConfig::parse(&bad),
        Err(DatafileError::Invalid { .. })
    ));
    // Unknown fields, condition types, match types and operators do not fail.
    let odd = base(
        json!([]),
        json!({"newTopLevel": {"x": 1}, "typedAudiences": [{"id": "t", "name": "n", "conditions": ["xor", {"type": "future", "match": "regex"}]}]}),
    );
    let config = ProjectConfig::parse(&odd).unwrap();
    assert_eq!(config.evaluate_audience("t", &UserContext::new("u")), None);
    assert_eq!(config.audiences().collect::<Vec<_>>(), [("t", "n")]);
    // Byte input, and the original text only when asked for.
    let config = ProjectConfig::from_slice(odd.as_bytes()).unwrap();
    assert_eq!(config.datafile(), "");
    let config = ProjectConfig::parse_with(&odd, ParseOptions::new().keep_text(true)).unwrap();
    assert_eq!(config.datafile(), odd);
    assert_eq!(
        (config.region(), config.sdk_key(), config.environment_key()),
        ("US", "", "")
    );
}

#[test]
fn typed_audiences_win_over_legacy_ones() {
    let df = json!({
        "version": "4", "accountId": "1", "projectId": "2", "revision": "3",
        "audiences": [
            {"id": "a", "name": "legacy", "conditions": "[\"or\", {\"name\": \"x\", \"type\": \"custom_attribute\", \"value\": \"legacy\"}]"},
            {"id": "$opt_dummy_audience", "name": "dummy", "conditions": "[]"}
        ],
        "typedAudiences": [{"id": "a", "name": "typed", "conditions": ["or", {"name": "x", "type": "custom_attribute", "match": "gt", "value": 1}]}]
    });
    let config = ProjectConfig::parse(&df.to_string()).unwrap();
    assert_eq!(config.audiences().collect::<Vec<_>>(), [("a", "typed")]);
    let user = UserContext::new("u").with_attribute("x", 2i64);
    assert_eq!(config.evaluate_audience("a", &user), Some(true));
    let legacy_user = UserContext::new("u").with_attribute("x", "legacy");
    assert_eq!(config.evaluate_audience("a", &legacy_user), None);
}

#[test]
fn a_decision_names_its_flag_by_index_in_the_config() {
    let config = python_config();
    let decider = Decider::new(&config);
    let user = UserContext::new("user_1");
    let keys: Vec<String> = (0..)
        .map_while(|i| config.flag_key_at(i).map(str::to_owned))
        .collect();
    assert_eq!(keys.len(), config.optimizely_config().features_map.len());
    assert!(keys.len() >= 2);
    for key in &keys {
        let decision = decider.decide(&user, key, DecideOptions::NONE);
        let index = decision.flag_index().expect("a known flag has an index");
        assert_eq!(config.flag_key_at(index), Some(&key[..]));
    }
    let unknown = decider.decide(&user, "no_such_flag", DecideOptions::NONE);
    assert_eq!(unknown.flag_index(), None);
    assert_eq!(config.flag_key_at(u32::MAX), None);
}

/// Two flags that declare the same variable id with different types (the datafile allows it):
/// each flag reads a variation's value as its own variable's type, as JavaScript casts by the
/// flag's variable; the shared id must not make one flag see the other's type.
#[test]
fn a_variable_id_reused_with_another_type_reads_as_each_flags_type() {
    let rollout = |id: &str, variation: &str| {
        json!({"id": id, "experiments": [{
            "id": format!("{id}-rule"), "key": format!("{id}-everyone"), "layerId": format!("{id}-layer"),
            "status": "Running", "audienceIds": [],
            "trafficAllocation": [{"entityId": variation, "endOfRange": 10000}],
            "variations": [{"id": variation, "key": format!("{variation}-on"), "featureEnabled": true,
                            "variables": [{"id": "900", "value": "42"}]}]
        }]})
    };
    let df = json!({
        "version": "4", "accountId": "1", "projectId": "2", "revision": "3",
        "featureFlags": [
            {"id": "f1", "key": "numbers", "experimentIds": [], "rolloutId": "r1",
             "variables": [{"id": "900", "key": "n", "type": "integer", "defaultValue": "1"}]},
            {"id": "f2", "key": "words", "experimentIds": [], "rolloutId": "r2",
             "variables": [{"id": "900", "key": "s", "type": "string", "defaultValue": "one"}]}
        ],
        "rollouts": [rollout("r1", "701"), rollout("r2", "702")]
    });
    let config = ProjectConfig::parse(&df.to_string()).unwrap();
    let user = UserContext::new("u1");
    let decider = Decider::new(&config);
    let numbers = decider.decide(&user, "numbers", DecideOptions::NONE);
    let words = decider.decide(&user, "words", DecideOptions::NONE);
    assert!(numbers.enabled() && words.enabled());
    assert_eq!(numbers.variables().collect::<Vec<_>>(), [("n", &json!(42))]);
    assert_eq!(words.variables().collect::<Vec<_>>(), [("s", &json!("42"))]);
}

/// A decision source prints as the impression's `rule_type`.
#[test]
fn decision_source_displays_as_rule_type() {
    let shown: Vec<String> = [
        DecisionSource::FeatureTest,
        DecisionSource::Rollout,
        DecisionSource::Holdout,
        DecisionSource::Experiment,
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    assert_eq!(shown, ["feature-test", "rollout", "holdout", "experiment"]);
}
