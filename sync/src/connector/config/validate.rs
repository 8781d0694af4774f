//! From the file schema to the resolved [`Config`]: defaults, inheritance, value checks.

use std::collections::HashMap;
use std::path::PathBuf;

use url::Url;

use super::schema::{self, FieldMappingSection, FileConfig, SyncSection};
use super::{
    BrevoSettings, Config, ConfigError, DatafileSource, Logging, ProjectSettings, Secret,
    SyncSettings, Urls,
};

const OPT: &str = "connectors.optimizely";

fn invalid(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        path: path.into(),
        message: message.into(),
    }
}

/// Resolves and checks a parsed file.
pub(crate) fn resolve(file: FileConfig) -> Result<Config, ConfigError> {
    let mut opt = file.connectors.optimizely;
    let mut server = file.server;
    // `${VAR:-}` gives an empty string: an empty optional secret means "not set".
    server.auth_token = non_empty(server.auth_token);
    opt.access_token = non_empty(opt.access_token);
    opt.datafile_access_token = non_empty(opt.datafile_access_token);
    opt.webhook_secret = non_empty(opt.webhook_secret);
    for p in &mut opt.projects {
        p.access_token = non_empty(p.access_token.take());
        p.datafile_access_token = non_empty(p.datafile_access_token.take());
        p.webhook_secret = non_empty(p.webhook_secret.take());
    }
    check_positive(server.max_body_bytes, "server.max_body_bytes")?;
    check_positive(server.max_batch_operations, "server.max_batch_operations")?;

    let urls = Urls {
        cdn: origin_url(&opt.urls.cdn, &format!("{OPT}.urls.cdn"))?,
        auth_datafile: origin_url(
            &opt.urls.auth_datafile,
            &format!("{OPT}.urls.auth_datafile"),
        )?,
        events: http_url(&opt.urls.events, &format!("{OPT}.urls.events"))?,
        events_eu: http_url(&opt.urls.events_eu, &format!("{OPT}.urls.events_eu"))?,
        rest: base_url(&opt.urls.rest, &format!("{OPT}.urls.rest"))?,
        flags: base_url(&opt.urls.flags, &format!("{OPT}.urls.flags"))?,
    };
    check_positive(opt.events.batch_size, &format!("{OPT}.events.batch_size"))?;
    check_positive(opt.events.queue_size, &format!("{OPT}.events.queue_size"))?;
    check_positive(opt.events.concurrency, &format!("{OPT}.events.concurrency"))?;
    check_positive(
        opt.events.commit_interval_ms as usize,
        &format!("{OPT}.events.commit_interval_ms"),
    )?;
    check_positive(
        opt.events.max_age_hours as usize,
        &format!("{OPT}.events.max_age_hours"),
    )?;
    if opt.datafile.poll_interval_secs == 0 {
        return Err(invalid(
            format!("{OPT}.datafile.poll_interval_secs"),
            "must be at least 1",
        ));
    }

    for (value, key) in [
        (opt.rate_limit.requests_per_minute, "requests_per_minute"),
        (opt.rate_limit.results_per_minute, "results_per_minute"),
    ] {
        if value == 0 {
            return Err(invalid(
                format!("{OPT}.rate_limit.{key}"),
                "must be at least 1",
            ));
        }
    }
    let default_sync = resolve_sync(&opt.sync, &format!("{OPT}.sync"))?;
    let mut notes = Vec::new();
    let mapping = resolve_mapping(&opt.mapping, &mut opt.field_mapping, &mut notes)?;
    check_field_mapping(&opt.field_mapping, &format!("{OPT}.field_mapping"))?;

    let mut projects = Vec::new();
    if let Some(sdk_key) = &opt.sdk_key {
        let path = format!("{OPT}.sdk_key");
        check_sdk_key(sdk_key, &path)?;
        projects.push(ProjectSettings {
            config_path: OPT.to_string(),
            name: "default".into(),
            sdk_key: sdk_key.clone(),
            project_id: opt.project_id.clone(),
            access_token: opt.access_token.clone(),
            datafile_access_token: opt.datafile_access_token.clone(),
            webhook_secret: opt.webhook_secret.clone(),
            datafile: datafile_source(
                &urls,
                sdk_key,
                opt.datafile_access_token.is_some(),
                opt.datafile_file.clone(),
            ),
            sync: default_sync.clone(),
        });
    } else if opt.project_id.is_some()
        || opt.datafile_access_token.is_some()
        || opt.webhook_secret.is_some()
        || opt.datafile_file.is_some()
    {
        return Err(invalid(
            format!("{OPT}.sdk_key"),
            "missing: project_id, datafile_access_token, webhook_secret or datafile_file \
             are set for the default project but it has no sdk_key",
        ));
    }

    for (i, entry) in opt.projects.into_iter().enumerate() {
        let at = format!("{OPT}.projects[{i}]");
        check_sdk_key(&entry.sdk_key, &format!("{at}.sdk_key"))?;
        if entry.name.trim().is_empty() {
            return Err(invalid(format!("{at}.name"), "must not be empty"));
        }
        let sync = match &entry.sync {
            Some(sync) => resolve_sync(sync, &format!("{at}.sync"))?,
            None => default_sync.clone(),
        };
        let datafile_access_token = entry
            .datafile_access_token
            .or_else(|| opt.datafile_access_token.clone());
        projects.push(ProjectSettings {
            config_path: at,
            datafile: datafile_source(
                &urls,
                &entry.sdk_key,
                datafile_access_token.is_some(),
                entry.datafile_file,
            ),
            name: entry.name,
            sdk_key: entry.sdk_key,
            project_id: entry.project_id,
            access_token: entry.access_token.or_else(|| opt.access_token.clone()),
            datafile_access_token,
            webhook_secret: entry.webhook_secret,
            sync,
        });
    }

    if opt.enabled && projects.is_empty() {
        return Err(invalid(
            OPT,
            "no project: set `sdk_key` or list `projects` (or set `enabled: false`)",
        ));
    }
    let mut seen_keys: HashMap<&str, usize> = HashMap::new();
    let mut seen_names: HashMap<&str, usize> = HashMap::new();
    for (i, p) in projects.iter().enumerate() {
        let path = project_path(&projects, i);
        if let Some(first) = seen_keys.insert(&p.sdk_key, i) {
            return Err(invalid(
                format!("{path}.sdk_key"),
                format!("same SDK key as {}", project_path(&projects, first)),
            ));
        }
        if let Some(first) = seen_names.insert(&p.name, i) {
            return Err(invalid(
                format!("{path}.name"),
                format!(
                    "project name `{}` already used by {}",
                    p.name,
                    project_path(&projects, first)
                ),
            ));
        }
    }

    let field_mapping = opt.field_mapping;
    let identity_attribute = |identity| match (&field_mapping.user_id, identity) {
        (Some(name), _) => Some(name.clone()),
        (None, schema::ContactIdentityKind::Email) => {
            Some(schema::DEFAULT_USER_ID_ATTRIBUTE.to_string())
        }
        (None, _) => None,
    };
    let brevo = match file.connectors.brevo {
        Some(b) => {
            let at = "connectors.brevo";
            check_positive(b.batch_size, &format!("{at}.batch_size"))?;
            check_positive(b.max_pending, &format!("{at}.max_pending"))?;
            if b.rate_limit.per_second == 0 {
                return Err(invalid(
                    format!("{at}.rate_limit.per_second"),
                    "must be at least 1",
                ));
            }
            if b.rate_limit.per_hour == 0 {
                return Err(invalid(
                    format!("{at}.rate_limit.per_hour"),
                    "must be at least 1",
                ));
            }
            for (i, &id) in b.list_ids.iter().enumerate() {
                if id == 0 || i64::try_from(id).is_err() {
                    return Err(invalid(
                        format!("{at}.list_ids[{i}]"),
                        "not a Brevo list id (1 or more)",
                    ));
                }
            }
            if let Some(key) = &b.api_key {
                if key.expose().trim().is_empty() {
                    return Err(invalid(format!("{at}.api_key"), "is empty"));
                }
            }
            BrevoSettings {
                dry_run: b.dry_run || b.api_key.is_none(),
                api_key: b.api_key,
                base_url: base_url(&b.base_url, &format!("{at}.base_url"))?,
                rate_limit: b.rate_limit,
                batch_size: b.batch_size,
                max_pending: b.max_pending,
                list_ids: b.list_ids,
                winners_folder_id: b.winners_folder_id,
                import_list_id: b.import_list_id,
                import_threshold: b.import_threshold,
                contact_identity: b.contact_identity,
                identity_attribute: identity_attribute(b.contact_identity),
                mapping,
                field_mapping: field_mapping.clone(),
            }
        }
        None => BrevoSettings {
            api_key: None,
            base_url: base_url(schema::DEFAULT_BREVO_BASE_URL, "connectors.brevo.base_url")?,
            dry_run: true,
            rate_limit: Default::default(),
            batch_size: schema::DEFAULT_BREVO_BATCH_SIZE,
            max_pending: schema::DEFAULT_BREVO_MAX_PENDING,
            list_ids: Vec::new(),
            winners_folder_id: None,
            import_list_id: None,
            import_threshold: crate::brevo::DEFAULT_IMPORT_THRESHOLD,
            contact_identity: Default::default(),
            identity_attribute: identity_attribute(Default::default()),
            mapping,
            field_mapping: field_mapping.clone(),
        },
    };

    Ok(Config {
        server,
        projects,
        brevo,
        urls,
        datafile: opt.datafile,
        events: opt.events,
        cmab: opt.cmab,
        odp: opt.odp,
        logging: Logging {
            level: opt.log_level,
            debug: opt.debug,
            log_decisions: opt.log_decisions,
            log_events: opt.log_events,
        },
        state_dir: file
            .state_dir
            .unwrap_or_else(|| PathBuf::from(schema::DEFAULT_STATE_DIR)),
        store: file.store.as_ref().map(resolve_store).transpose()?,
        optimizely_enabled: opt.enabled,
        rest_rate_limit: opt.rate_limit,
        notes,
    })
}

