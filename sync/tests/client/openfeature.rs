//! The OpenFeature provider over the Client.
#![cfg(feature = "openfeature")]

use flagbridge_sync::testing::datafile;
use flagbridge_sync::Client;
use flagbridge_sync::OptimizelyProvider;
use open_feature::provider::FeatureProvider;
use open_feature::{
    EvaluationContext, EvaluationErrorCode, EvaluationReason, FlagMetadataValue, Value,
};

async fn provider() -> OptimizelyProvider {
    let client = Client::builder()
        .datafile(datafile("7"))
        .events_enabled(false)
        .start()
        .await
        .unwrap();
    OptimizelyProvider::new(client)
}

fn pro() -> EvaluationContext {
    EvaluationContext::default()
        .with_targeting_key("u1")
        .with_custom_field("plan", "pro")
}

#[tokio::test]
async fn boolean_is_enabled_with_variant_reason_and_metadata() {
    let p = provider().await;
    let d = p.resolve_bool_value("checkout", &pro()).await.unwrap();
    assert!(d.value);
    assert_eq!(d.variant.as_deref(), Some("treatment"));
    assert_eq!(d.reason, Some(EvaluationReason::Split));
    let meta = d.flag_metadata.unwrap();
    assert_eq!(
        meta.values["ruleKey"],
        FlagMetadataValue::String("checkout_test".into())
    );
    assert_eq!(
        meta.values["variationKey"],
        FlagMetadataValue::String("treatment".into())
    );

    let plain = EvaluationContext::default().with_targeting_key("u2");
    let d = p.resolve_bool_value("checkout", &plain).await.unwrap();
    assert_eq!(d.variant.as_deref(), Some("on"));
    assert_eq!(d.reason, Some(EvaluationReason::TargetingMatch));
}

#[tokio::test]
async fn variables_by_type() {
    let p = provider().await;
    let ctx = pro();
    assert_eq!(
        p.resolve_string_value("checkout.color", &ctx)
            .await
            .unwrap()
            .value,
        "blue-7"
    );
    assert_eq!(
        p.resolve_int_value("checkout.limit", &ctx)
            .await
            .unwrap()
            .value,
        25
    );
    assert_eq!(
        p.resolve_float_value("checkout.ratio", &ctx)
            .await
            .unwrap()
            .value,
        0.75
    );
    let s = p
        .resolve_struct_value("checkout.meta", &ctx)
        .await
        .unwrap()
        .value;
    assert_eq!(s.fields["tier"], Value::String("pro".into()));
    let plain = EvaluationContext::default().with_targeting_key("u2");
    assert_eq!(
        p.resolve_string_value("checkout.color", &plain)
            .await
            .unwrap()
            .value,
        "grey"
    );
}

#[tokio::test]
async fn errors_are_typed() {
    let p = provider().await;
    let ctx = pro();
    let code = |r: Result<_, open_feature::EvaluationError>| r.err().unwrap().code;
    assert_eq!(
        code(p.resolve_bool_value("nope", &ctx).await.map(|_| ())),
        EvaluationErrorCode::FlagNotFound
    );
    assert_eq!(
        code(
            p.resolve_int_value("checkout.color", &ctx)
                .await
                .map(|_| ())
        ),
        EvaluationErrorCode::TypeMismatch
    );
    assert_eq!(
        code(p.resolve_int_value("checkout.nope", &ctx).await.map(|_| ())),
        EvaluationErrorCode::FlagNotFound
    );
    assert_eq!(
        code(p.resolve_int_value("checkout", &ctx).await.map(|_| ())),
        EvaluationErrorCode::FlagNotFound
    );
    let anonymous = EvaluationContext::default();
    assert_eq!(
        code(
            p.resolve_bool_value("checkout", &anonymous)
                .await
                .map(|_| ())
        ),
        EvaluationErrorCode::TargetingKeyMissing
    );
}

/// Counts decisions offered to sinks (one per decide of one flag: one impression).
#[derive(Default)]
struct CountingSink(std::sync::atomic::AtomicUsize);

impl flagbridge_sync::DecisionSink for CountingSink {
    fn on_decision(
        &self,
        _config: &std::sync::Arc<flagbridge_engine::ProjectConfig>,
        _user: &flagbridge_engine::UserContext,
        _decision: &flagbridge_engine::Decision<'_>,
    ) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    fn on_conversion(
        &self,
        _config: &std::sync::Arc<flagbridge_engine::ProjectConfig>,
        _user: &flagbridge_engine::UserContext,
        _conversion: &flagbridge_engine::Conversion<'_>,
        _tags: Option<&serde_json::Map<String, serde_json::Value>>,
    ) {
    }
}

