//! Decide through the runtime `Client` (events on: the impression's record pushed into this
//! thread's ring) against the engine alone, on the same config and user. Target: Client <=
//! 1.3x engine.
//!
//! The event transport is a null one (answers 204 at once). The Client's pipeline runs on a
//! one-worker tokio runtime (the other core), as in a server; the queue is drained between
//! timed chunks, so what is timed is the decide path (including the ring push, and a wake of
//! the collector if a ring passed half full) and never an overflow (printed per client and
//! checked). `*_distinct_users` rotate through 1,000 users, so every impression carries its
//! user.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use flagbridge_benches::pipelines::NullTransport;
use flagbridge_engine::{DecideOptions, Decider, ProjectConfig, UserContext};
use flagbridge_sync::testing::datafile;
use flagbridge_sync::Client;

/// Decides per timed chunk; the queue is drained (untimed) between chunks so that it never
/// overflows, stays as small as a promptly drained queue in a server, and the owner loop never
/// competes with the timed loop for a core.
const CHUNK: u64 = 1_000;

fn client_overhead(c: &mut Criterion) {
    let text = datafile("1");
    let config = ProjectConfig::parse(&text).expect("datafile");
    let user = UserContext::new("user-123").with_attribute("plan", "pro");
    // The event pipeline runs on one tokio worker thread, as in a server where it runs beside
    // the request threads; the timed loop runs on this thread. Between timed chunks the loop
    // waits (untimed) for a flush, so the pipeline never competes with it for a core.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    // The same kind of client with its pipeline on this thread (a current-thread runtime that
    // only runs inside `block_on`): the ring's cache lines never leave this core, which
    // isolates the decide path's own work from the cost of moving records to another core.
    let same_core_runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // One client at a time, closed and dropped after its cases, as in a server with one
    // client: a thread keeps the config cache of its first live client in a std thread-local
    // (see sync/src/client/config_cache.rs); a second live client uses the slower lookup.
    let start_on = |runtime: &tokio::runtime::Runtime, events: bool| {
        runtime
            .block_on(
                Client::builder()
                    .datafile(text.clone())
                    .events_enabled(events)
                    .event_transport(Arc::new(NullTransport))
                    .start(),
            )
            .expect("client")
    };
    let timed_on = |runtime: &tokio::runtime::Runtime,
                    client: &Client,
                    iters: u64,
                    decide: &dyn Fn(&Client)|
     -> Duration {
        let mut total = Duration::ZERO;
        let mut done = 0;
        while done < iters {
            let n = CHUNK.min(iters - done);
            let begun = Instant::now();
            for _ in 0..n {
                decide(client);
            }
            total += begun.elapsed();
            runtime.block_on(client.flush());
            done += n;
        }
        total
    };
    let decide_with = |client: &Client| {
        client.decide_with(
            black_box(&user),
            black_box("checkout"),
            DecideOptions::NONE,
            |d| {
                black_box(d.enabled());
            },
        )
    };
    let close = |runtime: &tokio::runtime::Runtime, client: Client| {
        runtime.block_on(client.close());
        let stats = client.event_stats();
        println!(
            "client_overhead events: queued {} sent {} overflow {} dropped {}",
            stats.queued, stats.sent, stats.overflow, stats.dropped
        );
        assert_eq!(
            stats.overflow, 0,
            "a ring overflowed: the timed path included refusals"
        );
    };

    let mut group = c.benchmark_group("client_overhead");
    group.bench_function("engine_alone", |b| {
        b.iter(|| {
            let decider = Decider::new(&config);
            let d = decider.decide(black_box(&user), black_box("checkout"), DecideOptions::NONE);
            black_box(d.enabled())
        })
    });

    {
        let same_core = start_on(&same_core_runtime, true);
        let bound = same_core.user_context(user.clone());
        group.bench_function("user_context_decide_with_events_same_core", |b| {
            b.iter_custom(|iters| {
                timed_on(&same_core_runtime, &same_core, iters, &|_: &Client| {
                    bound.decide_with(black_box("checkout"), DecideOptions::NONE, |d| {
                        black_box(d.enabled());
                    })
                })
            })
        });
        drop(bound);
        close(&same_core_runtime, same_core);
    }

    {
        let without_events = start_on(&runtime, false);
        group.bench_function("client_decide_with_no_events", |b| {
            b.iter_custom(|iters| timed_on(&runtime, &without_events, iters, &decide_with))
        });
        close(&runtime, without_events);
    }

    let with_events = start_on(&runtime, true);
    let timed = |iters: u64, decide: &dyn Fn(&Client)| -> Duration {
        timed_on(&runtime, &with_events, iters, decide)
    };
    group.bench_function("client_decide_with_events", |b| {
        b.iter_custom(|iters| timed(iters, &decide_with))
    });
    let bound = with_events.user_context(user.clone());
    group.bench_function("user_context_decide_with_events", |b| {
        b.iter_custom(|iters| {
            timed(iters, &|_: &Client| {
                bound.decide_with(black_box("checkout"), DecideOptions::NONE, |d| {
                    black_box(d.enabled());
                })
            })
        })
    });
    // The other side: per event, what the owner loop spends (decide again, uuid, render,
    // serialize, batch, null send), timed around the drain. Bounds event throughput.
    group.bench_function("owner_loop_per_event", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut done = 0;
            while done < iters {
                let n = CHUNK.min(iters - done);
                for _ in 0..n {
                    bound.decide_with("checkout", DecideOptions::NONE, |d| black_box(d.enabled()));
                }
                let begun = Instant::now();
                runtime.block_on(with_events.flush());
                total += begun.elapsed();
                done += n;
            }
            total
        })
    });
    group.bench_function("client_decide_owned_events", |b| {
        b.iter_custom(|iters| {
            timed(iters, &|client: &Client| {
                black_box(client.decide(
                    black_box(&user),
                    black_box("checkout"),
                    DecideOptions::NONE,
                ));
            })
        })
    });
    // The worst case for the hand-off: every decide is for another user than the previous one
    // on this thread, so each impression carries its user (`Arc` clone, or a copy when
    // borrowed). The baseline decides for the same rotation of users.
    const ROTATION: usize = 1_000;
    let users: Vec<UserContext> = (0..ROTATION)
        .map(|i| UserContext::new(format!("user-{i}")).with_attribute("plan", "pro"))
        .collect();
    let bound_users: Vec<_> = users
        .iter()
        .map(|u| with_events.user_context(u.clone()))
        .collect();
    let next = std::cell::Cell::new(0usize);
    let turn = || {
        let i = next.get();
        next.set((i + 1) % ROTATION);
        i
    };
    group.bench_function("engine_alone_distinct_users", |b| {
        b.iter(|| {
            let decider = Decider::new(&config);
            let d = decider.decide(
                black_box(&users[turn()]),
                black_box("checkout"),
                DecideOptions::NONE,
            );
            black_box(d.enabled())
        })
    });
    group.bench_function("user_context_decide_with_events_distinct_users", |b| {
        b.iter_custom(|iters| {
            timed(iters, &|_: &Client| {
                bound_users[turn()].decide_with(black_box("checkout"), DecideOptions::NONE, |d| {
                    black_box(d.enabled());
                })
            })
        })
    });
    group.bench_function("client_decide_with_events_distinct_users", |b| {
        b.iter_custom(|iters| {
            timed(iters, &|client: &Client| {
                client.decide_with(
                    black_box(&users[turn()]),
                    black_box("checkout"),
                    DecideOptions::NONE,
                    |d| {
                        black_box(d.enabled());
                    },
                )
            })
        })
    });
    group.finish();
    drop((bound, bound_users));
    close(&runtime, with_events);
}

criterion_group!(benches, client_overhead);
criterion_main!(benches);
