//! The OpenFeature provider over the `Client` (feature `openfeature`).

use async_trait::async_trait;
use flagbridge_engine::{DecideOptions, UserContext};
use open_feature::provider::{FeatureProvider, ProviderMetadata, ResolutionDetails};
use open_feature::{
    EvaluationContext, EvaluationContextFieldValue, EvaluationError, EvaluationErrorCode,
    EvaluationReason, EvaluationResult, FlagMetadata, StructValue,
};
use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::Value;

use crate::{Client, FlagDecision};

/// Default number of (flag, user) decisions the provider remembers (see the module docs).
pub const DEFAULT_DECISION_CACHE_CAPACITY: usize = 10_000;

/// Decisions already made (and their impressions sent) for one datafile revision.
#[derive(Debug, Default)]
struct DecisionCache {
    revision: String,
    /// (flag key, user fingerprint) -> decision.
    entries: HashMap<(String, String), FlagDecision>,
}

/// An OpenFeature provider over the [`Client`] (feature `openfeature`).
///
/// - Boolean evaluation of `flag_key`: whether the flag is enabled for the user; of
///   `flag_key.variable_key` (when no flag has that whole key): that boolean variable.
/// - String, integer, float and structured evaluations of `flag_key.variable_key`: that
///   variable. A `json` variable (or a `string` with `subType: json`) evaluates as a structure
///   when it is an object (fields that are `null` are left out: OpenFeature has no null) and
///   as a string to its JSON text (arrays included).
/// - The evaluation context's targeting key is the user id; its fields are the attributes
///   (strings, booleans, integers and floats; other kinds are skipped).
/// - Several evaluations of one flag for one user (same id and attributes, same datafile
///   revision) are one decision: one impression, one decision notification, as one `decide`
///   would send. The provider remembers up to `DEFAULT_DECISION_CACHE_CAPACITY` (10,000) such
///   decisions ([`OptimizelyProvider::with_decision_cache_capacity`]; 0 decides every time).
/// - The variant is the variation key; the reason is `SPLIT` for an experiment rule,
///   `TARGETING_MATCH` for a delivery rule or holdout, `DEFAULT` when no variation applied;
///   flag metadata carries `ruleKey`, `variationKey` and `ruleType`.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use flagbridge_sync::OptimizelyProvider;
/// use open_feature::provider::FeatureProvider;
/// use open_feature::EvaluationContext;
///
/// let client = flagbridge_sync::Client::builder().sdk_key("YOUR_SDK_KEY").start().await?;
/// let provider = OptimizelyProvider::new(client);
/// let user = EvaluationContext::default()
///     .with_targeting_key("user-1")
///     .with_custom_field("plan", "pro");
/// // Each evaluation falls back to its default on an error (unknown flag, wrong type...).
/// let on = provider
///     .resolve_bool_value("checkout", &user)
///     .await
///     .map_or(false, |d| d.value);
/// let color = provider
///     .resolve_string_value("checkout.color", &user)
///     .await
///     .map_or_else(|_| "grey".to_string(), |d| d.value);
/// let dark = provider
///     .resolve_bool_value("checkout.dark_mode", &user)
///     .await
///     .map_or(false, |d| d.value);
/// println!("{on} {color} {dark}"); // one impression for `checkout`, not three
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct OptimizelyProvider {
    client: Client,
    metadata: ProviderMetadata,
    capacity: usize,
    cache: Mutex<DecisionCache>,
}

/// The user id and attributes as one string (attributes are kept in sorted key order).
fn fingerprint(user: &UserContext) -> String {
    let attributes: Vec<(&str, Value)> = user.attributes().map(|(k, v)| (k, v.to_json())).collect();
    serde_json::to_string(&(user.user_id(), attributes)).unwrap_or_default()
}

impl OptimizelyProvider {
    /// A provider deciding through `client`, remembering up to
    /// `DEFAULT_DECISION_CACHE_CAPACITY` (10,000) decisions.
    pub fn new(client: Client) -> Self {
        OptimizelyProvider {
            client,
            metadata: ProviderMetadata::new("flagbridge-optimizely"),
            capacity: DEFAULT_DECISION_CACHE_CAPACITY,
            cache: Mutex::new(DecisionCache::default()),
        }
    }

    /// How many (flag, user) decisions to remember; 0 decides (and sends an impression) on
    /// every evaluation. When full, the remembered decisions are forgotten at once.
    pub fn with_decision_cache_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    fn decide(
        &self,
        flag_key: &str,
        context: &EvaluationContext,
    ) -> EvaluationResult<FlagDecision> {
        let user = user_from_context(context)?;
        let config = self.client.config();
        if !config.flag_keys().any(|k| k == flag_key) {
            return Err(error(
                EvaluationErrorCode::FlagNotFound,
                format!("no flag `{flag_key}` in the datafile"),
            ));
        }
        if self.capacity == 0 {
            return Ok(self.client.decide(&user, flag_key, DecideOptions::NONE));
        }
        let key = (flag_key.to_string(), fingerprint(&user));
        let revision = config.revision();
        {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if cache.revision != revision {
                cache.entries.clear();
                cache.revision = revision.to_string();
            }
            if let Some(d) = cache.entries.get(&key) {
                return Ok(d.clone());
            }
        }
        let decision = self.client.decide(&user, flag_key, DecideOptions::NONE);
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.revision == revision {
            if cache.entries.len() >= self.capacity {
                cache.entries.clear();
            }
            cache.entries.insert(key, decision.clone());
        }
        Ok(decision)
    }

