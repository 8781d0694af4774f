//! Interleaved ("paired") timing of the two 1.3x overhead targets, the noise-robust companion
//! of the criterion benches `client_overhead` and `brevo_sync`:
//!
//! - runtime `Client` (events on) against the engine alone, on the `client_overhead` datafile
//!   and user: `client/user_context` (a `ClientUserContext`) and `client/borrowed` (a
//!   `&UserContext`), each over `client/engine_alone`;
//! - engine plus the Brevo sink against the engine alone, on the `brevo_sync` datafile and
//!   user: `brevo/decide_plus_enqueue` over `brevo/decide_alone`.
//!
//! Criterion measures each case in its own time window; on a shared, noisy VM the load changes
//! between the two halves of a ratio by more than the margin to 1.3x. Here the cases take
//! turns in batches of [`BATCH`] decides for the whole run (order rotated every round), so
//! they see the same load, and the ratios are of the medians of the per-batch times. The
//! pipelines run for real on a one-worker tokio runtime (the other core); their queues are
//! drained, untimed, every [`DRAIN_EVERY`] decides, so no timed decide meets a full ring
//! (overflow is checked at the end). Accepts criterion's flags; `--measurement-time S` sets
//! the run length (default 5 s). Writes `target/flagbridge-bench/overhead_paired.json`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flagbridge_benches::args::{flag_value, selected};
use flagbridge_benches::pipelines::{dry_run_brevo_sync, wait_processed, NullTransport};
use flagbridge_benches::stats::{write_result, Summary};
use flagbridge_engine::{DecideOptions, Decider, ProjectConfig, UserContext};
use flagbridge_sync::sink::DecisionSink;
use flagbridge_sync::testing::datafile;
use flagbridge_sync::Client;

