//! `mapping:` and `field_mapping:` of `connectors.optimizely`: which optional Brevo attributes
//! are written and under which names (one set per Brevo account). Re-exported by
//! [`super::schema`].

use serde::{Deserialize, Deserializer};

/// `mapping:` as written — which of the optional Brevo attributes are written, and optionally
/// under which name. One set per Brevo account: set in `connectors.optimizely`, not per project.
///
/// Each value is `true`/`false`, or a Brevo attribute name (which switches it on and names it:
/// `experiment_variation: EXPERIMENT_VARIATION`). Resolved into [`MappingSection`] plus the
/// names in [`FieldMappingSection`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingFile {
    /// Every `rule:variation` of the contact (and the winners' lists of `sync`); default true.
    /// A name here is the same as `field_mapping.experiment_variation`.
    #[serde(default)]
    pub experiment_variation: MappingValue,
    /// The enabled flags; default true. A name here is the same as
    /// `field_mapping.enabled_features`.
    #[serde(default)]
    pub feature_flags: MappingValue,
    /// The datafile audiences the user matches; default true. A name here is the same as
    /// `field_mapping.audience_name`.
    #[serde(default)]
    pub audience_segments: MappingValue,
}

impl Default for MappingFile {
    fn default() -> Self {
        MappingFile {
            experiment_variation: MappingValue::On(true),
            feature_flags: MappingValue::On(true),
            audience_segments: MappingValue::On(true),
        }
    }
}

/// One `mapping:` value: a switch, or the Brevo attribute name (switched on).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MappingValue {
    /// `true` / `false`.
    On(bool),
    /// A Brevo attribute name: written, under this name.
    Name(String),
}

impl Default for MappingValue {
    fn default() -> Self {
        MappingValue::On(true)
    }
}

impl MappingValue {
    /// Whether the attribute is written.
    pub fn is_on(&self) -> bool {
        match self {
            MappingValue::On(on) => *on,
            MappingValue::Name(_) => true,
        }
    }

    /// The attribute name given here, if any.
    pub fn name(&self) -> Option<&str> {
        match self {
            MappingValue::On(_) => None,
            MappingValue::Name(name) => Some(name),
        }
    }
}

impl<'de> Deserialize<'de> for MappingValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = MappingValue;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("true, false or a Brevo attribute name")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(MappingValue::On(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(MappingValue::Name(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// Resolved `mapping:` — which of the optional Brevo attributes are written (their names are
/// in [`FieldMappingSection`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MappingSection {
    /// `EXPERIMENT_VARIATION` (and the winners' lists of `sync`); default true.
    pub experiment_variation: bool,
    /// `ENABLED_FEATURES`; default true.
    pub feature_flags: bool,
    /// `OPT_SEGMENTS` (the datafile audiences the user matches); default true.
    pub audience_segments: bool,
}

impl Default for MappingSection {
    fn default() -> Self {
        MappingSection {
            experiment_variation: true,
            feature_flags: true,
            audience_segments: true,
        }
    }
}

/// Default user attribute whose value is the contact's email (`field_mapping.user_id`).
pub const DEFAULT_USER_ID_ATTRIBUTE: &str = "email";

/// `field_mapping:` — the user attribute that identifies the contact, and the Brevo attribute
/// names (upper case, `[A-Z][A-Z0-9_]*`, distinct). One set per Brevo account.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct FieldMappingSection {
    /// User attribute holding the contact identity: the email (default
    /// [`DEFAULT_USER_ID_ATTRIBUTE`]) or, with `contact_identity: ext_id`, the ext_id (default:
    /// the Optimizely user id). Users without it are skipped and counted.
    pub user_id: Option<String>,
    /// Rule key of the latest experiment decision; default `EXPERIMENT_NAME`.
    pub experiment_key: String,
    /// Its variation key; default `VARIATION_NAME`.
    pub variation_key: String,
    /// Its flag key; default `FEATURE_FLAG`.
    pub feature_key: String,
    /// Whether its flag was enabled; default `FEATURE_ENABLED`.
    pub enabled: String,
    /// Matching datafile audiences; default `OPT_SEGMENTS`.
    pub audience_name: String,
    /// Day of the latest experiment decision; default `EXPERIMENT_DATE`.
    pub decision_timestamp: String,
    /// Enabled flags; default `ENABLED_FEATURES`.
    pub enabled_features: String,
    /// Every `rule:variation` the contact is in; default `EXPERIMENT_VARIATION`.
    pub experiment_variation: String,
    /// Day of the write; default `FEATURE_FLAGS_SYNCED`.
    pub sync_date: String,
}

impl Default for FieldMappingSection {
    fn default() -> Self {
        FieldMappingSection {
            user_id: None,
            experiment_key: "EXPERIMENT_NAME".into(),
            variation_key: "VARIATION_NAME".into(),
            feature_key: "FEATURE_FLAG".into(),
            enabled: "FEATURE_ENABLED".into(),
            audience_name: "OPT_SEGMENTS".into(),
            decision_timestamp: "EXPERIMENT_DATE".into(),
            enabled_features: "ENABLED_FEATURES".into(),
            experiment_variation: "EXPERIMENT_VARIATION".into(),
            sync_date: "FEATURE_FLAGS_SYNCED".into(),
        }
    }
}
