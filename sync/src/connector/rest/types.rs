//! The parts of Optimizely REST payloads the connector reads. Unknown fields are ignored;
//! ids that are numbers in one place and strings in another are normalised to strings.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

/// A project the token can read (`GET /v2/projects`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Project {
    /// Id (number in the API, kept as a string).
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// active | archived.
    #[serde(default)]
    pub status: Option<String>,
}

/// An experiment (`GET /v2/experiments?project_id=`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Experiment {
    /// Id (number in the API, kept as a string).
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    /// Key (the rule key for Feature Experimentation).
    #[serde(default)]
    pub key: Option<String>,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// running | paused | archived | campaign_paused | concluded | not_started.
    #[serde(default)]
    pub status: String,
    /// The flag this rule belongs to, when any.
    #[serde(default)]
    pub feature_key: Option<String>,
    /// Variations.
    #[serde(default)]
    pub variations: Vec<ExperimentVariation>,
}

impl Experiment {
    /// Whether results are worth reading (running or concluded).
    pub fn has_results(&self) -> bool {
        matches!(self.status.as_str(), "running" | "concluded")
    }

    /// The key of a variation id, when known.
    pub fn variation_key(&self, variation_id: &str) -> Option<&str> {
        self.variations
            .iter()
            .find(|v| v.variation_id == variation_id)
            .and_then(|v| v.key.as_deref().or(v.name.as_deref()))
    }
}

/// One variation of an [`Experiment`].
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct ExperimentVariation {
    /// Id (integer in the API).
    #[serde(deserialize_with = "id_string")]
    pub variation_id: String,
    /// Key.
    #[serde(default)]
    pub key: Option<String>,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
}

/// An audience (`GET /v2/audiences?project_id=`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Audience {
    /// Id.
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Archived.
    #[serde(default)]
    pub archived: bool,
}

/// An event (`GET /v2/events?project_id=`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Event {
    /// Id.
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    /// Key.
    #[serde(default)]
    pub key: Option<String>,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
}

/// A flag (Flags API `GET /projects/{id}/flags`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Flag {
    /// Key.
    pub key: String,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Archived.
    #[serde(default)]
    pub archived: bool,
}

/// One page of the Flags API.
#[derive(Debug, Deserialize)]
pub(crate) struct FlagsPage {
    #[serde(default)]
    pub items: Vec<Flag>,
    /// Array whose first element is the next page.
    #[serde(default)]
    pub next_url: Option<Vec<String>>,
}

/// `GET /v2/experiments/{id}/results` (200 body).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct ExperimentResults {
    /// Experiment id.
    #[serde(deserialize_with = "id_string")]
    pub experiment_id: String,
    /// Served from an out-of-date cache.
    #[serde(default)]
    pub is_stale: bool,
    /// Metrics in the order attached to the experiment; the first is the primary.
    #[serde(default)]
    pub metrics: Vec<MetricResult>,
}

/// One metric's results.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct MetricResult {
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Per variation id.
    #[serde(default)]
    pub results: BTreeMap<String, VariationResult>,
}

/// One variation's numbers for one metric.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct VariationResult {
    /// Variation id.
    #[serde(default, deserialize_with = "opt_id_string")]
    pub variation_id: Option<String>,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// The baseline.
    #[serde(default)]
    pub is_baseline: bool,
    /// Lift against the baseline.
    #[serde(default)]
    pub lift: Option<Datapoint>,
    /// Legacy payloads: improvement flag at variation level (UNCONFIRMED shape).
    #[serde(default)]
    pub is_improvement: Option<bool>,
    /// Legacy payloads: significance at variation level (UNCONFIRMED shape).
    #[serde(default)]
    pub significance: Option<f64>,
}

/// A statistic with its significance.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Datapoint {
    /// Value.
    #[serde(default)]
    pub value: Option<f64>,
    /// Significance (0..1).
    #[serde(default)]
    pub significance: Option<f64>,
    /// Significant at the experiment's threshold.
    #[serde(default)]
    pub is_significant: Option<bool>,
    /// equal | better | worse.
    #[serde(default)]
    pub lift_status: Option<String>,
    /// Legacy payloads (UNCONFIRMED).
    #[serde(default)]
    pub is_improvement: Option<bool>,
}

fn id_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    opt_id_string(d)?.ok_or_else(|| serde::de::Error::custom("missing id"))
}

fn opt_id_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Null => None,
        other => {
            return Err(serde::de::Error::custom(format!(
                "expected an id (number or string), got {other}"
            )))
        }
    })
}