/// Decides per timed batch.
const BATCH: usize = 250;
/// Decides a pipeline takes between two untimed drains: a quarter of its ring (the Brevo
/// sync's rings hold 4,096 records; a new user's first decision takes two).
const DRAIN_EVERY: usize = 1_000;
const BREVO_DATAFILE: &str = include_str!("../../sync/tests/data/brevo_small_datafile.json");

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !selected(&args, "overhead_paired") {
        return;
    }
    let seconds = flag_value(&args, "--measurement-time").unwrap_or(5.0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");

    // The runtime client, as in `client_overhead`.
    let text = datafile("1");
    let config = ProjectConfig::parse(&text).expect("datafile");
    let user = UserContext::new("user-123").with_attribute("plan", "pro");
    let client = runtime
        .block_on(
            Client::builder()
                .datafile(text.clone())
                .event_transport(Arc::new(NullTransport))
                .start(),
        )
        .expect("client");
    let bound = client.user_context(user.clone());

    // The Brevo sync, as in `brevo_sync`.
    let brevo_config = Arc::new(ProjectConfig::parse(BREVO_DATAFILE).expect("datafile"));
    let dir = std::env::temp_dir().join(format!("flagbridge-paired-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let sync = dry_run_brevo_sync(&runtime, &dir, 16_384);
    let sink = sync.sink();
    let brevo_user = UserContext::new("user-42")
        .with_attribute("email", "user42@example.com")
        .with_attribute("plan", "vip")
        .with_attribute("country", "FR");

    let names = [
        "client/engine_alone",
        "client/user_context",
        "client/borrowed",
        "brevo/decide_alone",
        "brevo/decide_plus_enqueue",
    ];
    let run_batch = |variant: usize| -> f64 {
        let t0 = Instant::now();
        match variant {
            0 => {
                for _ in 0..BATCH {
                    let decider = Decider::new(&config);
                    let d = decider.decide(
                        black_box(&user),
                        black_box("checkout"),
                        DecideOptions::NONE,
                    );
                    black_box(d.enabled());
                }
            }
            1 => {
                for _ in 0..BATCH {
                    bound.decide_with(black_box("checkout"), DecideOptions::NONE, |d| {
                        black_box(d.enabled());
                    });
                }
            }
            2 => {
                for _ in 0..BATCH {
                    client.decide_with(
                        black_box(&user),
                        black_box("checkout"),
                        DecideOptions::NONE,
                        |d| {
                            black_box(d.enabled());
                        },
                    );
                }
            }
            3 => {
                for _ in 0..BATCH {
                    let decider = Decider::new(&brevo_config);
                    let d = decider.decide(black_box(&brevo_user), "checkout", DecideOptions::NONE);
                    black_box(&d);
                }
            }
            _ => {
                for _ in 0..BATCH {
                    let decider = Decider::new(&brevo_config);
                    let d = decider.decide(black_box(&brevo_user), "checkout", DecideOptions::NONE);
                    sink.on_decision(&brevo_config, &brevo_user, &d);
                    black_box(&d);
                }
            }
        }
        t0.elapsed().as_nanos() as f64 / BATCH as f64
    };
    // Untimed: empties the pipelines' rings once they took `DRAIN_EVERY` decides.
    let mut client_pending = 0;
    let mut brevo_pending = 0;
    let mut drain = |variant: usize| match variant {
        1 | 2 => {
            client_pending += BATCH;
            if client_pending >= DRAIN_EVERY {
                runtime.block_on(client.flush());
                client_pending = 0;
            }
        }
        4 => {
            brevo_pending += BATCH;
            if brevo_pending >= DRAIN_EVERY {
                wait_processed(&sync);
                brevo_pending = 0;
            }
        }
        _ => {}
    };

    let mut samples: [Vec<f64>; 5] = Default::default();
    let warm_end = Instant::now() + Duration::from_millis(500);
    let mut round = 0usize;
    while Instant::now() < warm_end {
        for v in 0..names.len() {
            run_batch(v);
            drain(v);
        }
        round += 1;
    }
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    while Instant::now() < end {
        // Rotate the order each round so no case always runs right after another.
        for k in 0..names.len() {
            let v = (round + k) % names.len();
            samples[v].push(run_batch(v));
            drain(v);
        }
        round += 1;
    }

    let summaries: Vec<Summary> = samples.iter_mut().map(|s| Summary::of(s)).collect();
    println!("overhead, interleaved batches of {BATCH}, {seconds} s: median ns per decide");
    for (name, s) in names.iter().zip(&summaries) {
        println!("{name:<28} {:>8.1} ns  ({} batches)", s.median, s.samples);
    }
    let ratio = |a: usize, b: usize| summaries[a].median / summaries[b].median;
    let ratios = [
        ("client_user_context_over_engine", ratio(1, 0)),
        ("client_borrowed_over_engine", ratio(2, 0)),
        ("brevo_enqueue_over_decide", ratio(4, 3)),
    ];
    for (name, r) in ratios {
        println!("{name:<34} {r:.2}x (target <= 1.30x)");
    }

    drop(bound);
    runtime.block_on(client.close());
    let events = client.event_stats();
    wait_processed(&sync);
    let counters = sync.counters();
    runtime.block_on(sync.close()).expect("close");
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "events: queued {} overflow {}; brevo: queued {} overflow {}",
        events.queued, events.overflow, counters.decisions_queued, counters.queue_overflow
    );
    assert_eq!(events.overflow, 0, "an event ring overflowed");
    assert_eq!(counters.queue_overflow, 0, "a Brevo ring overflowed");

    let mut json = serde_json::Map::new();
    for (name, s) in names.iter().zip(&summaries) {
        json.insert((*name).into(), s.to_json());
    }
    for (name, r) in ratios {
        json.insert(name.into(), r.into());
    }
    json.insert("batch".into(), BATCH.into());
    json.insert("seconds".into(), seconds.into());
    match write_result("overhead_paired.json", &serde_json::Value::Object(json)) {
        Ok(path) => println!("wrote {}", path.display()),
        Err(e) => eprintln!("could not write overhead_paired.json: {e}"),
    }
}
