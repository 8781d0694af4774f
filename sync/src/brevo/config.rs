//! Configuration of the Brevo sync: defaults, attribute names, identity, limits.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use flagbridge_engine::{AttributeKey, UserContext};

use super::error::BrevoError;

/// Margin added to the sliding second of the request budget so requests delayed in flight
/// still land in Brevo's window as counted here.
pub(crate) const JITTER_MARGIN: Duration = Duration::from_millis(50);

/// Brevo's production API root (`/v3` included; paths are appended to it).
pub const DEFAULT_BASE_URL: &str = "https://api.brevo.com/v3";
/// The user attribute whose value identifies the Brevo contact.
pub const DEFAULT_USER_ID_ATTRIBUTE: &str = "email";
/// Contacts per `POST /contacts/batch` request. Brevo's maximum is UNCONFIRMED.
pub const DEFAULT_BATCH_SIZE: usize = 500;
/// How often pending contact changes and events are sent.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(5);
/// How often accepted changes are committed to the on-disk store.
pub const DEFAULT_COMMIT_INTERVAL: Duration = Duration::from_secs(1);
/// Records the decide path may queue before new ones are dropped (and counted).
pub const DEFAULT_QUEUE_CAPACITY: usize = 16_384;
/// Requests per second shared by every `/v3/contacts/*` call (Brevo "General" plan).
pub const DEFAULT_CONTACTS_PER_SECOND: u32 = 10;
/// Requests per hour shared by every `/v3/contacts/*` call (Brevo "General" plan).
pub const DEFAULT_CONTACTS_PER_HOUR: u32 = 36_000;
/// Requests per second for `/v3/events` (Brevo "General" plan).
pub const DEFAULT_EVENTS_PER_SECOND: u32 = 10;
/// Requests per hour for `/v3/events` (Brevo "General" plan).
pub const DEFAULT_EVENTS_PER_HOUR: u32 = 36_000;
/// Events per `POST /v3/events/batch` (Brevo's documented maximum).
pub const DEFAULT_EVENTS_BATCH_SIZE: usize = 200;
/// Body size limit of `POST /v3/events/batch` (Brevo's documented maximum).
pub const MAX_EVENTS_BATCH_BYTES: usize = 512 * 1024;
/// Unknown contacts in one failed batch from which a configured import list is used.
pub const DEFAULT_IMPORT_THRESHOLD: usize = 50;
/// Timeout of one HTTP request to Brevo.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// First retry delay after a 5xx or a timeout (doubled per attempt, with jitter).
pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_millis(500);
/// Longest retry delay.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Wait after a 429 that carries no usable `x-sib-ratelimit-reset` header.
pub const DEFAULT_RATE_LIMIT_WAIT: Duration = Duration::from_secs(1);
/// Attempts for one contact or event before it is set aside (5xx, 207 failures).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 8;
/// File the dry-run sink appends request lines to.
pub const DEFAULT_DRY_RUN_PATH: &str = "flagbridge-brevo-dry-run.jsonl";
/// Longest attribute name accepted (Brevo's own limit is UNCONFIRMED).
pub const MAX_ATTRIBUTE_NAME_LEN: usize = 64;

/// Brevo API key. `Debug` never shows it and there is no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        ApiKey(key.into())
    }
    /// The key, for the `api-key` header only.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// How a contact is identified in Brevo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ContactIdentity {
    /// The identity value is the contact's email (`email` in batch items, `email_id` in events).
    Email,
    /// The identity value is Brevo's `ext_id`. `/contacts/batch` has no `ext_id` identifier, so
    /// contacts are written one per request with `PUT /contacts/{id}?identifierType=ext_id`.
    ExtId,
}

/// Where the identity value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdentitySource {
    /// A user attribute of that name (string values only).
    Attribute(String),
    /// The Optimizely user id.
    UserId,
}

/// Encoding of date attributes on write. Brevo's accepted format is UNCONFIRMED.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DateFormat {
    /// `YYYY-MM-DD` (the format Brevo uses for date parameters elsewhere).
    Date,
    /// `YYYY-MM-DDT00:00:00Z`.
    DateTime,
}

/// Which of the optional attributes the sync writes (the connector's `mapping.*`). An attribute
/// switched off is neither created in Brevo nor written. Default: all on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct AttributeSwitches {
    /// `ENABLED_FEATURES` (`mapping.feature_flags`).
    pub enabled_features: bool,
    /// `EXPERIMENT_VARIATION` (`mapping.experiment_variation`).
    pub experiment_variation: bool,
    /// `OPT_SEGMENTS` (`mapping.audience_segments`).
    pub opt_segments: bool,
}

impl Default for AttributeSwitches {
    fn default() -> Self {
        AttributeSwitches {
            enabled_features: true,
            experiment_variation: true,
            opt_segments: true,
        }
    }
}

