//! An OpenFeature provider over the [`Client`] (feature `openfeature`).
//!
//! - Boolean evaluation of `flag_key`: whether the flag is enabled for the user.
//! - String, integer, float and structured evaluations of `flag_key.variable_key`: that variable.
//! - The evaluation context's targeting key is the user id; its fields are the attributes
//!   (strings, booleans, integers and floats; other kinds are skipped).
//! - The variant is the variation key; the reason is `SPLIT` for an experiment rule,
//!   `TARGETING_MATCH` for a delivery rule or holdout, `DEFAULT` when no variation applied;
//!   flag metadata carries `ruleKey`, `variationKey` and `ruleType`.

use async_trait::async_trait;
use flagbridge_engine::{DecideOptions, UserContext};
use open_feature::provider::{FeatureProvider, ProviderMetadata, ResolutionDetails};
use open_feature::{
    EvaluationContext, EvaluationContextFieldValue, EvaluationError, EvaluationErrorCode,
    EvaluationReason, EvaluationResult, FlagMetadata, StructValue,
};
use serde_json::Value;

use crate::{Client, FlagDecision};

/// The OpenFeature provider for flagbridge.
#[derive(Debug)]
pub struct OptimizelyProvider {
    client: Client,
    metadata: ProviderMetadata,
}

impl OptimizelyProvider {
    /// A provider deciding through `client`.
    pub fn new(client: Client) -> Self {
        OptimizelyProvider {
            client,
            metadata: ProviderMetadata::new("flagbridge-optimizely"),
        }
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
        Ok(self.client.decide(&user, flag_key, DecideOptions::NONE))
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
        self.variable(flag_key, context, |v| v.as_str().map(str::to_owned))
    }

    async fn resolve_struct_value(
        &self,
        flag_key: &str,
        context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<StructValue>> {
        self.variable(flag_key, context, |v| {
            match open_feature::Value::try_from(v) {
                Ok(open_feature::Value::Struct(s)) => Some(s),
                _ => None,
            }
        })
    }
}
