//! flagbridge-sync: the runtime around `flagbridge-engine`.
//!
//! # Overview
//! - [`Client`] (built with [`ClientBuilder`]) serves the current compiled datafile behind
//!   arc-swap, refreshes it in the background, decides and tracks through the engine, and sends
//!   impressions and conversions to Optimizely through a durable queue ([`events`]).
//! - [`ClientUserContext`] decides for one user; [`FlagDecision`] is an owned decision.
//! - [`BrevoSync`] (built with [`BrevoSyncBuilder`]) carries every decision and conversion into
//!   Brevo contacts and events; [`brevo`] holds its settings and HTTP seam. It plugs into the
//!   client as a [`DecisionSink`].
//! - [`NotificationCenter`] delivers DECISION, TRACK, LOG_EVENT and CONFIG_UPDATE notifications.
//! - [`remote`]: CMAB predictions and ODP segments for the async decide family.
//! - [`fleet`]: several instances sharing one Redis (Brevo budget, contact outbox, leases).
//! - [`OptimizelyProvider`] (feature `openfeature`, on by default): an OpenFeature provider.
//! - [`connector`] (feature `connector`, on by default): the `flagbridge` application (config
//!   file, Agent-compatible HTTP service, scheduled REST sync, backfill, command line). Without
//!   it (`default-features = false`) the library builds without axum, clap, indicatif or
//!   tracing-subscriber.
//! - `testing` (feature `testing`): in-process fake servers for tests.
//!
//! A decide never waits for I/O, for a lock held by a writer, or for the event queue.
//!
//! # Example
//! ```no_run
//! use flagbridge_sync::{Client, DecideOptions};
//!
//! # async fn run(datafile: String) -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::builder().datafile(datafile).start().await?;
//! let user = client.create_user_context("user-1");
//! let decision = user.decide("checkout_flow", DecideOptions::NONE);
//! println!("{:?} {}", decision.variation_key, decision.enabled);
//! client.close().await;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![deny(missing_docs)]

mod blocking;
pub mod brevo;
pub mod client;
mod clock;
mod datafile;
mod error;
pub mod events;
pub mod fleet;
mod handoff;
mod http;
mod notify;
#[cfg(feature = "openfeature")]
mod openfeature;
mod pace;
pub mod remote;
mod sink;

#[cfg(feature = "connector")]
pub mod connector;
#[cfg(feature = "testing")]
pub mod testing;

pub use brevo::{BrevoSink, BrevoSync, BrevoSyncBuilder};
pub use client::{Client, ClientBuilder, ClientUserContext, FlagDecision};
pub use datafile::poller::RefreshOutcome;
pub use datafile::source::DatafileSource;
pub use datafile::ConfigOrigin;
pub use error::{BuildError, CacheError, FetchError, RefreshError, StartError};
pub use events::{EventStats, EventStorage};
pub use flagbridge_engine::{
    self as engine, Conversion, DecideOption, DecideOptions, Decision, ProjectConfig, UserContext,
};
pub use http::TransportError;
pub use notify::{Notification, NotificationCenter, NotificationType};
#[cfg(feature = "openfeature")]
pub use openfeature::OptimizelyProvider;
pub use sink::DecisionSink;

/// The boxed future the transport traits return ([`DatafileSource`], [`events::EventTransport`],
/// [`brevo::BrevoTransport`]).
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
