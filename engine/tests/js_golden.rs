//! Decisions, reasons, impressions and conversions on an edge-case datafile
//! (`tests/data/edge.json`: holdouts global/local with excludeTargetedDeliveries, an "fr" rule,
//! CMAB, a group, whitelisting, traffic holes and foreign variation ids, odd audiences, forced
//! decisions, a numeric flag key, EU region, bot filtering) against the output of the official
//! JavaScript SDK 6.6.1 for the same users (`tests/data/js/edge_golden.json`).
//!
//! Regenerate the goldens with the SDK version pinned in `tests/data/js/package-lock.json`:
//! `cd engine/tests/data/js && npm ci && node generate.js` (see `tests/data/js/README.md`).

use flagbridge_engine::{
    AttributeValue, ClientInfo, DecideOption, DecideOptions, Decider, DecisionSource, ParseOptions,
    ProjectConfig, UserContext,
};
use serde_json::{json, Value};

fn user_of(u: &Value) -> UserContext {
    let mut user = UserContext::new(u["id"].as_str().unwrap());
    for (k, v) in u["attributes"].as_object().unwrap() {
        user.set_attribute(k.clone(), AttributeValue::try_from(v).unwrap());
    }
    if let Some(segs) = u["segments"].as_array() {
        user.set_qualified_segments(
            segs.iter()
                .map(|s| s.as_str().unwrap().to_string())
                .collect(),
        );
    }
    for f in u["forced"].as_array().into_iter().flatten() {
        user.set_forced_decision(
            f[0].as_str().unwrap(),
            f[1].as_str(),
            f[2].as_str().unwrap(),
        );
    }
    user
}

/// Decisions compared at least (381 when written).
const MIN_DECISIONS: usize = 381;
/// Of which compared with their reasons at least (all 381 when written).
const MIN_WITH_REASONS: usize = 381;
/// Impression and conversion events compared at least (458 when written).
const MIN_EVENTS: usize = 458;

fn strip_event(mut e: Value) -> Value {
    for v in e["visitors"].as_array_mut().unwrap() {
        for s in v["snapshots"].as_array_mut().unwrap() {
            for ev in s["events"].as_array_mut().unwrap() {
                let ev = ev.as_object_mut().unwrap();
                ev.remove("uuid");
                ev.remove("timestamp");
            }
        }
    }
    e
}

#[test]
fn edge_datafile_matches_the_javascript_sdk() {
    let config = ProjectConfig::parse(include_str!("data/edge.json")).unwrap();
    let users: Vec<Value> = serde_json::from_str(include_str!("data/js/edge_users.json")).unwrap();
    let golden: Vec<Value> =
        serde_json::from_str(include_str!("data/js/edge_golden.json")).unwrap();
    assert_eq!(users.len(), golden.len());
    let decider = Decider::new(&config);
    let client = ClientInfo {
        client_name: "node-sdk".into(),
        client_version: "6.6.1".into(),
    };
    let options = DecideOptions::NONE.with(DecideOption::IncludeReasons);
    let (mut checked, mut with_reasons, mut event_count) = (0, 0, 0);
    for (u, expected) in users.iter().zip(&golden) {
        let user = user_of(u);
        let decisions = match u["keys"].as_array() {
            Some(keys) => {
                let keys: Vec<&str> = keys.iter().map(|k| k.as_str().unwrap()).collect();
                decider.decide_for_keys(&user, &keys, options)
            }
            None => decider.decide_all(&user, options),
        };
        let mut events = Vec::new();
        for d in &decisions {
            if let Some(batch) = d.impression_event(&user, &client, 0, "uuid") {
                for v in &batch.visitors {
                    let mut one = batch.clone();
                    one.visitors = vec![v.clone()];
                    events.push(strip_event(serde_json::to_value(one).unwrap()));
                }
            }
        }
        for t in u["track"].as_array().into_iter().flatten() {
            if let Some(c) = decider.track(&user, t[0].as_str().unwrap(), t[1].as_object()) {
                events.push(strip_event(
                    serde_json::to_value(c.to_event_batch(&user, &client, 0, "uuid")).unwrap(),
                ));
            }
        }
        let id = u["id"].as_str().unwrap();
        let wanted = expected["decisions"].as_array().unwrap();
        // Same set of flag keys: an extra or a missing decision is a difference (JS orders an
        // object's integer-like keys first, so the order is not compared).
        let mut got_keys: Vec<&str> = decisions.iter().map(|d| d.flag_key()).collect();
        let mut want_keys: Vec<&str> = wanted
            .iter()
            .map(|w| w["flagKey"].as_str().unwrap())
            .collect();
        got_keys.sort_unstable();
        want_keys.sort_unstable();
        assert_eq!(got_keys, want_keys, "user {id}: decided flags");
        for want in wanted {
            let key = want["flagKey"].as_str().unwrap();
            let got = decisions.iter().find(|d| d.flag_key() == key).unwrap();
            let mut got_json = json!({
                "flagKey": got.flag_key(), "enabled": got.enabled(), "variationKey": got.variation_key(),
                "ruleKey": got.rule_key(), "variables": got.variables_map(), "reasons": got.reasons(),
            });
            if want.get("reasons").is_none() {
                got_json.as_object_mut().unwrap().remove("reasons");
            } else {
                with_reasons += 1;
            }
            assert_eq!(&got_json, want, "user {id} flag {key}");
            checked += 1;
        }
        let want_events = expected["events"].as_array().unwrap();
        assert_eq!(&events, want_events, "user {id} events");
        event_count += events.len();
    }
    println!("{checked} decisions ({with_reasons} with reasons), {event_count} events compared");
    assert!(
        checked >= MIN_DECISIONS,
        "only {checked} decisions compared"
    );
    assert!(
        with_reasons >= MIN_WITH_REASONS,
        "only {with_reasons} decisions compared with their reasons"
    );
    assert!(
        event_count >= MIN_EVENTS,
        "only {event_count} events compared"
    );
}

