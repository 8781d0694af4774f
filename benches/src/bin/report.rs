//! Collects one sitting's results into the Markdown tables of `benches/README.md`:
//! criterion medians (`target/criterion/**/new/estimates.json`), the JS peer
//! (`target/flagbridge-bench/js.json`), the swap measurement (`swap.json`), the memory binary
//! (`memory-*.json`), the decide-path overhead (`overhead_paired.json`), and allocations per
//! decide (measured here, with a counting allocator).
//! Every target of the issue is shown next to its measured value; nothing is asserted.
//!
//! `cargo run --release -p flagbridge-benches --bin report` (after `benches/run.sh` or the
//! individual commands in the README).

use std::collections::BTreeMap;
use std::path::Path;

use flagbridge_benches::alloc::CountingAlloc;
use flagbridge_benches::fixtures::{repo_root, Plan};
use flagbridge_benches::stats::results_dir;
use serde_json::Value;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// criterion full id (`group/function`) -> (median ns, throughput elements or bytes).
type Criterion = BTreeMap<String, (f64, Option<u64>)>;

fn main() {
    let plan = Plan::load();
    let target = results_dir()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| repo_root().join("target"));
    let mut crit = Criterion::new();
    collect_criterion(&target.join("criterion"), &mut crit);
    let js = load("js.json");
    let swap = load("swap.json");
    let paired = load("paired.json");
    let overhead = load("overhead_paired.json");

    println!("{}", machine());
    println!();
    println!(
        "| benchmark | flagbridge median | target | peer: `optimizely` crate | peer: JS SDK {} |",
        js_version(&js)
    );
    println!("|---|---|---|---|---|");
    let med = |id: &str| crit.get(id).map(|(m, _)| *m);
    let js_med = |id: &str| {
        js.as_ref()
            .and_then(|j| j["results"][id]["median_ns"].as_f64())
    };
    for case in [
        "a_experiment",
        "b_no_rules",
        "c_forced",
        "d_reasons",
        "e_variables",
    ] {
        for size in ["small", "large"] {
            let ours = med(&format!("decide/flagbridge/{case}/{size}"));
            let target = match (case, size) {
                ("a_experiment", "small") => check(ours, 60.0, "<= 60 ns"),
                ("a_experiment", "large") => {
                    let small = med("decide/flagbridge/a_experiment/small");
                    match (ours, small) {
                        (Some(l), Some(s)) => {
                            verdict(l / s <= 1.2, &format!("<= 1.2x small: {:.2}x", l / s))
                        }
                        _ => "<= 1.2x small".into(),
                    }
                }
                _ => String::new(),
            };
            let crate_ratio = ratio(med(&format!("decide/optimizely_crate/{case}/{size}")), ours);
            let crate_cell = match (case, crate_ratio) {
                ("a_experiment", Some(r)) => {
                    format!("{} ({})", fmt_ratio(r), verdict(r >= 3.0, ">= 3x"))
                }
                (_, Some(r)) => fmt_ratio(r),
                _ => "unsupported".into(),
            };
            let js_ratio = ratio(js_med(&format!("decide/{case}/{size}")), ours);
            let js_cell = match (case, js_ratio) {
                ("a_experiment", Some(r)) => {
                    format!("{} ({})", fmt_ratio(r), verdict(r >= 50.0, ">= 50x"))
                }
                (_, Some(r)) => fmt_ratio(r),
                _ => "-".into(),
            };
            println!(
                "| decide ({case}, {size}) | {} | {target} | {crate_cell} | {js_cell} |",
                fmt_ns(ours)
            );
        }
    }
    for (id, label) in [
        ("decide_all/flagbridge/large", "large"),
        ("decide_all/flagbridge/small", "small"),
    ] {
        if let Some((m, Some(flags))) = crit.get(id) {
            let per_flag = m / *flags as f64;
            let target = if label == "large" {
                check(Some(per_flag), 40.0, "<= 40 ns/flag")
            } else {
                String::new()
            };
            let js_per_flag = js
                .as_ref()
                .and_then(|j| j["results"][format!("decide_all/{label}")]["per_flag_ns"].as_f64());
            println!(
                "| decide_all ({label}, {flags} flags) | {} = {} /flag | {target} | unsupported | {} |",
                fmt_ns(Some(*m)),
                fmt_ns(Some(per_flag)),
                ratio(js_per_flag, Some(per_flag)).map(fmt_ratio).unwrap_or("-".into())
            );
        }
    }
    for (id, (m, _)) in crit
        .iter()
        .filter(|(id, _)| id.starts_with("bucketing/") || id.starts_with("audience/"))
    {
        println!("| {id} | {} | | | |", fmt_ns(Some(*m)));
    }

    if let Some(p) = &paired {
        let m = |k: &str| p[k]["median"].as_f64();
        println!();
        println!(
            "Interleaved (`benches/paired.rs`: the four variants take turns in batches of {} decides for {} s, so they share the same machine load):",
            p["batch"], p["seconds"]
        );
        println!();
        println!("| decide (a) | small | large | large / small | target |");
        println!("|---|---|---|---|---|");
        let js_a = |size: &str| js_med(&format!("decide/a_experiment/{size}"));
        let fb_ratio = p["flagbridge_large_over_small"]
            .as_f64()
            .unwrap_or(f64::NAN);
        println!(
            "| flagbridge | {} ({}) | {} | {:.2}x | {} |",
            fmt_ns(m("flagbridge/small")),
            check(m("flagbridge/small"), 60.0, "<= 60 ns"),
            fmt_ns(m("flagbridge/large")),
            fb_ratio,
            verdict(fb_ratio <= 1.2, "large <= 1.2x small"),
        );
        let (cs, cl) = (
            p["crate_over_flagbridge_small"]
                .as_f64()
                .unwrap_or(f64::NAN),
            p["crate_over_flagbridge_large"]
                .as_f64()
                .unwrap_or(f64::NAN),
        );
        println!(
            "| `optimizely` crate | {} ({}) | {} ({}) | {:.2}x | {} |",
            fmt_ns(m("optimizely_crate/small")),
            fmt_ratio(cs),
            fmt_ns(m("optimizely_crate/large")),
            fmt_ratio(cl),
            m("optimizely_crate/large").unwrap_or(0.0) / m("optimizely_crate/small").unwrap_or(1.0),
            verdict(cs >= 3.0 && cl >= 3.0, "crate >= 3x flagbridge"),
        );
        if let (Some(js_s), Some(js_l), Some(fs), Some(fl)) = (
            js_a("small"),
            js_a("large"),
            m("flagbridge/small"),
            m("flagbridge/large"),
        ) {
            println!(
                "| JS SDK (its own run, `js/bench.js`) | {} ({}) | {} ({}) | {:.2}x | {} |",
                fmt_ns(Some(js_s)),
                fmt_ratio(js_s / fs),
                fmt_ns(Some(js_l)),
                fmt_ratio(js_l / fl),
                js_l / js_s,
                verdict(
                    js_s / fs >= 50.0 && js_l / fl >= 50.0,
                    "JS >= 50x flagbridge"
                ),
            );
        }
    }

    println!();
    println!("{}", agreement(&plan, js.as_ref()));

    println!();
    println!("| parse + compile | bytes | flagbridge median | per KB | target | `optimizely` crate | JS SDK createInstance |");
    println!("|---|---|---|---|---|---|---|");
    for (id, (m, bytes)) in crit
        .iter()
        .filter(|(id, _)| id.starts_with("parse/flagbridge/"))
    {
        let name = id.trim_start_matches("parse/flagbridge/");
        let bytes = bytes.unwrap_or(0);
        let per_kb = m / (bytes as f64 / 1024.0);
        let target = if (300_000..=600_000).contains(&bytes) {
            check(Some(*m), 5e6, "<= 5 ms (400 KB)")
        } else if bytes > 1_000_000 {
            format!("400 KB at this rate: {}", fmt_ns(Some(per_kb * 400.0)))
        } else {
            String::new()
        };
        let peer = med(&format!("parse/optimizely_crate/{name}"));
        let stem = if name == "large_700" { "large" } else { name };
        let js_parse = js_med(&format!("parse/{stem}"));
        println!(
            "| {name} | {bytes} | {} | {} | {target} | {} | {} |",
            fmt_ns(Some(*m)),
            fmt_ns(Some(per_kb)),
            peer.map(|p| format!("{} ({})", fmt_ns(Some(p)), fmt_ratio(p / m)))
                .unwrap_or_default(),
            js_parse
                .map(|p| format!("{} ({})", fmt_ns(Some(p)), fmt_ratio(p / m)))
                .unwrap_or_default(),
        );
    }

    println!();
    let rows = flagbridge_benches::allocations::measure(&plan);
    println!("| heap allocations per call | options | allocations | target |");
    println!("|---|---|---|---|");
    for row in rows {
        let target = if row.case.starts_with("decide/") && !row.options.contains("INCLUDE_REASONS")
        {
            verdict(row.allocations == 0.0, "0")
        } else {
            String::new()
        };
        println!(
            "| {} | {} | {:.2} | {target} |",
            row.case, row.options, row.allocations
        );
    }

    if let Some(swap) = &swap {
        println!();
        println!("| decide (a) large, {} s per mode | swaps | per-call p50 | p99 | p99.9 | max | per-batch-of-100 p50 | p99 |", swap["seconds_per_mode"]);
        println!("|---|---|---|---|---|---|---|---|");
        for mode in ["steady", "swap_prebuilt", "swap_parse"] {
            let m = &swap[mode];
            let c = &m["per_call_ns"];
            let b = &m["per_batch_of_100_ns_per_decide"];
            println!(
                "| {mode} | {} | {} | {} | {} | {} | {} | {} |",
                m["swaps"],
                fmt_ns(c["median"].as_f64()),
                fmt_ns(c["p99"].as_f64()),
                fmt_ns(c["p99_9"].as_f64()),
                fmt_ns(c["max"].as_f64()),
                fmt_ns(b["median"].as_f64()),
                fmt_ns(b["p99"].as_f64()),
            );
        }
        println!();
        println!("Per-call figures include two `Instant::now()` calls (~20-40 ns). `swap_prebuilt` stores one of two pre-parsed configs every 10 ms; `swap_parse` parses the large datafile and stores it, back-to-back, because a parse takes longer than 10 ms.");
        let steady = swap["steady"]["per_call_ns"]["p99"].as_f64();
        for mode in ["swap_prebuilt", "swap_parse"] {
            if let Some(r) = ratio(swap[mode]["per_call_ns"]["p99"].as_f64(), steady) {
                println!(
                    "\np99 {mode} / steady = {} ({})",
                    fmt_ratio(r),
                    verdict(r <= 1.5, "<= 1.5x")
                );
            }
        }
    }

    if let Some(overhead) = &overhead {
        println!();
        println!(
            "Decide-path overhead, interleaved (`overhead_paired`: batches of {}, {} s, {} stack offsets):",
            overhead["batch"], overhead["seconds"], overhead["stack_offsets"]
        );
        println!();
        println!("| ratio | pooled | across stack offsets | target |");
        println!("|---|---|---|---|");
        for (name, target) in [
            ("client_user_context_over_engine", true),
            ("client_borrowed_over_engine", true),
            ("brevo_enqueue_over_decide", true),
            ("client_events_off_over_engine", false),
            ("plan_a_client_over_engine", false),
        ] {
            let Some(pooled) = overhead[name].as_f64() else {
                continue;
            };
            let offsets: Vec<f64> = overhead[format!("{name}_per_stack_offset")]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_f64).collect())
                .unwrap_or_default();
            let range = match (
                offsets.iter().copied().reduce(f64::min),
                offsets.iter().copied().reduce(f64::max),
            ) {
                (Some(lo), Some(hi)) => format!("{lo:.2}-{hi:.2}x"),
                _ => "-".into(),
            };
            let target = if target {
                verdict(pooled <= 1.3, "<= 1.30x")
            } else {
                String::new()
            };
            println!("| {name} | {pooled:.2}x | {range} | {target} |");
        }
    }

    if let Ok(text) = std::fs::read_to_string(results_dir().join("callgrind.txt")) {
        println!();
        println!("Instructions per call under callgrind (`benches/scripts/callgrind.sh`; not disturbed by other processes):");
        println!();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            println!("- {line}");
        }
    }

    println!();
    println!("| memory (process holding one compiled datafile) | datafile | VmHWM | VmRSS | config heap | heap / datafile | parse peak heap | target |");
    println!("|---|---|---|---|---|---|---|---|");
    for engine in ["flagbridge", "optimizely_crate"] {
        if let Some(m) = load(&format!("memory-{engine}.json")) {
            let hwm = m["vm_hwm_kb"].as_f64().unwrap_or(0.0);
            println!(
                "| {engine} | {} | {:.1} MB | {:.1} MB | {:.2} MB | {:.2}x | {:.2} MB | {} |",
                Path::new(m["datafile"].as_str().unwrap_or(""))
                    .file_name()
                    .map(|f| f.to_string_lossy())
                    .unwrap_or_default(),
                hwm / 1024.0,
                m["vm_rss_kb"].as_f64().unwrap_or(0.0) / 1024.0,
                m["config_heap_bytes"].as_f64().unwrap_or(0.0) / 1048576.0,
                m["config_heap_per_datafile_byte"].as_f64().unwrap_or(0.0),
                m["parse_peak_heap_bytes"].as_f64().unwrap_or(0.0) / 1048576.0,
                if engine == "flagbridge" {
                    verdict(hwm <= 15.0 * 1024.0, "<= 15 MB")
                } else {
                    String::new()
                },
            );
        }
    }
}

