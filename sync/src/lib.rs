//! flagbridge-sync: the runtime around `flagbridge-engine`.
//!
//! # Overview
//! - [`Client`] (built with [`ClientBuilder`]) serves the current compiled datafile behind
//!   arc-swap, refreshes it in the background ([`datafile`]), decides and tracks through the
//!   engine, and sends impressions and conversions to Optimizely in batches ([`events`]).
//! - [`DecisionSink`] receives every decision and conversion (the Brevo sync implements it).
//! - [`NotificationCenter`] delivers DECISION, TRACK, LOG_EVENT and CONFIG_UPDATE notifications.
//! - `openfeature::OptimizelyProvider` (feature `openfeature`, on by default) is an OpenFeature
//!   provider over the `Client`.
//! - `testing` (feature `testing`) holds in-process fake servers for tests.
//! - The connector (the `flagbridge` binary): [`config`] (the YAML config file), [`serve`]
//!   (the Agent-compatible HTTP service), [`rest`] + [`scheduled`] (`flagbridge sync`: REST
//!   listing, results, winners' Brevo lists) and [`backfill`].
//!
//! A decide never waits for I/O, for a lock held by a writer, or for the event queue.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![warn(missing_docs)]

pub mod backfill;
mod backoff;
pub mod brevo;
pub mod cli;
pub mod client;
mod clock;
pub mod config;
pub mod datafile;
mod engine_glue;
pub mod error;
pub mod events;
pub mod fleet;
mod handoff;
pub mod notify;
#[cfg(feature = "openfeature")]
pub mod openfeature;
pub mod remote;
pub mod rest;
pub mod scheduled;
pub mod serve;
pub mod sink;
#[cfg(feature = "testing")]
pub mod testing;

pub use client::{Client, ClientBuilder, ClientUserContext, FlagDecision};
pub use datafile::poller::RefreshOutcome;
pub use datafile::source::DatafileSource;
pub use datafile::ConfigOrigin;
pub use error::{BuildError, CacheError, FetchError, RefreshError, StartError};
pub use events::{EventStats, EventStorage};
pub use notify::{Notification, NotificationCenter, NotificationType};
pub use sink::DecisionSink;
