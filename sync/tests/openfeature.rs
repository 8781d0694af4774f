//! The OpenFeature provider over the Client.
#![cfg(feature = "openfeature")]

use flagbridge_sync::openfeature::OptimizelyProvider;
use flagbridge_sync::testing::datafile;
use flagbridge_sync::Client;
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
