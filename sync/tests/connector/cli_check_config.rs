//! `flagbridge check-config` as a user runs it.

use std::process::Command;

fn flagbridge() -> Command {
    Command::new(env!("CARGO_BIN_EXE_flagbridge"))
}

#[test]
fn example_file_passes_with_its_environment() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../flagbridge.example.yaml");
    let out = flagbridge()
        .args(["check-config", example])
        .env("OPTIMIZELY_ACCESS_TOKEN", "pat-secret-1")
        .env("OPTIMIZELY_SDK_KEY", "WebKey")
        .env("OPTIMIZELY_WEBHOOK_SECRET", "whsec-1")
        .env("OPTIMIZELY_MOBILE_SDK_KEY", "MobileKey")
        .env("OPTIMIZELY_MOBILE_WEBHOOK_SECRET", "whsec-2")
        .env("BREVO_API_KEY", "xkeysib-secret")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("ok (2 projects: default, mobile)"),
        "{stdout}"
    );
    for secret in ["pat-secret-1", "whsec-1", "xkeysib-secret"] {
        assert!(!stdout.contains(secret) && !stderr.contains(secret));
    }
}

#[test]
fn errors_name_the_key_and_exit_2() {
    let dir = std::env::temp_dir().join(format!("fb-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.yaml");
    std::fs::write(
        &file,
        "connectors:\n  optimizely:\n    sdk_key: K\n    sync:\n      schedule: '0 25 * * *'\n",
    )
    .unwrap();
    let out = flagbridge()
        .arg("check-config")
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with("error: connectors.optimizely.sync.schedule: invalid cron expression"),
        "{stderr}"
    );
    let out = flagbridge()
        .arg("check-config")
        .arg(dir.join("missing.yaml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.yaml: cannot read config"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The connector page's config as its users wrote it (`tests/data/seed-config.yaml`).
#[test]
fn seed_config_passes_check_config() {
    let seed = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/seed-config.yaml");
    let out = flagbridge()
        .args(["check-config", seed])
        .env("OPTIMIZELY_ACCESS_TOKEN", "pat-secret-seed")
        .env("OPTIMIZELY_SDK_KEY", "SeedKey")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("ok (1 project: default)"), "{stdout}");
    assert!(
        stderr.contains("warning: connectors.optimizely.field_mapping.audience_name"),
        "{stderr}"
    );
    assert!(!stdout.contains("pat-secret-seed") && !stderr.contains("pat-secret-seed"));
}

#[test]
fn yaml_syntax_error_names_file_line_and_column() {
    let dir = std::env::temp_dir().join(format!("fb-cli-yaml-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("broken.yaml");
    std::fs::write(&file, "connectors:\n  optimizely:\n    sdk_key: \"K\n").unwrap();
    let out = flagbridge()
        .arg("check-config")
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stderr}");
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with(&format!("error: {}: line ", file.display())),
        "{stderr}"
    );
    assert!(stderr.contains(" column "), "{stderr}");
}
