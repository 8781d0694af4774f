//! flagbridge-sync: the runtime around `flagbridge-engine`.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![warn(missing_docs)]

mod backoff;
pub mod config;
pub mod datafile;
pub mod error;
pub mod events;
pub mod rest;
pub mod scheduled;
pub mod serve;
#[cfg(feature = "testing")]
pub mod testing;