/// How many of the plan's decisions the peers return identically (same work being timed):
/// flagbridge vs the JS SDK on (enabled, variation key, rule key) for every case, and vs the
/// `optimizely` crate on (enabled, variation key) for case (a).
fn agreement(plan: &Plan, js: Option<&Value>) -> String {
    use flagbridge_benches::{peer, users};
    use flagbridge_engine::{DecideOption, DecideOptions, Decider, ProjectConfig};
    let mut js_same = 0;
    let mut js_total = 0;
    let mut js_diffs = Vec::new();
    let mut crate_same = 0;
    let mut crate_total = 0;
    let no_vars = DecideOptions::NONE.with(DecideOption::ExcludeVariables);
    for fx in plan.fixtures() {
        let Ok(config) = ProjectConfig::parse(&fx.text) else {
            return format!("{}: flagbridge cannot parse it", fx.path.display());
        };
        let decider = Decider::new(&config);
        let client = peer::client(&fx.text).ok();
        let f = &fx.flags;
        for (case, flag) in [
            ("a_experiment", &f.experiment),
            ("b_no_rules", &f.no_rules),
            ("c_forced", &f.forced.flag),
            ("d_reasons", &f.reasons),
            ("e_variables", &f.variables),
        ] {
            for (i, user) in plan.users.iter().enumerate() {
                let ctx = if case == "c_forced" {
                    users::forced_context(user, &f.forced)
                } else {
                    users::context(user)
                };
                let d = decider.decide(&ctx, flag, no_vars);
                if let Some(js) = js {
                    let theirs = &js["decisions"][format!("{case}/{}", fx.name)][i];
                    if !theirs.is_null() {
                        js_total += 1;
                        let same = theirs["enabled"].as_bool() == Some(d.enabled())
                            && theirs["variation"].as_str() == d.variation_key()
                            && theirs["rule"].as_str() == d.rule_key();
                        if same {
                            js_same += 1;
                        } else if js_diffs.len() < 5 {
                            js_diffs.push(format!("{case}/{}/{}", fx.name, user.id));
                        }
                    }
                }
                if let (Some(client), "a_experiment") = (&client, case) {
                    let mut c = client.create_user_context(&user.id);
                    for (k, v) in peer::attribute_values(user) {
                        c.set_attribute(k, v);
                    }
                    let theirs = c.decide(flag);
                    crate_total += 1;
                    let ours = d.variation_key().unwrap_or("off");
                    if theirs.enabled() == d.enabled() && theirs.variation_key() == ours {
                        crate_same += 1;
                    }
                }
            }
        }
    }
    let js_line = if js.is_some() {
        format!(
            "JS SDK returns the same (enabled, variation, rule) for {js_same}/{js_total} plan decisions{}",
            if js_diffs.is_empty() { String::new() } else { format!(" (differs: {})", js_diffs.join(", ")) }
        )
    } else {
        "JS SDK not run".into()
    };
    format!(
        "Same work: {js_line}; the `optimizely` crate returns the same (enabled, variation) for {crate_same}/{crate_total} case (a) decisions."
    )
}

