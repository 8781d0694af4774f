//! decide latency while another thread swaps in a new config every 10 ms (arc-swap), against the
//! same decide without swaps. Criterion gives no percentiles, so this is a custom measurement:
//! it records the latency of every call (two `Instant::now()` around one decide, so the figures
//! include the clock's own cost, ~20-40 ns) and of every batch of 100 calls (clock cost
//! amortised), and prints median, p99, p99.9 and max per decide.
//!
//! Modes, run in interleaved rounds so machine noise hits all of them alike:
//! - `steady`: no swaps;
//! - `swap_prebuilt`: every 10 ms the writer stores one of two pre-parsed configs (the pure
//!   cost of the swap and of the reader meeting a cold config);
//! - `swap_parse`: every 10 ms the writer parses the datafile and stores the new config (what the
//!   poller does; the parse competes for the machine's 2 cores, and the reader may drop the last
//!   reference of an old config). Parsing the 2 MB large datafile takes longer than 10 ms, so
//!   here the writer swaps back-to-back, as fast as it can parse: a harsher load than the 10 ms.
//!
//! Reader: `let cfg = store.load(); Decider::new(&cfg).decide(user, case (a) flag, EXCLUDE_VARIABLES)`
//! on the large datafile. Accepts criterion's flags; `--measurement-time S` sets the seconds
//! per mode (default 3). Writes `target/flagbridge-bench/swap.json`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use flagbridge_benches::args::{flag_value, selected};
use flagbridge_benches::fixtures::Plan;
use flagbridge_benches::stats::{write_result, Histogram, Summary};
use flagbridge_benches::users;
use flagbridge_engine::{DecideOption, DecideOptions, Decider, ProjectConfig, UserContext};

const SWAP_INTERVAL: Duration = Duration::from_millis(10);
const BATCH: usize = 100;
const ROUNDS: u32 = 3;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Steady,
    SwapPrebuilt,
    SwapParse,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Steady => "steady",
            Mode::SwapPrebuilt => "swap_prebuilt",
            Mode::SwapParse => "swap_parse",
        }
    }
}

#[derive(Default)]
struct Samples {
    per_call: Histogram,
    per_batch: Vec<f64>,
    swaps: u64,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !selected(&args, "swap") {
        return;
    }
    let seconds = flag_value(&args, "--measurement-time").unwrap_or(3.0);
    let per_round = Duration::from_secs_f64(seconds / f64::from(ROUNDS));

    let plan = Plan::load();
    let text: Arc<str> = Arc::from(plan.large.text.as_str());
    let flag = plan.large.flags.experiment.clone();
    let ctxs: Vec<UserContext> = plan.users.iter().map(users::context).collect();
    let prebuilt = [
        Arc::new(ProjectConfig::parse(&text).expect("large fixture parses")),
        Arc::new(ProjectConfig::parse(&text).expect("large fixture parses")),
    ];
    let store = Arc::new(ArcSwap::new(Arc::clone(&prebuilt[0])));
    let options = DecideOptions::NONE.with(DecideOption::ExcludeVariables);

    let modes = [Mode::Steady, Mode::SwapPrebuilt, Mode::SwapParse];
    let mut samples: Vec<Samples> = modes.iter().map(|_| Samples::default()).collect();
    // Warm-up.
    run_reader(
        &store,
        &ctxs,
        &flag,
        options,
        Duration::from_millis(300),
        &mut Samples::default(),
    );
    for _ in 0..ROUNDS {
        for (mode, out) in modes.iter().zip(samples.iter_mut()) {
            let stop = Arc::new(AtomicBool::new(false));
            let writer = (*mode != Mode::Steady).then(|| {
                let (store, stop, text, prebuilt, mode) = (
                    Arc::clone(&store),
                    Arc::clone(&stop),
                    Arc::clone(&text),
                    prebuilt.clone(),
                    *mode,
                );
                thread::spawn(move || swapper(&store, &stop, &text, &prebuilt, mode))
            });
            run_reader(&store, &ctxs, &flag, options, per_round, out);
            stop.store(true, Ordering::Relaxed);
            if let Some(writer) = writer {
                out.swaps += writer.join().expect("swapper thread");
            }
        }
    }

