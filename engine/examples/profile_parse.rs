//! A driver for profiling `ProjectConfig::parse` (under `perf record` or callgrind).
//!
//! Usage: `cargo run --release -p flagbridge-engine --example profile_parse -- DATAFILE [ITERATIONS]`.
//! Prints the mean time per parse + compile and per KB of datafile.

use std::error::Error;
use std::hint::black_box;
use std::time::Instant;

use flagbridge_engine::ProjectConfig;

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else {
        return Err("usage: profile_parse DATAFILE [ITERATIONS]".into());
    };
    let iterations: u32 = args.get(2).map_or(Ok(20), |s| s.parse())?;
    let text = std::fs::read_to_string(path)?;
    let start = Instant::now();
    let mut flags = 0;
    for _ in 0..iterations {
        let config = ProjectConfig::parse(black_box(&text))?;
        flags += config.flag_keys().count();
    }
    let per = start.elapsed() / iterations;
    let kb = text.len() as f64 / 1024.0;
    println!(
        "{path}: {:.1} KB, {} flags, {per:?} per parse, {:.2} us/KB",
        kb,
        flags / iterations as usize,
        per.as_secs_f64() * 1e6 / kb
    );
    Ok(())
}
