//! The connector's config file: YAML with `${ENV}` interpolation, strict keys, several projects.
//!
//! [`Config::load`] reads, interpolates, type-checks and validates a file; every error names the
//! path of the offending key (`connectors.optimizely.sync.schedule: invalid cron expression ...`).
//! The shape is documented in `docs/config.md`; `flagbridge.example.yaml` is a complete example.

pub mod agent_api;
mod env;
mod mapping;
pub mod remote_section;
pub mod schema;
mod secret;
mod store;
mod validate;

use std::path::{Path, PathBuf};

use url::Url;

pub use remote_section::{CmabSection, OdpSection};
pub use schema::{
    ContactIdentityKind, CronSchedule, DatafileSection, EventsSection, FieldMappingSection,
    FileConfig, LogLevel, MappingFile, MappingSection, MappingValue, RateLimitSection,
    RestRateLimitSection, ServerSection, StoreSection,
};
pub use secret::Secret;

/// Why a config could not be loaded. `Display` starts with the file or key path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read config: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not YAML.
    #[error("{location}: invalid YAML: {message}")]
    Yaml {
        /// `FILE:L:C (line L, column C)` when loaded from a file, else `line L column C`.
        location: String,
        /// The parser's message.
        message: String,
    },
    /// A `${VAR}` could not be resolved.
    #[error("{path}: {message}")]
    Interpolation {
        /// Key path (`connectors.brevo.api_key`).
        path: String,
        /// What is wrong.
        message: String,
    },
    /// An unknown key, a wrong type or a bad value.
    #[error("{path}: {message}")]
    Invalid {
        /// Key path (`connectors.optimizely.sync.schedule`).
        path: String,
        /// What is wrong.
        message: String,
    },
}

impl ConfigError {
    /// The key path the error is about (empty for file-level errors).
    pub fn path(&self) -> &str {
        match self {
            ConfigError::Interpolation { path, .. } | ConfigError::Invalid { path, .. } => path,
            ConfigError::Read { .. } | ConfigError::Yaml { .. } => "",
        }
    }
}

/// The resolved configuration used by the commands.
#[derive(Debug, Clone)]
pub struct Config {
    /// `server:`.
    pub server: ServerSection,
    /// Every project, the section's default project first.
    pub projects: Vec<ProjectSettings>,
    /// Brevo side.
    pub brevo: BrevoSettings,
    /// Optimizely endpoints.
    pub urls: Urls,
    /// Datafile polling.
    pub datafile: DatafileSection,
    /// Event batching.
    pub events: EventsSection,
    /// CMAB predictions (`connectors.optimizely.cmab`).
    pub cmab: CmabSection,
    /// ODP segments and events (`connectors.optimizely.odp`).
    pub odp: OdpSection,
    /// Logging switches.
    pub logging: Logging,
    /// Directory for sync state, results cache and checkpoints.
    pub state_dir: PathBuf,
    /// `store:`: the fleet's shared store (Redis), validated; `None`: local SQLite only.
    pub store: Option<crate::fleet::FleetConfig>,
    /// `connectors.optimizely.enabled`.
    pub optimizely_enabled: bool,
    /// REST sync pacing per personal access token (`connectors.optimizely.rate_limit`).
    pub rest_rate_limit: RestRateLimitSection,
    /// Things resolved with a choice the user may not expect (part of [`Config::warnings`]).
    notes: Vec<String>,
}

/// One Optimizely project, with inherited settings filled in.
#[derive(Debug, Clone)]
pub struct ProjectSettings {
    /// Where the project is defined (`connectors.optimizely.projects[1]`), for messages.
    pub config_path: String,
    /// Name for logs, metrics and list names (`default` for the section's own project).
    pub name: String,
    /// SDK key.
    pub sdk_key: String,
    /// Project id (REST sync).
    pub project_id: Option<String>,
    /// REST personal access token.
    pub access_token: Option<Secret>,
    /// Authenticated-datafile token.
    pub datafile_access_token: Option<Secret>,
    /// Webhook HMAC secret.
    pub webhook_secret: Option<Secret>,
    /// Where the datafile comes from.
    pub datafile: DatafileSource,
    /// REST sync switches.
    pub sync: SyncSettings,
}

/// Where a project's datafile comes from.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum DatafileSource {
    /// Polled from `{base_url}/datafiles/{sdk_key}.json`.
    Cdn {
        /// Base URL (`connectors.optimizely.urls.cdn`).
        base_url: String,
    },
    /// Polled from `{base_url}/datafiles/auth/{sdk_key}.json` with the datafile access token.
    Authenticated {
        /// Base URL (`connectors.optimizely.urls.auth_datafile`).
        base_url: String,
    },
    /// Read once from a local file.
    File(PathBuf),
    /// Compiled into the binary (the embedded default).
    Embedded(&'static str),
}

