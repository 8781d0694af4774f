//! Table tests: each bad config names its path.

use super::*;

const BASE: &str = r#"
connectors:
  optimizely:
    sdk_key: KEY_A
    project_id: 111
    access_token: ${OPTLY_TOKEN}
    projects:
      - name: mobile
        sdk_key: KEY_B
        project_id: "222"
        webhook_secret: whsec
  brevo:
    api_key: ${BREVO_KEY}
"#;

fn env(name: &str) -> Option<String> {
    match name {
        "OPTLY_TOKEN" => Some("pat-123".into()),
        "BREVO_KEY" => Some("xkeysib-abc".into()),
        _ => None,
    }
}

fn load(text: &str) -> Result<Config, ConfigError> {
    Config::from_yaml(text, &env)
}

#[test]
fn base_config_resolves_with_inheritance() {
    let c = load(BASE).unwrap();
    assert_eq!(c.projects.len(), 2);
    let a = &c.projects[0];
    assert_eq!((a.name.as_str(), a.sdk_key.as_str()), ("default", "KEY_A"));
    assert_eq!(a.project_id.as_deref(), Some("111"));
    assert_eq!(a.access_token.as_ref().unwrap().expose(), "pat-123");
    let b = &c.projects[1];
    assert_eq!(b.project_id.as_deref(), Some("222"));
    assert_eq!(
        b.access_token.as_ref().unwrap().expose(),
        "pat-123",
        "inherited"
    );
    assert_eq!(b.config_path, "connectors.optimizely.projects[0]");
    assert_eq!(b.sync.schedule.pattern(), schema::DEFAULT_SCHEDULE);
    match &b.datafile {
        DatafileSource::Cdn { base_url } => assert_eq!(base_url, "https://cdn.optimizely.com"),
        other => panic!("{other:?}"),
    }
    assert!(!c.brevo.dry_run);
    assert_eq!(c.brevo.base_url.as_str(), "https://api.brevo.com/v3/");
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
    assert!(c.project_by_sdk_key("KEY_B").is_some());
}

#[test]
fn secrets_are_not_in_debug_output() {
    let c = load(BASE).unwrap();
    let dbg = format!("{c:?}");
    assert!(!dbg.contains("pat-123"), "{dbg}");
    assert!(!dbg.contains("xkeysib"), "{dbg}");
    assert!(!dbg.contains("whsec"), "{dbg}");
}

#[test]
fn example_file_is_valid() {
    let text = include_str!("../../../flagbridge.example.yaml");
    let c = Config::from_yaml(text, &|name| Some(format!("value-of-{name}"))).unwrap();
    assert!(c.projects.len() >= 2);
}

