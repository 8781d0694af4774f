//! Interleaved ("paired") timing of `decide_1000_users`: the engine, a `Client` with events
//! on, and a `Client` with events and the Brevo sync, each deciding one flag for 1,000
//! distinct users in chunks of [`CHUNK`] decides, the three taking turns (order rotated every
//! round) for the whole run, with each pipeline flushed, untimed, after each of its chunks.
//!
//! Why: on this VM the same engine loop runs at ~63 ns or at ~117 ns per decide depending on
//! the period it falls in (seen on 2026-12-04 across runs of one binary, on either CPU, with
//! or without ASLR), so criterion's `decide_1000_users`, which times each case in its own
//! window, gives ratios that move by 2x from run to run. Here the cases see the same periods,
//! and the ratios are of the medians of the per-chunk times. Same datafile, users, stores and
//! sinks as `delivery.rs`. Accepts `--measurement-time S` (default 10 s).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flagbridge_benches::args::{flag_value, selected};
use flagbridge_benches::pipelines::{dry_run_brevo_sync, wait_processed, NullTransport};
use flagbridge_benches::stats::Summary;
use flagbridge_engine::{DecideOptions, Decider, ProjectConfig, UserContext};
use flagbridge_sync::testing::datafile;
use flagbridge_sync::{Client, ClientUserContext, EventStorage};

const USERS: usize = 1_000;
/// Decides per timed chunk (as in `delivery.rs`).
const CHUNK: usize = 1_000;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !selected(&args, "users_paired") {
        return;
    }
    let seconds = flag_value(&args, "--measurement-time").unwrap_or(10.0);
    let text = datafile("1");
    let config = ProjectConfig::parse(&text).expect("datafile");
    let users: Vec<UserContext> = (0..USERS)
        .map(flagbridge_benches::users::numbered)
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let brevo = dry_run_brevo_sync(&runtime, dir.path(), 1 << 16);
    let start = |store: &str, with_brevo: bool| {
        let mut builder = Client::builder()
            .datafile(text.clone())
            .event_transport(Arc::new(NullTransport))
            .event_storage(EventStorage::File(dir.path().join(store)));
        if with_brevo {
            builder = builder.decision_sink(Arc::new(brevo.sink()));
        }
        runtime.block_on(builder.start()).expect("client")
    };
    let events = start("events.sqlite", false);
    let both = start("events-brevo.sqlite", true);
    let bind = |client: &Client| -> Vec<ClientUserContext> {
        users
            .iter()
            .map(|u| client.user_context(u.clone()))
            .collect()
    };
    let (events_users, both_users) = (bind(&events), bind(&both));
    let decider = Decider::new(&config);

    let names = ["engine", "client_events", "client_events_brevo"];
    let mut samples = vec![Vec::<f64>::new(); names.len()];
    let mut i = 0usize;
    let mut chunk = |case: usize| -> f64 {
        let t0 = Instant::now();
        for _ in 0..CHUNK {
            i = (i + 1) % USERS;
            match case {
                0 => {
                    black_box(
                        decider
                            .decide(&users[i], "checkout", DecideOptions::NONE)
                            .enabled(),
                    );
                }
                1 => {
                    black_box(
                        events_users[i]
                            .decide_with("checkout", DecideOptions::NONE, |d| d.enabled()),
                    );
                }
                _ => {
                    black_box(
                        both_users[i].decide_with("checkout", DecideOptions::NONE, |d| d.enabled()),
                    );
                }
            }
        }
        t0.elapsed().as_nanos() as f64 / CHUNK as f64
    };
    let warm_end = Instant::now() + Duration::from_millis(500);
    let end = warm_end + Duration::from_secs_f64(seconds);
    let mut round = 0usize;
    while Instant::now() < end {
        for k in 0..names.len() {
            let case = (round + k) % names.len();
            let ns = chunk(case);
            match case {
                1 => runtime.block_on(events.flush()),
                2 => {
                    runtime.block_on(both.flush());
                    wait_processed(&brevo);
                }
                _ => {}
            }
            if Instant::now() > warm_end {
                samples[case].push(ns);
            }
        }
        round += 1;
    }
    let medians: Vec<Summary> = samples.iter_mut().map(|s| Summary::of(s)).collect();
    let engine = medians[0].median;
    for (name, m) in names.iter().zip(&medians) {
        println!(
            "users_paired/{name}: median {:.1} ns per decide ({} chunks of {CHUNK}), {:.2}x the engine",
            m.median,
            m.samples,
            m.median / engine
        );
    }
    runtime.block_on(events.close());
    runtime.block_on(both.close());
    let _ = runtime.block_on(brevo.close());
    for client in [&events, &both] {
        let stats = client.event_stats();
        assert_eq!((stats.dropped, stats.overflow), (0, 0), "{stats:?}");
    }
}
