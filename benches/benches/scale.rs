//! The engine at scale (issue 21): parse + compile time against datafile size, decide and
//! decide_all per flag on a generated 5,000-flag datafile, with the `optimizely` crate measured
//! in the same run wherever it reads the datafile.
//!
//! Datafiles: `go_100_entities.json` (415 KB, real SDK test data, from `../shared/datafiles`
//! when present), `large_700.json` (2 MB fixture) and generated ones of 100, 1,000 and 5,000
//! flags (`flagbridge_benches::generate`, the `large_700` shape). decide_all on `go_100` and
//! `large_700` uses 16 users with 60 attributes each (`attr_1`..`attr_60`, plus the plan's
//! attributes); the per-flag cost is the median divided by the flag count (`report`).
//!
//! Bench ids: `scale/parse/{flagbridge,optimizely_crate}/<file>`,
//! `scale/decide/{flagbridge,optimizely_crate}/gen_5000`, `scale/decide_all/flagbridge/<file>`.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use flagbridge_benches::fixtures::Plan;
use flagbridge_benches::scale::{datafiles, wide_users};
use flagbridge_benches::{peer, users};
use flagbridge_engine::{DecideOption, DecideOptions, Decider, ProjectConfig, UserContext};

fn parse(c: &mut Criterion, files: &[(String, String)]) {
    let mut group = c.benchmark_group("scale/parse");
    group.sample_size(10);
    for (name, text) in files {
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function(format!("flagbridge/{name}"), |b| {
            b.iter(|| ProjectConfig::parse(black_box(text)))
        });
        if peer::loads_unchanged(text) {
            group.bench_function(format!("optimizely_crate/{name}"), |b| {
                b.iter(|| optimizely::Client::from_string(black_box(text)).map(|c| c.initialize()))
            });
        } else {
            eprintln!("optimizely crate refuses {name}: not measured");
        }
    }
    group.finish();
}

fn decide(c: &mut Criterion, plan: &Plan, files: &[(String, String)]) {
    let Some((name, text)) = files.iter().find(|(n, _)| n == "gen_5000") else {
        return;
    };
    let config = ProjectConfig::parse(text).expect("generated datafile parses");
    let decider = Decider::new(&config);
    let ctxs: Vec<UserContext> = plan.users.iter().map(users::context).collect();
    let n = ctxs.len();
    let options = DecideOptions::NONE.with(DecideOption::ExcludeVariables);
    let flag = "flag_0000";
    let mut group = c.benchmark_group("scale/decide");
    let mut i = 0usize;
    group.bench_function(format!("flagbridge/{name}"), |b| {
        b.iter(|| {
            let user = &ctxs[i % n];
            i = i.wrapping_add(1);
            decider.decide(black_box(user), black_box(flag), options)
        })
    });
    if let Ok(client) = peer::client(text) {
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
        let options = optimizely::DecideOptions {
            disable_decision_event: true,
            exclude_variables: true,
            ..Default::default()
        };
        let mut i = 0usize;
        group.bench_function(format!("optimizely_crate/{name}"), |b| {
            b.iter(|| {
                let ctx = &ctxs[i % n];
                i = i.wrapping_add(1);
                black_box(ctx).decide_with_options(black_box(flag), black_box(&options))
            })
        });
    }
    group.finish();
}

fn decide_all(c: &mut Criterion, plan: &Plan, files: &[(String, String)]) {
    let wide: Vec<UserContext> = wide_users(plan).iter().map(users::context).collect();
    let plain: Vec<UserContext> = plan.users.iter().map(users::context).collect();
    let options = DecideOptions::NONE.with(DecideOption::ExcludeVariables);
    let mut group = c.benchmark_group("scale/decide_all");
    for (name, text) in files {
        let ctxs = match name.as_str() {
            "go_100_entities" | "large_700" => &wide,
            "gen_5000" => &plain,
            _ => continue,
        };
        let config = ProjectConfig::parse(text).expect("datafile parses");
        let decider = Decider::new(&config);
        let flags = config.flag_keys().count() as u64;
        group.throughput(Throughput::Elements(flags));
        let n = ctxs.len();
        let mut i = 0usize;
        group.bench_function(format!("flagbridge/{name}"), |b| {
            b.iter(|| {
                let user = &ctxs[i % n];
                i = i.wrapping_add(1);
                decider.decide_all(black_box(user), black_box(options))
            })
        });
    }
    group.finish();
}

fn scale(c: &mut Criterion) {
    let plan = Plan::load();
    let files = datafiles(&plan);
    parse(c, &files);
    decide(c, &plan, &files);
    decide_all(c, &plan, &files);
}

criterion_group!(benches, scale);
criterion_main!(benches);
