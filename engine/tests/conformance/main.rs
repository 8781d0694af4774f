//! Parity with the official JavaScript SDK: every case of `datafile-fixtures/cases/` (and of
//! `shared-cases/` when the shared SDK datafiles are present) is decided by flagbridge and
//! compared field by field with the goldens the SDK produced (see datafile-fixtures/README.md).
//!
//! Compared: enabled, variation_key, rule_key, variables, omitted_from_result, impressions and
//! conversions (whole payloads), error lines. Not compared: reasons (wording differs by SDK).
//! One tolerance: an impression with no experiment may carry `""` where JS has `null` in
//! campaign_id / experiment_id (and so in its event's entity_id).
//!
//! None of these tests can pass having compared nothing: each asserts a minimum number of lines
//! (or notifications) compared and prints the totals; a golden key present twice is an error;
//! with `CI=true` a missing shared datafile folder fails instead of skipping.
//!
//! The case runner is the engine's `cases` module (feature `cases`), the one `flagbridge decide
//! --cases` prints with; the binary's own tests are in `sync/tests/connector/cli_decide_cases.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use flagbridge_engine::ProjectConfig;
use serde_json::Value;

mod conformance_diff;
use conformance_diff::{compare_line, diff_value, golden_map, line_key};
use flagbridge_engine::cases::run_cases;

/// Mismatches printed per file (all are counted).
const PRINT_LIMIT: usize = 25;
/// Lines of `golden/` compared at least (13,532 when written; raise it when adding cases).
const MIN_OWN_LINES: usize = 13_532;
/// Lines of `shared-golden/` compared at least (7,690 when written).
const MIN_SHARED_LINES: usize = 7_690;
/// Notifications of `golden-notifications/` compared at least (12,704 when written).
const MIN_OWN_NOTIFICATIONS: usize = 12_704;
/// Notifications of `shared-golden-notifications/` compared at least (7,356 when written).
const MIN_SHARED_NOTIFICATIONS: usize = 7_356;
/// Lines of `more-golden/` compared at least (8,717 when written).
const MIN_MORE_LINES: usize = 8_717;
/// Notifications of `more-golden-notifications/` compared at least (8,306 when written).
const MIN_MORE_NOTIFICATIONS: usize = 8_306;
/// Rows of `golden/acceptance.jsonl` compared at least (29 when written, plus 1 either way).
const MIN_ACCEPTANCE: usize = 29;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("engine/ has a parent")
        .to_path_buf()
}

fn fixtures() -> PathBuf {
    repo_root().join("datafile-fixtures")
}

/// True when the environment variable `CI` is `true` (as `.ci/run` is run): the shared
/// datafiles must then be present.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// `FLAGBRIDGE_SHARED_DATAFILES`, else `../shared/datafiles` from the repo root (or one level
/// further up, for git worktrees). `None` (the caller skips, saying so on stdout and stderr)
/// when absent; a panic instead when `CI=true`.
fn shared_datafiles() -> Option<PathBuf> {
    shared_dir("FLAGBRIDGE_SHARED_DATAFILES", "datafiles")
}

/// `FLAGBRIDGE_MORE_DATAFILES`, else `../shared/datafiles-more` (15 more datafiles from the
/// official SDKs' test fixtures; see their README). Absent: as [`shared_datafiles`].
fn more_datafiles() -> Option<PathBuf> {
    shared_dir("FLAGBRIDGE_MORE_DATAFILES", "datafiles-more")
}

fn shared_dir(env: &str, name: &str) -> Option<PathBuf> {
    let found = match std::env::var(env) {
        Ok(dir) => Some(PathBuf::from(dir)).filter(|p| p.is_dir()),
        Err(_) => {
            let root = repo_root();
            [
                root.join("../shared").join(name),
                root.join("../../shared").join(name),
            ]
            .into_iter()
            .find(|p| p.is_dir())
        }
    };
    if found.is_none() {
        let message = format!(
            "shared SDK datafiles not found ({env}, else ../shared/{name} or \
             ../../shared/{name} from the repository root)"
        );
        assert!(!in_ci(), "CI=true: {message}");
        println!("skipping: {message}");
        eprintln!("skipping: {message}");
    }
    found
}

struct FileReport {
    name: String,
    identical: usize,
    /// Golden lines for which flagbridge produced a line of the same key.
    compared: usize,
    total: usize,
    /// Decision lines whose `reasons` are word for word the SDK's (informational only).
    same_reasons: usize,
    decisions: usize,
    mismatches: Vec<String>,
}