fn load(name: &str) -> Option<Value> {
    let path = results_dir().join(name);
    let text = std::fs::read_to_string(&path).ok()?;
    serde_json::from_str(&text).ok()
}

fn collect_criterion(dir: &Path, out: &mut Criterion) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        if path.file_name().is_some_and(|n| n == "new") {
            let bench = std::fs::read_to_string(path.join("benchmark.json")).ok();
            let est = std::fs::read_to_string(path.join("estimates.json")).ok();
            if let (Some(bench), Some(est)) = (bench, est) {
                let bench: Value = serde_json::from_str(&bench).unwrap_or_default();
                let est: Value = serde_json::from_str(&est).unwrap_or_default();
                if let (Some(id), Some(median)) = (
                    bench["full_id"].as_str(),
                    est["median"]["point_estimate"].as_f64(),
                ) {
                    let throughput = bench["throughput"]["Elements"]
                        .as_u64()
                        .or_else(|| bench["throughput"]["Bytes"].as_u64());
                    out.insert(id.to_owned(), (median, throughput));
                }
            }
        } else {
            collect_criterion(&path, out);
        }
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let date = std::process::Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d %H:%M UTC")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!(
        "Machine: {nproc} CPUs (`nproc`), {cpu}; {date}; load average {} at report time.",
        load.join(" ")
    )
}

fn js_version(js: &Option<Value>) -> String {
    js.as_ref()
        .and_then(|j| j["sdk_version"].as_str().map(|v| format!("{v} (x slower)")))
        .unwrap_or_else(|| "(not run)".into())
}

fn ratio(peer: Option<f64>, ours: Option<f64>) -> Option<f64> {
    Some(peer? / ours?)
}

fn fmt_ratio(r: f64) -> String {
    if r >= 10.0 {
        format!("{r:.0}x")
    } else {
        format!("{r:.2}x")
    }
}

fn fmt_ns(ns: Option<f64>) -> String {
    match ns {
        None => "-".into(),
        Some(ns) if ns >= 1e6 => format!("{:.2} ms", ns / 1e6),
        Some(ns) if ns >= 1e3 => format!("{:.2} us", ns / 1e3),
        Some(ns) => format!("{ns:.1} ns"),
    }
}

fn check(value: Option<f64>, limit: f64, label: &str) -> String {
    match value {
        Some(v) => verdict(v <= limit, label),
        None => label.into(),
    }
}

fn verdict(ok: bool, label: &str) -> String {
    if ok {
        format!("met ({label})")
    } else {
        format!("**missed** ({label})")
    }
}
