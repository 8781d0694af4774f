//! Property tests: the parser and the evaluator never panic, whatever the input.

use flagbridge_engine::{
    AttributeValue, DecideOption, DecideOptions, Decider, ProjectConfig, UserContext,
};
use proptest::prelude::*;
use serde_json::{json, Value};

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[a-z0-9._$ -]{0,8}".prop_map(Value::String),
        prop_oneof![
            Just("and"),
            Just("or"),
            Just("not"),
            Just("exact"),
            Just("gt"),
            Just("semver_ge"),
            Just("custom_attribute"),
            Just("third_party_dimension"),
            Just("qualified"),
            Just("1.2.3-beta")
        ]
        .prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec(
                (
                    prop_oneof![
                        Just("name"),
                        Just("type"),
                        Just("match"),
                        Just("value"),
                        Just("x")
                    ],
                    inner
                ),
                0..5
            )
            .prop_map(|kv| Value::Object(
                kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
            )),
        ]
    })
}

fn arb_attribute() -> impl Strategy<Value = AttributeValue> {
    prop_oneof![
        "[a-z0-9.-]{0,6}".prop_map(AttributeValue::String),
        any::<bool>().prop_map(AttributeValue::Bool),
        any::<i64>().prop_map(AttributeValue::Int),
        any::<f64>().prop_map(AttributeValue::Float),
        Just(AttributeValue::Null),
    ]
}

/// Replace the node at a pseudo-random position of `v` with `with`.
fn mutate(v: &mut Value, mut pick: usize, with: Value) -> bool {
    if pick == 0 {
        *v = with;
        return true;
    }
    pick -= 1;
    match v {
        Value::Array(items) if !items.is_empty() => {
            let n = items.len();
            mutate(&mut items[pick % n], pick / n, with)
        }
        Value::Object(map) if !map.is_empty() => {
            let n = map.len();
            let key = map.keys().nth(pick % n).cloned().unwrap();
            mutate(map.get_mut(&key).unwrap(), pick / n, with)
        }
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_do_not_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = ProjectConfig::from_slice(&bytes);
    }

    #[test]
    fn arbitrary_text_does_not_panic(text in "\\PC{0,300}") {
        let _ = ProjectConfig::parse(&text);
    }

    #[test]
    fn mutated_datafiles_parse_or_fail_cleanly_and_decide(
        picks in proptest::collection::vec((any::<usize>(), arb_json()), 1..4),
        attrs in proptest::collection::vec(("[a-z_]{1,12}", arb_attribute()), 0..4),
    ) {
        let mut df: Value = serde_json::from_str(include_str!("data/edge.json")).unwrap();
        for (pick, with) in picks {
            mutate(&mut df, pick % 4096, with);
        }
        if let Ok(config) = ProjectConfig::parse(&df.to_string()) {
            let mut user = UserContext::new("u");
            for (k, v) in attrs {
                user.set_attribute(k, v);
            }
            let decider = Decider::new(&config);
            for d in decider.decide_all(&user, DecideOptions::NONE.with(DecideOption::IncludeReasons)) {
                let _ = d.variables().count();
                let _ = d.notification(&user);
            }
            let _ = serde_json::to_string(&config.optimizely_config()).unwrap();
        }
    }

    #[test]
    fn arbitrary_conditions_and_attributes_do_not_panic(
        conditions in arb_json(),
        audience_conditions in arb_json(),
        attrs in proptest::collection::vec((prop_oneof![Just("a".to_string()), Just("b".to_string()), "[a-z]{1,3}"], arb_attribute()), 0..5),
        segments in proptest::collection::vec("[a-z0-9.-]{0,6}", 0..3),
    ) {
        let df = json!({
            "version": "4", "accountId": "1", "projectId": "2", "revision": "3",
            "typedAudiences": [{"id": "t", "name": "t", "conditions": conditions}],
            "audiences": [{"id": "l", "name": "l", "conditions": audience_conditions.to_string()}],
            "experiments": [{"id": "e", "key": "e", "status": "Running", "audienceIds": ["t", "l"],
                "audienceConditions": audience_conditions,
                "variations": [{"id": "1", "key": "v", "featureEnabled": true}],
                "trafficAllocation": [{"entityId": "1", "endOfRange": 10000}]}],
            "featureFlags": [{"id": "f", "key": "f", "experimentIds": ["e"], "rolloutId": ""}]
        });
        let config = ProjectConfig::parse(&df.to_string()).unwrap();
        let mut user = UserContext::new("u");
        for (k, v) in attrs {
            user.set_attribute(k, v);
        }
        user.set_qualified_segments(segments);
        let _ = config.evaluate_audience("t", &user);
        let _ = config.evaluate_audience("l", &user);
        let _ = Decider::new(&config).decide(&user, "f", DecideOption::IncludeReasons.into());
    }
}