    fn variable<T>(
        &self,
        key: &str,
        context: &EvaluationContext,
        convert: impl FnOnce(&Value) -> Option<T>,
    ) -> EvaluationResult<ResolutionDetails<T>> {
        let Some((flag_key, variable_key)) = key.split_once('.') else {
            return Err(error(
                EvaluationErrorCode::FlagNotFound,
                format!("`{key}` is not of the form flag_key.variable_key"),
            ));
        };
        let decision = self.decide(flag_key, context)?;
        let Some(raw) = decision.variable(variable_key) else {
            return Err(error(
                EvaluationErrorCode::FlagNotFound,
                format!("flag `{flag_key}` has no variable `{variable_key}`"),
            ));
        };
        let Some(value) = convert(raw) else {
            return Err(error(
                EvaluationErrorCode::TypeMismatch,
                format!("variable `{key}` is {raw}, not the requested type"),
            ));
        };
        Ok(details(value, &decision))
    }
}

fn error(code: EvaluationErrorCode, message: String) -> EvaluationError {
    EvaluationError {
        code,
        message: Some(message),
    }
}

/// The engine user for an evaluation context.
pub fn user_from_context(context: &EvaluationContext) -> EvaluationResult<UserContext> {
    let Some(id) = context.targeting_key.as_deref() else {
        return Err(error(
            EvaluationErrorCode::TargetingKeyMissing,
            "the targeting key is the user id".into(),
        ));
    };
    let mut user = UserContext::new(id);
    let mut fields: Vec<_> = context.custom_fields.iter().collect();
    fields.sort_by(|a, b| a.0.cmp(b.0)); // HashMap order is random; keep attributes stable
    for (key, value) in fields {
        match value {
            EvaluationContextFieldValue::Bool(b) => user.set_attribute(key.clone(), *b),
            EvaluationContextFieldValue::Int(i) => user.set_attribute(key.clone(), *i),
            EvaluationContextFieldValue::Float(f) => user.set_attribute(key.clone(), *f),
            EvaluationContextFieldValue::String(s) => user.set_attribute(key.clone(), s.clone()),
            _ => {}
        }
    }
    Ok(user)
}

/// A JSON value as an OpenFeature value: `null` (which OpenFeature cannot hold) is left out of
/// objects and arrays; integers beyond i64 become floats.
fn to_open_feature(v: &Value) -> Option<open_feature::Value> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => open_feature::Value::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => open_feature::Value::Int(i),
            None => open_feature::Value::Float(n.as_f64()?),
        },
        Value::String(s) => open_feature::Value::String(s.clone()),
        Value::Array(items) => {
            open_feature::Value::Array(items.iter().filter_map(to_open_feature).collect())
        }
        Value::Object(fields) => {
            let mut out = StructValue::default();
            for (k, v) in fields {
                if let Some(v) = to_open_feature(v) {
                    out.add_field(k, v);
                }
            }
            open_feature::Value::Struct(out)
        }
    })
}

fn details<T>(value: T, decision: &FlagDecision) -> ResolutionDetails<T> {
    let reason = match (decision.variation_key.is_some(), decision.rule_type) {
        (false, _) => EvaluationReason::Default,
        (true, "feature-test") => EvaluationReason::Split,
        (true, _) => EvaluationReason::TargetingMatch,
    };
    let mut metadata = FlagMetadata::default().with_value("ruleType", decision.rule_type);
    if let Some(rule) = &decision.rule_key {
        metadata.add_value("ruleKey", rule.as_str());
    }
    if let Some(variation) = &decision.variation_key {
        metadata.add_value("variationKey", variation.as_str());
    }
    ResolutionDetails {
        value,
        variant: decision.variation_key.clone(),
        reason: Some(reason),
        flag_metadata: Some(metadata),
    }
}

#[async_trait]
impl FeatureProvider for OptimizelyProvider {
    fn metadata(&self) -> &ProviderMetadata {
        &self.metadata
    }

    async fn resolve_bool_value(
        &self,
        flag_key: &str,
        context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<bool>> {
        let is_flag = self.client.config().flag_keys().any(|k| k == flag_key);
        if !is_flag && flag_key.contains('.') {
            return self.variable(flag_key, context, Value::as_bool);
        }
        let decision = self.decide(flag_key, context)?;
        Ok(details(decision.enabled, &decision))
    }

    async fn resolve_int_value(
        &self,
        flag_key: &str,
        context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<i64>> {
        self.variable(flag_key, context, Value::as_i64)
    }

    async fn resolve_float_value(
        &self,
        flag_key: &str,
        context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<f64>> {
        self.variable(flag_key, context, Value::as_f64)
    }

    async fn resolve_string_value(
        &self,
        flag_key: &str,
        context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<String>> {
        self.variable(flag_key, context, |v| match v {
            Value::String(s) => Some(s.clone()),
            // A JSON variable reads as its JSON text.
            Value::Array(_) | Value::Object(_) => Some(v.to_string()),
            _ => None,
        })
    }

    async fn resolve_struct_value(
        &self,
        flag_key: &str,
        context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<StructValue>> {
        self.variable(flag_key, context, |v| match to_open_feature(v) {
            Some(open_feature::Value::Struct(s)) => Some(s),
            _ => None,
        })
    }
}
