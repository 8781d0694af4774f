//! Agent's older API: `POST /v1/activate` (features and experiments, with an impression unless
//! `disableTracking=true`) and `POST /v1/override` (forced variations, in memory; opt-in with
//! `server.api.enable_overrides`, as Agent's `api.enableOverrides`).

use axum::http::StatusCode;
use flagbridge_engine::{DecideOption, DecideOptions, UserContext};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::state::ProjectRuntime;

/// `POST /v1/activate` body (`ActivateContext`); `userId` may be empty, as in Agent.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivateContext {
    /// User id.
    #[serde(default)]
    pub user_id: String,
    /// Attributes (arrays and objects are ignored).
    #[serde(default)]
    pub user_attributes: Option<Map<String, Value>>,
}

/// One activation (Agent's `Decision`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ActivateDecision {
    /// User id.
    pub user_id: String,
    /// Experiment key (features: the deciding experiment, when one decided).
    pub experiment_key: String,
    /// Feature (flag) key; `""` for experiments.
    pub feature_key: String,
    /// Variation key or `""`.
    pub variation_key: String,
    /// `"feature"` or `"experiment"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Feature variables (left out when empty, as Agent does).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub variables: Map<String, Value>,
    /// Feature enabled / experiment has a variation.
    pub enabled: bool,
}

/// The query of `/v1/activate`.
#[derive(Debug, Default)]
pub struct ActivateQuery {
    /// `featureKey` values.
    pub feature_keys: Vec<String>,
    /// `experimentKey` values.
    pub experiment_keys: Vec<String>,
    /// `type` values (`feature`, `experiment`).
    pub types: Vec<String>,
    /// `disableTracking=true`.
    pub disable_tracking: bool,
    /// `enabled=true|false` filter.
    pub enabled: Option<String>,
}

impl ActivateQuery {
    /// Reads the query values (`get` gives every value of a name, in order).
    pub fn from_values(get: impl Fn(&str) -> Vec<String>) -> Self {
        ActivateQuery {
            feature_keys: get("featureKey"),
            experiment_keys: get("experimentKey"),
            types: get("type"),
            disable_tracking: get("disableTracking").first().map(String::as_str) == Some("true"),
            enabled: get("enabled").into_iter().next().filter(|s| !s.is_empty()),
        }
    }
}

type Answer = (StatusCode, Value);

fn err(status: StatusCode, message: impl Into<String>) -> Answer {
    (status, json!({ "error": message.into() }))
}

fn push_unique(list: &mut Vec<String>, key: &str) {
    if !list.iter().any(|k| k == key) {
        list.push(key.to_string());
    }
}

/// `POST /v1/activate`.
pub(crate) fn activate_op(p: &ProjectRuntime, q: &ActivateQuery, body: ActivateContext) -> Answer {
    let oc = p.client.optimizely_config();
    let mut experiments: Vec<String> = Vec::new();
    let mut features: Vec<String> = Vec::new();
    for t in &q.types {
        match t.as_str() {
            "experiment" => oc
                .experiments_map
                .0
                .iter()
                .for_each(|(k, _)| push_unique(&mut experiments, k)),
            "feature" => oc
                .features_map
                .0
                .iter()
                .for_each(|(k, _)| push_unique(&mut features, k)),
            _ => {
                return err(
                    StatusCode::BAD_REQUEST,
                    "query.type: not supported (use experiment or feature)",
                )
            }
        }
    }
    q.experiment_keys
        .iter()
        .for_each(|k| push_unique(&mut experiments, k));
    q.feature_keys
        .iter()
        .for_each(|k| push_unique(&mut features, k));
    let user = super::routes::build_user(&body.user_id, body.user_attributes.as_ref());
    let mut out = Vec::new();
    for key in &experiments {
        let Some(variation) = p.client.activate_experiment(&user, key, q.disable_tracking) else {
            return err(StatusCode::NOT_FOUND, "experimentKey not-found");
        };
        out.push(ActivateDecision {
            user_id: body.user_id.clone(),
            experiment_key: key.clone(),
            feature_key: String::new(),
            enabled: variation.is_some(),
            variation_key: variation.unwrap_or_default(),
            kind: "experiment".into(),
            variables: Map::new(),
        });
    }
    for key in &features {
        if oc.features_map.get(key).is_none() {
            return err(StatusCode::NOT_FOUND, "featureKey not-found");
        }
        out.push(activate_feature(p, &user, key, q.disable_tracking));
    }
    let out: Vec<ActivateDecision> = match q.enabled.as_deref() {
        Some("true") => out.into_iter().filter(|d| d.enabled).collect(),
        Some("false") => out.into_iter().filter(|d| !d.enabled).collect(),
        _ => out,
    };
    (
        StatusCode::OK,
        serde_json::to_value(out).unwrap_or(Value::Null),
    )
}

