//! A driver for profiling `decide` and `decide_all` (under `valgrind --tool=callgrind` or `perf`).
//!
//! Usage: `cargo run --release -p flagbridge-engine --example profile_decide -- DATAFILE MODE [ITERATIONS] [FLAG]`
//! with MODE `decide` (FLAG, default `flag_0000`) or `decide_all`. Users are the benchmark plan's
//! 16 users (`benches/cases.json`), decided in turn with `EXCLUDE_VARIABLES`. Prints the mean time
//! per call and a checksum of the decisions (so a change in decisions shows). With `WIDE=1` each
//! user has 60 more attributes.

use std::error::Error;
use std::hint::black_box;
use std::time::Instant;

use flagbridge_engine::{DecideOption, DecideOptions, Decider, ProjectConfig, UserContext};

/// The plan's user `i` (ids `user-00`..`user-15`; 00-11 match flag_0000's experiment audience).
fn plan_user(i: usize) -> UserContext {
    const COUNTRIES: [&str; 10] = ["US", "DE", "FR", "GB", "JP", "BR", "IN", "CA", "ES", "IT"];
    const PLANS: [&str; 4] = ["free", "basic", "pro", "enterprise"];
    let n = i as i64;
    UserContext::new(format!("user-{i:02}"))
        .with_attribute("attr_00", if i < 12 { "value_0" } else { "value_1" })
        .with_attribute("attr_01", 50 + 5 * n)
        .with_attribute("attr_02", format!("value_{}", i % 5))
        .with_attribute("attr_03", 7 * n)
        .with_attribute("country", COUNTRIES[i % 10])
        .with_attribute("plan", PLANS[i % 4])
        .with_attribute("age", 18 + 3 * n)
        .with_attribute("is_logged_in", i % 3 != 0)
}

fn checksum(acc: u64, key: Option<&str>) -> u64 {
    key.unwrap_or("-")
        .bytes()
        .fold(acc, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(datafile), Some(mode)) = (args.get(1), args.get(2)) else {
        return Err("usage: profile_decide DATAFILE decide|decide_all [ITERATIONS] [FLAG]".into());
    };
    let iterations: usize = args.get(3).map_or(Ok(100_000), |s| s.parse())?;
    let flag = args.get(4).map_or("flag_0000", String::as_str);
    let config = ProjectConfig::parse(&std::fs::read_to_string(datafile)?)?;
    let decider = Decider::new(&config);
    // `WIDE=1`: 60 more attributes per user (`attr_1`..`attr_60`, as `benches/src/scale.rs`).
    let wide = std::env::var("WIDE").is_ok_and(|v| v == "1");
    let users: Vec<UserContext> = (0..16)
        .map(|i| {
            let mut user = plan_user(i);
            for k in (1..=60).filter(|_| wide) {
                let value = if (i + k) % 3 == 0 {
                    "testvalue"
                } else {
                    "other"
                };
                user.set_attribute(format!("attr_{k}"), value);
            }
            user
        })
        .collect();
    let options = DecideOptions::NONE.with(DecideOption::ExcludeVariables);
    let mut sum = 0u64;
    let mut calls = 0usize;
    let start = Instant::now();
    match mode.as_str() {
        "decide" => {
            for i in 0..iterations {
                let d = decider.decide(black_box(&users[i % 16]), black_box(flag), options);
                sum = checksum(sum, d.variation_key());
                sum = checksum(sum, d.rule_key());
                calls += 1;
            }
        }
        "decide_all" => {
            for i in 0..iterations {
                for d in decider.decide_all(black_box(&users[i % 16]), options) {
                    sum = checksum(sum, d.variation_key());
                    sum = checksum(sum, d.rule_key());
                    calls += 1;
                }
            }
        }
        other => return Err(format!("unknown mode {other}").into()),
    }
    let elapsed = start.elapsed();
    println!(
        "{mode}: {calls} decisions, {:.1} ns per decision, checksum {sum:016x}",
        elapsed.as_nanos() as f64 / calls.max(1) as f64
    );
    Ok(())
}
