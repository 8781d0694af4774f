//! Every real SDK datafile in `../shared/datafiles` (outside the repo) parses and decides.

use std::path::Path;

use flagbridge_engine::{DecideOption, DecideOptions, Decider, ProjectConfig, UserContext};

/// `../shared/datafiles` next to the repository root.
const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/datafiles");
/// The same for a git worktree one level deeper (`/work/wt/<name>`).
const WORKTREE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/datafiles");

fn datafiles() -> Vec<(String, String)> {
    // FLAGBRIDGE_DATAFILES overrides the folder (e.g. when the repo is a worktree elsewhere).
    let dir = std::env::var("FLAGBRIDGE_DATAFILES").unwrap_or_else(|_| {
        if Path::new(DIR).is_dir() {
            DIR.to_string()
        } else {
            WORKTREE_DIR.to_string()
        }
    });
    let Ok(entries) = std::fs::read_dir(Path::new(&dir)) else {
        println!("skipping: {dir} is absent");
        return Vec::new();
    };
    let mut out: Vec<(String, String)> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn project_config_is_send_sync_static() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<ProjectConfig>();
    assert_send_sync::<flagbridge_engine::ForcedVariations>();
}

#[test]
fn every_real_datafile_parses_and_decides() {
    for (name, text) in datafiles() {
        let config = match ProjectConfig::parse(&text) {
            Ok(c) => c,
            Err(e) => panic!("{name}: {e}"),
        };
        assert_eq!(config.datafile(), text, "{name}");
        let decider = Decider::new(&config);
        for user in ["user-1", "test_user", "", "😀"] {
            let user = UserContext::new(user).with_attribute("age", 30i64);
            let all = decider.decide_all(
                &user,
                DecideOptions::NONE.with(DecideOption::IncludeReasons),
            );
            assert_eq!(all.len(), config.flag_keys().count(), "{name}");
            for d in &all {
                assert!(!d.reasons().is_empty(), "{name} {}", d.flag_key());
                let _ = d.notification(&user);
            }
        }
        let summary = serde_json::to_value(config.optimizely_config()).unwrap();
        assert_eq!(summary["revision"], config.revision(), "{name}");
        println!("{name}: {} flags", config.flag_keys().count());
    }
}
