//! The Brevo sync: `BrevoSync` against the fake Brevo (limits, bulk, events, a killed process),
//! and the connector's paths into Brevo (`flagbridge sync` and its words, backfill).

#[path = "../common/mod.rs"]
mod common;

mod backfill;
mod brevo_bulk;
mod brevo_engine;
mod brevo_events;
mod brevo_limits;
mod brevo_restart;
mod brevo_sync;
mod sync_once;
mod sync_words;
