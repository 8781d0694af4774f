//! flagbridge-sync: the runtime around `flagbridge-engine`.
//!
//! Work in progress; see the issue tracker.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod cli;
