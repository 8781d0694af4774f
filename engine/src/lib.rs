//! flagbridge-engine: decides Optimizely Feature Experimentation flags locally from a datafile.
//!
//! Work in progress; see the issue tracker.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
