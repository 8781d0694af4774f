//! The Optimizely REST side of the connector: metadata listing, results, winner picking.

pub mod client;
pub mod policy;
pub mod ratelimit;
pub mod results;
pub mod types;
pub mod winners;

pub use client::{RestClient, RestClientBuilder, RestError, ResultsOutcome};
pub use winners::{pick_winners, Winner};
