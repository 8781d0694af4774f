//! The two inner steps of a decide on their own: bucketing (hash of user id + rule id, bucket
//! value, traffic-allocation lookup) and audience evaluation (nested and/or/not trees, semver,
//! substring, exact, gt) through `ProjectConfig::evaluate_audience`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use flagbridge_benches::fixtures::Plan;
use flagbridge_benches::users;
use flagbridge_engine::ProjectConfig;

fn audiences(c: &mut Criterion) {
    let plan = Plan::load();
    let aud = &plan.audience_benches;
    let config = ProjectConfig::parse(&aud.text).expect("audience fixture parses");
    let user = users::context(&aud.user);
    let mut group = c.benchmark_group("audience");
    for (label, id) in &aud.audiences {
        assert!(
            config.audiences().any(|(a, _)| a == id),
            "{}: no audience {id}",
            aud.path.display()
        );
        group.bench_function(format!("flagbridge/{label}"), |b| {
            b.iter(|| config.evaluate_audience(black_box(id), black_box(&user)))
        });
    }
    group.finish();
}

criterion_group!(benches, audiences);
criterion_main!(benches);