/// `store:`: the settings checked (the URL parsed, never printed), nothing connected.
fn resolve_store(section: &schema::StoreSection) -> Result<crate::fleet::FleetConfig, ConfigError> {
    let mut fleet = crate::fleet::FleetConfig::new(section.url.expose())
        .key_prefix(section.key_prefix.clone())
        .lease_timeout(std::time::Duration::from_secs(section.lease_timeout_secs));
    if let Some(ca) = &section.tls_ca_file {
        fleet = fleet.tls_ca_file(ca);
    }
    fleet.validate().map_err(|e| match e {
        crate::fleet::FleetError::InvalidUrl { reason } => invalid("store.url", reason),
        crate::fleet::FleetError::InvalidSetting { setting, reason } => {
            invalid(format!("store.{setting}"), reason)
        }
        crate::fleet::FleetError::TlsCaFile { path, reason } => {
            invalid("store.tls_ca_file", format!("{}: {reason}", path.display()))
        }
        other => invalid("store", other.to_string()),
    })?;
    Ok(fleet)
}

/// `mapping:` values: a switch, or a Brevo attribute name that switches the attribute on and
/// names it (the same name `field_mapping` sets). When both name it differently, `mapping` wins
/// and a note (printed by `check-config`) says so.
fn resolve_mapping(
    file: &schema::MappingFile,
    fm: &mut FieldMappingSection,
    notes: &mut Vec<String>,
) -> Result<schema::MappingSection, ConfigError> {
    let defaults = FieldMappingSection::default();
    let pairs: [(&str, &schema::MappingValue, &str, &mut String, &str); 3] = [
        (
            "experiment_variation",
            &file.experiment_variation,
            "experiment_variation",
            &mut fm.experiment_variation,
            &defaults.experiment_variation,
        ),
        (
            "feature_flags",
            &file.feature_flags,
            "enabled_features",
            &mut fm.enabled_features,
            &defaults.enabled_features,
        ),
        (
            "audience_segments",
            &file.audience_segments,
            "audience_name",
            &mut fm.audience_name,
            &defaults.audience_name,
        ),
    ];
    for (key, value, fm_key, fm_name, default) in pairs {
        let Some(name) = value.name() else { continue };
        if !is_attribute_name(name) {
            return Err(invalid(
                format!("{OPT}.mapping.{key}"),
                format!(
                    "`{name}` is not a Brevo attribute name (A-Z, 0-9, _; starting with a letter; \
                     at most 64), nor true/false"
                ),
            ));
        }
        if fm_name.as_str() != name && fm_name.as_str() != default {
            notes.push(format!(
                "{OPT}.field_mapping.{fm_key}: `{fm_name}` is not used: \
                 {OPT}.mapping.{key} names that attribute `{name}`"
            ));
        }
        *fm_name = name.to_string();
    }
    Ok(schema::MappingSection {
        experiment_variation: file.experiment_variation.is_on(),
        feature_flags: file.feature_flags.is_on(),
        audience_segments: file.audience_segments.is_on(),
    })
}

