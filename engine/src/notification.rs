//! The decision notification payload (spec §4.11), owned so it can cross threads.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What the SDKs send to `DECISION` (type "flag") listeners, plus the user and the source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DecisionNotification {
    /// Flag key.
    pub flag_key: String,
    /// Whether the flag is enabled.
    pub enabled: bool,
    /// Variables (empty with `EXCLUDE_VARIABLES`).
    pub variables: Map<String, Value>,
    /// Variation key, null without a variation.
    pub variation_key: Option<String>,
    /// Rule key, null without a rule.
    pub rule_key: Option<String>,
    /// Reasons (empty without `INCLUDE_REASONS`).
    pub reasons: Vec<String>,
    /// Whether an impression was (to be) sent.
    pub decision_event_dispatched: bool,
    /// Rule or holdout id.
    pub experiment_id: Option<String>,
    /// Variation id.
    pub variation_id: Option<String>,
    /// The user id.
    pub user_id: String,
    /// The user attributes.
    pub attributes: Map<String, Value>,
    /// "feature-test", "rollout" or "holdout".
    pub source: String,
}
