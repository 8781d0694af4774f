//! Parity with the official JavaScript SDK: every case of `datafile-fixtures/cases/` (and of
//! `shared-cases/` when the shared SDK datafiles are present) is decided by flagbridge and
//! compared field by field with the goldens the SDK produced (see datafile-fixtures/README.md).
//!
//! Compared: enabled, variation_key, rule_key, variables, omitted_from_result, impressions and
//! conversions (whole payloads), error lines. Not compared: reasons (wording differs by SDK).
//! One tolerance: an impression with no experiment may carry `""` where JS has `null` in
//! campaign_id / experiment_id (and so in its event's entity_id).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use flagbridge_engine::ProjectConfig;
use flagbridge_sync::cli::cases::run_cases;
use serde_json::Value;

const DECISION_FIELDS: [&str; 6] = [
    "enabled",
    "variation_key",
    "rule_key",
    "variables",
    "omitted_from_result",
    "impressions",
];
/// Mismatches printed per file (all are counted).
const PRINT_LIMIT: usize = 25;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("sync/ has a parent")
        .to_path_buf()
}

fn fixtures() -> PathBuf {
    repo_root().join("datafile-fixtures")
}

/// `FLAGBRIDGE_SHARED_DATAFILES`, else `../shared/datafiles` from the repo root (or one level
/// further up, for git worktrees).
fn shared_datafiles() -> Option<PathBuf> {
    shared_dir("FLAGBRIDGE_SHARED_DATAFILES", "datafiles")
}

/// `FLAGBRIDGE_MORE_DATAFILES`, else `../shared/datafiles-more` (15 more datafiles from the
/// official SDKs' test fixtures; see their README).
fn more_datafiles() -> Option<PathBuf> {
    shared_dir("FLAGBRIDGE_MORE_DATAFILES", "datafiles-more")
}

fn shared_dir(env: &str, name: &str) -> Option<PathBuf> {
    if let Ok(dir) = std::env::var(env) {
        return Some(PathBuf::from(dir)).filter(|p| p.is_dir());
    }
    let root = repo_root();
    [
        root.join("../shared").join(name),
        root.join("../../shared").join(name),
    ]
    .into_iter()
    .find(|p| p.is_dir())
}

/// Identifies an output line: (case, flag key | "track" | "error").
fn line_key(v: &Value) -> (u64, String) {
    let case = v["case"].as_u64().expect("every line has a case number");
    let kind = if v.get("error").is_some() {
        "error".to_string()
    } else if v.get("type").and_then(Value::as_str) == Some("track") {
        "track".to_string()
    } else {
        v["flag_key"]
            .as_str()
            .expect("decision lines have flag_key")
            .to_string()
    };
    (case, kind)
}

fn numbers_equal(a: &serde_json::Number, b: &serde_json::Number) -> bool {
    match (a.as_i64(), b.as_i64()) {
        (Some(x), Some(y)) => x == y,
        _ => a.as_f64() == b.as_f64(),
    }
}

