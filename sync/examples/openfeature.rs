//! The OpenFeature provider over the `Client`: flags as booleans, variables as
//! `flag.variable` of their type, the targeting key as the user id and the other context
//! fields as attributes.
//!
//! ```sh
//! cargo run -p flagbridge-sync --example openfeature
//! ```
//!
//! Events are off so that it runs without an account; see `embed_client` for the rest.

use flagbridge_sync::Client;
use flagbridge_sync::OptimizelyProvider;
use open_feature::provider::FeatureProvider;
use open_feature::EvaluationContext;

const BUNDLED: &str = include_str!("../../datafile-fixtures/small.json");

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let client = Client::builder()
        .datafile(BUNDLED)
        .events_enabled(false)
        .start()
        .await?;
    let provider = OptimizelyProvider::new(client.clone());
    let context = EvaluationContext::default()
        .with_targeting_key("user-42")
        .with_custom_field("attr_00", "gold");

    let on = provider.resolve_bool_value("flag_0000", &context).await;
    match on {
        Ok(d) => println!(
            "flag_0000: {} (variant {:?}, reason {:?})",
            d.value, d.variant, d.reason
        ),
        Err(e) => println!("flag_0000: {e:?}"),
    }
    // Variables of each type: `flag.variable`.
    if let Ok(d) = provider
        .resolve_string_value("flag_0000.title", &context)
        .await
    {
        println!("flag_0000.title = {}", d.value);
    }
    if let Ok(d) = provider
        .resolve_int_value("flag_0000.max_items", &context)
        .await
    {
        println!("flag_0000.max_items = {}", d.value);
    }
    if let Ok(d) = provider
        .resolve_float_value("flag_0000.ratio", &context)
        .await
    {
        println!("flag_0000.ratio = {}", d.value);
    }
    if let Ok(d) = provider
        .resolve_bool_value("flag_0000.enabled_banner", &context)
        .await
    {
        println!("flag_0000.enabled_banner = {}", d.value);
    }
    // An unknown flag is an error with its OpenFeature code, not a panic.
    if let Err(e) = provider.resolve_bool_value("no_such_flag", &context).await {
        println!("no_such_flag: {:?}", e.code);
    }
    client.close().await;
    Ok(())
}