fn activate_feature(
    p: &ProjectRuntime,
    user: &UserContext,
    key: &str,
    disable_tracking: bool,
) -> ActivateDecision {
    let options = if disable_tracking {
        DecideOptions::from(DecideOption::DisableDecisionEvent)
    } else {
        DecideOptions::NONE
    };
    let d = p.client.decide(user, key, options);
    // Agent names the experiment and variation only when an experiment decided.
    let from_test = d.rule_type == "feature-test";
    ActivateDecision {
        user_id: user.user_id().to_string(),
        experiment_key: if from_test {
            d.rule_key.clone().unwrap_or_default()
        } else {
            String::new()
        },
        feature_key: key.to_string(),
        variation_key: if from_test {
            d.variation_key.clone().unwrap_or_default()
        } else {
            String::new()
        },
        kind: "feature".into(),
        variables: d.variables,
        enabled: d.enabled,
    }
}

/// `POST /v1/override` body (`OverrideContext`); an empty `variationKey` removes the override.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OverrideContext {
    /// User id (required).
    #[serde(default)]
    pub user_id: String,
    /// Experiment key (required).
    #[serde(default)]
    pub experiment_key: String,
    /// Variation key; `""` removes.
    #[serde(default)]
    pub variation_key: String,
}

/// `POST /v1/override` answer (Agent's `Override`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OverrideOut {
    /// User id.
    pub user_id: String,
    /// Experiment key.
    pub experiment_key: String,
    /// Variation key (`""` when removed).
    pub variation_key: String,
    /// The override this one replaced or removed, or `""`.
    pub prev_variation_key: String,
    /// What happened (`updating previous override`, `no pre-existing override`...).
    pub messages: Option<Vec<String>>,
}

/// `POST /v1/override`.
pub(crate) fn override_op(p: &ProjectRuntime, enabled: bool, body: OverrideContext) -> Answer {
    if !enabled {
        return err(
            StatusCode::FORBIDDEN,
            "overrides not enabled (set server.api.enable_overrides: true)",
        );
    }
    if body.user_id.is_empty() {
        return err(StatusCode::BAD_REQUEST, "body.userId: required");
    }
    if body.experiment_key.is_empty() {
        return err(StatusCode::BAD_REQUEST, "body.experimentKey: required");
    }
    let client = &p.client;
    let prev = client.forced_variation(&body.user_id, &body.experiment_key);
    let mut messages = Vec::new();
    if body.variation_key.is_empty() {
        messages.push(if prev.is_some() {
            "removing previous override"
        } else {
            "no pre-existing override"
        });
        client.set_forced_variation(&body.user_id, &body.experiment_key, None);
    } else {
        let oc = client.optimizely_config();
        match oc.experiments_map.get(&body.experiment_key) {
            None => messages.push("experimentKey not found in configuration"),
            Some(e) if e.variations_map.get(&body.variation_key).is_none() => {
                messages.push("variationKey not found in configuration")
            }
            Some(_) => {}
        }
        if prev.is_some() {
            messages.push("updating previous override");
        }
        // An unknown experiment or variation cannot be forced here (the client checks); the
        // messages say so, as Agent's do.
        client.set_forced_variation(
            &body.user_id,
            &body.experiment_key,
            Some(&body.variation_key),
        );
    }
    let out = OverrideOut {
        user_id: body.user_id,
        experiment_key: body.experiment_key,
        variation_key: body.variation_key,
        prev_variation_key: prev.unwrap_or_default(),
        messages: (!messages.is_empty())
            .then(|| messages.into_iter().map(str::to_string).collect()),
    };
    (
        StatusCode::OK,
        serde_json::to_value(out).unwrap_or(Value::Null),
    )
}
