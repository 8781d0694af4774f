//! Brevo sync benches.
//!
//! - `brevo_enqueue/decide_alone` vs `brevo_enqueue/decide_plus_enqueue`: the cost the Brevo
//!   sink adds to a decide (target: at most 1.3x), the same user deciding again and again (the
//!   sink copies the user once). `*_distinct_users`: the same, cycling through 1,000 distinct
//!   users (every record carries a new user copy: the worst case). The sync runs for real
//!   (dry-run transport, in-memory store) on a tokio thread; each measured chunk is at most
//!   half a ring's capacity (a decision for a new user takes two records) and starts once the
//!   worker has processed everything before it, so no record overflows (checked at the end)
//!   and every record is really handed over.
//!   `enqueue_only` is the sink's share of one decide, `push_prebuilt_clone` the hand-off's
//!   (a ready record, its user `Arc` already sent).
//! - `brevo_coalescer/apply`: decisions folded per second by the worker's coalescer across
//!   100,000 contacts x 5 flags, steady state (target: at least 1 million/s on one core).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use compact_str::CompactString;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use flagbridge_benches::pipelines::{dry_run_brevo_sync, wait_processed};
use flagbridge_engine::{DecideOptions, Decider, ProjectConfig, UserContext};
use flagbridge_sync::brevo::{AttrValue, BrevoSync, DecisionRecord, RuleSource, UserSnapshot};
use flagbridge_sync::testing::CoalescerBench;
use flagbridge_sync::DecisionSink;

const DATAFILE: &str = include_str!("../../sync/tests/data/brevo_small_datafile.json");
/// The sync's queue capacity: rings of 4,096 records per thread (the largest), an inbox of
/// 64 batches of 256.
const QUEUE_CAPACITY: usize = 16_384;
/// Decisions per measured chunk: half a ring's capacity (a decision for a new user takes two
/// records), so an empty ring never overflows.
const CHUNK: u64 = 2_048;
/// Distinct users of the `*_distinct_users` benches.
const USERS: usize = 1_000;

/// Times `iters` runs of `one` (given the run's index), in chunks of at most [`CHUNK`] that
/// each start with empty rings; the waits between chunks are not timed.
fn chunked(sync: &BrevoSync, iters: u64, mut one: impl FnMut(u64)) -> Duration {
    let mut total = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let n = (iters - done).min(CHUNK);
        wait_processed(sync);
        let start = Instant::now();
        for i in done..done + n {
            one(i);
        }
        total += start.elapsed();
        done += n;
    }
    total
}

