//! Generated datafiles of any size, for the scale benches (parse time, memory, decide and
//! decide_all per flag as the flag count grows).
//!
//! The shape is the one of `datafile-fixtures/generate_large.py` (which wrote `large_700.json`):
//! each flag has one A/B experiment (3 variations, 90% traffic) behind a two-condition audience,
//! a 3-rule rollout (two delivery rules behind 40 shared audiences, then everyone else) and four
//! variables used by every variation; a last flag `flag_no_rules` has no rules. Every optional
//! field is present, so the `optimizely` crate reads the file too. Deterministic for a seed (a
//! small xorshift generator; the values differ from the Python script's).

use serde_json::{json, Value};

/// The seed the benches use.
pub const DEFAULT_SEED: u64 = 20_260_101;
/// Attributes `attr_00`.. that experiment audiences read (plus `country`, `plan`, `age`).
const ATTRIBUTES: usize = 24;
/// Audiences shared by the delivery rules of every flag.
const SHARED_AUDIENCES: usize = 40;
const COUNTRIES: [&str; 10] = ["US", "DE", "FR", "GB", "JP", "BR", "IN", "CA", "ES", "IT"];
const PLANS: [&str; 4] = ["free", "basic", "pro", "enterprise"];

/// xorshift64*: enough for test data, and the same sequence on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn leaf(name: &str, matcher: &str, value: Value) -> Value {
    json!({"name": name, "type": "custom_attribute", "match": matcher, "value": value})
}

fn attr_key(i: u64) -> String {
    format!("attr_{i:02}")
}

