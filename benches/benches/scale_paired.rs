//! The scale measurements (issue 21) interleaved, for ratios that hold on a noisy machine:
//! flagbridge and the `optimizely` crate take turns (one parse each per round, or one batch of
//! 200 decides each), so both halves of each ratio see the same load; medians per variant.
//! decide_all (flagbridge only: the crate has none) takes turns with flagbridge's own decide.
//! Accepts criterion's flags; `--measurement-time S` is the time per datafile (default 3 s).
//! Writes `target/flagbridge-bench/scale_paired.json`, which `scripts/scale_chart.py` reads.

use std::hint::black_box;
use std::time::{Duration, Instant};

use flagbridge_benches::args::{flag_value, selected};
use flagbridge_benches::fixtures::Plan;
use flagbridge_benches::scale::{datafiles, wide_users};
use flagbridge_benches::stats::write_result;
use flagbridge_benches::{peer, users};
use flagbridge_engine::{DecideOption, DecideOptions, Decider, ProjectConfig, UserContext};
use serde_json::{json, Map, Value};

const BATCH: usize = 200;
/// At least this many rounds per datafile, whatever the time budget.
const MIN_ROUNDS: usize = 5;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn ns(start: Instant) -> f64 {
    start.elapsed().as_nanos() as f64
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !selected(&args, "scale_paired") {
        return;
    }
    let budget = Duration::from_secs_f64(flag_value(&args, "--measurement-time").unwrap_or(3.0));
    let plan = Plan::load();
    let files = datafiles(&plan);
    let mut parse = Map::new();
    for (name, text) in &files {
        let crate_reads = peer::loads_unchanged(text);
        let (mut fb, mut cr) = (Vec::new(), Vec::new());
        let start = Instant::now();
        while fb.len() < MIN_ROUNDS || start.elapsed() < budget {
            let t = Instant::now();
            black_box(ProjectConfig::parse(black_box(text)).is_ok());
            fb.push(ns(t));
            if crate_reads {
                let t = Instant::now();
                black_box(optimizely::Client::from_string(black_box(text)).is_ok());
                cr.push(ns(t));
            }
        }
        let entry = json!({
            "bytes": text.len(),
            "rounds": fb.len(),
            "flagbridge_ns": median(fb),
            "optimizely_crate_ns": if crate_reads { json!(median(cr)) } else { Value::Null },
        });
        println!("parse {name}: {entry}");
        parse.insert(name.clone(), entry);
    }

    let options = DecideOptions::NONE.with(DecideOption::ExcludeVariables);
    let plain: Vec<UserContext> = plan.users.iter().map(users::context).collect();
    let wide: Vec<UserContext> = wide_users(&plan).iter().map(users::context).collect();
    let mut decide = Map::new();
    let mut decide_all = Map::new();
    for (name, text) in &files {
        let config = ProjectConfig::parse(text).expect("datafile parses");
        let decider = Decider::new(&config);
        let flags = config.flag_keys().count();
        let ctxs = if name == "go_100_entities" || name == "large_700" {
            &wide
        } else {
            &plain
        };
        let n = ctxs.len();
        let flag = config.flag_keys().next().unwrap_or_default().to_string();
        // The crate decides the same flag for the same users (where it reads the file).
        let crate_side = if peer::loads_unchanged(text) {
            peer::client(text).ok()
        } else {
            None
        };
        let crate_ctxs: Vec<_> = crate_side
            .iter()
            .flat_map(|client| {
                plan.users.iter().map(move |u| {
                    let mut ctx = client.create_user_context(&u.id);
                    for (k, v) in peer::attribute_values(u) {
                        ctx.set_attribute(k, v);
                    }
                    ctx
                })
            })
            .collect();
        let crate_options = optimizely::DecideOptions {
            disable_decision_event: true,
            exclude_variables: true,
            ..Default::default()
        };
        let (mut one, mut one_crate, mut all) = (Vec::new(), Vec::new(), Vec::new());
        let start = Instant::now();
        let mut i = 0usize;
        while all.len() < MIN_ROUNDS || start.elapsed() < budget {
            let t = Instant::now();
            for _ in 0..BATCH {
                i = i.wrapping_add(1);
                black_box(decider.decide(black_box(&plain[i % n]), black_box(&flag), options));
            }
            one.push(ns(t) / BATCH as f64);
            if !crate_ctxs.is_empty() {
                let t = Instant::now();
                for _ in 0..BATCH {
                    i = i.wrapping_add(1);
                    let ctx = &crate_ctxs[i % crate_ctxs.len()];
                    black_box(ctx.decide_with_options(black_box(&flag), &crate_options));
                }
                one_crate.push(ns(t) / BATCH as f64);
            }
            let t = Instant::now();
            black_box(decider.decide_all(black_box(&ctxs[i % n]), options));
            all.push(ns(t) / flags as f64);
        }
        let entry = json!({
            "flag": flag,
            "flagbridge_ns": median(one),
            "optimizely_crate_ns": if crate_ctxs.is_empty() { Value::Null } else { json!(median(one_crate)) },
        });
        println!("decide {name}: {entry}");
        decide.insert(name.clone(), entry);
        let entry = json!({
            "flags": flags,
            "users": if std::ptr::eq(ctxs, &wide) { "60 extra attributes" } else { "plan users" },
            "flagbridge_ns_per_flag": median(all),
        });
        println!("decide_all {name}: {entry}");
        decide_all.insert(name.clone(), entry);
    }
    let result = json!({"parse": parse, "decide": decide, "decide_all": decide_all});
    if let Err(e) = write_result("scale_paired.json", &result) {
        eprintln!("could not write the result file: {e}");
    }
}