/// Allowed-but-suspicious settings.
pub(crate) fn warnings(config: &Config) -> Vec<String> {
    let mut out = config.notes.clone();
    for (i, p) in config.projects.iter().enumerate() {
        let path = project_path(&config.projects, i);
        let wants_rest =
            p.sync.experiments || p.sync.audiences || p.sync.events || p.sync.feature_flags;
        if wants_rest && p.access_token.is_none() {
            out.push(format!(
                "{path}: no access_token: `flagbridge sync` will skip this project"
            ));
        }
        if wants_rest && p.project_id.is_none() {
            out.push(format!(
                "{path}.project_id: not set: `flagbridge sync` will skip this project"
            ));
        }
        if let DatafileSource::File(file) = &p.datafile {
            if !file.is_file() {
                out.push(format!(
                    "{path}.datafile_file: {} does not exist (yet)",
                    file.display()
                ));
            }
        }
        if p.webhook_secret.is_none() {
            out.push(format!(
                "{path}.webhook_secret: not set: datafile webhooks for this project are refused"
            ));
        }
    }
    if config.brevo.dry_run {
        out.push("connectors.brevo: dry run: nothing will be written to Brevo".into());
    }
    out
}

fn project_path(projects: &[ProjectSettings], i: usize) -> String {
    projects
        .get(i)
        .map(|p| p.config_path.clone())
        .unwrap_or_default()
}