/// Names of the Brevo attributes the sync writes (each must be `[A-Z][A-Z0-9_]*`), and which
/// of the optional ones it writes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AttributeNames {
    /// Sorted, comma-separated keys of the flags enabled for the contact (text).
    pub enabled_features: String,
    /// Sorted `rule_key:variation_key` of every experiment the contact is in (text).
    pub experiment_variation: String,
    /// Rule key of the latest experiment decision (text).
    pub experiment_name: String,
    /// Variation key of the latest experiment decision (text).
    pub variation_name: String,
    /// Flag key of the latest experiment decision (text).
    pub feature_flag: String,
    /// Whether the flag of the latest experiment decision was enabled (boolean).
    pub feature_enabled: String,
    /// Date the latest experiment decision took its current value (date).
    pub experiment_date: String,
    /// Sorted, comma-separated names of the datafile audiences the contact matches (text).
    pub opt_segments: String,
    /// Date of the write (date).
    pub synced: String,
    /// Which optional attributes are written. Default: all.
    pub written: AttributeSwitches,
}

impl Default for AttributeNames {
    fn default() -> Self {
        AttributeNames {
            enabled_features: "ENABLED_FEATURES".into(),
            experiment_variation: "EXPERIMENT_VARIATION".into(),
            experiment_name: "EXPERIMENT_NAME".into(),
            variation_name: "VARIATION_NAME".into(),
            feature_flag: "FEATURE_FLAG".into(),
            feature_enabled: "FEATURE_ENABLED".into(),
            experiment_date: "EXPERIMENT_DATE".into(),
            opt_segments: "OPT_SEGMENTS".into(),
            synced: "FEATURE_FLAGS_SYNCED".into(),
            written: AttributeSwitches::default(),
        }
    }
}

/// Brevo attribute types the sync creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttributeType {
    /// `text`
    Text,
    /// `boolean`
    Boolean,
    /// `date`
    Date,
}

impl AttributeType {
    /// Brevo's name of the type.
    pub fn as_str(self) -> &'static str {
        match self {
            AttributeType::Text => "text",
            AttributeType::Boolean => "boolean",
            AttributeType::Date => "date",
        }
    }
}

impl AttributeNames {
    /// Every attribute with the type it must have in Brevo.
    pub fn with_types(&self) -> [(&str, AttributeType); 9] {
        [
            (&self.enabled_features, AttributeType::Text),
            (&self.experiment_variation, AttributeType::Text),
            (&self.experiment_name, AttributeType::Text),
            (&self.variation_name, AttributeType::Text),
            (&self.feature_flag, AttributeType::Text),
            (&self.feature_enabled, AttributeType::Boolean),
            (&self.experiment_date, AttributeType::Date),
            (&self.opt_segments, AttributeType::Text),
            (&self.synced, AttributeType::Date),
        ]
    }

    /// The attributes the sync writes (switched-off ones left out), with their types.
    pub fn written_with_types(&self) -> Vec<(&str, AttributeType)> {
        let w = self.written;
        self.with_types()
            .into_iter()
            .filter(|(name, _)| {
                let off = |attr: &String, on: bool| !on && *name == attr.as_str();
                !(off(&self.enabled_features, w.enabled_features)
                    || off(&self.experiment_variation, w.experiment_variation)
                    || off(&self.opt_segments, w.opt_segments))
            })
            .collect()
    }

    /// Checks every name against [`validate_attribute_name`] and that no two are equal.
    pub fn validate(&self) -> Result<(), BrevoError> {
        let all = self.with_types();
        for (i, (name, _)) in all.iter().enumerate() {
            validate_attribute_name(name)?;
            if all[..i].iter().any(|(other, _)| other == name) {
                return Err(BrevoError::InvalidAttributeName {
                    name: (*name).to_string(),
                    reason: "used for two different attributes",
                });
            }
        }
        Ok(())
    }
}

/// Refuses attribute names Brevo would not accept: the connector only writes names that
/// start with an upper-case ASCII letter, continue with `A-Z`, `0-9` or `_`, and have at most
/// [`MAX_ATTRIBUTE_NAME_LEN`] characters (Brevo's exact rules are UNCONFIRMED; these are the
/// documented upper-case convention).
pub fn validate_attribute_name(name: &str) -> Result<(), BrevoError> {
    let bad = |reason| {
        Err(BrevoError::InvalidAttributeName {
            name: name.to_string(),
            reason,
        })
    };
    let mut chars = name.chars();
    match chars.next() {
        None => return bad("empty"),
        Some(c) if !c.is_ascii_uppercase() => {
            return bad("must start with an upper-case letter A-Z")
        }
        Some(_) => {}
    }
    if !chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_') {
        return bad("only A-Z, 0-9 and _ are allowed");
    }
    if name.len() > MAX_ATTRIBUTE_NAME_LEN {
        return bad("longer than 64 characters");
    }
    Ok(())
}

/// Turns an Optimizely event key into a valid Brevo event name: characters outside
/// `[A-Za-z0-9_-]` become `_`, and the result is cut to 255 characters.
pub fn brevo_event_name(key: &str) -> String {
    let mut out: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(255)
        .collect();
    if out.is_empty() {
        out.push('_');
    }
    out
}

