//! Issue 17: a CMAB decide answered from the cache against a plain decide, in the same run.
//! Target: the CMAB hit <= 2x the plain decide.
//!
//! Datafile `datafile-fixtures/remote/cmab_odp.json`; 16 users in the CMAB traffic of `f_cmab`
//! (rule `cmab_main`, three attributes named by `cmab.attributeIds`). `plain` decides `f_plain`
//! (one A/B experiment: audience, bucketing) with the sync `Decider::decide`; `cmab_hit` decides
//! `f_cmab` with `remote::decide_one_async`, every user's prediction already in the `CmabService`
//! cache (fetched once, untimed, from the in-process fake on 127.0.0.1). A hit never waits, so
//! its future is polled once with a no-op waker (no runtime in the timed loop); a poll that is
//! not ready would be a miss and aborts the bench. `sync_skip` is the sync decide of `f_cmab`
//! (JavaScript's sync API: the CMAB rule is skipped to the rollout), for reference.

use std::future::Future;
use std::hint::black_box;
use std::task::{Context, Poll, Waker};

use criterion::{criterion_group, criterion_main, Criterion};
use flagbridge_engine::{AsyncKeys, DecideOptions, Decider, ProjectConfig, UserContext};
use flagbridge_sync::remote::{decide_async, decide_one_async, CmabService};
use flagbridge_sync::testing::FakeRemote;
use serde_json::Value;

const OPTIONS: DecideOptions = DecideOptions::NONE;

fn users(config: &ProjectConfig) -> Vec<UserContext> {
    let decider = Decider::new(config);
    (0..)
        .map(|i| {
            let mut u = UserContext::new(format!("bench-user-{i:03}"));
            u.set_attribute("gender", if i % 2 == 0 { "f" } else { "m" });
            u.set_attribute("age", 20 + i % 40);
            u.set_attribute("tier", i % 3);
            u.set_attribute("country", "fr");
            u
        })
        .filter(|u| {
            !decider
                .start_async(u, AsyncKeys::One("f_cmab"), OPTIONS)
                .pending(u)
                .is_empty()
        })
        .take(16)
        .collect()
}

/// Polls a future that must be ready at once.
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("not a cache hit"),
    }
}

fn cmab(c: &mut Criterion) {
    let path =
        flagbridge_benches::fixtures::repo_root().join("datafile-fixtures/remote/cmab_odp.json");
    let text = std::fs::read_to_string(&path).expect("datafile");
    let config = ProjectConfig::parse(&text).expect("valid");
    let users = users(&config);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let json: Value = serde_json::from_str(&text).expect("json");
    let fake = runtime
        .block_on(FakeRemote::start(&json, false))
        .expect("fake");
    let service = CmabService::builder()
        .prediction_endpoint_template(format!("{}/predict/%s", fake.url()))
        .build()
        .expect("service");
    let decider = Decider::new(&config);
    for u in &users {
        let d = runtime.block_on(decide_async(
            &decider,
            Some(&service),
            u,
            AsyncKeys::One("f_cmab"),
            OPTIONS,
        ));
        assert_eq!(d[0].rule_key(), Some("cmab_main"), "warmed from the fake");
    }
    let fetched = fake.log().len();
    assert_eq!(fetched, users.len(), "one prediction per user");

    let mut group = c.benchmark_group("cmab");
    let mut i = 0;
    group.bench_function("plain", |b| {
        b.iter(|| {
            i = (i + 1) % users.len();
            black_box(decider.decide(black_box(&users[i]), black_box("f_plain"), OPTIONS)).enabled()
        })
    });
    group.bench_function("cmab_hit", |b| {
        b.iter(|| {
            i = (i + 1) % users.len();
            let d = ready(decide_one_async(
                &decider,
                Some(&service),
                black_box(&users[i]),
                black_box("f_cmab"),
                OPTIONS,
            ));
            black_box(d.enabled())
        })
    });
    group.bench_function("sync_skip", |b| {
        b.iter(|| {
            i = (i + 1) % users.len();
            black_box(decider.decide(black_box(&users[i]), black_box("f_cmab"), OPTIONS)).enabled()
        })
    });
    group.finish();
    assert_eq!(
        fake.log().len(),
        fetched,
        "every timed CMAB decide was a cache hit"
    );
}

criterion_group!(benches, cmab);
criterion_main!(benches);
