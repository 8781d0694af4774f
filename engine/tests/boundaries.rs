//! Boundaries of every traffic range, through `Decider`: a user whose bucket is `b` is in a
//! range ending at `b + 1` (bucket = end - 1), and not in one ending at `b` (bucket = end) or
//! at `b - 1` (bucket = end + 1), for experiment traffic, group traffic, delivery rules and
//! holdouts; a fractional `endOfRange` compares as the SDK compares it (`bucket < endOfRange`).
//! The condition and semver comparisons at the value itself are unit tests of
//! `audience::condition` and `audience::semver`.

use flagbridge_engine::bucketing::bucket_value;
use flagbridge_engine::{DecideOption, DecideOptions, Decider, ProjectConfig, UserContext};
use serde_json::{json, Value};

const USER: &str = "boundary_user";
const EXPERIMENT: &str = "4001";
const GROUP: &str = "4002";
const RULE: &str = "4003";
const HOLDOUT: &str = "4004";

/// The user's bucket for `entity`; the ids above are chosen with a bucket well inside
/// `1..9999`, so that `b - 1` and `b + 1` are buckets too.
fn bucket(entity: &str) -> u32 {
    let b = bucket_value(USER, entity);
    assert!((1..9_999).contains(&b), "bucket {b} of {entity}");
    b
}

/// `end - 1`, `end`, `end + 1` relative to the bucket: the range end that puts the user at
/// the last bucket of the range (in), exactly at its end (out), one past its end (out).
fn ends(b: u32) -> [(f64, bool); 6] {
    let b = f64::from(b);
    [
        (b + 1.0, true),
        (b, false),
        (b - 1.0, false),
        // JS compares `bucket < endOfRange` on the raw number.
        (b + 0.25, true),
        (b + 0.5, true),
        (b - 0.25, false),
    ]
}

fn parse(df: &Value) -> ProjectConfig {
    ProjectConfig::parse(&df.to_string()).expect("valid datafile")
}

fn decide(config: &ProjectConfig) -> flagbridge_engine::Decision<'_> {
    Decider::new(config).decide(
        &UserContext::new(USER),
        "flag",
        DecideOptions::NONE.with(DecideOption::IncludeReasons),
    )
}

fn variation(id: &str, key: &str) -> Value {
    json!({"id": id, "key": key, "featureEnabled": true})
}

/// One flag with one experiment (id `experiment_id`) whose first variation `in` ends at `end`
/// and whose second `after` covers the rest, optionally inside a group.
fn experiment_datafile(end: f64, group: Option<(f64, &str)>) -> Value {
    let experiment = json!({
        "id": EXPERIMENT, "key": "exp", "status": "Running", "layerId": "l1", "audienceIds": [],
        "variations": [variation("51", "in"), variation("52", "after")],
        "trafficAllocation": [{"entityId": "51", "endOfRange": end}, {"entityId": "52", "endOfRange": 10000}]
    });
    let mut df = json!({
        "version": "4", "accountId": "1", "projectId": "2", "revision": "3",
        "attributes": [], "audiences": [], "events": [], "experiments": [], "groups": [],
        "featureFlags": [{"id": "f1", "key": "flag", "experimentIds": [EXPERIMENT], "rolloutId": "", "variables": []}],
        "rollouts": []
    });
    match group {
        None => df["experiments"] = json!([experiment]),
        Some((group_end, first)) => {
            // The group gives `..group_end` to `first` and the rest to the other experiment.
            let other = json!({
                "id": "4009", "key": "other", "status": "Running", "layerId": "l2", "audienceIds": [],
                "variations": [variation("59", "other_v")],
                "trafficAllocation": [{"entityId": "59", "endOfRange": 10000}]
            });
            let second = if first == EXPERIMENT {
                "4009"
            } else {
                EXPERIMENT
            };
            df["groups"] = json!([{
                "id": GROUP, "policy": "random",
                "trafficAllocation": [{"entityId": first, "endOfRange": group_end}, {"entityId": second, "endOfRange": 10000}],
                "experiments": [experiment, other]
            }]);
        }
    }
    df
}

#[test]
fn experiment_traffic_range_boundaries() {
    let b = bucket(EXPERIMENT);
    for (end, inside) in ends(b) {
        let config = parse(&experiment_datafile(end, None));
        let d = decide(&config);
        assert!(
            d.reasons()
                .iter()
                .any(|r| r == &format!("Assigned bucket {b} to user with bucketing ID {USER}.")),
            "{:?}",
            d.reasons()
        );
        let want = if inside { "in" } else { "after" };
        assert_eq!(
            d.variation_key(),
            Some(want),
            "bucket {b}, first range ends at {end}"
        );
    }
}

