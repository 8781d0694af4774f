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
    let text = include_str!("../../../../flagbridge.example.yaml");
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
            "connectors:\n  optimizely:\n    sdk_key: K\n    mapping: {experiment_variations: true}\n",
            "connectors.optimizely.mapping.experiment_variations",
            "unknown field `experiment_variations`",
        ),
        (
            "connectors:\n  optimizely:\n    sdk_key: K\n    projects:\n      - {name: x, sdk_key: K2, mapping: {feature_flags: false}}\n",
            "connectors.optimizely.projects[0].mapping",
            "unknown field `mapping`",
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
            "connectors:\n  optimizely:\n    sdk_key: K\n    field_mapping:\n      user_id: ' '\n",
            "connectors.optimizely.field_mapping.user_id",
            "must name a user attribute",
        ),
        (
            "connectors:\n  optimizely:\n    sdk_key: K\n    field_mapping:\n      experiment_key: experiment name\n",
            "connectors.optimizely.field_mapping.experiment_key",
            "not a Brevo attribute name",
        ),
        (
            "connectors:\n  optimizely:\n    sdk_key: K\n    field_mapping:\n      enabled: FEATURE_FLAG\n",
            "connectors.optimizely.field_mapping.enabled",
            "already used by `feature_key`",
        ),
        (
            "connectors:\n  optimizely:\n    sdk_key: K\n    field_mapping:\n      sync_date: EXPERIMENT_DATE\n",
            "connectors.optimizely.field_mapping.sync_date",
            "already used by `decision_timestamp`",
        ),
        (
            "connectors:\n  optimizely:\n    sdk_key: K\n    projects:\n      - {name: x, sdk_key: K2, field_mapping: {user_id: uid}}\n",
            "connectors.optimizely.projects[0].field_mapping",
            "unknown field `field_mapping`",
        ),
        (
            "connectors:\n  optimizely:\n    sdk_key: K\n  brevo:\n    contact_identity: phone\n",
            "connectors.brevo.contact_identity",
            "unknown variant `phone`",
        ),
        (
            "connectors:\n  optimizely:\n    sdk_key: K\n  brevo:\n    identity_attribute: email\n",
            "connectors.brevo.identity_attribute",
            "unknown field `identity_attribute`",
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
            "connectors:\n  optimizely:\n    sdk_key: K\n  brevo:\n    list_ids: [4, 0]\n",
            "connectors.brevo.list_ids[1]",
            "not a Brevo list id",
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
        (
            "store: {url: 'http://127.0.0.1:6379'}\nconnectors:\n  optimizely:\n    sdk_key: K\n",
            "store.url",
            "redis://",
        ),
        (
            "store: {url: 'redis://:pw@127.0.0.1/x'}\nconnectors:\n  optimizely:\n    sdk_key: K\n",
            "store.url",
            "not a number",
        ),
        (
            "store: {url: 'redis://127.0.0.1', key_prefix: ''}\nconnectors:\n  optimizely:\n    sdk_key: K\n",
            "store.key_prefix",
            "must not be empty",
        ),
        (
            "store: {url: 'redis://127.0.0.1', lease_timeout_secs: 0}\nconnectors:\n  optimizely:\n    sdk_key: K\n",
            "store.lease_timeout_secs",
            "at least 1 second",
        ),
        (
            "store: {url: 'redis://127.0.0.1', lease: 3}\nconnectors:\n  optimizely:\n    sdk_key: K\n",
            "store.lease",
            "unknown field `lease`",
        ),
        (
            "store: {key_prefix: 'a:'}\nconnectors:\n  optimizely:\n    sdk_key: K\n",
            "store",
            "missing field `url`",
        ),
        (
            "store: {url: 'rediss://127.0.0.1', tls_ca_file: /nonexistent/ca.pem}\nconnectors:\n  optimizely:\n    sdk_key: K\n",
            "store.tls_ca_file",
            "/nonexistent/ca.pem",
        ),
        (
            "store: {url: 'redis://127.0.0.1', tls_ca_file: /nonexistent/ca.pem}\nconnectors:\n  optimizely:\n    sdk_key: K\n",
            "store.tls_ca_file",
            "rediss://",
        ),
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
fn the_store_section_is_optional_and_keeps_its_password_hidden() {
    assert!(load(BASE).unwrap().store.is_none());
    let text = format!(
        "store:\n  url: redis://:s3cret@127.0.0.1:6390/2\n  key_prefix: 'shop:'\n  lease_timeout_secs: 12\n{BASE}"
    );
    let c = load(&text).unwrap();
    let store = c.store.as_ref().unwrap();
    assert_eq!(
        store.lease_timeout_value(),
        std::time::Duration::from_secs(12)
    );
    let shown = format!("{c:?}");
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(shown.contains("shop:"), "{shown}");
}

/// The Brevo issue's defaults: email identity from the `email` attribute, the issue's
/// attribute names, every optional attribute on.
#[test]
fn brevo_mapping_defaults_and_options() {
    let c = load("connectors:\n  optimizely:\n    sdk_key: K\n").unwrap();
    let b = &c.brevo;
    assert_eq!(b.contact_identity, ContactIdentityKind::Email);
    assert_eq!(b.identity_attribute.as_deref(), Some("email"));
    assert_eq!(b.mapping, MappingSection::default());
    assert!(b.mapping.experiment_variation && b.mapping.feature_flags);
    assert!(b.mapping.audience_segments);
    let fm = &b.field_mapping;
    let names = [
        &fm.experiment_key,
        &fm.variation_key,
        &fm.feature_key,
        &fm.enabled,
        &fm.decision_timestamp,
        &fm.audience_name,
        &fm.enabled_features,
        &fm.experiment_variation,
        &fm.sync_date,
    ];
    assert_eq!(
        names.map(String::as_str),
        [
            "EXPERIMENT_NAME",
            "VARIATION_NAME",
            "FEATURE_FLAG",
            "FEATURE_ENABLED",
            "EXPERIMENT_DATE",
            "OPT_SEGMENTS",
            "ENABLED_FEATURES",
            "EXPERIMENT_VARIATION",
            "FEATURE_FLAGS_SYNCED",
        ]
    );
    // ext_id identity: the Optimizely user id unless `user_id` names an attribute.
    let ext = load(
        "connectors:\n  optimizely:\n    sdk_key: K\n  brevo:\n    contact_identity: ext_id\n",
    )
    .unwrap();
    assert_eq!(ext.brevo.contact_identity, ContactIdentityKind::ExtId);
    assert_eq!(ext.brevo.identity_attribute, None);
    let custom = load(
        "connectors:\n  optimizely:\n    sdk_key: K\n    field_mapping: {user_id: work_email, enabled: FLAG_ON}\n    mapping: {audience_segments: false}\n",
    )
    .unwrap();
    assert_eq!(
        custom.brevo.identity_attribute.as_deref(),
        Some("work_email")
    );
    assert_eq!(custom.brevo.field_mapping.enabled, "FLAG_ON");
    assert!(!custom.brevo.mapping.audience_segments);
    assert!(custom.brevo.mapping.feature_flags);
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

/// The connector page's own config, kept verbatim in `tests/data/seed-config.yaml`: it loads,
/// and its `mapping` names and `field_mapping` names reach the Brevo attribute names.
#[test]
fn seed_config_loads_verbatim_and_means_what_it_says() {
    let text = include_str!("../../../tests/data/seed-config.yaml");
    assert!(text.contains("experiment_variation: EXPERIMENT_VARIATION"));
    assert!(text.contains("log_level: verbose"));
    let env = |name: &str| match name {
        "OPTIMIZELY_ACCESS_TOKEN" => Some("pat-seed".to_string()),
        "OPTIMIZELY_SDK_KEY" => Some("SeedKey".to_string()),
        _ => None,
    };
    let c = Config::from_yaml(text, &env).unwrap();
    assert_eq!(c.projects.len(), 1);
    let p = &c.projects[0];
    assert_eq!(p.sdk_key, "SeedKey");
    assert_eq!(p.project_id.as_deref(), Some("12345678"));
    assert_eq!(
        p.access_token.as_ref().map(|t| t.expose()),
        Some("pat-seed")
    );
    assert_eq!(c.logging.level, LogLevel::Debug, "verbose is debug");
    assert!(c.logging.debug && c.logging.log_decisions && c.logging.log_events);
    let b = &c.brevo;
    assert_eq!(
        b.mapping,
        MappingSection::default(),
        "names switch attributes on"
    );
    assert_eq!(b.identity_attribute.as_deref(), Some("email"));
    let fm = &b.field_mapping;
    assert_eq!(fm.experiment_variation, "EXPERIMENT_VARIATION");
    assert_eq!(fm.enabled_features, "ENABLED_FEATURES");
    assert_eq!(
        fm.audience_name, "OPT_SEGMENTS",
        "mapping.audience_segments names it"
    );
    assert_eq!(fm.experiment_key, "EXPERIMENT_NAME");
    assert_eq!(fm.variation_key, "VARIATION_NAME");
    assert_eq!(fm.feature_key, "FEATURE_FLAG");
    assert_eq!(fm.enabled, "FEATURE_ENABLED");
    assert_eq!(fm.decision_timestamp, "EXPERIMENT_DATE");
    // The page names the audiences attribute twice, differently: check-config says which wins.
    let w = c.warnings().join("\n");
    assert!(
        w.contains("field_mapping.audience_name: `AUDIENCE_SEGMENT` is not used"),
        "{w}"
    );
}

#[test]
fn mapping_names_reach_the_attribute_names() {
    let c = load(
        "connectors:\n  optimizely:\n    sdk_key: K\n    mapping:\n      experiment_variation: AB_TESTS\n      feature_flags: false\n      audience_segments: SEGS\n",
    )
    .unwrap();
    let b = &c.brevo;
    assert_eq!(b.field_mapping.experiment_variation, "AB_TESTS");
    assert_eq!(b.field_mapping.audience_name, "SEGS");
    assert!(b.mapping.experiment_variation && b.mapping.audience_segments);
    assert!(!b.mapping.feature_flags);
    assert!(c.warnings().iter().all(|w| !w.contains("is not used")));
    // The mapping name and the field_mapping name agree: no note.
    let same = load(
        "connectors:\n  optimizely:\n    sdk_key: K\n    mapping: {feature_flags: FLAGS_ON}\n    field_mapping: {enabled_features: FLAGS_ON}\n",
    )
    .unwrap();
    assert_eq!(same.brevo.field_mapping.enabled_features, "FLAGS_ON");
    assert!(same.warnings().iter().all(|w| !w.contains("is not used")));
    for (text, path, fragment) in [
        (
            "connectors:\n  optimizely:\n    sdk_key: K\n    mapping: {feature_flags: lower_case}\n",
            "connectors.optimizely.mapping.feature_flags",
            "not a Brevo attribute name",
        ),
        (
            "connectors:\n  optimizely:\n    sdk_key: K\n    mapping: {feature_flags: 3}\n",
            "connectors.optimizely.mapping.feature_flags",
            "true, false or a Brevo attribute name",
        ),
        (
            "connectors:\n  optimizely:\n    sdk_key: K\n    mapping: {feature_flags: OPT_SEGMENTS}\n",
            "connectors.optimizely.field_mapping.enabled_features",
            "already used",
        ),
    ] {
        let err = load(text).unwrap_err();
        assert_eq!(err.path(), path, "{err}");
        assert!(err.to_string().contains(fragment), "{err}");
    }
}

#[test]
fn yaml_syntax_error_names_file_line_and_column() {
    let dir = std::env::temp_dir().join(format!("fb-yaml-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("broken.yaml");
    std::fs::write(&file, "connectors:\n  optimizely:\n    sdk_key: [K\n").unwrap();
    let msg = Config::load(&file).unwrap_err().to_string();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        msg.starts_with(&format!("{}: line ", file.display())),
        "{msg}"
    );
    assert!(msg.contains(" column "), "{msg}");
}
