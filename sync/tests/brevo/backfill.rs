//! `flagbridge backfill`: an interrupted run resumes from its checkpoint; bad lines are named.

use std::io::Write;

use flagbridge_sync::connector::backfill::{self, BackfillError, BackfillOptions};
use flagbridge_sync::connector::config::Config;
use flagbridge_sync::connector::scheduled::MembershipStore;
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

/// Users without the identity attribute are decided but counted as not written to Brevo, and an
/// interrupt (Ctrl-C in the binary) stops at a line boundary with a checkpoint the same command
/// resumes from.
#[tokio::test]
async fn interrupt_stops_with_a_checkpoint_and_users_without_identity_are_counted() {
    let mut lines: Vec<String> = (0..20).map(user).collect();
    lines[3] = r#"{"userId":"no-email-1","userAttributes":{"plan":"pro"}}"#.into();
    lines[15] = r#"{"userId":"no-email-2"}"#.into();
    let (dir, config, users) = setup("interrupt", &lines);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // First run: 10 users, then the flag is up (as after Ctrl-C) before the next line.
    let first = backfill::run(
        config.clone(),
        &users,
        BackfillOptions {
            limit: Some(10),
            progress: false,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!((first.users, first.users_without_identity), (10, 1));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let interrupted = backfill::run(
        config.clone(),
        &users,
        BackfillOptions {
            progress: false,
            interrupt: Some(stop.clone()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(interrupted.interrupted && !interrupted.finished);
    assert_eq!(interrupted.users, 0);
    assert_eq!(interrupted.resumed_at_line, 10);
    let checkpoint = backfill::default_checkpoint(&config, &users);
    let words = interrupted.summary(Some("email"), &checkpoint);
    assert!(
        words.contains("interrupted: run the same command again to resume"),
        "{words}"
    );
    // The same command, no interrupt: resumes at line 11 and finishes.
    let rest = backfill::run(
        config,
        &users,
        BackfillOptions {
            progress: false,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(rest.finished);
    assert_eq!((rest.resumed_at_line, rest.users), (10, 10));
    assert_eq!(rest.users_without_identity, 1);
    let words = rest.summary(Some("email"), &checkpoint);
    assert!(
        words.contains("1 without the `email` attribute: decided, not written to Brevo"),
        "{words}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The binary: SIGINT during a long backfill says how to resume and exits 130; running the same
/// command again finishes from the checkpoint.
#[cfg(unix)]
#[test]
fn ctrl_c_in_the_binary_says_how_to_resume() {
    use std::process::{Command, Stdio};
    let lines: Vec<String> = (0..10_000).map(user).collect();
    let (dir, _config, users) = setup("sigint", &lines);
    let config_file = dir.join("flagbridge.yaml");
    std::fs::write(
        &config_file,
        format!(
            "state_dir: {}\nconnectors:\n  optimizely:\n    sdk_key: K\n    datafile_file: {}\n",
            dir.join("state").display(),
            dir.join("datafile.json").display()
        ),
    )
    .unwrap();
    let run = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_flagbridge"));
        c.args(["backfill", "--checkpoint-every", "200", "--config"])
            .arg(&config_file)
            .arg("--users")
            .arg(&users)
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    };
    let mut child = run().spawn().unwrap();
    // Wait for the first checkpoint (the run is under way), then Ctrl-C.
    let checkpoint = dir.join("state/backfill-users.jsonl.checkpoint.json");
    while !checkpoint.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            panic!(
                "backfill ended before its first checkpoint ({status}): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stderr}");
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("interrupted: run the same command again to resume (checkpoint "),
        "{stderr}"
    );
    let report: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    let done = report["users"].as_u64().unwrap();
    assert!(done > 0 && done < 10_000, "{report}");
    // The same command resumes and finishes.
    let out = run().output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    assert_eq!(report["users"].as_u64().unwrap() + done, 10_000, "{report}");
    assert!(stderr.contains("; finished"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