/// Resolved `sync:` switches.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// Read experiments and results.
    pub experiments: bool,
    /// Read audiences.
    pub audiences: bool,
    /// Read events.
    pub events: bool,
    /// Read flags.
    pub feature_flags: bool,
    /// When `flagbridge sync` runs.
    pub schedule: CronSchedule,
}

/// Resolved `connectors.brevo`.
#[derive(Debug, Clone)]
pub struct BrevoSettings {
    /// API key; None means dry run.
    pub api_key: Option<Secret>,
    /// API base URL (ends with `/`).
    pub base_url: Url,
    /// True when nothing is written to Brevo (no section, no key, or `dry_run: true`).
    pub dry_run: bool,
    /// Request budget.
    pub rate_limit: RateLimitSection,
    /// Contacts per batch call.
    pub batch_size: usize,
    /// Updates held while Brevo is slow.
    pub max_pending: usize,
    /// Lists every synced contact joins.
    pub list_ids: Vec<u64>,
    /// Folder for winners' lists.
    pub winners_folder_id: Option<u64>,
    /// List unknown contacts are imported into (None: the first of `list_ids`).
    pub import_list_id: Option<u64>,
    /// Unknown contacts in one batch from which they are imported in bulk.
    pub import_threshold: usize,
    /// How contacts are identified.
    pub contact_identity: ContactIdentityKind,
    /// User attribute holding the identity (`field_mapping.user_id`; None = the Optimizely
    /// user id, only with `ext_id` identity).
    pub identity_attribute: Option<String>,
    /// Which optional attributes are written (`connectors.optimizely.mapping`).
    pub mapping: MappingSection,
    /// Brevo attribute names (`connectors.optimizely.field_mapping`).
    pub field_mapping: FieldMappingSection,
}

/// Resolved Optimizely endpoints.
#[derive(Debug, Clone)]
pub struct Urls {
    /// Public datafile base URL.
    pub cdn: String,
    /// Authenticated datafile base URL.
    pub auth_datafile: String,
    /// Event endpoint (US).
    pub events: Url,
    /// Event endpoint (EU).
    pub events_eu: Url,
    /// REST v2 base (ends with `/`).
    pub rest: Url,
    /// Flags API base (ends with `/`).
    pub flags: Url,
}

/// Logging switches from `connectors.optimizely`.
#[derive(Debug, Clone, Copy)]
pub struct Logging {
    /// Level.
    pub level: LogLevel,
    /// `debug: true` (forces debug level).
    pub debug: bool,
    /// Log each decision.
    pub log_decisions: bool,
    /// Log each event batch.
    pub log_events: bool,
}

impl Config {
    /// The projects' names, comma-separated, for messages.
    pub fn project_names(&self) -> String {
        self.projects
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Reads and validates a config file, interpolating `${VAR}` from the process environment.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_yaml(&text, &|name| std::env::var(name).ok()).map_err(|e| match e {
            ConfigError::Yaml { location, message } => ConfigError::Yaml {
                location: format!("{}: {location}", path.display()),
                message,
            },
            other => other,
        })
    }

    /// Parses and validates config text; `lookup` resolves `${VAR}`.
    pub fn from_yaml(
        text: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let file = FileConfig::from_yaml(text, lookup)?;
        validate::resolve(file)
    }

    /// The config used by `flagbridge serve` without a file: one project serving the bundled
    /// example datafile on 127.0.0.1:8080, Brevo dry run, no events sent.
    pub fn embedded_default(datafile: &'static str, sdk_key: &str) -> Result<Config, ConfigError> {
        let text = format!(
            "connectors:\n  optimizely:\n    sdk_key: {sdk_key:?}\n    events:\n      disabled: true\n"
        );
        let mut config = Config::from_yaml(&text, &|_| None)?;
        for project in &mut config.projects {
            project.name = "example".into();
            project.datafile = DatafileSource::Embedded(datafile);
        }
        Ok(config)
    }

    /// The project with this SDK key.
    pub fn project_by_sdk_key(&self, sdk_key: &str) -> Option<&ProjectSettings> {
        self.projects.iter().find(|p| p.sdk_key == sdk_key)
    }

    /// Things that are allowed but probably not meant (printed by `check-config`).
    pub fn warnings(&self) -> Vec<String> {
        validate::warnings(self)
    }
}

impl FileConfig {
    /// Parses YAML text into the file schema (interpolating `${VAR}` with `lookup`).
    pub fn from_yaml(
        text: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<FileConfig, ConfigError> {
        let mut value: yaml_serde::Value =
            yaml_serde::from_str(text).map_err(|e| ConfigError::Yaml {
                location: e
                    .location()
                    .map(|l| format!("line {} column {}", l.line(), l.column()))
                    .unwrap_or_else(|| "config".into()),
                message: e.to_string(),
            })?;
        env::interpolate(&mut value, "", lookup)?;
        serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let message = e.inner().to_string();
            ConfigError::Invalid {
                path: if path == "." { String::new() } else { path },
                message,
            }
        })
    }
}

#[cfg(test)]
mod tests;