fn resolve_sync(sync: &SyncSection, path: &str) -> Result<SyncSettings, ConfigError> {
    let schedule = match &sync.schedule {
        Some(s) => s.clone(),
        None => schema::DEFAULT_SCHEDULE
            .parse()
            .map_err(|e: String| invalid(format!("{path}.schedule"), e))?,
    };
    Ok(SyncSettings {
        experiments: sync.experiments,
        audiences: sync.audiences,
        events: sync.events,
        feature_flags: sync.feature_flags,
        schedule,
    })
}

fn check_field_mapping(fm: &FieldMappingSection, path: &str) -> Result<(), ConfigError> {
    if let Some(user_id) = &fm.user_id {
        if user_id.trim().is_empty() {
            return Err(invalid(
                format!("{path}.user_id"),
                "must name a user attribute (default `email`)",
            ));
        }
    }
    let fields = [
        ("experiment_key", &fm.experiment_key),
        ("variation_key", &fm.variation_key),
        ("feature_key", &fm.feature_key),
        ("enabled", &fm.enabled),
        ("audience_name", &fm.audience_name),
        ("decision_timestamp", &fm.decision_timestamp),
        ("enabled_features", &fm.enabled_features),
        ("experiment_variation", &fm.experiment_variation),
        ("sync_date", &fm.sync_date),
    ];
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for (field, name) in fields {
        if !is_attribute_name(name) {
            return Err(invalid(
                format!("{path}.{field}"),
                format!(
                    "`{name}` is not a Brevo attribute name (A-Z, 0-9, _; starting with a letter; at most 64)"
                ),
            ));
        }
        if let Some(other) = seen.insert(name.as_str(), field) {
            return Err(invalid(
                format!("{path}.{field}"),
                format!("attribute `{name}` is already used by `{other}`"),
            ));
        }
    }
    Ok(())
}

/// Brevo attribute names: upper-case ASCII letters, digits and `_`, starting with a letter, at
/// most 64 characters (the Brevo sync's own rule).
pub(crate) fn is_attribute_name(name: &str) -> bool {
    crate::brevo::validate_attribute_name(name).is_ok()
}

fn check_sdk_key(key: &str, path: &str) -> Result<(), ConfigError> {
    if key.trim().is_empty() {
        return Err(invalid(path, "must not be empty"));
    }
    if !key
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(invalid(path, "may only hold letters, digits, `_` and `-`"));
    }
    Ok(())
}

fn non_empty(secret: Option<Secret>) -> Option<Secret> {
    secret.filter(|s| !s.expose().trim().is_empty())
}

fn check_positive(n: usize, path: &str) -> Result<(), ConfigError> {
    if n == 0 {
        return Err(invalid(path, "must be at least 1"));
    }
    Ok(())
}

fn http_url(s: &str, path: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(s).map_err(|e| invalid(path, format!("`{s}` is not a URL: {e}")))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(invalid(path, format!("`{s}` is not an http(s) URL")));
    }
    Ok(url)
}

/// A base URL that relative paths are joined onto: always ends with `/`.
fn base_url(s: &str, path: &str) -> Result<Url, ConfigError> {
    let mut url = http_url(s, path)?;
    if !url.path().ends_with('/') {
        let p = format!("{}/", url.path());
        url.set_path(&p);
    }
    Ok(url)
}

/// A base URL kept as text without a trailing `/` (paths are appended to it).
fn origin_url(s: &str, path: &str) -> Result<String, ConfigError> {
    http_url(s, path)?;
    Ok(s.trim_end_matches('/').to_string())
}

fn datafile_source(
    urls: &Urls,
    _sdk_key: &str,
    authenticated: bool,
    file: Option<PathBuf>,
) -> DatafileSource {
    match file {
        Some(file) => DatafileSource::File(file),
        None if authenticated => DatafileSource::Authenticated {
            base_url: urls.auth_datafile.clone(),
        },
        None => DatafileSource::Cdn {
            base_url: urls.cdn.clone(),
        },
    }
}
