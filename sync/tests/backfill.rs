//! `flagbridge backfill`: an interrupted run resumes from its checkpoint; bad lines are named.

use std::io::Write;

use flagbridge_sync::backfill::{self, BackfillError, BackfillOptions};
use flagbridge_sync::config::Config;
use flagbridge_sync::scheduled::MembershipStore;
use flagbridge_sync::testing::datafile;

fn setup(tag: &str, lines: &[String]) -> (std::path::PathBuf, Config, std::path::PathBuf) {
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
        "state_dir: {}\nconnectors:\n  optimizely:\n    sdk_key: K\n    datafile_file: {}\n",
        dir.join("state").display(),
        df.display()
    );
    (dir, Config::from_yaml(&yaml, &|_| None).unwrap(), users)
}

fn user(i: usize) -> String {
    let plan = if i % 2 == 0 { "pro" } else { "free" };
    format!(r#"{{"userId":"user-{i}","userAttributes":{{"plan":"{plan}"}}}}"#)
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
    // The Brevo dry run saw the contacts (ext_id = user id).
    let dry = std::fs::read_to_string(config.state_dir.join("brevo-dry-run.jsonl")).unwrap();
    assert!(dry.contains("user-99"), "dry run file lacks the last user");
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
