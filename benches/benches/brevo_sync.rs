//! Brevo sync benches.
//!
//! - `brevo_enqueue/decide_alone` vs `brevo_enqueue/decide_plus_enqueue`: the cost the Brevo
//!   sink adds to a decide (target: at most 1.3x). The sync runs for real (dry-run transport,
//!   in-memory store) on a tokio thread that drains the queue; each measured chunk is smaller
//!   than the queue and starts with an empty queue, so every record is really enqueued.
//!   `enqueue_only` is the sink's share of one decide, `push_prebuilt_clone` the queue's.
//! - `brevo_coalescer/apply`: decisions folded per second by the worker's coalescer across
//!   100,000 contacts x 5 flags, steady state (target: at least 1 million/s on one core).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use compact_str::CompactString;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use flagbridge_engine::{DecideOptions, Decider, ProjectConfig, UserContext};
use flagbridge_sync::brevo::bench_support::CoalescerBench;
use flagbridge_sync::brevo::{AttrValue, BrevoSync, DecisionRecord, RuleSource, UserSnapshot};
use flagbridge_sync::sink::DecisionSink;

const DATAFILE: &str = include_str!("../../sync/tests/data/brevo_small_datafile.json");
const CHUNK: u64 = 8_192;

fn enqueue(c: &mut Criterion) {
    let config = Arc::new(ProjectConfig::parse(DATAFILE).expect("datafile"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = std::env::temp_dir().join(format!("flagbridge-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let sync = runtime
        .block_on(
            BrevoSync::builder()
                .store_path(None)
                .dry_run_path(dir.join("dry-run.jsonl"))
                .flush_interval(Duration::from_secs(3600))
                .start(),
        )
        .expect("sync");
    let sink = sync.sink();
    let decider = Decider::new(&config);
    let user = UserContext::new("user-42")
        .with_attribute("email", "user42@example.com")
        .with_attribute("plan", "vip")
        .with_attribute("country", "FR");

    let mut group = c.benchmark_group("brevo_enqueue");
    group.bench_function("decide_alone", |b| {
        b.iter(|| black_box(decider.decide(black_box(&user), "checkout", DecideOptions::NONE)))
    });
    group.bench_function("decide_plus_enqueue", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(CHUNK);
                left -= n;
                // Start each chunk with an empty queue (the worker drains between chunks).
                let target = sync.counters().decisions_queued;
                while sync.counters().decisions_processed < target {
                    std::thread::yield_now();
                }
                let start = Instant::now();
                for _ in 0..n {
                    let d = decider.decide(black_box(&user), "checkout", DecideOptions::NONE);
                    sink.on_decision(&config, &user, &d);
                    black_box(&d);
                }
                total += start.elapsed();
            }
            total
        })
    });
    // The sink's share alone: one decision made once, handed to the sink again and again.
    let decision = decider.decide(&user, "checkout", DecideOptions::NONE);
    group.bench_function("enqueue_only", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(CHUNK);
                left -= n;
                let target = sync.counters().decisions_queued;
                while sync.counters().decisions_processed < target {
                    std::thread::yield_now();
                }
                let start = Instant::now();
                for _ in 0..n {
                    sink.on_decision(&config, black_box(&user), black_box(&decision));
                }
                total += start.elapsed();
            }
            total
        })
    });
    // The queue's share: a ready record (one Arc increment, three inline strings) pushed.
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
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(CHUNK);
                left -= n;
                let target = sync.counters().decisions_queued;
                while sync.counters().decisions_processed < target {
                    std::thread::yield_now();
                }
                let start = Instant::now();
                for _ in 0..n {
                    sink.record_decision(black_box(&prebuilt).clone());
                }
                total += start.elapsed();
            }
            total
        })
    });
    group.finish();
    let counters = sync.counters();
    eprintln!(
        "brevo_enqueue: queued {} processed {} overflow {} written {}",
        counters.decisions_queued,
        counters.decisions_processed,
        counters.queue_overflow,
        counters.contacts_written
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