/// Records every difference between `expected` and `got` under `path`.
fn diff_value(path: &str, expected: &Value, got: &Value, out: &mut Vec<String>) {
    match (expected, got) {
        (Value::Number(a), Value::Number(b)) if numbers_equal(a, b) => {}
        (Value::Object(a), Value::Object(b)) => {
            for (k, va) in a {
                match b.get(k) {
                    Some(vb) => diff_value(&format!("{path}.{k}"), va, vb, out),
                    None => out.push(format!("{path}.{k}: expected {va}, got (absent)")),
                }
            }
            for (k, vb) in b {
                if !a.contains_key(k) {
                    out.push(format!("{path}.{k}: expected (absent), got {vb}"));
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (va, vb)) in a.iter().zip(b).enumerate() {
                diff_value(&format!("{path}[{i}]"), va, vb, out);
            }
        }
        _ if expected == got => {}
        _ => out.push(format!("{path}: expected {expected}, got {got}")),
    }
}

/// Applies the one allowed tolerance to our impression, given the golden one.
fn tolerate_empty_ids(expected: &Value, got: &mut Value) {
    for key in ["campaign_id", "experiment_id"] {
        if expected[key].is_null() && got[key] == "" {
            got[key] = Value::Null;
        }
    }
    if expected["campaign_id"].is_null() {
        if let Some(events) = got.get_mut("events").and_then(Value::as_array_mut) {
            for e in events {
                if e["entity_id"] == "" {
                    if let Some(m) = e.as_object_mut() {
                        m.remove("entity_id");
                    }
                }
            }
        }
    }
}

fn compare_line(expected: &Value, got: &Value) -> Vec<String> {
    let mut diffs = Vec::new();
    if expected.get("error").is_some() {
        return diffs; // both are error lines (same key); the message wording is free
    }
    if expected.get("type").and_then(Value::as_str) == Some("track") {
        diff_value(
            "conversions",
            &expected["conversions"],
            &got["conversions"],
            &mut diffs,
        );
        return diffs;
    }
    for field in DECISION_FIELDS {
        let e = expected.get(field).cloned().unwrap_or(Value::Null);
        let mut g = got.get(field).cloned().unwrap_or(Value::Null);
        if field == "impressions" {
            if let (Some(ea), Some(ga)) = (e.as_array(), g.as_array_mut()) {
                for (ei, gi) in ea.iter().zip(ga.iter_mut()) {
                    tolerate_empty_ids(ei, gi);
                }
            }
        }
        diff_value(field, &e, &g, &mut diffs);
    }
    diffs
}

struct FileReport {
    name: String,
    identical: usize,
    total: usize,
    /// Decision lines whose `reasons` are word for word the SDK's (informational only).
    same_reasons: usize,
    decisions: usize,
    mismatches: Vec<String>,
}

fn compare_file(name: &str, datafile: &Path, cases: &Path, golden: &Path) -> FileReport {
    let cases_text = std::fs::read_to_string(cases).expect("cases readable");
    let golden_text = std::fs::read_to_string(golden).expect("golden readable");
    let expected: BTreeMap<(u64, String), Value> = golden_text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("golden line is JSON");
            (line_key(&v), v)
        })
        .collect();
    let mut report = FileReport {
        name: name.to_string(),
        identical: 0,
        total: expected.len(),
        same_reasons: 0,
        decisions: 0,
        mismatches: Vec::new(),
    };
    let text = std::fs::read_to_string(datafile).expect("datafile readable");
    let config = match ProjectConfig::parse(text.trim_start_matches('\u{feff}')) {
        Ok(c) => c,
        Err(e) => {
            report
                .mismatches
                .push(format!("{name}: datafile rejected: {e}"));
            return report;
        }
    };
    let mut got: BTreeMap<(u64, String), Value> = BTreeMap::new();
    for v in run_cases(&config, &cases_text) {
        let key = line_key(&v);
        if got.insert(key.clone(), v).is_some() {
            report.mismatches.push(format!(
                "{name} case {} flag {}: line produced twice",
                key.0, key.1
            ));
        }
    }
    for (key, e) in &expected {
        match got.get(key) {
            None => report.mismatches.push(format!(
                "{name} case {} flag {}: line missing (expected {e})",
                key.0, key.1
            )),
            Some(g) => {
                if let Some(reasons) = e.get("reasons") {
                    report.decisions += 1;
                    if g.get("reasons") == Some(reasons) {
                        report.same_reasons += 1;
                    }
                }
                let diffs = compare_line(e, g);
                if diffs.is_empty() {
                    report.identical += 1;
                }
                for d in diffs {
                    report
                        .mismatches
                        .push(format!("{name} case {} flag {}: {d}", key.0, key.1));
                }
            }
        }
    }
    for (key, g) in &got {
        if !expected.contains_key(key) {
            report.total += 1;
            report.mismatches.push(format!(
                "{name} case {} flag {}: unexpected line {g}",
                key.0, key.1
            ));
        }
    }
    report
}