#[test]
fn last_range_boundary_leaves_the_user_out() {
    // A single range: bucket = end - 1 is in, bucket = end and end + 1 get no variation.
    let b = bucket(EXPERIMENT);
    for (end, inside) in ends(b) {
        let mut df = experiment_datafile(end, None);
        df["experiments"][0]["trafficAllocation"] = json!([{"entityId": "51", "endOfRange": end}]);
        let config = parse(&df);
        let d = decide(&config);
        let want = if inside { Some("in") } else { None };
        assert_eq!(
            d.variation_key(),
            want,
            "bucket {b}, only range ends at {end}"
        );
    }
}

#[test]
fn group_traffic_range_boundaries() {
    let b = bucket(GROUP);
    for (end, inside) in ends(b) {
        // The experiment holds the group's first range.
        let config = parse(&experiment_datafile(10000.0, Some((end, EXPERIMENT))));
        let d = decide(&config);
        let assigned = d.variation_key().is_some();
        assert_eq!(
            assigned, inside,
            "group bucket {b}, first range ends at {end}"
        );
        // The experiment holds the group's second range: the opposite.
        let config = parse(&experiment_datafile(10000.0, Some((end, "4009"))));
        let d = decide(&config);
        assert_eq!(
            d.variation_key().is_some(),
            !inside,
            "group bucket {b}, second range starts at {end}"
        );
    }
}

fn rollout_datafile(end: f64) -> Value {
    json!({
        "version": "4", "accountId": "1", "projectId": "2", "revision": "3",
        "attributes": [], "audiences": [], "events": [], "experiments": [], "groups": [],
        "featureFlags": [{"id": "f1", "key": "flag", "experimentIds": [], "rolloutId": "r1", "variables": []}],
        "rollouts": [{"id": "r1", "experiments": [
            {"id": RULE, "key": "targeted", "layerId": "l1", "status": "Running", "audienceIds": [],
             "variations": [variation("61", "rule_on")],
             "trafficAllocation": [{"entityId": "61", "endOfRange": end}]},
            {"id": "4010", "key": "everyone_else", "layerId": "l2", "status": "Running", "audienceIds": [],
             "variations": [variation("62", "everyone")],
             "trafficAllocation": [{"entityId": "62", "endOfRange": 10000}]}
        ]}]
    })
}

#[test]
fn delivery_rule_range_boundaries() {
    let b = bucket(RULE);
    for (end, inside) in ends(b) {
        let config = parse(&rollout_datafile(end));
        let d = decide(&config);
        let (want_variation, want_rule) = if inside {
            ("rule_on", "targeted")
        } else {
            ("everyone", "everyone_else")
        };
        assert_eq!(
            d.variation_key(),
            Some(want_variation),
            "bucket {b}, end {end}"
        );
        assert_eq!(d.rule_key(), Some(want_rule), "bucket {b}, end {end}");
    }
}

#[test]
fn holdout_range_boundaries() {
    let b = bucket(HOLDOUT);
    for (end, inside) in ends(b) {
        let mut df = rollout_datafile(10000.0);
        df["holdouts"] = json!([{
            "id": HOLDOUT, "key": "holdout", "status": "Running", "audienceIds": [],
            "variations": [{"id": "71", "key": "held", "featureEnabled": false}],
            "trafficAllocation": [{"entityId": "71", "endOfRange": end}]
        }]);
        let config = parse(&df);
        let d = decide(&config);
        let want = if inside { "held" } else { "rule_on" };
        assert_eq!(
            d.variation_key(),
            Some(want),
            "holdout bucket {b}, end {end}"
        );
    }
}

#[test]
fn range_ends_at_zero_and_ten_thousand() {
    let b = bucket(EXPERIMENT);
    // endOfRange 0 (and below) holds no bucket; 10000 (and above) holds them all.
    for (end, want) in [
        (0.0, "after"),
        (-5.0, "after"),
        (10000.0, "in"),
        (1e12, "in"),
    ] {
        let config = parse(&experiment_datafile(end, None));
        assert_eq!(
            decide(&config).variation_key(),
            Some(want),
            "bucket {b}, end {end}"
        );
    }
}
