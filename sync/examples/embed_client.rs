//! Embedding the `Client`: decide, decide all, track, listen to decisions, close.
//!
//! ```sh
//! cargo run -p flagbridge-sync --example embed_client                 # the bundled datafile
//! cargo run -p flagbridge-sync --example embed_client -- datafile.json # your own
//! ```
//!
//! Events are off here so that it runs without an Optimizely account and without network.
//! In production leave them on (the default): impressions and conversions then go to
//! Optimizely through the durable event store (`flagbridge-events.sqlite` in the working
//! directory unless `event_storage` says otherwise), and `close` sends what is left.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use flagbridge_engine::{DecideOption, DecideOptions, UserContext};
use flagbridge_sync::{Client, NotificationType};

const BUNDLED: &str = include_str!("../../datafile-fixtures/small.json");

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let datafile = match std::env::args().nth(1) {
        Some(path) => std::fs::read_to_string(path)?,
        None => BUNDLED.to_string(),
    };
    let client = Client::builder()
        .datafile(datafile)
        .events_enabled(false)
        .start()
        .await?;

    // Every decision, as a DECISION notification (listeners run on their own thread).
    let notified = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&notified);
    client
        .notification_center()
        .add_listener(NotificationType::Decision, move |_| {
            counter.fetch_add(1, Ordering::Relaxed);
        });

    let user = UserContext::new("user-42")
        .with_attribute("attr_00", "gold")
        .with_attribute("attr_01", 7);
    let first = client
        .config()
        .flag_keys()
        .next()
        .map(str::to_owned)
        .unwrap_or_default();
    let decision = client.decide(
        &user,
        &first,
        DecideOptions::NONE.with(DecideOption::IncludeReasons),
    );
    println!(
        "{}: enabled={} variation={:?} rule={:?}",
        decision.flag_key, decision.enabled, decision.variation_key, decision.rule_key
    );
    for (key, value) in &decision.variables {
        println!("  {key} = {value}");
    }
    for reason in &decision.reasons {
        println!("  reason: {reason}");
    }

    let all = client.decide_all(&user, DecideOptions::NONE);
    let enabled = all.iter().filter(|d| d.enabled).count();
    println!("decide_all: {} flags, {enabled} enabled", all.len());

    if let Some(event) = client.config().event_keys().next().map(str::to_owned) {
        println!("track {event}: {}", client.track(&user, &event, None));
    }

    client.close().await;
    println!(
        "{} DECISION notifications",
        notified.load(Ordering::Relaxed)
    );
    Ok(())
}
