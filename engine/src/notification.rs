//! The decision notification payload, owned so it can cross threads.

use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What the SDKs send to `DECISION` (type "flag") listeners, plus the user and the source.
#[derive(Debug, Clone, PartialEq, Deserialize)]
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
    #[serde(default, deserialize_with = "crate::events::opt_id")]
    pub variation_id: Option<String>,
    /// The datafile wrote the variation id as a JSON number: it is sent as one, as JavaScript
    /// does (not part of the payload; false when deserialized).
    #[serde(skip)]
    pub variation_id_is_number: bool,
    /// The user id.
    pub user_id: String,
    /// The user attributes.
    pub attributes: Map<String, Value>,
    /// "feature-test", "rollout" or "holdout".
    pub source: String,
}

impl Serialize for DecisionNotification {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut st = serializer.serialize_struct("DecisionNotification", 12)?;
        st.serialize_field("flagKey", &self.flag_key)?;
        st.serialize_field("enabled", &self.enabled)?;
        st.serialize_field("variables", &self.variables)?;
        st.serialize_field("variationKey", &self.variation_key)?;
        st.serialize_field("ruleKey", &self.rule_key)?;
        st.serialize_field("reasons", &self.reasons)?;
        st.serialize_field("decisionEventDispatched", &self.decision_event_dispatched)?;
        st.serialize_field("experimentId", &self.experiment_id)?;
        st.serialize_field(
            "variationId",
            &self
                .variation_id
                .as_deref()
                .map(|id| crate::events::IdOut::new(id, self.variation_id_is_number)),
        )?;
        st.serialize_field("userId", &self.user_id)?;
        st.serialize_field("attributes", &self.attributes)?;
        st.serialize_field("source", &self.source)?;
        st.end()
    }
}
