//! Parity with the JavaScript SDK 6.6.1 for the decisions that need a remote call (CMAB
//! predictions, ODP segments and events): the cases of `datafile-fixtures/remote/` run through
//! `flagbridge decide --remote` (in process) against the Rust port of the oracle's fake
//! (`flagbridge_sync::testing::FakeRemote`, no node needed) and every output line is compared
//! whole with the golden the oracle produced (decisions with their reasons and impressions, the
//! `#remote` lines with the requests; uuids as `uuid:<rule>:<user>:<n>`).
//!
//! The two real datafiles are read from `../shared/datafiles-remote/` when the folder exists;
//! without it their files are skipped, saying so (with `CI=true` that fails instead).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use flagbridge_sync::connector::cli::remote::{run_remote, RemoteSettings};
use flagbridge_sync::testing::FakeRemote;
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("sync/ has a parent")
        .to_path_buf()
}

fn remote_dir() -> PathBuf {
    root().join("datafile-fixtures/remote")
}

fn shared_remote() -> Option<PathBuf> {
    let root = root();
    let found = [
        root.join("../shared/datafiles-remote"),
        root.join("../../shared/datafiles-remote"),
    ]
    .into_iter()
    .find(|p| p.is_dir());
    if found.is_none() {
        let msg = "SKIP: ../shared/datafiles-remote not found; the java/go remote goldens are not compared";
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "{msg} (CI=true)"
        );
        println!("{msg}");
        eprintln!("{msg}");
    }
    found
}

/// (case as text, flag key, type) -> line.
fn keyed(lines: impl Iterator<Item = Value>) -> BTreeMap<(String, String, String), Value> {
    let mut map = BTreeMap::new();
    for v in lines {
        let case = match &v["case"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let flag = if v.get("error").is_some() {
            "#error".to_string()
        } else {
            v["flag_key"].as_str().unwrap_or("").to_string()
        };
        let kind = v["type"].as_str().unwrap_or("").to_string();
        let key = (case, flag, kind);
        assert!(!map.contains_key(&key), "duplicate line key {key:?}");
        map.insert(key, v);
    }
    map
}

/// Runs one cases file and returns (lines compared, differences).
async fn compare(
    datafile: &Path,
    cases: &str,
    golden: &str,
    settings: impl Fn(&mut RemoteSettings),
) -> (usize, Vec<String>) {
    let text = std::fs::read_to_string(datafile).expect("datafile readable");
    let json: Value = serde_json::from_str(&text).expect("datafile is JSON");
    let fake = FakeRemote::start(&json, false).await.expect("fake starts");
    let mut s = RemoteSettings::new(fake.url());
    settings(&mut s);
    let mut out = Vec::new();
    let cases = remote_dir().join(cases);
    let summary = run_remote(datafile, cases.to_str().expect("utf-8 path"), &s, &mut out)
        .await
        .expect("run");
    assert_eq!(summary.failed, 0, "no case failed");
    let got = keyed(
        String::from_utf8(out)
            .expect("utf-8")
            .lines()
            .map(|l| serde_json::from_str(l).expect("output line is JSON")),
    );
    let golden_text =
        std::fs::read_to_string(remote_dir().join("golden").join(golden)).expect("golden");
    let expected = keyed(
        golden_text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).expect("golden line is JSON")),
    );
    let mut diffs = Vec::new();
    for (k, e) in &expected {
        match got.get(k) {
            None => diffs.push(format!("{golden} {k:?}: missing")),
            Some(g) if g != e => diffs.push(format!("{golden} {k:?}:\n  js: {e}\n  fb: {g}")),
            Some(_) => {}
        }
    }
    for k in got.keys().filter(|k| !expected.contains_key(*k)) {
        diffs.push(format!("{golden} {k:?}: extra line"));
    }
    println!(
        "{golden}: {} lines compared, {} differ",
        expected.len(),
        diffs.len()
    );
    (expected.len(), diffs)
}

fn check((count, diffs): (usize, Vec<String>), minimum: usize) {
    for d in diffs.iter().take(10) {
        eprintln!("{d}");
    }
    assert!(diffs.is_empty(), "{} of {count} lines differ", diffs.len());
    assert!(
        count >= minimum,
        "only {count} lines compared (at least {minimum})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_datafile_matches_javascript() {
    let datafile = remote_dir().join("cmab_odp.json");
    check(
        compare(&datafile, "cmab_odp.cases.jsonl", "cmab_odp.jsonl", |_| {}).await,
        172,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_ttl_and_size_match_javascript() {
    let datafile = remote_dir().join("cmab_odp.json");
    let result = compare(
        &datafile,
        "cmab_odp_ttl.cases.jsonl",
        "cmab_odp_ttl.jsonl",
        |s| {
            s.cmab_cache_ttl = Duration::from_millis(300);
            s.cmab_cache_size = 2;
            s.odp_cache_ttl = Duration::from_millis(300);
        },
    )
    .await;
    check(result, 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_cmab_datafile_matches_javascript() {
    let Some(shared) = shared_remote() else {
        return;
    };
    let datafile = shared.join("java_cmab_config.json");
    check(
        compare(
            &datafile,
            "java_cmab.cases.jsonl",
            "java_cmab.jsonl",
            |_| {},
        )
        .await,
        93,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_odp_datafile_matches_javascript() {
    let Some(shared) = shared_remote() else {
        return;
    };
    let datafile = shared.join("go_odp_test_datafile.json");
    check(
        compare(&datafile, "go_odp.cases.jsonl", "go_odp.jsonl", |_| {}).await,
        55,
    );
}