/// Every variable of `variables.json` (every type, odd values, arrays, nested null) read
/// through the provider equals what `decide` gives; each flag is decided once per user.
#[tokio::test]
async fn provider_matches_decide_on_every_variable_type() {
    let text = include_str!("../../../datafile-fixtures/variables.json");
    let df: serde_json::Value = serde_json::from_str(text).unwrap();
    let sink = std::sync::Arc::new(CountingSink::default());
    let client = Client::builder()
        .datafile(text)
        .events_enabled(false)
        .decision_sink(sink.clone())
        .start()
        .await
        .unwrap();
    let reference = Client::builder()
        .datafile(text)
        .events_enabled(false)
        .start()
        .await
        .unwrap();
    let p = OptimizelyProvider::new(client);
    let flags = df["featureFlags"].as_array().unwrap();
    let users = 12;
    let (mut compared, mut kinds) = (0, std::collections::BTreeSet::new());
    for u in 0..users {
        let id = format!("user-{u}");
        let ctx = EvaluationContext::default().with_targeting_key(id.as_str());
        let user = flagbridge_engine::UserContext::new(id.as_str());
        for flag in flags {
            let fk = flag["key"].as_str().unwrap();
            let want = reference.decide(&user, fk, flagbridge_engine::DecideOptions::NONE);
            assert_eq!(
                p.resolve_bool_value(fk, &ctx).await.unwrap().value,
                want.enabled
            );
            for var in flag["variables"].as_array().unwrap() {
                let key = format!("{fk}.{}", var["key"].as_str().unwrap());
                let expected = &want.variables[var["key"].as_str().unwrap()];
                let kind = match (var["type"].as_str().unwrap(), var["subType"].as_str()) {
                    (_, Some("json")) | ("json", _) => "json",
                    (t, _) => t,
                };
                kinds.insert(kind);
                match kind {
                    "boolean" => assert_eq!(
                        p.resolve_bool_value(&key, &ctx).await.unwrap().value,
                        expected.as_bool().unwrap(),
                        "{key}"
                    ),
                    "integer" => assert_eq!(
                        p.resolve_int_value(&key, &ctx).await.unwrap().value,
                        expected.as_i64().unwrap(),
                        "{key}"
                    ),
                    "double" => assert_eq!(
                        p.resolve_float_value(&key, &ctx).await.unwrap().value,
                        expected.as_f64().unwrap(),
                        "{key}"
                    ),
                    "string" => assert_eq!(
                        p.resolve_string_value(&key, &ctx).await.unwrap().value,
                        expected.as_str().unwrap(),
                        "{key}"
                    ),
                    _ => {
                        // JSON: its text as a string; objects also as a structure.
                        assert_eq!(
                            p.resolve_string_value(&key, &ctx).await.unwrap().value,
                            expected.to_string(),
                            "{key}"
                        );
                        if let Some(obj) = expected.as_object() {
                            let s = p.resolve_struct_value(&key, &ctx).await.unwrap().value;
                            let non_null = obj.values().filter(|v| !v.is_null()).count();
                            assert_eq!(s.fields.len(), non_null, "{key}");
                        }
                    }
                }
                compared += 1;
            }
        }
    }
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        ["boolean", "double", "integer", "json", "string"]
    );
    assert!(compared > 100, "{compared}");
    assert_eq!(
        sink.0.load(std::sync::atomic::Ordering::Relaxed),
        users * flags.len(),
        "one decision (impression) per flag per user"
    );
}

#[tokio::test]
async fn json_with_null_and_arrays_are_values() {
    let text = include_str!("../../../datafile-fixtures/variables.json");
    let client = Client::builder()
        .datafile(text)
        .events_enabled(false)
        .start()
        .await
        .unwrap();
    let p = OptimizelyProvider::new(client).with_decision_cache_capacity(0);
    let ctx = EvaluationContext::default().with_targeting_key("u");
    let s = p
        .resolve_struct_value("f_odd_values.json_nested", &ctx)
        .await
        .unwrap()
        .value;
    let Value::Struct(a) = &s.fields["a"] else {
        panic!("{s:?}")
    };
    assert_eq!(
        a.fields["b"],
        Value::Array(vec![Value::Bool(true), Value::Float(2.5)]),
        "null left out"
    );
    assert_eq!(
        p.resolve_string_value("f_odd_values.json_array", &ctx)
            .await
            .unwrap()
            .value,
        "[]"
    );
    assert!(
        p.resolve_bool_value("f_odd_values.bool_true", &ctx)
            .await
            .unwrap()
            .value
    );
}
