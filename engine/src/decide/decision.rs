//! The result of deciding one flag. Borrows the config; owns nothing on the fast path.

use std::borrow::Cow;
use std::fmt;

use serde_json::Value;

use super::options::{DecideOption, DecideOptions};
use crate::config::{Experiment, Flag, ProjectConfig, Variation};
use crate::events::{self, ClientInfo, EventBatch};
use crate::notification::DecisionNotification;
use crate::user::UserContext;

/// Where a decision came from (also the impression's `rule_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecisionSource {
    /// An experiment rule, or a forced decision at flag level or on an experiment rule.
    FeatureTest,
    /// A delivery rule, or no rule at all.
    Rollout,
    /// A global or local holdout.
    Holdout,
    /// The legacy experiment API (`activate` of one experiment, no flag): its impression
    /// says `rule_type: "experiment"` and `enabled: true`, as the SDKs' `activate` sends.
    Experiment,
}

impl DecisionSource {
    /// "feature-test", "rollout", "holdout" or "experiment".
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionSource::FeatureTest => "feature-test",
            DecisionSource::Rollout => "rollout",
            DecisionSource::Holdout => "holdout",
            DecisionSource::Experiment => "experiment",
        }
    }
}

impl fmt::Display for DecisionSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Decision reasons, collected only when asked for. `ON` is a type parameter, so without
/// `INCLUDE_REASONS` every `add` compiles to nothing (no formatting, no test per reason).
#[derive(Debug, Default)]
pub(crate) struct Reasons<const ON: bool> {
    list: Vec<String>,
}

impl<const ON: bool> Reasons<ON> {
    pub(crate) fn new() -> Self {
        Reasons { list: Vec::new() }
    }

    #[inline(always)]
    pub(crate) fn add(&mut self, reason: impl FnOnce() -> String) {
        if ON {
            self.list.push(reason());
        }
    }

    /// JavaScript pushes a flag's reasons onto themselves once when a global holdout with
    /// `excludeTargetedDeliveries` applies; kept for parity.
    pub(crate) fn duplicate(&mut self) {
        if ON {
            let copy = self.list.clone();
            self.list.extend(copy);
        }
    }

    #[inline(always)]
    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    pub(crate) fn truncate(&mut self, len: usize) {
        self.list.truncate(len);
    }

    pub(crate) fn into_vec(self) -> Vec<String> {
        self.list
    }
}

/// What the flow found for one flag.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outcome<'a> {
    pub variation: Option<&'a Variation>,
    pub rule: Option<&'a Experiment>,
    pub source: DecisionSource,
    /// A global holdout with `excludeTargetedDeliveries` the user is in: its impression is sent too.
    pub extra_holdout: Option<(&'a Experiment, &'a Variation)>,
}

/// The decision for one flag and one user.
#[derive(Debug, Clone)]
pub struct Decision<'a> {
    pub(crate) config: &'a ProjectConfig,
    pub(crate) flag_key: Cow<'a, str>,
    pub(crate) flag: Option<&'a Flag>,
    pub(crate) outcome: Outcome<'a>,
    pub(crate) reasons: Vec<String>,
    pub(crate) options: DecideOptions,
    pub(crate) omitted: bool,
    pub(crate) error: bool,
    /// The uuid of the CMAB prediction that chose the variation (async decisions only).
    pub(crate) cmab_uuid: Option<std::sync::Arc<str>>,
}

impl<'a> Decision<'a> {
    pub(crate) fn error(config: &'a ProjectConfig, flag_key: &str, reason: String) -> Self {
        Decision::failed(config, Cow::Owned(flag_key.to_string()), vec![reason])
    }

    /// An error decision (no variation, disabled, no impression) with its reasons.
    pub(crate) fn failed(
        config: &'a ProjectConfig,
        flag_key: Cow<'a, str>,
        reasons: Vec<String>,
    ) -> Self {
        Decision {
            config,
            flag_key,
            flag: None,
            outcome: Outcome {
                variation: None,
                rule: None,
                source: DecisionSource::Rollout,
                extra_holdout: None,
            },
            reasons,
            options: DecideOptions::NONE,
            omitted: false,
            error: true,
            cmab_uuid: None,
        }
    }

