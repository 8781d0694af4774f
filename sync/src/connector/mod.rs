//! The connector: the `flagbridge` application built on the library (feature `connector`, on by
//! default).
//!
//! - [`config`]: the YAML config file (several projects, `${ENV}` interpolation, strict keys).
//! - [`serve`]: the Agent-compatible HTTP service, the datafile webhook, `/health`, `/metrics`.
//! - [`rest`] and [`scheduled`]: `flagbridge sync`, the scheduled REST side (listing, results,
//!   winners' Brevo lists).
//! - [`backfill`]: replays a JSONL export of decisions into Brevo.
//! - [`cli`]: the command line; the `flagbridge` binary only calls [`cli::main`].
//!
//! An application that embeds only the [`Client`](crate::Client) builds `flagbridge-sync` with
//! `default-features = false` and compiles none of this (no axum, clap, indicatif,
//! tracing-subscriber).

pub mod backfill;
pub mod cli;
pub mod config;
pub mod rest;
pub mod scheduled;
pub mod serve;