/// (what to change, expected path, expected message fragment)
#[test]
fn errors_name_their_path() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "connectors:\n  optimizely:\n    sdk_key: K\n    sync:\n      schedule: 'every day'\n",
            "connectors.optimizely.sync.schedule",
            "invalid cron expression",
        ),
        (
            "connectors:\n  optimizely:\n    sdk_key: K\n    sync:\n      schedule: '61 * * * *'\n",
            "connectors.optimizely.sync.schedule",
            "invalid cron expression",
        ),
        (
            "connectors:\n  optimizely:\n    sdk_key: K\n    colour: red\n",
            "connectors.optimizely.colour",
            "unknown field `colour`",
        ),
        (
            "connectors:\n  optimizely:\n    sdk_key: K\n    sync:\n      experiments: maybe\n",
            "connectors.optimizely.sync.experiments",
            "invalid type",
        ),
        (
            "connectors:\n  optimizely:\n    sdk_key: K\n    projects:\n      - name: x\n",
            "connectors.optimizely.projects[0]",
            "missing field `sdk_key`",
        ),
        (
            "connectors:\n  optimizely:\n    sdk_key: K\n    projects:\n      - {name: x, sdk_key: K2, mapping: {experiment_variations: true}}\n",
            "connectors.optimizely.projects[0].mapping.experiment_variations",
            "unknown field `experiment_variations`",
        ),
        (
            "connectors:\n  optimizely:\n    sdk_key: K\n    projects:\n      - {name: x, sdk_key: K}\n",
            "connectors.optimizely.projects[0].sdk_key",
            "same SDK key as connectors.optimizely",
        ),
        (
            "connectors:\n  optimizely:\n    projects:\n      - {name: x, sdk_key: A}\n      - {name: x, sdk_key: B}\n",
            "connectors.optimizely.projects[1].name",
            "already used by connectors.optimizely.projects[0]",
        ),
        (
            "connectors:\n  optimizely:\n    sdk_key: K\n    field_mapping:\n      user_id: user id\n",
            "connectors.optimizely.field_mapping.user_id",
            "not a Brevo attribute name",
        ),
        (
            "connectors:\n  optimizely:\n    sdk_key: K\n    field_mapping:\n      enabled: OPTIMIZELY_FLAG\n",
            "connectors.optimizely.field_mapping.enabled",
            "already used by `feature_key`",
        ),
        (
            "connectors:\n  optimizely:\n    sdk_key: K\n    log_level: loud\n",
            "connectors.optimizely.log_level",
            "unknown variant `loud`",
        ),
        (
            "connectors:\n  optimizely:\n    sdk_key: K\n    urls:\n      rest: 'ftp://x'\n",
            "connectors.optimizely.urls.rest",
            "not an http(s) URL",
        ),
        (
            "connectors:\n  optimizely:\n    sdk_key: K\n    urls:\n      cdn: 'cdn.example.com'\n",
            "connectors.optimizely.urls.cdn",
            "is not a URL",
        ),
        (
            "connectors:\n  optimizely:\n    sdk_key: K\n  brevo:\n    api_key: ${NOPE}\n",
            "connectors.brevo.api_key",
            "environment variable `NOPE` is not set",
        ),
        (
            "connectors:\n  optimizely:\n    sdk_key: K\n  brevo:\n    batch_size: -3\n",
            "connectors.brevo.batch_size",
            "invalid value",
        ),
        (
            "connectors:\n  optimizely:\n    sdk_key: K\n  brevo:\n    batch_size: 0\n",
            "connectors.brevo.batch_size",
            "at least 1",
        ),
        (
            "connectors:\n  optimizely:\n    sdk_key: K\n  brevo:\n    rate_limit: {per_second: 0}\n",
            "connectors.brevo.rate_limit.per_second",
            "at least 1",
        ),
        (
            "connectors:\n  optimizely:\n    sdk_key: K\n  brevo:\n    list_ids: [1, two]\n",
            "connectors.brevo.list_ids[1]",
            "invalid type",
        ),
        (
            "connectors:\n  optimizely:\n    sdk_key: 'K with space'\n",
            "connectors.optimizely.sdk_key",
            "letters, digits",
        ),
        (
            "connectors:\n  optimizely:\n    enabled: true\n",
            "connectors.optimizely",
            "no project",
        ),
        (
            "connectors:\n  optimizely:\n    project_id: 5\n    projects: [{name: a, sdk_key: A}]\n",
            "connectors.optimizely.sdk_key",
            "missing",
        ),
        (
            "server:\n  listen: 'localhost'\nconnectors:\n  optimizely:\n    sdk_key: K\n",
            "server.listen",
            "invalid socket address",
        ),
        (
            "connectors:\n  optimizely:\n    sdk_key: K\n    project_id: [1]\n",
            "connectors.optimizely.project_id",
            "project id",
        ),
        ("conectors: {}\n", "conectors", "unknown field `conectors`"),
    ];
    for (text, path, fragment) in cases {
        let err = match load(text) {
            Ok(c) => panic!("accepted: {text}\n{c:?}"),
            Err(e) => e,
        };
        let msg = err.to_string();
        assert_eq!(err.path(), *path, "path for:\n{text}\nmessage: {msg}");
        assert!(msg.contains(fragment), "message for:\n{text}\n{msg}");
        if !path.is_empty() {
            assert!(msg.starts_with(&format!("{path}: ")), "{msg}");
        }
    }
}

#[test]
fn yaml_syntax_error_has_location() {
    let err = load("connectors:\n  optimizely: [\n").unwrap_err();
    assert!(matches!(err, ConfigError::Yaml { .. }), "{err}");
    assert!(err.to_string().contains("line"), "{err}");
}

#[test]
fn warnings_for_sync_without_token() {
    let c = load("connectors:\n  optimizely:\n    sdk_key: K\n").unwrap();
    let w = c.warnings().join("\n");
    assert!(w.contains("connectors.optimizely: no access_token"), "{w}");
    assert!(w.contains("dry run"), "{w}");
}

#[test]
fn cron_schedules_compute_next_run() {
    let s: CronSchedule = "0 */2 * * *".parse().unwrap();
    let t = chrono::DateTime::parse_from_rfc3339("2026-11-27T23:15:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    assert_eq!(
        s.next_after(&t).unwrap().to_rfc3339(),
        "2026-11-28T00:00:00+00:00"
    );
}
