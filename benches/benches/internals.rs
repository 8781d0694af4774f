//! The two inner steps of a decide on their own: bucketing (`bucketing::bucket_value`:
//! MurmurHash3 of user id + rule id, scaled to 0..10000) and audience evaluation (nested
//! and/or/not trees, semver, substring, exact, gt) through `ProjectConfig::evaluate_audience`.
//! For scale, the bucket value is also computed the way the `optimizely` crate does it (`format!`
//! of the key, then the `murmur3` crate through `io::Read`).

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use flagbridge_benches::fixtures::Plan;
use flagbridge_benches::users;
use flagbridge_engine::{bucketing, ProjectConfig};

fn bucket(c: &mut Criterion) {
    let plan = Plan::load();
    let json: serde_json::Value = serde_json::from_str(&plan.small.text).expect("small fixture");
    let rule_id = json["experiments"][0]["id"]
        .as_str()
        .expect("an experiment id")
        .to_owned();
    let ids: Vec<&str> = plan.users.iter().map(|u| u.id.as_str()).collect();
    let n = ids.len();
    let mut group = c.benchmark_group("bucketing");
    let mut i = 0usize;
    group.bench_function("flagbridge/bucket_value", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            bucketing::bucket_value(black_box(ids[i % n]), black_box(&rule_id))
        })
    });
    let mut i = 0usize;
    group.bench_function("reference/format_and_murmur3_crate", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            let key = format!("{}{}", black_box(ids[i % n]), black_box(&rule_id));
            let hash = murmur3::murmur3_32(&mut key.as_bytes(), bucketing::HASH_SEED).unwrap_or(0);
            ((u64::from(hash) * 10_000) >> 32) as u32
        })
    });
    group.finish();
    // The two agree (same buckets as the official SDKs).
    for id in &ids {
        let key = format!("{id}{rule_id}");
        let hash = murmur3::murmur3_32(&mut key.as_bytes(), bucketing::HASH_SEED).unwrap_or(0);
        assert_eq!(
            bucketing::bucket_value(id, &rule_id),
            ((u64::from(hash) * 10_000) >> 32) as u32
        );
    }
}

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

criterion_group!(benches, bucket, audiences);
criterion_main!(benches);