/// Runs every `<cases_dir>/<name>.jsonl` against `<golden_dir>/<name>.jsonl` and the datafile
/// `<datafile_dir>/<name>.json`; prints counts and mismatches; panics on any mismatch.
fn check_dir(datafile_dir: &Path, cases_dir: &Path, golden_dir: &Path) {
    let mut names: Vec<String> = std::fs::read_dir(cases_dir)
        .expect("cases dir readable")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".jsonl").map(str::to_string)
        })
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no cases in {}", cases_dir.display());
    let mut reports = Vec::new();
    for name in &names {
        reports.push(compare_file(
            name,
            &datafile_dir.join(format!("{name}.json")),
            &cases_dir.join(format!("{name}.jsonl")),
            &golden_dir.join(format!("{name}.jsonl")),
        ));
    }
    let (mut identical, mut total, mut failed) = (0, 0, 0);
    for r in &reports {
        println!(
            "{:<24} {:>5}/{:<5} identical   (reasons word for word: {}/{}, not compared)",
            r.name, r.identical, r.total, r.same_reasons, r.decisions
        );
        for m in r.mismatches.iter().take(PRINT_LIMIT) {
            println!("    {m}");
        }
        if r.mismatches.len() > PRINT_LIMIT {
            println!(
                "    ... {} more differences",
                r.mismatches.len() - PRINT_LIMIT
            );
        }
        identical += r.identical;
        total += r.total;
        failed += r.mismatches.len();
    }
    println!("total: {identical}/{total} identical");
    assert_eq!(
        failed, 0,
        "{failed} differences from the JavaScript SDK goldens"
    );
}

#[test]
fn own_datafiles_match_javascript_sdk() {
    let dir = fixtures();
    check_dir(&dir, &dir.join("cases"), &dir.join("golden"));
}

#[test]
fn shared_sdk_datafiles_match_javascript_sdk() {
    let Some(shared) = shared_datafiles() else {
        println!("skipping: shared SDK datafiles not found (../shared/datafiles or FLAGBRIDGE_SHARED_DATAFILES)");
        return;
    };
    let dir = fixtures();
    check_dir(
        &shared,
        &dir.join("shared-cases"),
        &dir.join("shared-golden"),
    );
}

#[test]
fn more_sdk_datafiles_match_javascript_sdk() {
    let Some(more) = more_datafiles() else {
        println!("skipping: more SDK datafiles not found (../shared/datafiles-more or FLAGBRIDGE_MORE_DATAFILES)");
        return;
    };
    let dir = fixtures();
    check_dir(&more, &dir.join("more-cases"), &dir.join("more-golden"));
}

#[test]
fn binary_decides_a_cases_file() {
    let dir = fixtures();
    let datafile = dir.join("experiments.json");
    let cases = dir.join("cases/experiments.jsonl");
    let output = Command::new(env!("CARGO_BIN_EXE_flagbridge"))
        .arg("decide")
        .arg("--datafile")
        .arg(&datafile)
        .arg("--cases")
        .arg(&cases)
        .output()
        .expect("flagbridge runs");
    // The file holds malformed cases on purpose: every case runs, then the exit code is 1.
    assert_eq!(
        output.status.code(),
        Some(1),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).expect("utf-8 output");
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("each output line is JSON"))
        .collect();
    // Same lines as the library function (which the conformance test checks against JS).
    let config =
        ProjectConfig::parse(&std::fs::read_to_string(&datafile).expect("datafile")).expect("ok");
    let expected = run_cases(
        &config,
        &std::fs::read_to_string(&cases).expect("cases readable"),
    );
    assert_eq!(lines, expected);
    assert!(lines.iter().any(|l| l.get("error").is_some()));
    assert!(lines.iter().any(|l| l.get("type").is_some()));
}

