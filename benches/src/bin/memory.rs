//! Peak resident memory of a process that holds one compiled datafile, and the compiled
//! config's heap size.
//!
//! `memory [flagbridge|flagbridge_no_text|optimizely_crate] [DATAFILE]` (defaults: flagbridge,
//! the plan's large fixture; `flagbridge_no_text` parses without keeping the text). For a
//! generated datafile, write it first with the `generate` binary. Reads the datafile, parses it, drops the text, decides every flag once for one user
//! (so lazily touched pages count), then reports VmHWM (peak RSS) and VmRSS from
//! /proc/self/status, and the live heap bytes the parse left behind (counting allocator) next to
//! the datafile size. Prints one JSON object and writes `target/flagbridge-bench/memory-<engine>.json`.

use flagbridge_benches::alloc::{live_bytes, peak_bytes, reset_peak, CountingAlloc};
use flagbridge_benches::fixtures::{plan_datafile_path, plan_json, plan_users, read};
use flagbridge_benches::stats::write_result;
use flagbridge_benches::{peer, users};
use flagbridge_engine::{DecideOptions, Decider, ParseOptions, ProjectConfig};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let engine = args.next().unwrap_or_else(|| "flagbridge".into());
    // Only cases.json is read: no other datafile passes through this process's heap.
    let plan = plan_json();
    let path = args
        .next()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| plan_datafile_path(&plan, "large"));
    let users = plan_users(&plan);
    let user = &users[0];

    let hwm_start_kb = status_kb("VmHWM:");
    let text = read(&path);
    // Reports on other datafiles than the plan's large one are named after the file too.
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
    let label = match stem.as_deref() {
        Some("large_700") | None => engine.clone(),
        Some(other) => format!("{engine}_{other}"),
    };
    let keep_text = engine != "flagbridge_no_text";
    let datafile_bytes = text.len();
    match engine.as_str() {
        "flagbridge" | "flagbridge_no_text" => {
            let before = live_bytes();
            reset_peak();
            let options = ParseOptions::new().keep_text(keep_text);
            let config = ProjectConfig::parse_with(&text, options).expect("datafile parses");
            let transient = peak_bytes() as isize - before;
            drop(text);
            // Whatever the parse left allocated (including any copy of the text the config keeps).
            let heap = live_bytes() + datafile_bytes as isize - before;
            let decider = Decider::new(&config);
            let ctx = users::context(user);
            let flags = decider.decide_all(&ctx, DecideOptions::NONE).len();
            let report = Report {
                engine: &label,
                path: &path,
                datafile_bytes,
                heap,
                transient,
                flags,
            };
            report.finish(hwm_start_kb);
        }
        "optimizely_crate" => {
            // The fixtures carry every optional field, so the crate reads them unchanged; other
            // files go through the compat rewrite first (outside the measured parse).
            let text = if peer::loads_unchanged(&text) {
                text
            } else {
                peer::compat_datafile(&text)
            };
            let before = live_bytes();
            reset_peak();
            let client = optimizely::Client::from_string(&text)
                .expect("optimizely crate loads the datafile")
                .initialize();
            let transient = peak_bytes() as isize - before;
            drop(text);
            let heap = live_bytes() + datafile_bytes as isize - before;
            let keys = [
                str_at(&plan["datafiles"]["large"]["flags"], "experiment"),
                str_at(&plan["datafiles"]["large"]["flags"], "no_rules"),
            ];
            let mut ctx = client.create_user_context(&user.id);
            for (k, v) in peer::attribute_values(user) {
                ctx.set_attribute(k, v);
            }
            for key in &keys {
                std::hint::black_box(ctx.decide(key));
            }
            let report = Report {
                engine: &label,
                path: &path,
                datafile_bytes,
                heap,
                transient,
                flags: keys.len(),
            };
            report.finish(hwm_start_kb);
        }
        other => {
            eprintln!(
                "unknown engine {other}: use flagbridge, flagbridge_no_text or optimizely_crate"
            );
            std::process::exit(2);
        }
    }
}

fn str_at<'v>(v: &'v serde_json::Value, key: &str) -> &'v str {
    v[key].as_str().unwrap_or_default()
}

struct Report<'a> {
    engine: &'a str,
    path: &'a std::path::Path,
    datafile_bytes: usize,
    /// Live heap bytes the parse left behind.
    heap: isize,
    /// Highest live heap during the parse, above what was live before it.
    transient: isize,
    flags: usize,
}

impl Report<'_> {
    /// Prints the report as JSON and writes it to the results directory.
    fn finish(&self, hwm_start_kb: Option<u64>) {
        let json = serde_json::json!({
            "engine": self.engine,
            "datafile": self.path.display().to_string(),
            "datafile_bytes": self.datafile_bytes,
            "config_heap_bytes": self.heap,
            "config_heap_per_datafile_byte": self.heap as f64 / self.datafile_bytes as f64,
            "parse_peak_heap_bytes": self.transient,
            "flags_decided": self.flags,
            "vm_hwm_kb_at_start": hwm_start_kb,
            "vm_hwm_kb": status_kb("VmHWM:"),
            "vm_rss_kb": status_kb("VmRSS:"),
        });
        println!("{json}");
        if let Err(e) = write_result(&format!("memory-{}.json", self.engine), &json) {
            eprintln!("could not write the result file: {e}");
        }
    }
}
