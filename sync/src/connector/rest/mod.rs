//! The Optimizely REST side of the connector: metadata listing, results, winner picking.

pub mod client;
pub mod ratelimit;
pub mod results;
pub mod types;
pub mod winners;

pub use client::{RestClient, RestClientBuilder, RestError, ResultsOutcome};
pub use winners::{pick_winners, Winner};

use std::time::Duration;

/// Most attempts for one REST call, first try included (Optimizely REST and Brevo lists).
pub const MAX_ATTEMPTS: u32 = 5;
/// First backoff delay of a REST call (`crate::http` backoff: half fixed, half jittered).
pub const REST_BACKOFF_BASE: Duration = Duration::from_secs(1);
/// Longest backoff delay, and longest honoured `Retry-After` / `x-sib-ratelimit-reset`.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