fn compare_file(name: &str, datafile: &Path, cases: &Path, golden: &Path) -> FileReport {
    let cases_text = std::fs::read_to_string(cases).expect("cases readable");
    let expected = golden_map(golden, line_key);
    let mut report = FileReport {
        name: name.to_string(),
        identical: 0,
        compared: 0,
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
                report.compared += 1;
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
/// `<datafile_dir>/<name>.json`; prints counts and mismatches; panics on any mismatch, on a file
/// with no line compared, or when fewer than `min_compared` lines were compared in all.
fn check_dir(datafile_dir: &Path, cases_dir: &Path, golden_dir: &Path, min_compared: usize) {
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
    let (mut identical, mut compared, mut total, mut failed) = (0, 0, 0, 0);
    let mut empty = Vec::new();
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
        if r.compared == 0 {
            empty.push(r.name.as_str());
        }
        identical += r.identical;
        compared += r.compared;
        total += r.total;
        failed += r.mismatches.len();
    }
    println!("total: {identical}/{total} identical, {compared} lines compared");
    assert_eq!(
        failed, 0,
        "{failed} differences from the JavaScript SDK goldens"
    );
    assert!(empty.is_empty(), "no line compared for {empty:?}");
    assert!(
        compared >= min_compared,
        "only {compared} lines compared, expected at least {min_compared}"
    );
}

#[test]
fn own_datafiles_match_javascript_sdk() {
    let dir = fixtures();
    check_dir(&dir, &dir.join("cases"), &dir.join("golden"), MIN_OWN_LINES);
}

#[test]
fn shared_sdk_datafiles_match_javascript_sdk() {
    let Some(shared) = shared_datafiles() else {
        return;
    };
    let dir = fixtures();
    check_dir(
        &shared,
        &dir.join("shared-cases"),
        &dir.join("shared-golden"),
        MIN_SHARED_LINES,
    );
}

#[test]
fn more_sdk_datafiles_match_javascript_sdk() {
    let Some(more) = more_datafiles() else {
        return;
    };
    let dir = fixtures();
    check_dir(
        &more,
        &dir.join("more-cases"),
        &dir.join("more-golden"),
        MIN_MORE_LINES,
    );
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
    assert!(
        total >= MIN_ACCEPTANCE,
        "only {total} acceptance rows compared, expected at least {MIN_ACCEPTANCE}"
    );
}

/// Compares flagbridge's decision notifications with the SDK's `DECISION` notifications
/// (`golden-notifications/`): enabled, variation and rule keys, ids, decisionEventDispatched.
/// Panics on any difference, on a duplicate key (golden or ours), on a file with no
/// notification compared, or when fewer than `min_compared` were compared in all.
fn check_notifications(
    datafile_dir: &Path,
    cases_dir: &Path,
    notes_dir: &Path,
    min_compared: usize,
) {
    use flagbridge_engine::cases::run_case_with_notifications;
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
    assert!(!names.is_empty(), "no goldens in {}", notes_dir.display());
    let (mut identical, mut total, mut differences) = (0, 0, Vec::new());
    let (mut compared, mut empty) = (0, Vec::new());
    for name in &names {
        let text = std::fs::read_to_string(datafile_dir.join(format!("{name}.json")))
            .expect("datafile readable");
        let config = ProjectConfig::parse(text.trim_start_matches('\u{feff}')).expect("valid");
        let cases =
            std::fs::read_to_string(cases_dir.join(format!("{name}.jsonl"))).expect("cases");
        let mut got = BTreeMap::new();
        for (n, line) in cases.lines().filter(|l| !l.trim().is_empty()).enumerate() {
            for v in run_case_with_notifications(&config, n, line).notifications {
                let k = key(&v);
                if got.insert(k.clone(), v).is_some() {
                    differences.push(format!(
                        "{name} case {} flag {}: notification sent twice",
                        k.0, k.1
                    ));
                }
            }
        }
        let expected = golden_map(&notes_dir.join(format!("{name}.jsonl")), key);
        let (mut same, mut count, before) = (0, expected.len(), compared);
        for (k, e) in &expected {
            let mut diffs = Vec::new();
            match got.get(k) {
                Some(g) => {
                    compared += 1;
                    diff_value("notification", e, g, &mut diffs);
                }
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
        if compared == before && count > 0 {
            empty.push(name.as_str());
        }
        identical += same;
        total += count;
    }
    println!("notifications: {identical}/{total} identical, {compared} compared");
    for d in differences.iter().take(PRINT_LIMIT) {
        println!("    {d}");
    }
    assert!(
        differences.is_empty(),
        "{} notification differences",
        differences.len()
    );
    assert!(empty.is_empty(), "no notification compared for {empty:?}");
    assert!(
        compared >= min_compared,
        "only {compared} notifications compared, expected at least {min_compared}"
    );
}

#[test]
fn own_decision_notifications_match_javascript_sdk() {
    let dir = fixtures();
    check_notifications(
        &dir,
        &dir.join("cases"),
        &dir.join("golden-notifications"),
        MIN_OWN_NOTIFICATIONS,
    );
}

#[test]
fn shared_decision_notifications_match_javascript_sdk() {
    let Some(shared) = shared_datafiles() else {
        return;
    };
    let dir = fixtures();
    check_notifications(
        &shared,
        &dir.join("shared-cases"),
        &dir.join("shared-golden-notifications"),
        MIN_SHARED_NOTIFICATIONS,
    );
}

#[test]
fn more_decision_notifications_match_javascript_sdk() {
    let Some(more) = more_datafiles() else {
        return;
    };
    let dir = fixtures();
    check_notifications(
        &more,
        &dir.join("more-cases"),
        &dir.join("more-golden-notifications"),
        MIN_MORE_NOTIFICATIONS,
    );
}
