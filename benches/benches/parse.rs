//! Parse + compile of every fixture datafile (`datafile-fixtures/**/*.json` that is a datafile),
//! with byte throughput so criterion also prints MB/s; `report` gives ms and us per KB. When
//! `../shared/datafiles/go_100_entities.json` (a real 415 KB SDK test datafile, 100 flags) is
//! present next to the repository root it is measured too: read in place, never copied into the
//! repository; its absence is printed.
//! The `optimizely` crate's parse is measured on the small and large fixtures for comparison.

use std::path::Path;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use flagbridge_benches::args::selected;
use flagbridge_benches::fixtures::{all_datafiles, repo_root, Plan};
use flagbridge_benches::peer;
use flagbridge_engine::ProjectConfig;

fn parse(c: &mut Criterion) {
    let mut files = all_datafiles();
    // `../shared` next to the repository root (a git worktree sits one level deeper).
    let candidates = ["../shared/datafiles", "../../shared/datafiles"]
        .map(|dir| repo_root().join(dir).join("go_100_entities.json"));
    match candidates
        .iter()
        .find_map(|p| Some((p.clone(), std::fs::read_to_string(p).ok()?)))
    {
        Some(found) => files.push(found),
        None => eprintln!(
            "../shared/datafiles/go_100_entities.json absent: skipping the shared 415 KB datafile"
        ),
    }
    let mut group = c.benchmark_group("parse");
    group.sample_size(20);
    // Only files this run measures are test-parsed first (so a profile of one bench under a
    // name filter holds only that bench's parses).
    let args: Vec<String> = std::env::args().skip(1).collect();
    for (path, text) in &files {
        let id = format!("parse/flagbridge/{}", file_stem(path));
        if !selected(&args, &id) {
            continue;
        }
        if let Err(e) = ProjectConfig::parse(text) {
            eprintln!("{}: flagbridge rejects it ({e}); skipped", path.display());
            continue;
        }
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function(id.trim_start_matches("parse/"), |b| {
            b.iter(|| ProjectConfig::parse(black_box(text)))
        });
    }
    let plan = Plan::load();
    for fx in plan.fixtures() {
        // The crate parses the compat-filled text (see peer.rs); time only its parse.
        let compat = peer::compat_datafile(&fx.text);
        group.throughput(Throughput::Bytes(fx.text.len() as u64));
        group.bench_function(format!("optimizely_crate/{}", file_stem(&fx.path)), |b| {
            b.iter(|| optimizely::Client::from_string(black_box(&compat)).map(|c| c.initialize()))
        });
    }
    group.finish();
}

fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

criterion_group!(benches, parse);
criterion_main!(benches);