/// A datafile with `flags` flags of the `large_700.json` shape (plus `flag_no_rules`), as
/// compact JSON text.
pub fn datafile(flags: usize, seed: u64) -> String {
    let mut rng = Rng(seed | 1);
    let mut next_id = 100_000u64;
    let mut nid = move || {
        next_id += 1;
        next_id.to_string()
    };
    let mut attributes: Vec<Value> = (0..ATTRIBUTES as u64)
        .map(|i| json!({"id": (30_000 + i).to_string(), "key": attr_key(i)}))
        .collect();
    for (id, key) in [("30100", "country"), ("30101", "plan"), ("30102", "age")] {
        attributes.push(json!({"id": id, "key": key}));
    }
    let mut audiences: Vec<Value> = (0..SHARED_AUDIENCES)
        .map(|i| {
            let conditions = if i % 2 == 0 {
                json!(["and", ["or", leaf("country", "exact", json!(COUNTRIES[i % 10]))]])
            } else {
                json!(["and", ["or", leaf("plan", "exact", json!(PLANS[i % 4]))],
                       ["or", leaf("age", "ge", json!(18 + i % 30))]])
            };
            json!({"id": (60_000 + i).to_string(), "name": format!("shared_{i}"), "conditions": conditions})
        })
        .collect();
    let (mut experiments, mut rollouts, mut flag_list, mut events) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for f in 0..flags {
        let flag_key = format!("flag_{f:04}");
        let var_ids: Vec<String> = (0..4).map(|_| nid()).collect();
        let variables = json!([
            {"id": var_ids[0], "key": "enabled_banner", "type": "boolean", "defaultValue": "false"},
            {"id": var_ids[1], "key": "max_items", "type": "integer", "defaultValue": (1 + rng.below(50)).to_string()},
            {"id": var_ids[2], "key": "ratio", "type": "double", "defaultValue": format!("0.{:04}", rng.below(10_000))},
            {"id": var_ids[3], "key": "title", "type": "string", "defaultValue": format!("title {f}")},
        ]);
        let usages = |k: usize, rng: &mut Rng| {
            json!([
                {"id": var_ids[0], "value": if k.is_multiple_of(2) { "true" } else { "false" }},
                {"id": var_ids[1], "value": (1 + rng.below(500)).to_string()},
                {"id": var_ids[2], "value": format!("{}.{:03}", rng.below(10), rng.below(1000))},
                {"id": var_ids[3], "value": format!("{flag_key} v{k}")},
            ])
        };
        let audience_id = (61_000 + f).to_string();
        audiences.push(json!({"id": audience_id, "name": format!("exp_audience_{f}"), "conditions": [
            "and",
            leaf(&attr_key(rng.below(ATTRIBUTES as u64)), "exact", json!(format!("value_{}", rng.below(5)))),
            leaf(&attr_key(rng.below(ATTRIBUTES as u64)), "gt", json!(rng.below(100))),
        ]}));
        let (exp_id, layer_id) = (nid(), nid());
        let variations: Vec<Value> = (0..3)
            .map(|k| {
                json!({"id": nid(), "key": format!("variation_{k}"), "featureEnabled": k != 0,
                            "variables": usages(k, &mut rng)})
            })
            .collect();
        let traffic: Vec<Value> = variations
            .iter()
            .zip([3000, 6000, 9000])
            .map(|(v, end)| json!({"entityId": v["id"], "endOfRange": end}))
            .collect();
        experiments.push(json!({
            "id": exp_id, "key": format!("{flag_key}_experiment"), "layerId": layer_id,
            "status": "Running", "variations": variations, "trafficAllocation": traffic,
            "audienceIds": [audience_id], "audienceConditions": ["or", audience_id],
            "forcedVariations": {},
        }));
        let rollout_id = nid();
        let rules: Vec<Value> = (0..3)
            .map(|r| {
                let rule_id = nid();
                let everyone_else = r == 2;
                let audience: Vec<String> = if everyone_else {
                    Vec::new()
                } else {
                    vec![(60_000 + rng.below(SHARED_AUDIENCES as u64)).to_string()]
                };
                let variation = json!({"id": nid(), "key": format!("{flag_key}_rule_{r}_on"),
                    "featureEnabled": true, "variables": usages(10 + r, &mut rng)});
                let end = if everyone_else { 10_000 } else { [2500, 5000, 10_000][rng.below(3) as usize] };
                let mut conditions = vec![json!("or")];
                conditions.extend(audience.iter().map(|a| json!(a)));
                json!({
                    "id": rule_id,
                    "key": if everyone_else { "everyone_else".to_string() } else { format!("{flag_key}_rule_{r}") },
                    "layerId": nid(), "status": "Running",
                    "trafficAllocation": [{"entityId": variation["id"], "endOfRange": end}],
                    "variations": [variation],
                    "audienceIds": audience,
                    "audienceConditions": if everyone_else { json!([]) } else { Value::Array(conditions) },
                    "forcedVariations": {},
                })
            })
            .collect();
        rollouts.push(json!({"id": rollout_id, "experiments": rules}));
        flag_list.push(
            json!({"id": nid(), "key": flag_key, "experimentIds": [exp_id],
                              "rolloutId": rollout_id, "variables": variables}),
        );
        if f % 10 == 0 {
            events.push(json!({"id": nid(), "key": format!("event_{:03}", f / 10), "experimentIds": [exp_id]}));
        }
    }
    flag_list.push(json!({"id": nid(), "key": "flag_no_rules", "experimentIds": [], "rolloutId": "", "variables": []}));
    json!({
        "version": "4", "accountId": "10000001", "projectId": "20000002", "revision": "17",
        "environmentKey": "production", "sdkKey": format!("bench{flags}SdkKey"),
        "botFiltering": false, "anonymizeIP": true, "sendFlagDecisions": true, "region": "US",
        "attributes": attributes,
        "audiences": [{"id": "$opt_dummy_audience",
                       "name": "Optimizely-Generated Audience for Backwards Compatibility",
                       "conditions": "[\"or\", {\"match\": \"exact\", \"name\": \"$opt_dummy_attribute\", \"type\": \"custom_attribute\", \"value\": \"impossible_value\"}]"}],
        "typedAudiences": audiences, "events": events, "experiments": experiments, "groups": [],
        "featureFlags": flag_list, "rollouts": rollouts, "integrations": [], "holdouts": [],
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_datafile_parses_with_every_flag() {
        let text = datafile(50, DEFAULT_SEED);
        let config = flagbridge_engine::ProjectConfig::parse(&text).expect("parses");
        assert_eq!(config.flag_keys().count(), 51);
        assert_eq!(text, datafile(50, DEFAULT_SEED), "deterministic");
        assert!(
            optimizely::Client::from_string(&text).is_ok(),
            "the crate reads it"
        );
    }
}
