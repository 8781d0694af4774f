//! Decide every flag for a list of users and print the decisions and impressions as JSON.
//!
//! Usage: `cargo run -p flagbridge-engine --example decide_json -- DATAFILE USERS`
//! where USERS is a JSON array of `{"id", "attributes"?, "segments"?, "forced"?: [[flag, rule|null, variation]], "keys"?}`.

use std::error::Error;

use flagbridge_engine::{
    AttributeValue, ClientInfo, DecideOption, DecideOptions, Decider, ProjectConfig, UserContext,
};
use serde_json::{json, Value};

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(datafile), Some(users)) = (args.get(1), args.get(2)) else {
        return Err("usage: decide_json DATAFILE USERS".into());
    };
    let config = ProjectConfig::parse(&std::fs::read_to_string(datafile)?)?;
    let users: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(users)?)?;
    let decider = Decider::new(&config);
    let client = ClientInfo {
        client_name: "node-sdk".into(),
        client_version: "6.6.1".into(),
    };
    let options = DecideOptions::NONE.with(DecideOption::IncludeReasons);
    let mut out = Vec::new();
    for u in &users {
        let mut user = UserContext::new(u["id"].as_str().unwrap_or_default());
        if let Some(attrs) = u["attributes"].as_object() {
            for (k, v) in attrs {
                if let Ok(v) = AttributeValue::try_from(v) {
                    user.set_attribute(k.clone(), v);
                }
            }
        }
        if let Some(segs) = u["segments"].as_array() {
            user.set_qualified_segments(
                segs.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect(),
            );
        }
        for f in u["forced"].as_array().into_iter().flatten() {
            user.set_forced_decision(
                f[0].as_str().unwrap_or_default(),
                f[1].as_str(),
                f[2].as_str().unwrap_or_default(),
            );
        }
        let decisions = match u["keys"].as_array() {
            Some(keys) => {
                let keys: Vec<&str> = keys.iter().filter_map(Value::as_str).collect();
                decider.decide_for_keys(&user, &keys, options)
            }
            None => decider.decide_all(&user, options),
        };
        let mut ds = Vec::new();
        let mut events = Vec::new();
        for d in &decisions {
            ds.push(json!({
                "flagKey": d.flag_key(), "enabled": d.enabled(), "variationKey": d.variation_key(),
                "ruleKey": d.rule_key(), "variables": d.variables_map(), "reasons": d.reasons(),
            }));
            if let Some(batch) = d.impression_event(&user, &client, 0, "uuid") {
                for v in batch.visitors.iter() {
                    let mut one = batch.clone();
                    one.visitors = vec![v.clone()];
                    events.push(serde_json::to_value(one)?);
                }
            }
        }
        for t in u["track"].as_array().into_iter().flatten() {
            let key = t[0].as_str().unwrap_or_default();
            if let Some(conversion) = decider.track(&user, key, t[1].as_object()) {
                events.push(serde_json::to_value(
                    conversion.to_event_batch(&user, &client, 0, "uuid"),
                )?);
            }
        }
        out.push(json!({"user": u, "decisions": ds, "events": events}));
    }
    println!("{}", serde_json::to_string(&out)?);
    Ok(())
}