fn enqueue(c: &mut Criterion) {
    let config = Arc::new(ProjectConfig::parse(DATAFILE).expect("datafile"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = std::env::temp_dir().join(format!("flagbridge-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let sync = dry_run_brevo_sync(&runtime, &dir, QUEUE_CAPACITY);
    let sink = sync.sink();
    let decider = Decider::new(&config);
    let make_user = |i: usize| {
        UserContext::new(format!("user-{i}"))
            .with_attribute("email", format!("user{i}@example.com"))
            .with_attribute("plan", "vip")
            .with_attribute("country", "FR")
    };
    let user = make_user(42);
    let users: Vec<UserContext> = (0..USERS).map(make_user).collect();
    let nth = |i: u64| &users[i as usize % USERS];

    let mut group = c.benchmark_group("brevo_enqueue");
    group.bench_function("decide_alone", |b| {
        b.iter(|| black_box(decider.decide(black_box(&user), "checkout", DecideOptions::NONE)))
    });
    group.bench_function("decide_plus_enqueue", |b| {
        b.iter_custom(|iters| {
            chunked(&sync, iters, |_| {
                let d = decider.decide(black_box(&user), "checkout", DecideOptions::NONE);
                sink.on_decision(&config, &user, &d);
                black_box(&d);
            })
        })
    });
    group.bench_function("decide_alone_distinct_users", |b| {
        let mut i = 0;
        b.iter(|| {
            i += 1;
            black_box(decider.decide(black_box(nth(i)), "checkout", DecideOptions::NONE))
        })
    });
    group.bench_function("decide_plus_enqueue_distinct_users", |b| {
        b.iter_custom(|iters| {
            chunked(&sync, iters, |i| {
                let user = nth(i);
                let d = decider.decide(black_box(user), "checkout", DecideOptions::NONE);
                sink.on_decision(&config, user, &d);
                black_box(&d);
            })
        })
    });
    // The sink's share alone: one decision made once, handed to the sink again and again.
    let decision = decider.decide(&user, "checkout", DecideOptions::NONE);
    group.bench_function("enqueue_only", |b| {
        b.iter_custom(|iters| {
            chunked(&sync, iters, |_| {
                sink.on_decision(&config, black_box(&user), black_box(&decision));
            })
        })
    });
    // The hand-off's share: a ready record (one Arc increment, three inline strings) pushed;
    // its user is the one this thread sent last, so only the keys travel.
    let prebuilt = DecisionRecord {
        user: Arc::new(UserSnapshot {
            user_id: "u".into(),
            contact: "user42@example.com".into(),
            attributes: vec![].into(),
            audiences: None,
        }),
        flag_key: CompactString::new("checkout"),
        enabled: true,
        source: RuleSource::Experiment,
        rule_key: Some("exp_checkout".into()),
        variation_key: Some("treatment".into()),
    };
    group.bench_function("push_prebuilt_clone", |b| {
        b.iter_custom(|iters| {
            chunked(&sync, iters, |_| {
                sink.record_decision(black_box(&prebuilt).clone());
            })
        })
    });
    group.finish();
    wait_processed(&sync);
    let counters = sync.counters();
    eprintln!(
        "brevo_enqueue: queued {} processed {} overflow {} written {}",
        counters.decisions_queued,
        counters.decisions_processed,
        counters.queue_overflow,
        counters.contacts_written
    );
    assert_eq!(
        counters.queue_overflow, 0,
        "a ring overflowed: chunks too big"
    );
    runtime.block_on(sync.close()).expect("close");
    let _ = std::fs::remove_dir_all(&dir);
}

fn coalescer(c: &mut Criterion) {
    const CONTACTS: usize = 100_000;
    const FLAGS: [&str; 5] = ["checkout", "search", "banner", "beta", "dark_mode"];
    let users: Vec<Arc<UserSnapshot>> = (0..CONTACTS)
        .map(|i| {
            Arc::new(UserSnapshot {
                user_id: format!("u{i}").into(),
                contact: format!("user{i}@example.com").into(),
                attributes: vec![("plan".into(), AttrValue::String("free".into()))].into(),
                audiences: None,
            })
        })
        .collect();
    // Interleaved: every contact decides every flag, contacts in a scattered order.
    let mut records = Vec::with_capacity(CONTACTS * FLAGS.len());
    for (f, flag) in FLAGS.iter().enumerate() {
        for i in 0..CONTACTS {
            let u = &users[(i * 7_919 + f * 13) % CONTACTS];
            let experiment = f == 1;
            records.push(DecisionRecord {
                user: Arc::clone(u),
                flag_key: CompactString::new(flag),
                enabled: (i + f) % 3 != 0,
                source: if experiment {
                    RuleSource::Experiment
                } else {
                    RuleSource::Rollout
                },
                rule_key: Some(
                    if experiment {
                        "exp_search"
                    } else {
                        "default-rollout"
                    }
                    .into(),
                ),
                variation_key: Some(["a", "b"][i % 2].into()),
            });
        }
    }
    let mut coalescer = CoalescerBench::new();
    for r in &records {
        coalescer.apply(r);
    }
    let due = coalescer.take_all_due();
    assert_eq!(coalescer.contacts(), CONTACTS);
    assert_eq!(due, CONTACTS);

    let mut group = c.benchmark_group("brevo_coalescer");
    group.throughput(Throughput::Elements(records.len() as u64));
    group.sample_size(20);
    group.bench_function("apply_100k_contacts_x5_flags", |b| {
        b.iter(|| {
            for r in &records {
                coalescer.apply(black_box(r));
            }
        })
    });
    group.finish();
    // Steady state: nothing changed, so nothing is due.
    assert_eq!(coalescer.take_all_due(), 0);
}

criterion_group!(benches, enqueue, coalescer);
criterion_main!(benches);
