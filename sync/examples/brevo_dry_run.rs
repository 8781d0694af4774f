//! The Brevo sync as a decision sink, in dry run: every decision of the `Client` becomes a
//! Brevo contact update (attributes such as the variation per experiment and the enabled
//! features), coalesced per contact and written as the requests it would send to
//! `brevo-dry-run.jsonl` in a temporary folder, without a Brevo account.
//!
//! ```sh
//! cargo run -p flagbridge-sync --example brevo_dry_run
//! ```
//!
//! With an account, give the builder an API key instead of `dry_run_path` (and a
//! `store_path` for the durable outbox); the `flagbridge` binary does this from its config
//! file (`docs/brevo-sync.md`).

use std::sync::Arc;

use flagbridge_engine::{DecideOptions, UserContext};
use flagbridge_sync::brevo::BrevoSync;
use flagbridge_sync::Client;

const BUNDLED: &str = include_str!("../../datafile-fixtures/small.json");

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let dry_run = dir.path().join("brevo-dry-run.jsonl");
    let brevo = BrevoSync::builder()
        .store_path(None)
        .dry_run_path(dry_run.clone())
        .start()
        .await?;
    let client = Client::builder()
        .datafile(BUNDLED)
        .events_enabled(false)
        .decision_sink(Arc::new(brevo.sink()))
        .start()
        .await?;

    for i in 0..3 {
        // The contact is found by the `email` attribute (the default identity).
        let user = UserContext::new(format!("user-{i}"))
            .with_attribute("email", format!("user{i}@example.com"))
            .with_attribute("attr_00", "gold");
        let all = client.decide_all(&user, DecideOptions::NONE);
        println!("user-{i}: {} flags decided", all.len());
    }

    client.close().await;
    brevo.close().await?;
    let requests = std::fs::read_to_string(&dry_run)?;
    println!("requests Brevo would have received:");
    for line in requests.lines() {
        println!("  {line}");
    }
    Ok(())
}
