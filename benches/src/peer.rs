//! The `optimizely` crate (crates.io, 0.5) as a peer, on the same datafiles and users.
//!
//! Its parser is stricter than the official SDKs: it requires fields the datafile format makes
//! optional (`featureEnabled`, `match`, `environmentKey`, `sdkKey`, `botFiltering`,
//! `anonymizeIP`, `typedAudiences`, `audienceIds`, ...) and it reads audiences only from
//! `typedAudiences`. [`compat_datafile`] fills those fields with the defaults the official SDKs
//! use and copies legacy `audiences` into `typedAudiences`; the content that decides is unchanged.
//! It supports only plain decide: no forced decisions, reasons, variables or decideAll.

use optimizely::{AttributeValue, Client};
use serde_json::{Map, Value};

use crate::fixtures::User;

/// The datafile text with the optional fields the `optimizely` crate requires filled in.
pub fn compat_datafile(datafile: &str) -> String {
    let Ok(Value::Object(mut root)) = serde_json::from_str::<Value>(datafile) else {
        return datafile.to_owned();
    };
    for (key, default) in [
        ("environmentKey", Value::from("")),
        ("sdkKey", Value::from("")),
        ("botFiltering", Value::from(false)),
        ("anonymizeIP", Value::from(false)),
        ("attributes", Value::Array(vec![])),
        ("events", Value::Array(vec![])),
        ("typedAudiences", Value::Array(vec![])),
        ("experiments", Value::Array(vec![])),
        ("rollouts", Value::Array(vec![])),
        ("featureFlags", Value::Array(vec![])),
    ] {
        root.entry(key).or_insert(default);
    }
    promote_legacy_audiences(&mut root);
    if let Some(Value::Array(typed)) = root.get_mut("typedAudiences") {
        for audience in typed {
            if let Some(conditions) = audience.get_mut("conditions") {
                fill_condition_defaults(conditions);
            }
        }
    }
    if let Some(Value::Array(experiments)) = root.get_mut("experiments") {
        experiments.iter_mut().for_each(fill_experiment_defaults);
    }
    if let Some(Value::Array(rollouts)) = root.get_mut("rollouts") {
        for rollout in rollouts {
            if let Some(Value::Array(rules)) = rollout.get_mut("experiments") {
                rules.iter_mut().for_each(fill_experiment_defaults);
            }
        }
    }
    if let Some(Value::Array(flags)) = root.get_mut("featureFlags") {
        for flag in flags.iter_mut().filter_map(Value::as_object_mut) {
            flag.entry("rolloutId").or_insert(Value::from(""));
            flag.entry("experimentIds").or_insert(Value::Array(vec![]));
        }
    }
    Value::Object(root).to_string()
}

/// Legacy `audiences` (conditions as a JSON string) not shadowed by a typed audience of the same
/// id are appended to `typedAudiences` with their conditions parsed (typed wins, as in the SDKs).
fn promote_legacy_audiences(root: &mut Map<String, Value>) {
    let Some(Value::Array(legacy)) = root.get("audiences").cloned() else {
        return;
    };
    let Some(Value::Array(typed)) = root.get_mut("typedAudiences") else {
        return;
    };
    for audience in legacy {
        let id = audience["id"].as_str().unwrap_or_default();
        if id == "$opt_dummy_audience" || typed.iter().any(|t| t["id"] == id) {
            continue;
        }
        let conditions = match &audience["conditions"] {
            Value::String(s) => serde_json::from_str(s).unwrap_or(Value::Null),
            other => other.clone(),
        };
        let mut entry = audience.clone();
        entry["conditions"] = conditions;
        typed.push(entry);
    }
}

/// A missing `match` means `exact`; a list with no leading operator means `or`.
fn fill_condition_defaults(node: &mut Value) {
    match node {
        Value::Array(items) => {
            if !items.first().is_some_and(Value::is_string) {
                items.insert(0, Value::from("or"));
            }
            items.iter_mut().skip(1).for_each(fill_condition_defaults);
        }
        Value::Object(leaf) if leaf.get("match").is_none_or(Value::is_null) => {
            leaf.insert("match".into(), Value::from("exact"));
        }
        _ => {}
    }
}

fn fill_experiment_defaults(experiment: &mut Value) {
    let Some(exp) = experiment.as_object_mut() else {
        return;
    };
    exp.entry("audienceIds").or_insert(Value::Array(vec![]));
    exp.entry("trafficAllocation")
        .or_insert(Value::Array(vec![]));
    if !exp.contains_key("layerId") {
        let id = exp.get("id").cloned().unwrap_or_default();
        exp.insert("layerId".into(), id);
    }
    if let Some(Value::Array(variations)) = exp.get_mut("variations") {
        for variation in variations.iter_mut().filter_map(Value::as_object_mut) {
            variation
                .entry("featureEnabled")
                .or_insert(Value::from(false));
        }
    }
}

/// Builds an `optimizely` client from the datafile text as is, or, when the crate rejects it,
/// from [`compat_datafile`] of it.
pub fn client(datafile: &str) -> Result<Client, String> {
    match Client::from_string(datafile) {
        Ok(client) => Ok(client.initialize()),
        Err(_) => Client::from_string(compat_datafile(datafile))
            .map(|c| c.initialize())
            .map_err(|e| format!("{e:?}")),
    }
}

/// Whether the crate loads the datafile text unchanged.
pub fn loads_unchanged(datafile: &str) -> bool {
    Client::from_string(datafile).is_ok()
}

/// A user's attributes as the `optimizely` crate's values (it only keeps attributes the
/// datafile declares; unsigned integers only, so negative numbers become decimals).
pub fn attribute_values(user: &User) -> Vec<(String, AttributeValue)> {
    user.attributes
        .iter()
        .map(|(k, v)| {
            let value = match v {
                Value::Bool(b) => AttributeValue::Boolean(*b),
                Value::Number(n) => match n.as_u64() {
                    Some(u) => AttributeValue::Integer(u),
                    None => AttributeValue::Decimal(n.as_f64().unwrap_or(0.0)),
                },
                Value::String(s) => AttributeValue::String(s.clone()),
                _ => AttributeValue::Null,
            };
            (k.clone(), value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compat_fills_defaults_and_promotes_legacy_audiences() {
        let df = r#"{"version":"4","accountId":"1","projectId":"2","revision":"3",
            "audiences":[{"id":"9","name":"n","conditions":"[\"and\",[\"or\",{\"name\":\"a\",\"type\":\"custom_attribute\",\"value\":\"x\"}]]"}],
            "experiments":[{"id":"e","key":"k","status":"Running","layerId":"l",
              "variations":[{"id":"v","key":"on"}],"trafficAllocation":[{"entityId":"v","endOfRange":10000}]}],
            "featureFlags":[{"id":"f","key":"flag","experimentIds":["e"],"rolloutId":""}]}"#;
        let out: Value = serde_json::from_str(&compat_datafile(df)).unwrap();
        assert_eq!(out["environmentKey"], "");
        assert_eq!(
            out["experiments"][0]["variations"][0]["featureEnabled"],
            false
        );
        assert_eq!(out["experiments"][0]["audienceIds"], Value::Array(vec![]));
        assert_eq!(out["typedAudiences"][0]["id"], "9");
        assert_eq!(
            out["typedAudiences"][0]["conditions"][1][1]["match"],
            "exact"
        );
        assert!(client(df).is_ok());
    }
}
