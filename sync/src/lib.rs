//! flagbridge-sync: the runtime around `flagbridge-engine`.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![warn(missing_docs)]

mod backoff;
pub mod datafile;
pub mod error;
pub mod events;
#[cfg(feature = "testing")]
pub mod testing;
pub mod config;
pub mod rest;
pub mod serve;