    println!("decide (a) on the large datafile, ns per decide; {seconds} s per mode");
    println!(
        "{:<14} {:>8} | {:>9} {:>9} {:>9} {:>9} | {:>9} {:>9} {:>9}",
        "mode", "swaps", "call p50", "call p99", "p99.9", "max", "batch p50", "batch p99", "max"
    );
    let mut json = serde_json::Map::new();
    for (mode, s) in modes.iter().zip(samples.iter_mut()) {
        let call = s.per_call.summary();
        let batch = Summary::of(&mut s.per_batch);
        println!(
            "{:<14} {:>8} | {:>9.1} {:>9.1} {:>9.1} {:>9.0} | {:>9.1} {:>9.1} {:>9.0}",
            mode.name(),
            s.swaps,
            call.median,
            call.p99,
            call.p999,
            call.max,
            batch.median,
            batch.p99,
            batch.max
        );
        json.insert(
            mode.name().into(),
            serde_json::json!({
                "swaps": s.swaps,
                "per_call_ns": call.to_json(),
                "per_batch_of_100_ns_per_decide": batch.to_json(),
            }),
        );
    }
    json.insert("seconds_per_mode".into(), seconds.into());
    json.insert("flag".into(), flag.into());
    match write_result("swap.json", &serde_json::Value::Object(json)) {
        Ok(path) => println!("wrote {}", path.display()),
        Err(e) => eprintln!("could not write swap.json: {e}"),
    }
}

/// Decides in batches of [`BATCH`] until `duration` has passed, recording per-call and
/// per-batch latencies (ns per decide).
fn run_reader(
    store: &ArcSwap<ProjectConfig>,
    ctxs: &[UserContext],
    flag: &str,
    options: DecideOptions,
    duration: Duration,
    out: &mut Samples,
) {
    let end = Instant::now() + duration;
    // Room for the batches of this round up front: no reallocation while measuring.
    out.per_batch.reserve(duration.as_micros() as usize / 2);
    let mut i = 0usize;
    while Instant::now() < end {
        let batch_start = Instant::now();
        for _ in 0..BATCH {
            let user = &ctxs[i % ctxs.len()];
            i = i.wrapping_add(1);
            let t0 = Instant::now();
            let config = store.load();
            let decision = Decider::new(&config).decide(
                std::hint::black_box(user),
                std::hint::black_box(flag),
                options,
            );
            std::hint::black_box(decision.enabled());
            drop(decision);
            drop(config);
            out.per_call.record(t0.elapsed().as_nanos() as u64);
        }
        out.per_batch
            .push(batch_start.elapsed().as_nanos() as f64 / BATCH as f64);
    }
}

/// Stores a new config every [`SWAP_INTERVAL`] until `stop`; returns the number of swaps.
fn swapper(
    store: &ArcSwap<ProjectConfig>,
    stop: &AtomicBool,
    text: &str,
    prebuilt: &[Arc<ProjectConfig>; 2],
    mode: Mode,
) -> u64 {
    let mut swaps = 0u64;
    let mut next = Instant::now() + SWAP_INTERVAL;
    while !stop.load(Ordering::Relaxed) {
        let config = match mode {
            Mode::SwapParse => Arc::new(ProjectConfig::parse(text).expect("large fixture parses")),
            _ => Arc::clone(&prebuilt[(swaps as usize + 1) % 2]),
        };
        let now = Instant::now();
        if next > now {
            thread::sleep(next - now);
        }
        store.store(config);
        swaps += 1;
        next += SWAP_INTERVAL;
    }
    store.store(Arc::clone(&prebuilt[0]));
    swaps
}
