//! Interleaved ("paired") timing of decide case (a) for the ratios the targets are about: large
//! vs small datafile, and the `optimizely` crate vs flagbridge. Criterion measures each bench in
//! its own time window, so on a shared, noisy machine the load can change between the two halves
//! of a ratio. Here the four variants take turns in batches of 200 decides (a few microseconds
//! each) for the whole run, so every variant sees the same load; the medians of the per-batch
//! times give the ratios. Accepts criterion's flags; `--measurement-time S` sets the run length
//! (default 3 s). Writes `target/flagbridge-bench/paired.json`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use flagbridge_benches::args::{flag_value, selected};
use flagbridge_benches::fixtures::{Fixture, Plan};
use flagbridge_benches::stats::{write_result, Summary};
use flagbridge_benches::{peer, users};
use flagbridge_engine::{DecideOption, DecideOptions, Decider, ProjectConfig, UserContext};

const BATCH: usize = 200;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !selected(&args, "paired") {
        return;
    }
    let seconds = flag_value(&args, "--measurement-time").unwrap_or(3.0);
    let plan = Plan::load();
    let options = DecideOptions::NONE.with(DecideOption::ExcludeVariables);
    let crate_options = optimizely::DecideOptions {
        disable_decision_event: true,
        exclude_variables: true,
        ..Default::default()
    };
    let ctxs: Vec<UserContext> = plan.users.iter().map(users::context).collect();
    let configs: Vec<ProjectConfig> = plan
        .fixtures()
        .iter()
        .map(|fx| ProjectConfig::parse(&fx.text).expect("fixture parses"))
        .collect();
    let clients: Vec<optimizely::Client> = plan
        .fixtures()
        .iter()
        .map(|fx| peer::client(&fx.text).expect("optimizely crate loads the fixture"))
        .collect();
    let crate_ctxs: Vec<Vec<optimizely::client::UserContext<'_>>> = clients
        .iter()
        .map(|client| {
            plan.users
                .iter()
                .map(|u| {
                    let mut ctx = client.create_user_context(&u.id);
                    for (k, v) in peer::attribute_values(u) {
                        ctx.set_attribute(k, v);
                    }
                    ctx
                })
                .collect()
        })
        .collect();
    let fixtures: [&Fixture; 2] = plan.fixtures();
    let n = ctxs.len();

    // Variant v: 0/1 = flagbridge small/large, 2/3 = optimizely crate small/large.
    let names = [
        "flagbridge/small",
        "flagbridge/large",
        "optimizely_crate/small",
        "optimizely_crate/large",
    ];
    let run_batch = |variant: usize, start: usize| -> f64 {
        let size = variant % 2;
        let flag = fixtures[size].flags.experiment.as_str();
        let t0 = Instant::now();
        if variant < 2 {
            let decider = Decider::new(&configs[size]);
            for k in 0..BATCH {
                let d = decider.decide(black_box(&ctxs[(start + k) % n]), black_box(flag), options);
                black_box(d.enabled());
            }
        } else {
            for k in 0..BATCH {
                let ctx = &crate_ctxs[size][(start + k) % n];
                let d = black_box(ctx).decide_with_options(black_box(flag), &crate_options);
                black_box(d.enabled());
            }
        }
        t0.elapsed().as_nanos() as f64 / BATCH as f64
    };

    let mut samples: [Vec<f64>; 4] = Default::default();
    let warm_end = Instant::now() + Duration::from_millis(500);
    let mut round = 0usize;
    while Instant::now() < warm_end {
        for v in 0..4 {
            run_batch(v, round);
        }
        round += 1;
    }
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    while Instant::now() < end {
        // Rotate the order each round so no variant always runs right after another.
        for k in 0..4 {
            let v = (round + k) % 4;
            samples[v].push(run_batch(v, round));
        }
        round += 1;
    }

    let summaries: Vec<Summary> = samples.iter_mut().map(|s| Summary::of(s)).collect();
    println!("decide (a), interleaved batches of {BATCH}, {seconds} s: median ns per decide");
    for (name, s) in names.iter().zip(&summaries) {
        println!("{name:<24} {:>8.1} ns  ({} batches)", s.median, s.samples);
    }
    let ratio = |a: usize, b: usize| summaries[a].median / summaries[b].median;
    let large_over_small = ratio(1, 0);
    let crate_small = ratio(2, 0);
    let crate_large = ratio(3, 1);
    println!("flagbridge large / small         {large_over_small:.2}x");
    println!("optimizely crate / flagbridge    small {crate_small:.2}x, large {crate_large:.2}x");
    let mut json = serde_json::Map::new();
    for (name, s) in names.iter().zip(&summaries) {
        json.insert((*name).into(), s.to_json());
    }
    json.insert("batch".into(), BATCH.into());
    json.insert("seconds".into(), seconds.into());
    json.insert(
        "flagbridge_large_over_small".into(),
        large_over_small.into(),
    );
    json.insert("crate_over_flagbridge_small".into(), crate_small.into());
    json.insert("crate_over_flagbridge_large".into(), crate_large.into());
    match write_result("paired.json", &serde_json::Value::Object(json)) {
        Ok(path) => println!("wrote {}", path.display()),
        Err(e) => eprintln!("could not write paired.json: {e}"),
    }
}
