//! The benchmark plan is consistent with the fixtures, and the `optimizely` crate peer loads them.

use flagbridge_benches::fixtures::Plan;
use flagbridge_benches::peer;
use serde_json::Value;

fn flag_keys(text: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(text).unwrap();
    v["featureFlags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn every_case_names_a_flag_of_its_datafile() {
    let plan = Plan::load();
    assert!(plan.users.len() >= 8);
    assert!(flag_keys(&plan.small.text).len() >= 5);
    assert!(flag_keys(&plan.large.text).len() >= 700);
    for fx in plan.fixtures() {
        let keys = flag_keys(&fx.text);
        let f = &fx.flags;
        for flag in [
            &f.experiment,
            &f.no_rules,
            &f.forced.flag,
            &f.reasons,
            &f.variables,
        ] {
            assert!(keys.contains(flag), "{}: no flag {flag}", fx.path.display());
        }
    }
}

#[test]
fn optimizely_crate_loads_and_decides_the_fixtures() {
    let plan = Plan::load();
    for fx in plan.fixtures() {
        let client = peer::client(&fx.text).unwrap();
        let mut enabled = 0;
        for user in &plan.users {
            let mut ctx = client.create_user_context(&user.id);
            for (k, v) in peer::attribute_values(user) {
                ctx.set_attribute(k, v);
            }
            let d = ctx.decide_with_options(&fx.flags.experiment, &Default::default());
            assert_eq!(d.flag_key(), fx.flags.experiment);
            enabled += d.enabled() as usize;
        }
        // Users match the experiment or fall to the rollout's everyone-else rule.
        assert!(enabled > 0, "{}: nobody enabled", fx.path.display());
    }
}