/// `getOptimizelyConfig()` of the JavaScript SDK for the same datafile
/// (`tests/data/js/edge_optimizely_config.json`, written by `generate.js`, without its `datafile`
/// field).
#[test]
fn optimizely_config_matches_the_javascript_sdk() {
    let text = include_str!("data/edge.json");
    let config = ProjectConfig::parse_with(text, ParseOptions::new().keep_text(true)).unwrap();
    let expected: Value =
        serde_json::from_str(include_str!("data/js/edge_optimizely_config.json")).unwrap();
    let got = serde_json::to_value(config.optimizely_config()).unwrap();
    assert_eq!(got, expected);
    assert_eq!(
        config.optimizely_config().datafile(),
        include_str!("data/edge.json")
    );
}

/// `Decision::{flag,rule,variation}_index` name the decision's own keys in its config
/// (`ProjectConfig::*_key_at`), for every decision of the edge users; holdouts and unknown
/// flags have no index.
#[test]
fn decision_indexes_name_the_decision_keys() {
    let config = ProjectConfig::parse(include_str!("data/edge.json")).unwrap();
    let users: Vec<Value> = serde_json::from_str(include_str!("data/js/edge_users.json")).unwrap();
    let decider = Decider::new(&config);
    let (mut rules, mut variations, mut holdouts) = (0, 0, 0);
    for u in &users {
        let user = user_of(u);
        let mut decisions = decider.decide_all(&user, DecideOptions::NONE);
        decisions.extend(decider.decide_for_keys(&user, &["no_such_flag"], DecideOptions::NONE));
        for d in &decisions {
            assert!(std::ptr::eq(d.config(), &config));
            let at = d.flag_index().and_then(|i| config.flag_key_at(i));
            if d.is_error() {
                assert_eq!(at, None);
                continue;
            }
            assert_eq!(at, Some(d.flag_key()));
            let variation = d.variation_index().and_then(|i| config.variation_key_at(i));
            assert_eq!(variation, d.variation_key(), "{}", d.flag_key());
            variations += usize::from(variation.is_some());
            let rule = d.rule_index().and_then(|i| config.rule_key_at(i));
            if d.source() == DecisionSource::Holdout {
                assert_eq!(d.rule_index(), None);
                holdouts += 1;
            } else {
                assert_eq!(rule, d.rule_key(), "{}", d.flag_key());
                rules += usize::from(rule.is_some());
            }
        }
    }
    assert!(
        rules > 10 && variations > 10 && holdouts > 0,
        "{rules} {variations} {holdouts}"
    );
    assert_eq!(config.flag_key_at(u32::MAX), None);
}
