//! `FlagDecision`: an owned copy of one engine decision, returned by the `Client`.

use flagbridge_engine::Decision;
use serde_json::{Map, Value};

/// One flag decision (`OptimizelyDecision`), owned so that it outlives the config it came from.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct FlagDecision {
    /// The flag key.
    pub flag_key: String,
    /// Whether the flag is enabled for the user.
    pub enabled: bool,
    /// The variation key, if a variation was chosen.
    pub variation_key: Option<String>,
    /// The key of the deciding rule (experiment or delivery rule, or holdout).
    pub rule_key: Option<String>,
    /// `feature-test`, `rollout` or `holdout`.
    pub rule_type: &'static str,
    /// Every variable of the flag with its typed value (empty with `EXCLUDE_VARIABLES`).
    pub variables: Map<String, Value>,
    /// Reasons (with `INCLUDE_REASONS`; errors always).
    pub reasons: Vec<String>,
}

impl FlagDecision {
    pub(crate) fn from_engine(decision: &Decision<'_>) -> Self {
        FlagDecision {
            flag_key: decision.flag_key().to_owned(),
            enabled: decision.enabled(),
            variation_key: decision.variation_key().map(str::to_owned),
            rule_key: decision.rule_key().map(str::to_owned),
            rule_type: decision.source().as_str(),
            variables: decision
                .variables()
                .map(|(k, v)| (k.to_owned(), v.clone()))
                .collect(),
            reasons: decision.reasons().to_vec(),
        }
    }

    /// A decision for a flag the call did not decide (not reached in practice).
    pub(crate) fn missing(flag_key: &str) -> Self {
        FlagDecision {
            flag_key: flag_key.to_owned(),
            enabled: false,
            variation_key: None,
            rule_key: None,
            rule_type: "rollout",
            variables: Map::new(),
            reasons: Vec::new(),
        }
    }

    /// One variable's value.
    pub fn variable(&self, key: &str) -> Option<&Value> {
        self.variables.get(key)
    }
}