    /// The flag key.
    pub fn flag_key(&self) -> &str {
        &self.flag_key
    }

    /// Position of the flag in its config (datafile order), for [`ProjectConfig::flag_key_at`];
    /// `None` when the key names no flag. Lets a caller keep a decision's flag as a number.
    #[inline]
    pub fn flag_index(&self) -> Option<u32> {
        self.flag.map(|f| f.index)
    }

    /// Whether the flag is on for the user (the variation's `featureEnabled`, false without one).
    pub fn enabled(&self) -> bool {
        self.outcome.variation.is_some_and(|v| v.feature_enabled)
    }

    /// The variation key, `None` without a variation.
    pub fn variation_key(&self) -> Option<&'a str> {
        self.outcome.variation.map(|v| v.key.as_str())
    }

    /// The variation id, `None` without a variation.
    pub fn variation_id(&self) -> Option<&'a str> {
        self.outcome.variation.map(|v| v.id.as_str())
    }

    /// The key of the deciding rule or holdout; `None` for a flag-level forced decision or no rule.
    pub fn rule_key(&self) -> Option<&'a str> {
        self.outcome.rule.map(|e| e.key.as_str())
    }

    /// The id of the deciding rule or holdout.
    pub fn experiment_id(&self) -> Option<&'a str> {
        self.outcome.rule.map(|e| e.id.as_str())
    }

    /// The config the decision was made from.
    #[inline]
    pub fn config(&self) -> &'a ProjectConfig {
        self.config
    }

    /// Where the deciding experiment or delivery rule is in [`config`](Self::config) (its key
    /// is [`ProjectConfig::rule_key_at`]). `None` without a rule, and for a holdout.
    #[inline]
    pub fn rule_index(&self) -> Option<u32> {
        let index = self.outcome.rule?.index;
        (index != crate::config::NOT_A_RULE).then_some(index)
    }

    /// Where the variation is in [`config`](Self::config) (its key is
    /// [`ProjectConfig::variation_key_at`]). `None` without a variation.
    #[inline]
    pub fn variation_index(&self) -> Option<u32> {
        self.outcome.variation.map(|v| v.index)
    }

    /// Where the decision came from.
    pub fn source(&self) -> DecisionSource {
        self.outcome.source
    }

    /// Reasons: empty without `INCLUDE_REASONS`, except for errors (unknown flag), which always carry theirs.
    pub fn reasons(&self) -> &[String] {
        &self.reasons
    }

    /// `(variable key, typed value)` in the flag's variable order; empty with `EXCLUDE_VARIABLES`.
    ///
    /// The variation's value when the flag is enabled and the variation sets the variable, else
    /// the default. Values that do not cast to the variable's type are `null`, as in JavaScript.
    pub fn variables(&self) -> impl Iterator<Item = (&'a str, &'a Value)> {
        let flag = if self.options.contains(DecideOption::ExcludeVariables) {
            None
        } else {
            self.flag
        };
        let variation = self.outcome.variation.filter(|v| v.feature_enabled);
        let config: &'a ProjectConfig = self.config;
        flag.map(|f| f.variables.as_slice())
            .unwrap_or(&[])
            .iter()
            .enumerate()
            .map(move |(i, var)| {
                let value = variation
                    .and_then(|v| {
                        let usages = config.usages(v);
                        let usage = match usages.get(i) {
                            Some(u) if u.0 == var.slot => Some(u),
                            _ => usages.iter().find(|u| u.0 == var.slot),
                        }?;
                        let by_kind = v
                            .alt_values
                            .iter()
                            .find(|a| a.0 == var.slot && a.1 == var.kind);
                        let index = by_kind.map_or(usage.1, |a| a.2);
                        config.variable_values.get(index as usize).map(|x| &x.value)
                    })
                    .unwrap_or(&var.default_value);
                (var.key.as_str(), value)
            })
    }

    /// The variables as a JSON object (allocates; for notifications and callers that want a map).
    pub fn variables_map(&self) -> serde_json::Map<String, Value> {
        self.variables()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    /// True when `ENABLED_FLAGS_ONLY` dropped this disabled decision from a multi-flag result.
    pub fn omitted_from_result(&self) -> bool {
        self.omitted
    }

    /// True for an error decision (unknown flag key, failed CMAB prediction).
    pub fn is_error(&self) -> bool {
        self.error
    }

    /// The uuid of the CMAB prediction that chose the variation (the impression's
    /// `metadata.cmab_uuid`); `None` for every other decision.
    pub fn cmab_uuid(&self) -> Option<&str> {
        self.cmab_uuid.as_deref()
    }

    pub(crate) fn main_impression(&self) -> bool {
        !self.error
            && !self.options.contains(DecideOption::DisableDecisionEvent)
            && match self.outcome.source {
                DecisionSource::FeatureTest
                | DecisionSource::Holdout
                | DecisionSource::Experiment => true,
                DecisionSource::Rollout => self.config.send_flag_decisions,
            }
    }

    /// The main impression's `metadata.enabled`: the flag's state, or `true` for the legacy
    /// experiment API (which has no flag).
    pub(crate) fn impression_enabled(&self) -> bool {
        self.outcome.source == DecisionSource::Experiment || self.enabled()
    }

    pub(crate) fn extra_impression(&self) -> bool {
        !self.error
            && !self.options.contains(DecideOption::DisableDecisionEvent)
            && self.outcome.extra_holdout.is_some()
    }

    /// Whether an impression must be sent for this decision.
    pub fn has_impression(&self) -> bool {
        self.main_impression() || self.extra_impression()
    }

    /// The impression as a logx v1 batch with one visitor per impression; `None` when none.
    ///
    /// A decision can imply two impressions (a global holdout with `excludeTargetedDeliveries`
    /// plus the rollout decision); the second visitor's event uuid is derived from `uuid`.
    pub fn impression_event(
        &self,
        user: &UserContext,
        client: &ClientInfo,
        timestamp_ms: u64,
        uuid: &str,
    ) -> Option<EventBatch> {
        let mut visitors = Vec::new();
        if self.main_impression() {
            visitors.push(events::impression_visitor(
                self.config,
                user,
                &self.flag_key,
                self.outcome.rule,
                self.outcome.source,
                self.outcome.variation,
                self.impression_enabled(),
                timestamp_ms,
                uuid.to_string(),
                self.cmab_uuid.as_deref(),
            ));
        }
        if self.extra_impression() {
            if let Some((holdout, variation)) = self.outcome.extra_holdout {
                let id = if visitors.is_empty() {
                    uuid.to_string()
                } else {
                    events::derived_uuid(uuid)
                };
                visitors.push(events::impression_visitor(
                    self.config,
                    user,
                    &self.flag_key,
                    Some(holdout),
                    DecisionSource::Holdout,
                    Some(variation),
                    variation.feature_enabled,
                    timestamp_ms,
                    id,
                    None,
                ));
            }
        }
        if visitors.is_empty() {
            return None;
        }
        Some(events::batch(self.config, client, visitors))
    }

    /// The decision notification payload.
    pub fn notification(&self, user: &UserContext) -> DecisionNotification {
        DecisionNotification {
            flag_key: self.flag_key.to_string(),
            enabled: self.enabled(),
            variables: self.variables_map(),
            variation_key: self.variation_key().map(str::to_string),
            rule_key: self.rule_key().map(str::to_string),
            reasons: self.reasons.clone(),
            decision_event_dispatched: self.has_impression(),
            experiment_id: self.experiment_id().map(str::to_string),
            variation_id: self.variation_id().map(str::to_string),
            variation_id_is_number: self.outcome.variation.is_some_and(|v| v.id_is_number),
            user_id: user.user_id().to_string(),
            attributes: user
                .attributes()
                .map(|(k, v)| (k.to_string(), v.to_json()))
                .collect(),
            source: self.outcome.source.as_str().to_string(),
        }
    }
}
