//! decide_all over every flag of the large datafile (and the small one), per user of the plan.
//! Throughput is set to the flag count, so criterion also prints flags per second; the `report`
//! binary divides the median by the flag count (ns per flag).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use flagbridge_benches::fixtures::Plan;
use flagbridge_benches::users;
use flagbridge_engine::{DecideOption, DecideOptions, Decider, ProjectConfig, UserContext};

fn decide_all(c: &mut Criterion) {
    let plan = Plan::load();
    let ctxs: Vec<UserContext> = plan.users.iter().map(users::context).collect();
    let n = ctxs.len();
    let mut group = c.benchmark_group("decide_all");
    for fx in plan.fixtures() {
        let config = ProjectConfig::parse(&fx.text).expect("fixture parses");
        let decider = Decider::new(&config);
        let flags = config.flag_keys().count() as u64;
        group.throughput(Throughput::Elements(flags));
        for (label, options) in [
            ("", DecideOptions::NONE),
            (
                "_exclude_variables",
                DecideOptions::NONE.with(DecideOption::ExcludeVariables),
            ),
        ] {
            let mut i = 0usize;
            group.bench_function(format!("flagbridge/{}{label}", fx.name), |b| {
                b.iter(|| {
                    let user = &ctxs[i % n];
                    i = i.wrapping_add(1);
                    decider.decide_all(black_box(user), black_box(options))
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, decide_all);
criterion_main!(benches);
