//! `flagbridge serve`: the Agent-compatible HTTP service, webhook, health and metrics.

pub mod agent;
pub mod auth;
pub mod metrics;
pub mod webhook;
