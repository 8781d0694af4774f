//! decide one flag, cases (a)-(e) on the small and the large datafile, and the `optimizely` crate
//! on the cases it supports ((a) and (b): it has no forced decisions, reasons or variables).
//!
//! Each iteration decides for the next of the plan's 16 users (ids and attributes from
//! `benches/cases.json`), so a run mixes users bucketed into the experiment, users that miss its
//! audience and fall to the rollout, and users outside the experiment's traffic.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use flagbridge_benches::fixtures::{Fixture, Plan};
use flagbridge_benches::{peer, users};
use flagbridge_engine::{DecideOption, DecideOptions, Decider, ProjectConfig, UserContext};

fn no_variables() -> DecideOptions {
    DecideOptions::NONE.with(DecideOption::ExcludeVariables)
}

fn bench_flagbridge(c: &mut Criterion, plan: &Plan, fx: &Fixture) {
    let config = ProjectConfig::parse(&fx.text).expect("fixture parses");
    let decider = Decider::new(&config);
    let plain: Vec<UserContext> = plan.users.iter().map(users::context).collect();
    let forced: Vec<UserContext> = plan
        .users
        .iter()
        .map(|u| users::forced_context(u, &fx.flags.forced))
        .collect();
    let n = plain.len();
    let f = &fx.flags;
    let cases: [(&str, &[UserContext], &str, DecideOptions); 4] = [
        ("a_experiment", &plain, &f.experiment, no_variables()),
        ("b_no_rules", &plain, &f.no_rules, no_variables()),
        ("c_forced", &forced, &f.forced.flag, no_variables()),
        (
            "d_reasons",
            &plain,
            &f.reasons,
            no_variables().with(DecideOption::IncludeReasons),
        ),
    ];
    let mut group = c.benchmark_group("decide");
    for (label, ctxs, flag, options) in cases {
        let mut i = 0usize;
        group.bench_function(format!("flagbridge/{label}/{}", fx.name), |b| {
            b.iter(|| {
                let user = &ctxs[i % n];
                i = i.wrapping_add(1);
                decider.decide(black_box(user), black_box(flag), black_box(options))
            })
        });
    }
    // (e): variables included, and every (key, value) read.
    let mut i = 0usize;
    group.bench_function(format!("flagbridge/e_variables/{}", fx.name), |b| {
        b.iter(|| {
            let user = &plain[i % n];
            i = i.wrapping_add(1);
            let d = decider.decide(
                black_box(user),
                black_box(&f.variables),
                black_box(DecideOptions::NONE),
            );
            for (key, value) in d.variables() {
                black_box((key, value));
            }
            d
        })
    });
    group.finish();
}

fn bench_optimizely_crate(c: &mut Criterion, plan: &Plan, fx: &Fixture) {
    let client = match peer::client(&fx.text) {
        Ok(client) => client,
        Err(e) => {
            eprintln!(
                "optimizely crate cannot load {}: {e}; skipped",
                fx.path.display()
            );
            return;
        }
    };
    let ctxs: Vec<_> = plan
        .users
        .iter()
        .map(|u| {
            let mut ctx = client.create_user_context(&u.id);
            for (k, v) in peer::attribute_values(u) {
                ctx.set_attribute(k, v);
            }
            ctx
        })
        .collect();
    let n = ctxs.len();
    let options = optimizely::DecideOptions {
        disable_decision_event: true,
        exclude_variables: true,
        ..Default::default()
    };
    let mut group = c.benchmark_group("decide");
    for (label, flag) in [
        ("a_experiment", &fx.flags.experiment),
        ("b_no_rules", &fx.flags.no_rules),
    ] {
        let mut i = 0usize;
        group.bench_function(format!("optimizely_crate/{label}/{}", fx.name), |b| {
            b.iter(|| {
                let ctx = &ctxs[i % n];
                i = i.wrapping_add(1);
                black_box(ctx).decide_with_options(black_box(flag), black_box(&options))
            })
        });
    }
    group.finish();
}

fn decide(c: &mut Criterion) {
    let plan = Plan::load();
    for fx in plan.fixtures() {
        bench_flagbridge(c, &plan, fx);
        bench_optimizely_crate(c, &plan, fx);
    }
}

criterion_group!(benches, decide);
criterion_main!(benches);