/// Checks an explicitly configured Brevo event name.
pub fn validate_event_name(name: &str) -> Result<(), BrevoError> {
    if name.is_empty()
        || name.len() > 255
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(BrevoError::InvalidEventName {
            name: name.to_string(),
        });
    }
    Ok(())
}

/// Request budget of one Brevo endpoint family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateBudget {
    /// Requests per second.
    pub per_second: u32,
    /// Requests per hour.
    pub per_hour: u32,
}

/// The validated configuration the worker runs with.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub api_key: Option<ApiKey>,
    pub base_url: String,
    pub identity: ContactIdentity,
    pub identity_source: IdentitySource,
    pub names: AttributeNames,
    pub date_format: DateFormat,
    pub event_names: HashMap<String, String>,
    pub batch_size: usize,
    pub events_batch_size: usize,
    pub use_events_batch: bool,
    pub flush_interval: Duration,
    pub commit_interval: Duration,
    pub queue_capacity: usize,
    pub contacts_budget: RateBudget,
    pub events_budget: RateBudget,
    pub import_list_id: Option<i64>,
    pub list_ids: Vec<i64>,
    pub import_threshold: usize,
    pub request_timeout: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub rate_limit_wait: Duration,
    pub max_attempts: u32,
    pub store_path: Option<PathBuf>,
    pub dry_run_path: PathBuf,
    /// The fleet's shared store (one budget for every instance), when configured.
    pub fleet: Option<crate::fleet::Fleet>,
}

/// Where contact identities come from, ready for lookups on the decide path.
pub(crate) enum Identity {
    /// A user attribute (its name hashed once).
    Attribute(AttributeKey),
    /// The user id.
    UserId,
}

impl Identity {
    pub(crate) fn new(source: &IdentitySource) -> Self {
        match source {
            IdentitySource::Attribute(name) => {
                Identity::Attribute(AttributeKey::new(name.as_str()))
            }
            IdentitySource::UserId => Identity::UserId,
        }
    }

    /// The contact identity of a user; `None` when missing, not a string, or empty.
    #[inline]
    /// Where [`contact_of`](Self::contact_of) finds the contact in `user`.
    pub(crate) fn contact_at(&self, user: &UserContext) -> Option<super::ring::ContactAt> {
        use super::ring::ContactAt;
        self.contact_of(user)?;
        match self {
            Identity::Attribute(key) => user
                .attributes()
                .position(|(name, _)| name == key.name())
                .and_then(ContactAt::attribute),
            Identity::UserId => Some(ContactAt::user_id()),
        }
    }

    pub(crate) fn contact_of<'u>(&self, user: &'u UserContext) -> Option<&'u str> {
        let contact = match self {
            Identity::Attribute(key) => user.attribute_by_key(key)?.as_str()?,
            Identity::UserId => user.user_id(),
        };
        (!contact.is_empty()).then_some(contact)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_names() {
        for (name, ok) in [
            ("ENABLED_FEATURES", true),
            ("A1_B", true),
            ("", false),
            ("enabled", false),
            ("_X", false),
            ("1X", false),
            ("X-Y", false),
            ("XÉ", false),
            (&"X".repeat(65), false),
        ] {
            assert_eq!(validate_attribute_name(name).is_ok(), ok, "{name}");
        }
        assert!(AttributeNames::default().validate().is_ok());
        let mut dup = AttributeNames::default();
        dup.synced = dup.experiment_date.clone();
        assert!(dup.validate().is_err());
    }

    #[test]
    fn event_names() {
        assert_eq!(brevo_event_name("purchase"), "purchase");
        assert_eq!(brevo_event_name("add to cart!"), "add_to_cart_");
        assert_eq!(brevo_event_name("é-x"), "_-x");
        assert_eq!(brevo_event_name(""), "_");
        assert_eq!(brevo_event_name(&"a".repeat(300)).len(), 255);
        assert!(validate_event_name("a-b_c").is_ok());
        assert!(validate_event_name("a b").is_err());
    }

    #[test]
    fn api_key_is_redacted() {
        let key = ApiKey::new("xkeysib-secret");
        assert_eq!(format!("{key:?}"), "ApiKey(<redacted>)");
        assert!(!format!("{:?}", Some(key)).contains("secret"));
    }

    #[test]
    fn identity_sources() {
        let u = UserContext::new("u1").with_attribute("email", "a@x.io");
        let by_attr = Identity::new(&IdentitySource::Attribute("email".into()));
        let by_id = Identity::new(&IdentitySource::UserId);
        assert_eq!(by_attr.contact_of(&u), Some("a@x.io"));
        assert_eq!(by_id.contact_of(&u), Some("u1"));
        let none = UserContext::new("u2").with_attribute("email", 5i64);
        assert_eq!(by_attr.contact_of(&none), None);
        assert_eq!(by_attr.contact_of(&UserContext::new("u3")), None);
        assert_eq!(
            by_attr.contact_of(&UserContext::new("u4").with_attribute("email", "")),
            None
        );
        assert_eq!(by_id.contact_of(&UserContext::new("")), None);
    }
}