#[test]
fn binary_rejects_an_invalid_datafile_with_exit_2() {
    let dir = std::env::temp_dir().join(format!("flagbridge-conformance-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let bad = dir.join("bad.json");
    std::fs::write(&bad, "{\"version\": \"4\", \"accountId\": ").expect("write");
    for datafile in [bad.clone(), dir.join("missing.json")] {
        let output = Command::new(env!("CARGO_BIN_EXE_flagbridge"))
            .args(["decide", "--cases", "-"])
            .arg("--datafile")
            .arg(&datafile)
            .output()
            .expect("flagbridge runs");
        assert_eq!(output.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&*datafile.to_string_lossy()),
            "message names the file: {stderr}"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn binary_reads_cases_from_stdin() {
    use std::io::Write;
    use std::process::Stdio;
    let datafile = fixtures().join("rollouts.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_flagbridge"))
        .args(["decide", "--cases", "-", "--datafile"])
        .arg(&datafile)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("flagbridge runs");
    let cases = "{\"user_id\": \"u1\", \"attributes\": {\"plan\": \"beta\"}, \"flags\": [\"f_ee_only\"]}\n\nnot json\n";
    child
        .stdin
        .take()
        .expect("stdin piped")
        .write_all(cases.as_bytes())
        .expect("write cases");
    let output = child.wait_with_output().expect("flagbridge exits");
    // "not json" is a failed case: reported on its line, and in the exit code at the end.
    assert_eq!(output.status.code(), Some(1));
    let lines: Vec<Value> = String::from_utf8(output.stdout)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["case"], 0);
    assert_eq!(lines[0]["flag_key"], "f_ee_only");
    assert_eq!(lines[0]["variation_key"], "all_on");
    assert_eq!(lines[1]["case"], 1);
    assert!(lines[1]["error"].is_string());
}

#[test]
fn eu_region_datafile_sends_events_to_the_eu_endpoint() {
    use flagbridge_engine::{ClientInfo, DecideOptions, Decider, UserContext};
    let text = std::fs::read_to_string(fixtures().join("region_eu.json")).expect("datafile");
    let config = ProjectConfig::parse(&text).expect("valid datafile");
    let decider = Decider::new(&config);
    let client = ClientInfo {
        client_name: "test".into(),
        client_version: "0".into(),
    };
    let batch = (0..200)
        .map(|i| UserContext::new(format!("eu_user_{i}")))
        .find_map(|u| {
            decider
                .decide(&u, "f_eu_rollout", DecideOptions::NONE)
                .impression_event(&u, &client, 0, "uuid")
        })
        .expect("some user gets an impression (sendFlagDecisions is true)");
    assert_eq!(batch.endpoint(), "https://eu.logx.optimizely.com/v1/events");
}

/// The engine accepts exactly the datafiles the SDK loads and decides with
/// (`datafile-fixtures/acceptance/`, golden `golden/acceptance.jsonl`). A datafile the SDK
/// loads but then throws on while deciding may go either way.
#[test]
fn datafile_acceptance_matches_javascript_sdk() {
    use flagbridge_engine::{DecideOptions, Decider, UserContext};
    let dir = fixtures();
    let golden = std::fs::read_to_string(dir.join("golden/acceptance.jsonl")).expect("golden");
    let (mut same, mut total, mut differences) = (0, 0, Vec::new());
    for line in golden.lines().filter(|l| !l.trim().is_empty()) {
        let row: Value = serde_json::from_str(line).expect("golden line is JSON");
        let file = row["file"].as_str().expect("file");
        let text = std::fs::read(dir.join("acceptance").join(file)).expect("datafile");
        let parsed = ProjectConfig::from_slice(&text);
        if let Ok(config) = &parsed {
            let decisions = Decider::new(config)
                .decide_all(&UserContext::new("acceptance_user"), DecideOptions::NONE);
            assert!(decisions.len() <= config.flag_keys().count());
        }
        let verdict = match (&parsed, row["loads"].as_bool(), row["decides"].as_bool()) {
            (_, Some(true), Some(false)) => {
                println!(
                    "{file:<40} SDK loads then throws on decide; flagbridge: {}",
                    if parsed.is_ok() { "accepts" } else { "rejects" }
                );
                continue;
            }
            (Ok(_), Some(true), _) | (Err(_), Some(false), _) => true,
            _ => false,
        };
        total += 1;
        let ours = match &parsed {
            Ok(_) => "accepts".to_string(),
            Err(e) => format!("rejects ({e})"),
        };
        println!(
            "{file:<40} SDK loads: {:<5} flagbridge {ours}",
            row["loads"]
        );
        if verdict {
            same += 1;
        } else {
            differences.push(format!(
                "{file}: SDK loads={}, flagbridge {ours}",
                row["loads"]
            ));
        }
    }
    println!("acceptance: {same}/{total} identical");
    assert!(differences.is_empty(), "{differences:#?}");
}

/// Compares flagbridge's decision notifications with the SDK's `DECISION` notifications
/// (`golden-notifications/`): enabled, variation and rule keys, ids, decisionEventDispatched.
fn check_notifications(datafile_dir: &Path, cases_dir: &Path, notes_dir: &Path) {
    use flagbridge_sync::cli::cases::run_case_with_notifications;
    let mut names: Vec<String> = std::fs::read_dir(notes_dir)
        .expect("notifications dir readable")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".jsonl").map(str::to_string)
        })
        .collect();
    names.sort();
    let key = |v: &Value| {
        (
            v["case"].as_u64().expect("case"),
            v["flagKey"].as_str().expect("flagKey").to_string(),
        )
    };
    let (mut identical, mut total, mut differences) = (0, 0, Vec::new());
    for name in &names {
        let text = std::fs::read_to_string(datafile_dir.join(format!("{name}.json")))
            .expect("datafile readable");
        let config = ProjectConfig::parse(text.trim_start_matches('\u{feff}')).expect("valid");
        let cases =
            std::fs::read_to_string(cases_dir.join(format!("{name}.jsonl"))).expect("cases");
        let mut got = BTreeMap::new();
        for (n, line) in cases.lines().filter(|l| !l.trim().is_empty()).enumerate() {
            for v in run_case_with_notifications(&config, n, line).notifications {
                got.insert(key(&v), v);
            }
        }
        let golden =
            std::fs::read_to_string(notes_dir.join(format!("{name}.jsonl"))).expect("golden");
        let expected: BTreeMap<_, Value> = golden
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let v: Value = serde_json::from_str(l).expect("JSON");
                (key(&v), v)
            })
            .collect();
        let (mut same, mut count) = (0, expected.len());
        for (k, e) in &expected {
            let mut diffs = Vec::new();
            match got.get(k) {
                Some(g) => diff_value("notification", e, g, &mut diffs),
                None => diffs.push("notification missing".to_string()),
            }
            if diffs.is_empty() {
                same += 1;
            }
            differences.extend(
                diffs
                    .into_iter()
                    .map(|d| format!("{name} case {} flag {}: {d}", k.0, k.1)),
            );
        }
        for k in got.keys().filter(|k| !expected.contains_key(*k)) {
            count += 1;
            differences.push(format!(
                "{name} case {} flag {}: unexpected notification",
                k.0, k.1
            ));
        }
        println!("{name:<24} {same:>5}/{count:<5} notifications identical");
        identical += same;
        total += count;
    }
    println!("notifications: {identical}/{total} identical");
    for d in differences.iter().take(PRINT_LIMIT) {
        println!("    {d}");
    }
    assert!(
        differences.is_empty(),
        "{} notification differences",
        differences.len()
    );
}

#[test]
fn own_decision_notifications_match_javascript_sdk() {
    let dir = fixtures();
    check_notifications(&dir, &dir.join("cases"), &dir.join("golden-notifications"));
}

#[test]
fn shared_decision_notifications_match_javascript_sdk() {
    let Some(shared) = shared_datafiles() else {
        println!("skipping: shared SDK datafiles not found (../shared/datafiles or FLAGBRIDGE_SHARED_DATAFILES)");
        return;
    };
    let dir = fixtures();
    check_notifications(
        &shared,
        &dir.join("shared-cases"),
        &dir.join("shared-golden-notifications"),
    );
}

#[test]
fn more_decision_notifications_match_javascript_sdk() {
    let Some(more) = more_datafiles() else {
        println!("skipping: more SDK datafiles not found (../shared/datafiles-more or FLAGBRIDGE_MORE_DATAFILES)");
        return;
    };
    let dir = fixtures();
    check_notifications(
        &more,
        &dir.join("more-cases"),
        &dir.join("more-golden-notifications"),
    );
}
