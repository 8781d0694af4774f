//! `flagbridge backfill`: an interrupted run resumes from its checkpoint; bad lines are named.

use std::io::Write;

use flagbridge_sync::backfill::{self, BackfillError, BackfillOptions};
use flagbridge_sync::config::Config;
use flagbridge_sync::scheduled::MembershipStore;
use flagbridge_sync::testing::datafile;

fn setup(tag: &str, lines: &[String]) -> (std::path::PathBuf, Config, std::path::PathBuf) {
    setup_with(tag, lines, "")
}

/// `optimizely` adds lines to the `connectors.optimizely` section.
fn setup_with(
    tag: &str,
    lines: &[String],
    optimizely: &str,
) -> (std::path::PathBuf, Config, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("fb-backfill-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let df = dir.join("datafile.json");
    std::fs::write(&df, datafile("7")).unwrap();
    let users = dir.join("users.jsonl");
    let mut f = std::fs::File::create(&users).unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
    let yaml = format!(
        "state_dir: {}\nconnectors:\n  optimizely:\n    sdk_key: K\n    datafile_file: {}\n{optimizely}",
        dir.join("state").display(),
        df.display()
    );
    (dir, Config::from_yaml(&yaml, &|_| None).unwrap(), users)
}

fn user(i: usize) -> String {
    let plan = if i % 2 == 0 { "pro" } else { "free" };
    format!(
        r#"{{"userId":"user-{i}","userAttributes":{{"plan":"{plan}","email":"user-{i}@example.com"}}}}"#
    )
}

/// One thread decides all the users: the backfill must wait for the Brevo worker instead of
/// overflowing the thread's hand-off ring (4,096 records; here 10,000 decisions, and the test
/// runtime has one thread, so the worker only runs while the backfill waits).
#[tokio::test]
async fn a_large_backfill_waits_for_the_brevo_worker_and_loses_nothing() {
    let lines: Vec<String> = (0..5_000).map(user).collect();
    let (dir, config, users) = setup("large", &lines);
    let opts = BackfillOptions {
        checkpoint_every: 100_000,
        progress: false,
        ..Default::default()
    };
    let report = backfill::run(config, &users, opts).await.unwrap();
    assert_eq!((report.users, report.decisions), (5_000, 10_000));
    assert_eq!(report.brevo_overflow, 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn interrupted_run_resumes_from_checkpoint() {
    let mut lines: Vec<String> = (0..100).map(user).collect();
    lines.insert(50, String::new());
    let (dir, config, users) = setup("resume", &lines);
    let opts = |limit| BackfillOptions {
        checkpoint_every: 10,
        limit,
        progress: false,
        ..Default::default()
    };
    let first = backfill::run(config.clone(), &users, opts(Some(30)))
        .await
        .unwrap();
    assert_eq!(
        (first.users, first.decisions, first.finished),
        (30, 60, false)
    );
    let second = backfill::run(config.clone(), &users, opts(None))
        .await
        .unwrap();
    assert_eq!(second.resumed_at_line, 30);
    assert_eq!((second.users, second.decisions, second.blank), (70, 140, 1));
    assert!(second.finished);
    // A third run has nothing left to do.
    let third = backfill::run(config.clone(), &users, opts(None))
        .await
        .unwrap();
    assert_eq!((third.users, third.resumed_at_line), (0, 101));
    // Every pro user is in the experiment's assignment record, each once.
    let (store, _) = MembershipStore::load(&config.state_dir.join("assignments.jsonl")).unwrap();
    assert_eq!(store.members("default", "50001", "90001").len(), 50);
    // The Brevo dry run saw the contacts (email identity from the `email` attribute).
    let dry = std::fs::read_to_string(config.state_dir.join("brevo-dry-run.jsonl")).unwrap();
    assert!(
        dry.contains(r#""email":"user-99@example.com""#),
        "dry run file lacks the last user"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_bad_line_is_named() {
    let lines = vec![user(0), r#"{"userId": 5}"#.to_string()];
    let (dir, config, users) = setup("bad", &lines);
    let opts = BackfillOptions {
        progress: false,
        ..Default::default()
    };
    let err = backfill::run(config, &users, opts).await.unwrap_err();
    assert!(matches!(err, BackfillError::Line { line: 2, .. }), "{err}");
    assert!(
        err.to_string()
            .contains("users.jsonl:2: userId: invalid type"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The Brevo requests of a run (the dry-run file): attributes created, contact attributes written.
fn dry_run_writes(config: &Config) -> (Vec<String>, Vec<serde_json::Value>) {
    let dry = std::fs::read_to_string(config.state_dir.join("brevo-dry-run.jsonl")).unwrap();
    let mut created = Vec::new();
    let mut contacts = Vec::new();
    for line in dry.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let path = v["path"].as_str().unwrap_or("");
        if let Some(name) = path.strip_prefix("/contacts/attributes/normal/") {
            created.push(name.to_string());
        }
        if path == "/contacts/batch" {
            contacts.extend(v["body"]["contacts"].as_array().unwrap().iter().cloned());
        }
    }
    (created, contacts)
}

/// Serve and backfill share one path to Brevo; the `mapping` switches decide which optional
/// attributes exist and are written, `field_mapping` names them, contacts join `list_ids`.
#[tokio::test]
async fn mapping_switches_and_names_reach_brevo() {
    let lines: Vec<String> = (0..4).map(user).collect();
    let opts = || BackfillOptions {
        progress: false,
        ..Default::default()
    };
    // Defaults: every attribute, pro users in the `pro` segment and the experiment.
    let (dir, config, users) = setup_with("mapping-on", &lines, "");
    backfill::run(config.clone(), &users, opts()).await.unwrap();
    let (created, contacts) = dry_run_writes(&config);
    assert_eq!(created.len(), 9, "{created:?}");
    assert_eq!(contacts.len(), 4, "{contacts:?}");
    let pro = contacts
        .iter()
        .find(|c| c["email"] == "user-0@example.com")
        .unwrap();
    let a = &pro["attributes"];
    assert_eq!(a["OPT_SEGMENTS"], "pro", "{a}");
    assert_eq!(a["EXPERIMENT_VARIATION"], "checkout_test:treatment", "{a}");
    assert_eq!(a["EXPERIMENT_NAME"], "checkout_test", "{a}");
    assert!(a["ENABLED_FEATURES"].is_string(), "{a}");
    assert!(pro.get("listIds").is_none(), "{pro}");
    std::fs::remove_dir_all(&dir).unwrap();

    // Two switched off, one name changed.
    let (dir, config, users) = setup_with(
        "mapping-off",
        &lines,
        "    mapping: {feature_flags: false, audience_segments: false}\n    field_mapping: {experiment_key: AB_TEST}\n  brevo:\n    list_ids: [4]\n",
    );
    backfill::run(config.clone(), &users, opts()).await.unwrap();
    let (created, contacts) = dry_run_writes(&config);
    assert_eq!(created.len(), 7, "{created:?}");
    assert!(!created
        .iter()
        .any(|n| n == "ENABLED_FEATURES" || n == "OPT_SEGMENTS"));
    assert!(created.iter().any(|n| n == "AB_TEST"), "{created:?}");
    assert_eq!(contacts.len(), 4, "{contacts:?}");
    for c in &contacts {
        let a = c["attributes"].as_object().unwrap();
        assert!(
            !a.contains_key("ENABLED_FEATURES") && !a.contains_key("OPT_SEGMENTS"),
            "{a:?}"
        );
        assert!(a.contains_key("EXPERIMENT_VARIATION"), "{a:?}");
        assert!(!a.contains_key("EXPERIMENT_NAME"), "{a:?}");
        assert_eq!(c["listIds"], serde_json::json!([4]), "{c}");
    }
    let pro = contacts
        .iter()
        .find(|c| c["email"] == "user-0@example.com")
        .unwrap();
    assert_eq!(pro["attributes"]["AB_TEST"], "checkout_test");
    std::fs::remove_dir_all(&dir).unwrap();
}
